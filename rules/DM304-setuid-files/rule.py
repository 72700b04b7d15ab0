"""setuid/setgid files or setgid directories among the account's files."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location

ID = "DM304"
NAME = "setuid-files"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("files",)
SUMMARY = "The recursive chown strips setuid/setgid bits, and NoNewPrivileges disarms them anyway."
FIX = "Keep the account static, or replace the setuid wrapper with a socket or a root unit."
FACTS = ("F2.6", "F4.4")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for tree in ctx.q.trees_of(acc, include_group=False):
            for info in (tree.top, *tree.special):
                if info.setuid or (info.setgid and info.kind.value == "file"):
                    yield Hit(
                        acc.name,
                        f"{info.path} is {'setuid' if info.setuid else 'setgid'} ({info.mode_str()})",
                        Location(info.path),
                        (info.path,),
                    )
