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
        units = ctx.q.units_running_as(acc.name)
        native = [u.name for u in units if not u.from_init_script]
        for unit in units:
            if not unit.from_init_script:
                continue
            where = unit.directives[0].location if unit.directives else None
            if unit.enabled or not native:
                yield Hit(
                    acc.name,
                    f"{unit.name} is generated from {unit.source_path}: write a native unit first",
                    where,
                    (unit.name,),
                )
                continue
            # not started at boot (no S link in /etc/rc2.d-rc5.d) and the account has native
            # units: the plan migrates those; the script only fails if someone starts it by hand
            yield Hit(
                acc.name,
                f"{unit.name} is generated from {unit.source_path} but not started at boot (no start link "
                f"in /etc/rc2.d-rc5.d); the plan migrates {', '.join(native)}, and once the account is gone "
                "the script fails if someone starts it by hand",
                where,
                (unit.name,),
                effect=Effect.ACKNOWLEDGE,
            )
