"""The system bus is dbus-daemon on systemd 255 or later, and the unit uses the bus."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM505"
NAME = "dbus-daemon-bus"
SEVERITY = Severity.ERROR
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("environment", "dbus")
SUMMARY = "From systemd 255 on, dbus-daemon cannot serve DynamicUser units at all; dbus-broker can."
FIX = "Run the system bus on dbus-broker (apt install dbus-broker), or keep this account static."
FACTS = ("F8.4",)

BUS_UNITS = frozenset({"dbus.service", "dbus.socket"})
DEPENDENCIES = ("Requires", "Wants", "BindsTo", "Requisite", "After")


def _bus_daemon(ctx: RuleContext) -> str | None:
    """The program that serves the system bus (dbus.service after aliases), by its basename."""
    unit = ctx.q.unit("dbus.service")
    if unit is None:
        return None
    start = unit.value("Service", "ExecStart")
    if start is None or not start.value.split():
        return None
    return start.value.split()[0].lstrip("@-:+!|").rsplit("/", 1)[-1]


def check(ctx: RuleContext) -> Iterator[Hit]:
    version = ctx.snap.host.systemd_version
    if version is None or version < 255 or _bus_daemon(ctx) != "dbus-daemon":
        return
    for acc in ctx.service_accounts():
        for unit in ctx.q.units_running_as(acc.name):
            name = unit.name
            if unit.prefix in ("dbus", "dbus-broker"):
                continue
            bus = unit.value("Service", "BusName")
            typ = unit.value("Service", "Type")
            if bus is not None:
                why, loc = f"owns bus name {bus.value}", bus.location
            elif typ is not None and typ.value == "dbus":
                why, loc = "is Type=dbus", typ.location
            else:
                deps = [d for key in DEPENDENCIES for d in unit.values("Unit", key) if BUS_UNITS & set(d.value.split())]
                if not deps:
                    continue
                why, loc = f"has {deps[0].key}={deps[0].value}", deps[0].location
            yield Hit(
                acc.name,
                f"{name} {why}, and the system bus is dbus-daemon under systemd {version}: dbus-daemon does not "
                "serve DynamicUser units since 255; switch the system bus to dbus-broker, or confirm that "
                f"{name} works without the bus",
                loc,
                (name,),
            )
