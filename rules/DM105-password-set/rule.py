"""The account can log in with a password (or with none)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.accounts import PasswordState
from dynmigrate.model.common import Location, RelPath

ID = "DM105"
NAME = "password-set"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("accounts",)
SUMMARY = "shadow shows a usable password (or an empty one): someone may log in as the account."
FIX = "Move logins to units or runuser, then lock the password (passwd -l)."
FACTS = ("F1.6", "F4.5")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        if acc.password is PasswordState.SET:
            yield Hit(
                acc.name,
                "has a usable password in /etc/shadow (the hash is never shown)",
                Location(RelPath("/etc/shadow")),
            )
        elif acc.password is PasswordState.EMPTY:
            yield Hit(
                acc.name,
                "has an EMPTY password in /etc/shadow: login without a password",
                Location(RelPath("/etc/shadow")),
            )
