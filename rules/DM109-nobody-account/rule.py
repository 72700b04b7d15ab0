"""nobody and nogroup are reported, never migrated."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.accounts import NOBODY_NAMES

ID = "DM109"
NAME = "nobody-account"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("accounts",)
SUMMARY = "nobody/nogroup (65534) is the overflow ID: units using it are reported but the account is never touched."
FIX = "Nothing to do: nobody/nogroup is never migrated; give the unit a user of its own."
FACTS = ("F7.2",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.q.candidates():
        if acc.name in NOBODY_NAMES:
            units = ctx.q.unit_names_of(acc.name)
            if not units:
                continue  # every root has nobody; its verdict already says never-migrated
            yield Hit(
                acc.name,
                f"{acc.name} is never migrated; runs {', '.join(units)}: "
                "give those DynamicUser=yes under their own name",
                acc.location,
                tuple(units),
            )
