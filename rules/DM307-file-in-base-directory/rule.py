"""A file owned by the account directly in /var/log, /run or /var/lib."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location
from dynmigrate.model.paths import parent_of

ID = "DM307"
NAME = "file-in-base-directory"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("files",)
SUMMARY = "Managed directories are subdirectories: a log or PID file straight in /var/log or /run is not writable."
FIX = "Point the log or PID file into a subdirectory (LogsDirectory=, RuntimeDirectory=)."
FACTS = ("F4.15", "F4.6")
BASES = ("/var/log", "/run", "/var/run", "/var/lib", "/var/cache")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for tree in ctx.q.trees_of(acc, include_group=False):
            if parent_of(tree.top.path) in BASES and tree.top.kind.value != "dir":
                yield Hit(
                    acc.name,
                    f"{tree.top.path} sits directly in {parent_of(tree.top.path)}: move it into a subdirectory",
                    Location(tree.top.path),
                    (tree.top.path,),
                )
