"""The account's home directory exists, has content, and is not a directory the unit can manage."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.graph.queries import managed_slot

ID = "DM104"
NAME = "home-in-use"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("accounts", "files")
SUMMARY = "The home directory holds files outside the managed directories; a dynamic user's home is /."
FIX = "Move the data into StateDirectory= and point the unit and the account's home at it."
FACTS = ("F1.6", "F4.5", "F2.13")
IGNORED_HOMES = ("/", "/nonexistent", "/dev/null", "/var/empty", "/run/sshd")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        home = acc.home.rstrip("/") or "/"
        if home in IGNORED_HOMES or not home.startswith("/"):
            continue
        fact = ctx.snap.path(home)
        if fact is None or not fact.exists or fact.entries == 0:
            continue
        slot = managed_slot(str(fact.resolved))
        if slot is not None and slot[0] in ("StateDirectory", "CacheDirectory", "LogsDirectory", "RuntimeDirectory"):
            if fact.dot_entries:
                yield Hit(
                    acc.name,
                    f"home {home} holds {', '.join(fact.dot_entries)}: a dynamic user's HOME is /, so the daemon "
                    "no longer finds them; point it at $STATE_DIRECTORY explicitly",
                    acc.location,
                    (home,),
                )
            continue  # otherwise the plan turns it into a managed directory

        yield Hit(
            acc.name,
            f"home {home} holds {fact.entries}{'+' if fact.entries >= 1000 else ''} entries outside the "
            "managed directories",
            acc.location,
            (home,),
        )
