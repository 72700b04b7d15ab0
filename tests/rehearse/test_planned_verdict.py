"""The rehearsal records the verdict the plan states, not only the scan's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from dynmigrate.model.common import Verdict
from dynmigrate.model.plan import AccountPlan
from dynmigrate.rehearse.worker import _planned_verdict


def plan(verdict: Verdict, *steps: tuple[str, str]) -> AccountPlan:
    manual = tuple(SimpleNamespace(id=i, text=t) for i, t in steps)
    return cast(AccountPlan, SimpleNamespace(verdict=verdict, manual_steps=manual))


def test_a_manual_step_of_the_plan_makes_a_convertible_account_need_it() -> None:
    # bird: the scan finds nothing manual, the plan finds /etc/bird closed to every other user
    got = _planned_verdict(
        Verdict.CONVERTIBLE,
        "the plan handles everything",
        plan(Verdict.NEEDS_MANUAL, ("M1-bird", "/etc/bird (127:131 0750) could not be entered by other users")),
    )
    assert got == ("needs-manual-steps", "M1-bird: /etc/bird (127:131 0750) could not be entered by other users")


def test_the_scan_verdict_stays_when_the_plan_agrees_or_is_absent() -> None:
    assert _planned_verdict(Verdict.CONVERTIBLE, "why", plan(Verdict.CONVERTIBLE)) == ("convertible", "why")
    assert _planned_verdict(Verdict.BLOCKED, "why", None) == ("blocked", "why")
