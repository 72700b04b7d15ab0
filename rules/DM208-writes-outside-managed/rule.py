"""The unit writes to paths no managed directory can hold."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Confidence, Effect, Hit, Location, RuleContext, Severity
from dynmigrate.graph.queries import managed_slot
from dynmigrate.model.daemons import state_config
from dynmigrate.model.paths import is_under, rel
from dynmigrate.model.units import Unit
from dynmigrate.model.unitsyntax import exec_argv

ID = "DM208"
NAME = "writes-outside-managed"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("units", "files")
SUMMARY = (
    "ReadWritePaths= or WorkingDirectory= outside /var/lib, /var/cache, /var/log, /run: data "
    "must move, or UIDs get recycled onto it."
)
FIX = "Move the data under StateDirectory= and set WorkingDirectory= there."
FACTS = ("F1.15", "F2.13", "F3.5", "F4.6")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for unit in ctx.q.units_running_as(acc.name, min_confidence=Confidence.LIKELY):
            name = unit.name
            for key in ("ReadWritePaths", "ReadWriteDirectories"):
                for d in unit.values("Service", key):
                    for word in d.value.split():
                        path = word.lstrip("-+")
                        if not path.startswith("/"):
                            continue
                        slot = managed_slot(str(rel(path)))
                        state = _state_config_in(unit, path)
                        if slot is not None and slot[0] == "ConfigurationDirectory" and state is not None:
                            yield _state_config_hit(acc.name, unit, key, path, state, d.location)
                        elif slot is not None and slot[0] == "ConfigurationDirectory":
                            yield Hit(
                                acc.name,
                                f"{name}: {key}={path} lets it write its configuration; the plan gives the "
                                "configuration to root, so runtime rewrites of it fail (the daemon still reads it)",
                                d.location,
                                (name,),
                                Effect.ACKNOWLEDGE,
                            )
                        elif slot is None:
                            yield Hit(
                                acc.name,
                                f"{name}: {key}={path} is outside every managed directory",
                                d.location,
                                (name,),
                            )
            wd = unit.value("Service", "WorkingDirectory")
            if wd is not None:
                path = wd.value.lstrip("-")
                if path == "~":
                    yield Hit(
                        acc.name, f"{name}: WorkingDirectory=~ is the dynamic user's home, /", wd.location, (name,)
                    )
                elif path.startswith("/") and path != "/" and managed_slot(str(rel(path))) is None:
                    yield Hit(
                        acc.name,
                        f"{name}: WorkingDirectory={path} is read-only under DynamicUser",
                        wd.location,
                        (name,),
                    )


def _state_config_in(unit: Unit, directory: str) -> str | None:
    """The configuration file in DIRECTORY that the unit's daemon rewrites as its state (redis-sentinel)."""
    for d in unit.values("Service", "ExecStart"):
        path = state_config(exec_argv(d.raw if unit.is_template else d.value))
        if path is not None and path.startswith("/") and is_under(str(rel(path)), str(rel(directory))):
            return path
    return None


def _state_config_hit(account: str, unit: Unit, key: str, directory: str, path: str, where: Location | None) -> Hit:
    """The daemon must rewrite PATH: with a state directory the plan moves it there (the drop-in starts
    the daemon with a copy in it); without one it is a manual step."""
    has_state = bool(unit.values("Service", "StateDirectory")) or any(
        (slot := managed_slot(str(rel(w.lstrip("-+"))))) is not None and slot[0] == "StateDirectory"
        for d in (*unit.values("Service", "ReadWritePaths"), *unit.values("Service", "ReadWriteDirectories"))
        for w in d.value.split()
        if w.lstrip("-+").startswith("/")
    )
    what = (
        f"{unit.name}: {key}={directory}: its daemon rewrites {path} as its state and exits when it cannot, "
        "and the plan gives the configuration to root"
    )
    if has_state:
        return Hit(
            account,
            f"{what}: the drop-in starts it with a copy in its state directory, which stage 1 makes; {path} "
            "is no longer read after that",
            where,
            (unit.name,),
            Effect.ACKNOWLEDGE,
        )
    return Hit(
        account, f"{what}: give the unit a StateDirectory= and start the daemon with a copy there", where, (unit.name,)
    )
