"""The account's own group (the one named like it) holds other users: the account must stay."""

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
        grp = ctx.q.own_group(acc)  # primary or not: a same-named group left behind is EILSEQ
        who = ctx.q.own_group_users(acc)  # the plan keeps the group exactly when this is not empty
        if grp is None or not who:
            continue
        yield Hit(
            acc.name,
            f"group {grp.name} also holds {', '.join(who)}: they would lose that access, and a static group "
            f"{grp.name} left behind makes the dynamic user fail to start (EILSEQ)",
            grp.location,
        )
