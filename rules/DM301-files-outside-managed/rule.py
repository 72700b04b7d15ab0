"""The account owns files outside every directory a unit can manage."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.graph.queries import managed_slot
from dynmigrate.model.common import Location

ID = "DM301"
NAME = "files-outside-managed"
SEVERITY = Severity.WARNING
EFFECT = Effect.ACKNOWLEDGE
TAGS = ("files",)
SUMMARY = (
    "Files owned by the account outside /var/lib, /var/cache, /var/log, /run and /etc become orphans after userdel."
)
FIX = "None needed if the daemon only reads them (stage 3 gives them to root); move what it writes."
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
            yield Hit(
                acc.name,
                f"{owner} {path} ({tree.top.kind.value}, {tree.entries} entries, {tree.bytes} bytes) "
                "outside the managed directories",
                Location(tree.top.path),
                (path,),
            )
