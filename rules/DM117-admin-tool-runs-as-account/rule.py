"""A command admins run switches to the account and works in its home, which becomes private."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.graph.queries import managed_slot

ID = "DM117"
NAME = "admin-tool-runs-as-account"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("accounts", "process-model")
SUMMARY = (
    "A command in a bin directory that the unit also runs switches to the account when root starts it "
    "and works in the account's home: under DynamicUser that home is private, so the tool fails."
)
FIX = "Keep the account static (harden the unit instead): the package's admin tool needs it."
FACTS = ("F2.3", "F1.6", "F4.5")
COMMAND_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin")
PRIVATE_KEYS = ("StateDirectory", "CacheDirectory", "LogsDirectory")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        home = acc.home.rstrip("/") or "/"
        fact = ctx.snap.path(home)
        if home == "/" or fact is None or not fact.exists:
            continue
        slot = managed_slot(str(fact.resolved))
        if slot is None or slot[0] not in PRIVATE_KEYS:
            continue  # a home that does not move behind private/ stays reachable
        links = ctx.q.units_of(acc.name)
        own_user = {lk.unit for lk in links if lk.how == "User="}
        seen: set[str] = set()
        for link in links:
            loc = ctx.q.link_location(link)
            # the unit itself runs as the account (User=): the script's switch is for whoever starts
            # it as root from a shell, that is the admins
            if link.how != "wrapper-script" or link.unit not in own_user or loc is None:
                continue
            tool = str(loc.file)
            if posixpath.dirname(tool) not in COMMAND_DIRS or tool in seen:
                continue
            seen.add(tool)
            yield Hit(
                acc.name,
                f"{tool} ({link.detail}), which {link.unit} runs too, switches to {acc.name} when root runs it and "
                f"works in its home {home}: under DynamicUser that home moves behind {posixpath.dirname(home)}"
                f"/private (0700 root), which {acc.name} cannot enter outside the unit, and a dynamic user's "
                f"home is /: the admins' {posixpath.basename(tool)} fails (eacces)",
                loc,
                (link.unit, tool),
            )
