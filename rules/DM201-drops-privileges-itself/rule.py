"""The unit has no User=: the daemon starts as root and switches to the account itself."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Confidence, Effect, Hit, RuleContext, Severity

ID = "DM201"
NAME = "drops-privileges-itself"
SEVERITY = Severity.WARNING
EFFECT = Effect.INFORMS
TAGS = ("units", "process-model")
SUMMARY = "No User= in the unit; the daemon switches to the account itself (-u, config, wrapper, package)."
FIX = "None needed: the drop-in keeps the daemon's own switch (User= plus the ! prefix)."
FACTS = ("F1.9", "F4.3")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for unit in ctx.q.units_running_as(acc.name, min_confidence=Confidence.LIKELY):
            name = unit.name
            if unit.type != "service" or unit.value("Service", "User") is not None:
                continue
            if unit.flag("Service", "DynamicUser"):
                continue  # systemd already runs it as the (same-named) user: DM202
            link = ctx.q.best_link(acc.name, name)
            if link is None:
                continue
            yield Hit(
                acc.name,
                f"{name} has no User=; linked by {link.how} ({link.detail}): the drop-in sets User={acc.name} "
                "and keeps the daemon's own switch with the '!' prefix",
                ctx.q.link_location(link),
                (name,),
            )
