"""The account's home directory exists, has content, and is not a directory the unit can manage."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, Location, RuleContext, Severity
from dynmigrate.graph.queries import managed_slot

ID = "DM104"
NAME = "home-in-use"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("accounts", "files")
SUMMARY = "The home directory holds files outside the managed directories; a dynamic user's home is /."
FIX = "Move the data into StateDirectory=; dot files in a state home need nothing (the plan keeps HOME)."
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
                yield _dotfiles(acc.name, home, fact.dot_entries, slot[0], acc.location)
            continue  # otherwise the plan turns it into a managed directory

        yield Hit(
            acc.name,
            f"home {home} holds {fact.entries}{'+' if fact.entries >= 1000 else ''} entries outside the "
            "managed directories",
            acc.location,
            (home,),
        )


def _dotfiles(account: str, home: str, dots: tuple[str, ...], key: str, location: Location | None) -> Hit:
    """Dot files in a home that becomes a managed directory. The plan keeps HOME for the unit
    (Environment=HOME=) when the home is a state or cache directory of its own (/var/lib/NAME,
    /var/cache/NAME): the daemon finds them where it did, so the plan handles it. A home that
    becomes a logs or runtime directory, or lies deeper, is no HOME the plan sets."""
    listed = ", ".join(dots)
    if key in ("StateDirectory", "CacheDirectory") and posixpath.dirname(home) in ("/var/lib", "/var/cache"):
        return Hit(
            account,
            f"home {home} holds {listed}: a dynamic user's HOME is /; the plan sets Environment=HOME={home} "
            "for the units that run as the account, so the daemon finds them where it did",
            location,
            (home,),
            effect=Effect.ACKNOWLEDGE,
        )
    return Hit(
        account,
        f"home {home} holds {listed}: a dynamic user's HOME is /, so the daemon no longer finds them; "
        "point it at $STATE_DIRECTORY explicitly",
        location,
        (home,),
    )
