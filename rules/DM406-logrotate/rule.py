"""logrotate runs as the account (su) or creates files for it (create)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import RefKind

ID = "DM406"
NAME = "logrotate"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("references", "logs")
SUMMARY = "logrotate skips files whose user is unknown; the plan writes an override in /etc/logrotate.d."
FIX = "None needed: the plan writes a logrotate override that does not name the user."
FACTS = ("F4.5",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for ref in ctx.q.refs_to_account(acc):
            if ref.kind is RefKind.LOGROTATE:
                yield Hit(acc.name, f"logrotate: `{ref.detail}` for {ref.path or '?'}", ref.location)
