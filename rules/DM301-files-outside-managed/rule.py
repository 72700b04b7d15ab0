"""The account owns files outside every directory a unit can manage."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.graph.queries import managed_slot
from dynmigrate.model.common import Location
from dynmigrate.model.files import FileKind, OwnedTree

ID = "DM301"
NAME = "files-outside-managed"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("files",)
SUMMARY = (
    "Files owned by the account outside /var/lib, /var/cache, /var/log, /run and /etc become orphans after userdel."
)
FIX = "Nothing for files it only reads (stage 3 gives them to root); move what it writes."
FACTS = ("F3.1", "F3.2", "F1.15")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        home = acc.home.rstrip("/")
        for tree in ctx.q.trees_of(acc):
            path = tree.top.path
            if managed_slot(path, is_dir=tree.top.kind.value == "dir") is not None:
                continue
            if home and home not in ("/", "/nonexistent") and (path == home or path.startswith(home + "/")):
                continue  # DM104 reports the home directory
            owner = "owns" if tree.uid == acc.uid else "its group owns"
            what = f"{owner} {path} ({tree.top.kind.value}, {tree.entries} entries, {tree.bytes} bytes)"
            if _written_by_the_account(tree, acc.uid):
                yield Hit(
                    acc.name,
                    f"{what}, where it writes (an owner-writable {tree.top.kind.value} outside the managed "
                    "directories): under DynamicUser= the unit can no longer write there and stage 3 gives it to "
                    "root; move it into a managed directory (StateDirectory=, LogsDirectory=) and point the "
                    "daemon's configuration at the new path",
                    Location(tree.top.path),
                    (path,),
                )
                continue
            yield Hit(
                acc.name,
                f"{what} outside the managed directories",
                Location(tree.top.path),
                (path,),
                effect=Effect.ACKNOWLEDGE,
            )


def _written_by_the_account(tree: OwnedTree, uid: int) -> bool:
    """Evidence that the daemon writes the tree: a directory the account owns with the owner-write
    bit (a spool, a data or an upload directory). Files it only reads (a config or a binary given
    to it) are acknowledged: stage 3 gives them to root and reading goes on. A log or PID file
    straight in /var/log or /run is DM307's."""
    return tree.uid == uid and tree.top.kind is FileKind.DIR and bool(tree.top.mode & 0o200)
