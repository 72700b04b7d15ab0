"""The unit already has DynamicUser=yes, but a static account of that name exists."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM202"
NAME = "already-dynamic"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("units",)
SUMMARY = "DynamicUser=yes is set, yet the static account exists and silently wins: the unit runs as it."
FIX = "Remove the static account once nothing else needs it."
FACTS = ("F1.7", "F5.5")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for unit in ctx.q.units_running_as(acc.name):
            name = unit.name
            d = unit.value("Service", "DynamicUser")
            if d is not None and unit.flag("Service", "DynamicUser"):
                yield Hit(
                    acc.name,
                    f"{name} already sets DynamicUser=yes, but static {acc.name} wins: only the account needs to go",
                    d.location,
                    (name,),
                )
