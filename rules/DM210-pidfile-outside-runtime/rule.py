"""PIDFile= outside the unit's RuntimeDirectory=."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Confidence, Effect, Hit, RuleContext, Severity
from dynmigrate.model.paths import is_under, rel

ID = "DM210"
NAME = "pidfile-outside-runtime"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("units",)
SUMMARY = "/run is read-only under DynamicUser: a PID file must live in RuntimeDirectory=; the plan moves it."
FIX = "None needed: the plan moves the PID file into RuntimeDirectory=."
FACTS = ("F4.6", "F2.9")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for unit in ctx.q.units_running_as(acc.name, min_confidence=Confidence.LIKELY):
            name = unit.name
            pid = unit.value("Service", "PIDFile")
            if pid is None or not pid.value.startswith("/"):
                continue
            raw = unit.is_template  # a template keeps its specifiers (%i): compare as written
            value = pid.raw if raw else pid.value
            path = str(rel(value.replace("/var/run/", "/run/", 1)))
            runtime = [
                f"/run/{w}"
                for d in unit.values("Service", "RuntimeDirectory")
                for w in (d.raw if raw else d.value).split()
            ]
            if not any(is_under(path, r) and path != r for r in runtime):
                yield Hit(acc.name, f"{name}: PIDFile={value} is outside RuntimeDirectory=", pid.location, (name,))
