"""Input the readers could not use becomes a finding with its file and line."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity

ID = "DM001"
NAME = "unreadable-input"
SEVERITY = Severity.WARNING
EFFECT = Effect.INFORMS
TAGS = ("internal",)
SUMMARY = "A file or line under ROOT could not be read or parsed; the scan went on without it."
FIX = "Repair or remove the file named at the location, then scan again."


def check(ctx: RuleContext) -> Iterator[Hit]:
    for problem in ctx.snap.problems:
        yield Hit("", problem.message, problem.location)
