"""The unit is generated from a SysV init script."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM204"
NAME = "sysv-generated"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("units", "sysv")
SUMMARY = "A unit generated from /etc/init.d drops privileges in shell; it is not a candidate."
FIX = "Write a native unit of the same name, then scan again."
FACTS = ("F4.14",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for unit in ctx.q.units_running_as(acc.name):
            name = unit.name
            if unit.source_path.startswith("/etc/init.d/") or (unit.generated and unit.source_path):
                yield Hit(
                    acc.name,
                    f"{name} is generated from {unit.source_path}: write a native unit first",
                    unit.directives[0].location if unit.directives else None,
                    (name,),
                )
