"""dpkg statoverride entries name the account or its group."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import RefKind

ID = "DM408"
NAME = "statoverride"
SEVERITY = Severity.WARNING
EFFECT = Effect.INFORMS
TAGS = ("references", "debian")
SUMMARY = "A statoverride naming a deleted account makes every later dpkg run abort; the plan removes and saves it."
FIX = "None needed: stage 2 removes the statoverride and saves it for the rollback."
FACTS = ("F5.4",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        seen = set()
        for ref in ctx.q.refs_to_account(acc):
            if ref.kind is RefKind.STATOVERRIDE and ref.location not in seen:
                seen.add(ref.location)
                yield Hit(acc.name, f"statoverride `{ref.detail}`", ref.location)
