"""A secret (key, password, token) readable only through the account."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location
from dynmigrate.model.files import FileKind

ID = "DM303"
NAME = "secret-owned"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("files", "secrets")
SUMMARY = (
    "A secret owned by the account must not become world-readable: pass it with "
    "LoadCredential= and change the daemon's config."
)
FIX = "Pass the secret with LoadCredential=; keep the file root-owned and 0600."
FACTS = ("F3.4",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for entry in ctx.q.etc_entries_of(acc):
            if entry.kind is not FileKind.FILE:
                continue
            hints = ctx.snap.secret_hints(entry.path)
            if not hints:
                continue
            first = hints[0]
            where = f"line {first.line}: {first.keyword}" if first.line else first.keyword
            yield Hit(
                acc.name,
                f"{entry.path} ({entry.mode_str()}) looks secret ({where}): use LoadCredential= instead of "
                "re-owning it",
                Location(entry.path, first.line),
                (entry.path,),
            )
