"""python -m dynmigrate."""

from __future__ import annotations

from dynmigrate.cli.main import main

main()
