"""Other systems' trees inside ROOT (container storage, chroots, machine images), not walked."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location

ID = "DM308"
NAME = "nested-os-root"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("files", "host")
SUMMARY = "Another system's tree inside ROOT was not walked: its UIDs are not this host's accounts."
FIX = "Nothing to fix: those files belong to another system's accounts; audit that tree on its own."
FACTS = ("F3.2",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for nested in ctx.snap.nested_roots:
        yield Hit(
            "",
            f"{nested.path} is {nested.reason}: not walked, and stage 3 does not re-own files below it",
            Location(nested.path),
        )
