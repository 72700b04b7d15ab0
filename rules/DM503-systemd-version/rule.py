"""The root's systemd is too old for parts of the migration."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM503"
NAME = "systemd-version"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("environment",)
SUMMARY = "DynamicUser needs systemd 232, managed directories 235, the automatic move into private/ 236."
FIX = "Upgrade to systemd 236 or later (Debian 10 or newer), then scan again."
FACTS = ("F1.1", "F2.2", "F2.10", "F2.11")


def check(ctx: RuleContext) -> Iterator[Hit]:
    version = ctx.snap.host.systemd_version
    if version is None or version >= 235:
        return
    for acc in ctx.service_accounts():
        yield Hit(
            acc.name,
            f"systemd {version} ({ctx.snap.host.systemd_version_source}) has no StateDirectory= (needs 235)",
            ctx.q.systemd_version_location(),
        )
