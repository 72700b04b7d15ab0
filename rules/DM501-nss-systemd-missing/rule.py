"""The root does not resolve dynamic users by name (no nss-systemd)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location, RelPath

ID = "DM501"
NAME = "nss-systemd-missing"
SEVERITY = Severity.WARNING
EFFECT = Effect.INFORMS
TAGS = ("environment", "nss")
SUMMARY = "Without nss-systemd, dynamic users have no name for ls, ps or the daemon; the plan's preflight enables it."
FIX = "Install libnss-systemd and add systemd to passwd/group in nsswitch.conf (preflight does it)."
FACTS = ("F1.6",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    nss = ctx.snap.accounts.nss
    if nss.resolves_dynamic_users:
        return
    loc = nss.location or Location(RelPath("/etc/nsswitch.conf"))
    if not nss.in_nsswitch:
        yield Hit(
            "",
            f"nsswitch passwd: {' '.join(nss.passwd_sources) or '(none)'}; group: "
            f"{' '.join(nss.group_sources) or '(none)'}: 'systemd' is missing",
            loc,
        )
    if nss.library is None:
        yield Hit("", "libnss_systemd.so.2 is not installed (Debian: libnss-systemd)", loc)
