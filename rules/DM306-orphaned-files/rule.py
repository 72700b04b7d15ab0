"""Files owned by a UID or GID that no account or group has."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location

ID = "DM306"
NAME = "orphaned-files"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("files", "host")
SUMMARY = "Leftovers of a deleted account: the next account to get the ID inherits them."
FACTS = ("F3.1", "F3.2")


def check(ctx: RuleContext) -> Iterator[Hit]:
    uids = {a.uid for a in ctx.snap.accounts.accounts}
    gids = {g.gid for g in ctx.snap.accounts.groups}
    for tree in ctx.q.orphan_trees():
        who = []
        if tree.uid != 0 and tree.uid not in uids:
            who.append(f"UID {tree.uid}")
        if tree.gid != 0 and tree.gid not in gids:
            who.append(f"GID {tree.gid}")
        yield Hit(
            "",
            f"{tree.top.path} ({tree.entries} entries) is owned by {' and '.join(who)}, which no account has",
            Location(tree.top.path),
            (tree.top.path,),
        )
