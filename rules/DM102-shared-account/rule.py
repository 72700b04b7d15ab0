"""Several units run as the same account."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Confidence, Effect, Hit, RuleContext, Severity

ID = "DM102"
NAME = "shared-account"
SEVERITY = Severity.WARNING
EFFECT = Effect.ACKNOWLEDGE
TAGS = ("accounts", "units")
SUMMARY = "Several units run as the account: they must move together under one User= name."
FIX = "None needed: the plan migrates every unit of the account together, with the same User= name."
FACTS = ("F1.10", "F4.9")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        units = ctx.q.units_running_as(acc.name, min_confidence=Confidence.LIKELY)
        # instances of one template count once, and a template nobody instantiates runs nothing
        distinct = sorted({u.template or u.name for u in units if not u.is_template})
        if len(distinct) > 1:
            yield Hit(
                acc.name,
                f"{len(distinct)} units run as it: {', '.join(distinct)}; migrate them together with the same User=",
                acc.location,
                tuple(distinct),
            )
