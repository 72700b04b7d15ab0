"""dynmigrate: move services from static system accounts to systemd DynamicUser=yes."""

from __future__ import annotations

__version__ = "0.1.0"
