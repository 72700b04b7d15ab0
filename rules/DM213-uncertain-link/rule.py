"""The only evidence that a unit runs as the account is indirect."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Confidence, Effect, Hit, RuleContext, Severity

ID = "DM213"
NAME = "uncertain-link"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("units", "process-model")
SUMMARY = "Only directory ownership or an unrelated package ties a unit to the account: confirm it before planning."
FIX = "Confirm which account the unit runs as and set User= explicitly."
FACTS = ("F4.3",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        links = ctx.q.units_of(acc.name)
        if links and all(link.confidence is Confidence.POSSIBLE for link in links):
            first = links[0]
            units = sorted({link.unit for link in links})
            yield Hit(
                acc.name,
                f"only indirect evidence links {', '.join(units)} to {acc.name} ({first.how}: {first.detail}); "
                "confirm which user the daemon really runs as",
                ctx.q.link_location(first),
                tuple(units),
            )
