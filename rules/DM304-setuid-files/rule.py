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
FIX = "Give who ran it through its set-ID bit another way in (sudo, a socket group), or keep the account."
FACTS = ("F2.6", "F4.4")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for info in ctx.q.setid_files_of(acc):
            yield Hit(
                acc.name,
                f"{info.path} is {'setuid' if info.setuid else 'setgid'} ({info.mode_str()}): the migration drops the "
                "bit (stage 2 gives the file to root, or systemd's chown in a managed directory), so users other "
                f"than root who ran it to act as {acc.name} lose that; root still runs it",
                Location(info.path),
                (info.path,),
            )
