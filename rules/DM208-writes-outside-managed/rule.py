"""The unit writes to paths no managed directory can hold."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Confidence, Effect, Hit, RuleContext, Severity
from dynmigrate.graph.queries import managed_slot
from dynmigrate.model.paths import rel

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
                        if slot is not None and slot[0] == "ConfigurationDirectory":
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
