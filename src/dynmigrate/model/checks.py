"""What `dynmigrate verify` found on a host: one check of one migrated account."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    account: str
    check: str
    ok: bool
    detail: str
