"""A unit linked to the account is masked."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location
from dynmigrate.model.units import LoadState

ID = "DM207"
NAME = "masked-unit"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("units",)
SUMMARY = "A masked unit cannot start; it is never planned until it is unmasked."
FIX = "Unmask the unit if the service is used, then scan again."
FACTS = ("F6.7",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.q.candidates():
        if ctx.excluded(acc):
            continue
        for name in ctx.q.unit_names_of(acc.name, include_masked=True):
            unit = ctx.q.unit(name)
            if unit is not None and unit.state is LoadState.MASKED:
                loc = Location(unit.masked_by) if unit.masked_by else None
                yield Hit(acc.name, f"{name} is masked: it runs nothing, and it is not planned", loc, (name,))
