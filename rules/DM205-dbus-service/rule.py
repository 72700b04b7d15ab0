"""The unit is a D-Bus service that needs its bus name (BusName=, Type=dbus, or D-Bus activated)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM205"
NAME = "dbus-service"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("units", "dbus")
SUMMARY = (
    "A service that needs its bus name (BusName=, Type=dbus, D-Bus activated) cannot use DynamicUser: "
    "bus policies name static users."
)
FIX = "Keep the static account; harden the unit with the settings DynamicUser implies."
FACTS = ("F4.1",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for unit in ctx.q.units_running_as(acc.name):
            name = unit.name
            if unit.prefix in ("dbus", "dbus-broker") or "dbus" in unit.aliases or "dbus.service" in unit.aliases:
                yield Hit(
                    acc.name,
                    f"{name} is the system bus itself: it must resolve every policy name as a static user",
                    ctx.q.unit_location(name),
                    (name,),
                )
                continue
            required = ctx.q.bus_requirement(name)
            if required is not None:
                why, loc = required
                yield Hit(acc.name, f"{name} {why}: it cannot run without its bus name", loc, (name,))
