"""A D-Bus system policy names the account (user=, group=, own=)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import RefKind

ID = "DM403"
NAME = "dbus-policy"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("references", "dbus")
SUMMARY = "The bus resolves policy names when it loads its config: a dynamic user cannot own its bus name."
FIX = "Keep the account static; harden the unit with the settings DynamicUser implies."
FACTS = ("F4.1",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for ref in ctx.q.refs_to_account(acc):
            if ref.kind is RefKind.DBUS:
                yield Hit(acc.name, f"D-Bus policy: {ref.detail}", ref.location)
