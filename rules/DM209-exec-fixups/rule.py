"""ExecStartPre/Post lines that chown, chmod, mkdir or install -o; PermissionsStartOnly=."""

from __future__ import annotations

import re
from collections.abc import Iterator

from dynmigrate.engine.api import Confidence, Effect, Hit, RuleContext, Severity

ID = "DM209"
NAME = "exec-fixups"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("units",)
SUMMARY = (
    "Ownership fix-ups in ExecStartPre/Post become wrong under DynamicUser; the plan replaces them with *Directory=."
)
FIX = "None needed: the plan replaces the fix-ups with *Directory= settings."
FACTS = ("F4.3", "F2.5")
FIXUP = re.compile(r"(^|[\s/])(chown|chgrp|chmod|mkdir|install)\b")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for unit in ctx.q.units_running_as(acc.name, min_confidence=Confidence.LIKELY):
            name = unit.name
            for key in ("ExecStartPre", "ExecStartPost"):
                for d in unit.values("Service", key):
                    m = FIXUP.search(d.value)
                    if m and (m.group(2) != "install" or " -o" in d.value or " -d" in d.value):
                        yield Hit(
                            acc.name, f"{name}: {key}={d.value[:80]} (rewritten by the plan)", d.location, (name,)
                        )
            pso = unit.value("Service", "PermissionsStartOnly")
            if pso is not None and unit.flag("Service", "PermissionsStartOnly"):
                yield Hit(
                    acc.name, f"{name}: PermissionsStartOnly= is translated to '+' prefixes", pso.location, (name,)
                )
