"""The account is a member of other static groups (access it must keep)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM114"
NAME = "supplementary-groups"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("accounts", "groups")
SUMMARY = "Memberships in other static groups (ssl-cert, adm, ...) become SupplementaryGroups= in the drop-in."
FIX = "None needed: the drop-in lists the groups in SupplementaryGroups=."
FACTS = ("F3.5",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for grp in ctx.q.groups_of(acc):
            if grp.gid == acc.gid:
                continue
            yield Hit(
                acc.name,
                f"member of static group {grp.name} (GID {grp.gid}): the drop-in sets SupplementaryGroups={grp.name}",
                grp.location,
                (str(grp.name),),
            )
