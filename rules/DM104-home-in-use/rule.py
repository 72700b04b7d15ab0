"""The account's home directory exists, has content, and is not a directory the unit can manage."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, Location, RuleContext, Severity
from dynmigrate.graph.queries import managed_slot
from dynmigrate.model.accounts import Account
from dynmigrate.model.paths import is_under
from dynmigrate.model.snapshot import PathFact

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

        count = f"{fact.entries}{'+' if fact.entries >= 1000 else ''}"
        if _served_only(ctx, acc, home, fact):
            # a directory of other owners that the daemon reads by its configured path (a TFTP or
            # web root given as the account's home): nothing of the account's lives there
            yield Hit(
                acc.name,
                f"home {home} holds {count} entries, none of them the account's, no dot files, and it cannot "
                "write there: the daemon reads them by path as before; a dynamic user's HOME is /",
                acc.location,
                (home,),
                effect=Effect.ACKNOWLEDGE,
            )
            continue
        yield Hit(
            acc.name,
            f"home {home} holds {count} entries outside the managed directories",
            acc.location,
            (home,),
        )


def _served_only(ctx: RuleContext, acc: Account, home: str, fact: PathFact) -> bool:
    """The home is a directory of other owners the account cannot write to, with no dot files and
    nothing the account or its group owns below it."""
    info = fact.target
    if info is None or fact.dot_entries or info.mode & 0o002:
        return False
    grp = ctx.q.own_group(acc)
    if info.uid == acc.uid or (grp is not None and info.gid == grp.gid and info.mode & 0o020):
        return False
    resolved = str(fact.resolved)
    return not any(is_under(str(t.top.path), resolved) for t in ctx.q.trees_of(acc))


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
