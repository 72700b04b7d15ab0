"""A package maintainer script would create the account again on upgrade."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import Action, RefKind, Target

ID = "DM110"
NAME = "recreated-by-package"
SEVERITY = Severity.WARNING
EFFECT = Effect.ACKNOWLEDGE
TAGS = ("accounts", "packages", "debian")
SUMMARY = "adduser/useradd in a postinst recreates the account on upgrade, and a static account silently wins."
FIX = "None needed: keep the upgrade guard and pins stage 2 installs; acknowledge it in stage 2."
FACTS = ("F1.7", "F5.4", "F5.5")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for ref in ctx.q.refs_to(acc.name, Target.USER):
            if ref.kind is not RefKind.PACKAGE_SCRIPT or ref.action is not Action.CREATES:
                continue
            if ref.detail.startswith("systemd-sysusers"):
                continue  # DM111: a sysusers.d mask stops that one
            tool = ref.detail.split(" ", 1)[0]
            guard = ", guarded by getent" if "getent" in ref.detail else ""
            yield Hit(
                acc.name,
                f"{ref.package}'s maintainer script creates {acc.name} again on upgrade ({tool}{guard})",
                ref.location,
            )
