"""A static account inside systemd's dynamic UID range (61184-65519)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.accounts import DYNAMIC_UID_MAX, DYNAMIC_UID_MIN

ID = "DM107"
NAME = "uid-in-dynamic-range"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("accounts", "environment")
SUMMARY = "A static account or group uses an ID in 61184-65519, the range systemd allocates dynamic users from."
FIX = "Renumber the account below the system range limit and re-own its files, service stopped."
FACTS = ("F1.2", "F4.2")


def check(ctx: RuleContext) -> Iterator[Hit]:
    offenders: list[Hit] = []
    for acc in ctx.snap.accounts.accounts:
        if DYNAMIC_UID_MIN <= acc.uid <= DYNAMIC_UID_MAX:
            offenders.append(
                Hit(
                    "",
                    f"static account {acc.name} has UID {acc.uid}, inside the dynamic range "
                    f"{DYNAMIC_UID_MIN}-{DYNAMIC_UID_MAX}",
                    acc.location,
                    (acc.name,),
                )
            )
    for grp in ctx.snap.accounts.groups:
        if DYNAMIC_UID_MIN <= grp.gid <= DYNAMIC_UID_MAX:
            offenders.append(
                Hit(
                    "",
                    f"static group {grp.name} has GID {grp.gid}, inside the dynamic range "
                    f"{DYNAMIC_UID_MIN}-{DYNAMIC_UID_MAX}",
                    grp.location,
                    (grp.name,),
                )
            )
    yield from offenders
    if not offenders:
        return
    # the host precondition blocks every migration on this root: say so on each service account
    names = ", ".join(
        ("user " if h.message.startswith("static account") else "group ") + h.related[0] for h in offenders
    )
    for acc in ctx.service_accounts():
        yield Hit(
            acc.name,
            f"this host has static IDs in the dynamic range ({names}): stage 0 refuses to migrate",
            offenders[0].location,
        )
