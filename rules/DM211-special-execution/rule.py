"""RootDirectory=, RootImage= or PrivateUsers=managed: special cases."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Confidence, Effect, Hit, RuleContext, Severity

ID = "DM211"
NAME = "special-execution"
SEVERITY = Severity.WARNING
EFFECT = Effect.NEEDS_MANUAL
TAGS = ("units",)
SUMMARY = "RootDirectory=/RootImage= change name resolution and paths; PrivateUsers=managed refuses User=."
FIX = "Test DynamicUser=yes in the image by hand first; the image must resolve the dynamic user."
FACTS = ("F1.14", "F4.13")


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for unit in ctx.q.units_running_as(acc.name, min_confidence=Confidence.LIKELY):
            name = unit.name
            for key in ("RootDirectory", "RootImage"):
                d = unit.value("Service", key)
                if d is not None:
                    yield Hit(
                        acc.name, f"{name}: {key}={d.value}: check paths and NSS inside the root", d.location, (name,)
                    )
            pu = unit.value("Service", "PrivateUsers")
            if pu is not None and pu.value == "managed":
                yield Hit(
                    acc.name, f"{name}: PrivateUsers=managed refuses User= and DynamicUser=", pu.location, (name,)
                )
