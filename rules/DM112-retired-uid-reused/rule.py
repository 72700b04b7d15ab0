"""An account now holds a UID that an earlier migration retired."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location, RelPath

ID = "DM112"
NAME = "retired-uid-reused"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("accounts", "ledger")
SUMMARY = "The UID was retired by an earlier migration; files the old account left may now belong to this one."
FACTS = ("F3.2",)
LEDGER = RelPath("/var/lib/dynmigrate/retired-ids")


def check(ctx: RuleContext) -> Iterator[Hit]:
    retired = {r.uid: r for r in ctx.snap.retired}
    for acc in ctx.q.candidates():
        r = retired.get(acc.uid)
        if r is None:
            continue
        if r.name == acc.name:
            yield Hit(
                acc.name,
                f"{acc.name} was migrated to DynamicUser on {r.date} ({r.unit}) and is back as a static account: "
                "drift, see `dynmigrate verify`",
                Location(LEDGER),
            )
        else:
            yield Hit(acc.name, f"UID {acc.uid} was retired from {r.name} on {r.date}", Location(LEDGER))
