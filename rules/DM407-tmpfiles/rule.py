"""A tmpfiles.d line creates a path for the account."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import RefKind

ID = "DM407"
NAME = "tmpfiles"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("references", "tmpfiles")
SUMMARY = "tmpfiles.d fails to resolve the name at boot; the plan writes an override in /etc/tmpfiles.d."
FIX = "None needed: the plan writes a tmpfiles.d override in /etc."
FACTS = ("F4.5",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for ref in ctx.q.refs_to_account(acc):
            if ref.kind is RefKind.TMPFILES:
                yield Hit(acc.name, f"tmpfiles: `{ref.detail}`", ref.location)
