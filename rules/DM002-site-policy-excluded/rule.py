"""Accounts and units the site policy (dynmigrate.ini) says never to touch."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, Location, RuleContext, Severity
from dynmigrate.model.common import RelPath

ID = "DM002"
NAME = "site-policy-excluded"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("internal", "policy")
SUMMARY = "The site policy lists the account or one of its units under [never]."
FIX = "Nothing to do if intended; remove the name from [never] in dynmigrate.ini to plan it."


def check(ctx: RuleContext) -> Iterator[Hit]:
    policy = ctx.snap.policy
    where = Location(RelPath(policy.source)) if policy.source else None
    for acc in ctx.q.candidates():
        if acc.name in policy.never_accounts:
            yield Hit(acc.name, f"listed under [never] accounts in {policy.source}", where)
        for unit in ctx.q.unit_names_of(acc.name):
            if unit in policy.never_units:
                yield Hit(
                    acc.name, f"unit {unit} is listed under [never] units in {policy.source}", where, related=(unit,)
                )
