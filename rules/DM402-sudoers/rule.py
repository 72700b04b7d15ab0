"""sudoers grants the account rights, or runs commands as it."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import RefKind

ID = "DM402"
NAME = "sudoers"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("references", "sudo")
SUMMARY = "sudo rules name the account; NoNewPrivileges disarms sudo inside the unit and the name vanishes outside it."
FIX = "Move the privileged part into its own root unit that the service triggers."
FACTS = ("F4.4", "F4.5")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for ref in ctx.q.refs_to_account(acc):
            if ref.kind is RefKind.SUDOERS:
                yield Hit(acc.name, f"sudoers: {ref.detail}", ref.location)
