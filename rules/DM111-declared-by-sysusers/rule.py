"""A sysusers.d file declares the account: systemd-sysusers recreates it."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import Action, RefKind, Target

ID = "DM111"
NAME = "declared-by-sysusers"
SEVERITY = Severity.INFO
EFFECT = Effect.INFORMS
TAGS = ("accounts", "sysusers")
SUMMARY = (
    "A sysusers.d declaration recreates the account at the next package upgrade or /usr update; the plan masks it."
)
FIX = "None needed: the plan masks the sysusers.d declaration in /etc."
FACTS = ("F5.1", "F5.2", "F5.3")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for ref in ctx.q.refs_to(acc.name, Target.USER):
            if ref.kind is RefKind.SYSUSERS and ref.action is Action.CREATES:
                yield Hit(
                    acc.name,
                    f"{ref.location.file} declares `{ref.detail}`: the plan masks the file, "
                    "or overrides it without that line",
                    ref.location,
                )
