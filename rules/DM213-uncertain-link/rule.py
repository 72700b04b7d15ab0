"""The only evidence that a unit runs as the account is indirect."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Confidence, Effect, Hit, RuleContext, Severity

ID = "DM213"
NAME = "uncertain-link"
SEVERITY = Severity.WARNING
EFFECT = Effect.BLOCKS
TAGS = ("units", "process-model")
SUMMARY = "Only directory ownership or an unrelated package ties a unit to the account: confirm it before planning."
FIX = "Confirm which account the unit runs as and set User= explicitly."
FACTS = ("F4.3",)


def _related(account: str, prefix: str) -> bool:
    a, p = account.lstrip("_").lower(), prefix.lower()
    return len(a) >= 3 and (p.startswith(a) or a.startswith(p))


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        links = ctx.q.units_of(acc.name)
        if not links or any(link.confidence is not Confidence.POSSIBLE for link in links):
            continue
        first = links[0]
        names = sorted({link.unit for link in links})
        found = [ctx.q.unit(n) for n in names]
        units = [u for u in found if u is not None]
        text = f"only indirect evidence links {', '.join(names)} to {acc.name} ({first.how}: {first.detail})"
        root = [u for u in units if u.value("Service", "User") is None and not u.flag("Service", "DynamicUser")]
        home = acc.home.rstrip("/").replace("/var/run/", "/run/", 1)
        for u in root:
            runtime = [w for d in u.values("Service", "RuntimeDirectory") for w in d.value.split()]
            if home.startswith("/run/") and home.removeprefix("/run/") in runtime:
                yield Hit(
                    acc.name,
                    f"{text}; {u.name} has no User= and runs as root: {acc.name} is its helper "
                    f"(privilege separation) account, whose home {home} is the unit's RuntimeDirectory=; "
                    f"under DynamicUser= systemd gives {home} to the dynamic user, and a root daemon that "
                    "chroots there requires it root-owned",
                    ctx.q.link_location(first),
                    tuple(names),
                    Effect.BLOCKS,
                )
                break
        else:
            if units and len(root) == len(names) and all(_related(acc.name, u.prefix) for u in units):
                yield Hit(
                    acc.name,
                    f"{text}; the daemon starts as root (no User=) and switches itself: the plan keeps that "
                    "switch with the '!' prefix, and stage 1's health check proves the daemon still runs",
                    ctx.q.link_location(first),
                    tuple(names),
                    Effect.ACKNOWLEDGE,
                )
                continue
            yield Hit(
                acc.name,
                f"{text}; confirm which user the daemon really runs as",
                ctx.q.link_location(first),
                tuple(names),
                Effect.NEEDS_MANUAL,
            )
