"""User= is a number: dynamic allocation is skipped."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM203"
NAME = "numeric-user"
SEVERITY = Severity.WARNING
EFFECT = Effect.INFORMS
TAGS = ("units",)
SUMMARY = "A numeric User= is used as-is, never allocated; the plan's drop-in names the user instead."
FIX = "Name the user in User= instead of a number."
FACTS = ("F1.8", "F6.11")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for unit in ctx.q.units_running_as(acc.name):
            name = unit.name
            d = unit.value("Service", "User")
            if d is not None and d.value.isdigit():
                yield Hit(
                    acc.name,
                    f"{name} has numeric User={d.value}, which skips dynamic allocation; the drop-in sets "
                    f"User={acc.name}",
                    d.location,
                    (name,),
                )
