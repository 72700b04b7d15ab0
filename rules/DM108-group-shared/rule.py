"""The account's group holds other users, or is another account's primary group."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM108"
NAME = "group-shared"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("accounts", "groups")
SUMMARY = "Other users rely on the account's group; a same-named static group cannot survive the migration."
FACTS = ("F1.7", "F3.2", "F3.5")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        grp = ctx.q.primary_group(acc)
        if grp is None:
            continue
        others = sorted({m for m in grp.members if m != acc.name})
        primaries = sorted({a.name for a in ctx.q.accounts_with_primary_gid(grp.gid) if a.name != acc.name})
        if grp.name != acc.name:
            if primaries:
                yield Hit(
                    acc.name,
                    f"primary group {grp.name} is shared with {', '.join(primaries)}: only the user is deleted",
                    grp.location,
                )
            continue
        who = others + [f"{p} (primary)" for p in primaries]
        if who:
            yield Hit(
                acc.name,
                f"group {grp.name} also holds {', '.join(who)}: they lose that access, and a static group "
                f"{grp.name} left behind makes the dynamic user fail to start (EILSEQ)",
                grp.location,
            )
