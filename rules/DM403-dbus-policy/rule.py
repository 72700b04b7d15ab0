"""A D-Bus system policy names the account (user=, group=, own=)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import Action, RefKind

ID = "DM403"
NAME = "dbus-policy"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("references", "dbus")
SUMMARY = (
    "The bus resolves policy names when it loads its config: a dynamic user cannot own its bus name "
    "(blocks when a unit needs the name, otherwise acknowledged)."
)
FIX = "Keep the account static; harden the unit with the settings DynamicUser implies."
FACTS = ("F4.1",)


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        units = ctx.q.unit_names_of(acc.name)
        needs = [(u, r[0]) for u in units if (r := ctx.q.bus_requirement(u)) is not None]
        for ref in ctx.q.refs_to_account(acc):
            if ref.kind is not RefKind.DBUS:
                continue
            if ref.action is Action.OWNS_NAME and needs:
                unit, why = needs[0]
                yield Hit(acc.name, f"D-Bus policy: {ref.detail}, and {unit} {why}", ref.location)
            elif ref.action is Action.OWNS_NAME:
                yield Hit(
                    acc.name,
                    f"D-Bus policy: {ref.detail}; no unit of it needs the name (no BusName=, Type=dbus or D-Bus "
                    "activation): it runs without it, and loses what it offered on the bus",
                    ref.location,
                    effect=Effect.ACKNOWLEDGE,
                )
            else:
                yield Hit(
                    acc.name,
                    f"D-Bus policy: {ref.detail}; the rule stops matching once the name is dynamic",
                    ref.location,
                    effect=Effect.ACKNOWLEDGE,
                )
