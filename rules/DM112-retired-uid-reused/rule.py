"""An account now holds a UID that an earlier migration retired."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.references import Action, RefKind, Target

ID = "DM112"
NAME = "retired-uid-reused"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("accounts", "ledger")
SUMMARY = "The UID was retired by an earlier migration; files the old account left may now belong to this one."
FIX = "Give the account a UID that was never retired and re-own what the old UID left."
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
    # a retired account that a package script would create again at the next upgrade
    current = {a.name for a in ctx.snap.accounts.accounts}
    for r in ctx.snap.retired:
        if r.name in current:
            continue
        for ref in ctx.snap.references:
            if (
                ref.name == r.name
                and ref.target is Target.USER
                and ref.kind is RefKind.PACKAGE_SCRIPT
                and ref.action is Action.CREATES
            ):
                yield Hit(
                    "",
                    f"{r.name} (retired on {r.date}) is created again by {ref.package}'s maintainer script at its "
                    f"next upgrade, silently undoing the migration of {r.unit}",
                    ref.location,
                    (r.name,),
                )
                break
