"""A cron job runs as the account, or names it."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import RefKind

ID = "DM401"
NAME = "cron-job"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("references", "cron")
SUMMARY = (
    "Cron cannot run a job as a user that exists only while the unit runs; turn it into a timer with the same User=."
)
FIX = "Turn the cron job into a timer whose service runs as the same user."
FACTS = ("F4.5",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for ref in ctx.q.refs_to_account(acc):
            if ref.kind is RefKind.CRON:
                yield Hit(acc.name, f"cron: {ref.detail}", ref.location)
