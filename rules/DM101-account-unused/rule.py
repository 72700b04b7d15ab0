"""A system account that no unit runs as: not a service account (or an orphan)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM101"
NAME = "account-unused"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("accounts",)
SUMMARY = (
    "No unit runs as the account: User=, exec arguments, daemon config, package and directory "
    "ownership were all checked."
)
FIX = "Keep system accounts such as sshd; purge leftovers' data first, then remove the account."
FACTS = ("F1.7",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.q.candidates():
        if ctx.excluded(acc) or ctx.q.units_of(acc.name):
            continue
        trees = ctx.q.trees_of(acc)
        uses = ctx.q.uses(acc)
        parts = []
        if trees:
            parts.append(f"owns {len(trees)} path(s), e.g. {trees[0].top.path}")
        if uses:
            parts.append(f"referenced {len(uses)} time(s), e.g. {uses[0].kind.value} at {uses[0].location}")
        if not parts:
            parts.append("owns nothing and nothing references it")
        yield Hit(acc.name, "no unit runs as it; " + "; ".join(parts), acc.location)
