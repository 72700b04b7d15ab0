"""A daemon that looks its user up by name, on a root without nss-systemd."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM502"
NAME = "resolves-user-by-name"
SEVERITY = Severity.WARNING
EFFECT = Effect.INFORMS
TAGS = ("environment", "nss", "process-model")
SUMMARY = "The daemon switches to its user by name; without nss-systemd that lookup fails under DynamicUser."
FIX = "Add systemd to passwd and group in /etc/nsswitch.conf (stage 0 does it)."
FACTS = ("F1.6", "F4.3")
BY_NAME = ("exec-argument", "wrapper-script", "daemon-config")


def check(ctx: RuleContext) -> Iterator[Hit]:
    if ctx.snap.accounts.nss.resolves_dynamic_users:
        return
    for acc in ctx.service_accounts():
        for link in ctx.q.units_of(acc.name):
            if link.how in BY_NAME:
                yield Hit(
                    acc.name,
                    f"{link.unit} looks up {acc.name} by name ({link.detail}) and the root lacks nss-systemd: "
                    "enable it first (the plan's preflight does)",
                    ctx.q.link_location(link),
                    (link.unit,),
                )
                break
