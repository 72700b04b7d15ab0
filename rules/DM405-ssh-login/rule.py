"""Someone logs in as the account with ssh keys."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import RefKind

ID = "DM405"
NAME = "ssh-login"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("references", "login")
SUMMARY = "authorized_keys in the account's home: dynamic users are locked and have no home."
FIX = "Move the SSH login elsewhere (a built-in SSH server, or another account)."
FACTS = ("F1.6", "F4.5")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for ref in ctx.q.refs_to_account(acc):
            if ref.kind is RefKind.SSH_KEYS:
                yield Hit(acc.name, f"{ref.location.file} holds {ref.detail}", ref.location)
