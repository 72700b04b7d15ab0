"""The daemon resolves users through an nsswitch.conf without systemd: its own root, chroot or bind."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM506"
NAME = "nss-forced-to-files"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("environment", "nss", "process-model")
SUMMARY = (
    "The daemon reads an nsswitch.conf of its own (RootDirectory=, a chroot, a bind mount) without "
    "systemd: it cannot resolve a dynamic user."
)
FIX = "Bound file: add systemd to its passwd and group lines. Chroot: keep the account static."
FACTS = ("F1.6", "F4.3")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        units = set(ctx.q.unit_names_of(acc.name))
        for o in ctx.snap.nss_overrides:
            if o.unit not in units or "systemd" in o.passwd:
                continue
            unit = ctx.q.unit(o.unit)
            switches_itself = unit is not None and unit.value("Service", "User") is None
            sources = " ".join(o.passwd)
            if o.chroot and switches_itself:
                yield Hit(
                    acc.name,
                    f"{o.unit} switches to {acc.name} itself inside {o.how}, whose {o.path} says passwd: {sources}: "
                    "the dynamic user has no name in that root, so the daemon cannot switch to it",
                    o.location,
                    (o.unit,),
                )
            elif o.chroot:
                yield Hit(
                    acc.name,
                    f"{o.unit} runs inside {o.how}, whose {o.path} says passwd: {sources}: systemd switches the "
                    "user before, but the daemon's own lookups of its user find nothing there",
                    o.location,
                    (o.unit,),
                    Effect.ACKNOWLEDGE,
                )
            else:
                yield Hit(
                    acc.name,
                    f"{o.unit} sees {o.path} as /etc/nsswitch.conf ({o.how}), which says passwd: {sources}: add "
                    "systemd to its passwd and group lines, or the daemon cannot resolve the dynamic user",
                    o.location,
                    (o.unit,),
                    Effect.NEEDS_MANUAL,
                )
