"""The unit is a D-Bus service (Type=dbus or BusName=)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM205"
NAME = "dbus-service"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("units", "dbus")
SUMMARY = "A service that owns a bus name cannot use DynamicUser: bus policies name static users."
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
            bus = unit.value("Service", "BusName")
            typ = unit.value("Service", "Type")
            if bus is not None:
                yield Hit(acc.name, f"{name} owns bus name {bus.value}", bus.location, (name,))
            elif typ is not None and typ.value == "dbus":
                yield Hit(acc.name, f"{name} is Type=dbus", typ.location, (name,))
