"""The account has a login shell."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM103"
NAME = "login-shell"
SEVERITY = Severity.WARNING
EFFECT = Effect.ACKNOWLEDGE
TAGS = ("accounts",)
SUMMARY = "The account has a login shell: people or scripts may su to it, which a dynamic user does not allow."
FIX = "None needed: userdel ends logins; acknowledge that nobody su's to it (DM105/DM405 show real ones)."
FACTS = ("F1.6", "F4.5")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        if acc.has_login_shell:
            yield Hit(acc.name, f"login shell {acc.shell}: dynamic users get nologin", acc.location)
