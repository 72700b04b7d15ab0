"""A udev rule gives a device to the account (OWNER=) or to its group (GROUP=)."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import RefKind, Target

ID = "DM409"
NAME = "udev-rule"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("references", "devices")
SUMMARY = (
    "udevd resolves OWNER=/GROUP= names when it loads its rules, before any unit runs: a dynamic "
    "user never owns the device."
)
FIX = "OWNER=: keep the account static. GROUP=: a static group for the device, in SupplementaryGroups=."
FACTS = ("F4.5", "F3.5")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        units = sorted({u.template or u.name for n in ctx.q.unit_names_of(acc.name) if (u := ctx.q.unit(n))})
        shared = f"; {len(units)} units use the device through it ({', '.join(units)})" if len(units) > 1 else ""
        for ref in ctx.q.refs_to_account(acc):
            if ref.kind is not RefKind.UDEV:
                continue
            if ref.target is Target.USER:
                yield Hit(
                    acc.name,
                    f"udev rule makes {acc.name} the owner of a device ({ref.detail}): a dynamic user does not "
                    f"exist when udevd applies it, so the device stays root's{shared}",
                    ref.location,
                )
            else:
                yield Hit(
                    acc.name,
                    f"udev rule gives a device to group {ref.name} ({ref.detail}), which the migration deletes: "
                    f"create a static group for the device (groupadd --system), name it in that GROUP= and add "
                    f"it to the units' SupplementaryGroups={shared}",
                    ref.location,
                    effect=Effect.NEEDS_MANUAL,
                )
