"""A data directory that systemd's rename() into private/ cannot move."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location
from dynmigrate.model.files import FileKind

ID = "DM305"
NAME = "data-dir-not-movable"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("files",)
SUMMARY = "/var/lib/X that is a mount point, on another filesystem, or a symlink defeats the move into private/."
FIX = "Mount the disk at /var/lib/private/NAME so that the move stays on one filesystem."
FACTS = ("F2.10", "F2.12")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        units = ctx.q.units_running_as(acc.name)
        names = {str(acc.name), *(u.prefix for u in units)}
        for base in ("/var/lib", "/var/cache", "/var/log"):
            for name in sorted(names):
                fact = ctx.snap.path(f"{base}/{name}")
                if fact is None or fact.info is None or fact.target is None:
                    continue
                if fact.target.uid != acc.uid:
                    continue
                if fact.info.kind is FileKind.SYMLINK and not fact.resolved.startswith(f"{base}/private/"):
                    yield Hit(
                        acc.name, f"{fact.path} is a symlink to {fact.resolved}", Location(fact.path), (fact.path,)
                    )
                elif fact.foreign_fs:
                    yield Hit(
                        acc.name,
                        f"{fact.path} is a mount point: rename() into private/ fails (EXDEV)",
                        Location(fact.path),
                        (fact.path,),
                    )
