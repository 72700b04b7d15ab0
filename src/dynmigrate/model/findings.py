"""Findings (what rules report) and problems (what readers could not read)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dynmigrate.model.common import Effect, Location, RuleId, Severity


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """Input the readers could not use: a broken line, an unreadable file, a symlink loop.

    Problems become DM001 findings; the scan goes on.
    """

    location: Location
    message: str


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One piece of evidence about one subject (an account, or "" for the host)."""

    subject: str
    rule: RuleId
    severity: Severity
    effect: Effect
    message: str
    location: Location | None = None
    related: tuple[str, ...] = field(default=())  # units or paths the finding is about

    def sort_key(self) -> tuple[str, str, str, int, str]:
        loc = self.location
        return (self.subject, self.rule, loc.file if loc else "", loc.line if loc else 0, self.message)
