"""The service runs setuid helpers (sudo, su, ...), which NoNewPrivileges= disarms."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Confidence, Effect, Hit, RuleContext, Severity
from dynmigrate.model.units import EXEC_KEYS
from dynmigrate.model.unitsyntax import exec_argv

ID = "DM212"
NAME = "setuid-helpers"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("units", "process-model")
SUMMARY = "DynamicUser forces NoNewPrivileges=yes: sudo, su, ping and setgid mail helpers stop working."
FIX = "Replace sudo/su/ping in the unit with a check that needs no privilege."
FACTS = ("F1.11", "F4.4")
HELPERS = frozenset({"sudo", "su", "ping", "ping6", "sendmail", "postdrop", "newgrp", "pkexec", "doas"})


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for unit in ctx.q.units_running_as(acc.name, min_confidence=Confidence.LIKELY):
            name = unit.name
            for key in EXEC_KEYS:
                for d in unit.values("Service", key):
                    if d.value.lstrip().startswith(("+", "!", "-+", "-!", "@+", "@!")):
                        continue  # runs with full privileges anyway
                    argv = exec_argv(d.value)
                    progs = {a.rsplit("/", 1)[-1] for a in argv[:1]}
                    hit = progs & HELPERS
                    if hit:
                        yield Hit(
                            acc.name, f"{name}: {key} runs {sorted(hit)[0]}, a setuid helper", d.location, (name,)
                        )
