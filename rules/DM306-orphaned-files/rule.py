"""Files owned by a UID or GID that no account or group has."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.accounts import DYNAMIC_UID_MAX, DYNAMIC_UID_MIN
from dynmigrate.model.common import Location
from dynmigrate.model.paths import is_under

ID = "DM306"
NAME = "orphaned-files"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("files", "host")
SUMMARY = "Leftovers of a deleted account: the next account to get the ID inherits them."
FIX = "Decide per path: delete, archive or give it to root."
FACTS = ("F3.1", "F3.2", "F2.3")
# Where DynamicUser services keep their data, owned by a dynamic UID no account has (F2.3).
PRIVATE_DIRS = ("/var/lib/private", "/var/cache/private", "/var/log/private", "/run/private")


def check(ctx: RuleContext) -> Iterator[Hit]:
    uids = {a.uid for a in ctx.snap.accounts.accounts}
    gids = {g.gid for g in ctx.snap.accounts.groups}
    for tree in ctx.q.orphan_trees():
        who = []
        missing = []
        if tree.uid != 0 and tree.uid not in uids:
            who.append(f"UID {tree.uid}")
            missing.append(tree.uid)
        if tree.gid != 0 and tree.gid not in gids:
            who.append(f"GID {tree.gid}")
            missing.append(tree.gid)
        if any(is_under(tree.top.path, d) for d in PRIVATE_DIRS) and all(
            DYNAMIC_UID_MIN <= i <= DYNAMIC_UID_MAX for i in missing
        ):
            continue  # a DynamicUser service's own data: its owner exists only while the unit runs
        yield Hit(
            "",
            f"{tree.top.path} ({tree.entries} entries) is owned by {' and '.join(who)}, which no account has",
            Location(tree.top.path),
            (tree.top.path,),
        )
