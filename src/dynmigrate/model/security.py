"""What `systemd-analyze security --offline=yes` said of each planned unit, before and after its
drop-in (output/security.py runs the tool; the plan folder's REPORT.md shows it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CheckChange:
    """One check of systemd-analyze security whose result differs after the drop-in."""

    name: str  # "RemoveIPC=", "User=/DynamicUser="
    before: str  # systemd's description of the check's result, before
    after: str
    exposure_before: float  # 0.0 when the check passes
    exposure_after: float


@dataclass(frozen=True, slots=True)
class Exposure:
    unit: str
    before: str  # "9.2 UNSAFE"
    after: str  # "8.4 EXPOSED"
    improved: tuple[CheckChange, ...]
    worse: tuple[CheckChange, ...]


@dataclass(frozen=True, slots=True)
class Security:
    """What the plan knows about exposure: per unit, or why nothing was measured."""

    units: Mapping[str, Exposure]
    note: str  # why a unit has no measurement ("" when every unit has one)
