"""base-passwd accounts (UID below 100) are never deleted."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM106"
NAME = "base-account"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("accounts", "debian")
SUMMARY = "A base-passwd account (UID below 100, e.g. www-data) is shared by the distribution and must stay."
FIX = "Keep the base account; run the service under a new dedicated dynamic user name."
FACTS = ("F3.2",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        if ctx.q.is_base_account(acc):
            units = ", ".join(ctx.q.unit_names_of(acc.name))
            yield Hit(
                acc.name,
                f"UID {acc.uid} is a base-passwd account: it is never deleted; {units} could instead run "
                "under a new dedicated dynamic name (a manual config change)",
                acc.location,
            )
