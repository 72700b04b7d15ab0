"""What a rule sees: the API that rules/*/rule.py import."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dynmigrate.graph.queries import Queries
from dynmigrate.model.accounts import Account
from dynmigrate.model.common import Confidence, Effect, Location, RuleId, Severity
from dynmigrate.model.snapshot import Snapshot

__all__ = ["Account", "Confidence", "Effect", "Hit", "Location", "RuleContext", "RuleMeta", "Severity"]


@dataclass(frozen=True, slots=True)
class Hit:
    """What a rule reports; the runner stamps it with the rule's id, severity and effect. `effect`
    is for the rules whose effect depends on the evidence (a bus name the service requires blocks,
    one it can live without does not): it must not be stronger than the rule's EFFECT."""

    subject: str
    message: str
    location: Location | None = None
    related: tuple[str, ...] = ()
    effect: Effect | None = None


@dataclass(frozen=True, slots=True)
class RuleMeta:
    id: RuleId
    name: str
    severity: Severity
    effect: Effect
    tags: tuple[str, ...]
    summary: str
    fix: str  # the one-line fix every finding of the rule shows
    facts: tuple[str, ...] = ()  # facts-sheet items the rule rests on (F1.7, ...)


CheckFn = Callable[["RuleContext"], Iterator[Hit]]


@dataclass(frozen=True, slots=True)
class RuleContext:
    snap: Snapshot
    q: Queries

    def service_accounts(self) -> list[Account]:
        """Candidate accounts that at least one unit runs as."""
        return [a for a in self.q.candidates() if self.q.units_of(a.name) and not self.excluded(a)]

    def excluded(self, acc: Account) -> bool:
        return acc.name in self.snap.policy.never_accounts or acc.name in ("nobody", "nogroup")
