"""A polkit rule names the account."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import RefKind

ID = "DM404"
NAME = "polkit"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("references", "polkit")
SUMMARY = "polkit rules match user names; a dynamic user's name exists only while its unit runs."
FIX = "Grant through a static group given with SupplementaryGroups=."
FACTS = ("F4.5",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for ref in ctx.q.refs_to_account(acc):
            if ref.kind is RefKind.POLKIT:
                yield Hit(acc.name, f"polkit: {ref.detail}", ref.location)
