"""The account's own group holds other users: the account must stay."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM108"
NAME = "group-shared"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("accounts", "groups")
SUMMARY = "Other users rely on the account's own group; the group cannot survive the migration, so the account stays."
FIX = "Give the shared access a group of its own, then migrate."
FACTS = ("F1.7", "F3.2", "F3.5")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        grp = ctx.q.primary_group(acc)
        if grp is None or str(grp.name) != str(acc.name):
            continue  # DM113 covers a shared primary group
        others = sorted({str(m) for m in grp.members if m != acc.name})
        primaries = sorted(
            {f"{a.name} (primary)" for a in ctx.q.accounts_with_primary_gid(grp.gid) if a.name != acc.name}
        )
        who = others + primaries
        if who:
            yield Hit(
                acc.name,
                f"group {grp.name} also holds {', '.join(who)}: they would lose that access, and a static group "
                f"{grp.name} left behind makes the dynamic user fail to start (EILSEQ)",
                grp.location,
            )
