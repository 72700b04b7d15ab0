"""A secret (key, password, token) readable only through the account."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location
from dynmigrate.model.files import FileKind

ID = "DM303"
NAME = "secret-owned"
SEVERITY = Severity.WARNING
EFFECT = Effect.ACKNOWLEDGE
TAGS = ("files", "secrets")
SUMMARY = (
    "A secret owned by the account must not become world-readable: the plan keeps it root-only and "
    "binds it back with LoadCredential=."
)
FIX = "None needed: the plan keeps it root-only and binds it back into the unit with LoadCredential=."
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
