"""The account's primary group is shared (nogroup, audio, ...): only the user is deleted."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM113"
NAME = "shared-primary-group"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("accounts", "groups")
SUMMARY = "The primary group is not the account's own: the plan deletes only the user and keeps the group."
FIX = "None needed: the plan keeps the shared group; give the service a group of its own if wanted."
FACTS = ("F3.2",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        grp = ctx.q.primary_group(acc)
        if grp is None or str(grp.name) == str(acc.name):
            continue
        users = sorted({a.name for a in ctx.q.accounts_with_primary_gid(grp.gid) if a.name != acc.name})
        shared = f", shared with {', '.join(users)}" if users else ""
        yield Hit(
            acc.name,
            f"primary group {grp.name} (GID {grp.gid}) is kept{shared}: only the user is deleted",
            grp.location,
        )
