"""A configuration directory of the account that other users cannot enter, which the plan cannot bind."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location

ID = "DM309"
NAME = "closed-config-directory"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("files", "config")
SUMMARY = (
    "A config directory only the account could enter stays closed and becomes root's: the dynamic "
    "user cannot read inside it."
)
FIX = "When the plan cannot bind its files in: move what the service reads where it can read it."
FACTS = ("F2.5", "F3.4")
# The account itself owned the directory (not only its group): the daemon may write there, as
# slapd writes its cn=config database; a root-owned copy readable by others would not do.
WRITTEN = (
    "; the account owned it, so the daemon may write it: copy the configuration it is part of "
    "(cp -a, leaving the original for the plan's binds) under the unit's StateDirectory=, which "
    "only the dynamic user can enter, and point the daemon at the copy"
)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for closed in ctx.q.closed_config_dirs(acc):
            d = closed.info
            if not closed.why:
                files = ctx.q.closed_dir_files(closed)
                yield Hit(
                    acc.name,
                    f"{d.path} ({d.uid}:{d.gid} {d.mode:04o}) could not be entered by other users and the plan "
                    f"knows its {len(files)} file(s): it becomes root-owned with the same mode, and the unit sees "
                    "a read-only directory there with each file handed over by LoadCredential=",
                    Location(d.path),
                    tuple(f.path for f in files),
                    effect=Effect.INFORMS,
                )
                continue
            yield Hit(
                acc.name,
                f"{d.path} ({d.uid}:{d.gid} {d.mode:04o}) could not be entered by other users: it becomes "
                f"root-owned with the same mode, so the dynamic user cannot enter it either, and {closed.why}; "
                f"never widen the directory's mode{WRITTEN if d.uid == acc.uid else ''}",
                Location(d.path),
                (d.path,),
            )
