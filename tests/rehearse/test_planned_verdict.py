"""The plan's verdict counts the manual steps only planning finds, with the first as its reason; the
rehearsal records that verdict, not only the scan's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from dynmigrate.model.common import Verdict
from dynmigrate.model.plan import AccountPlan, ManualStep
from dynmigrate.plan.planner import _plan_verdict
from dynmigrate.rehearse.worker import _planned_verdict

CLOSED = ManualStep("M1-bird", "plan", "/etc/bird (127:131 0750) could not be entered by other users")


def test_a_manual_step_of_the_plan_makes_a_convertible_account_need_it() -> None:
    # bird: the scan finds nothing manual, the plan finds /etc/bird closed to every other user
    assert _plan_verdict(Verdict.CONVERTIBLE, (CLOSED,)) == (
        Verdict.NEEDS_MANUAL,
        "M1-bird: /etc/bird (127:131 0750) could not be entered by other users",
    )


def test_without_a_step_or_when_worse_the_scan_verdict_and_reason_stand() -> None:
    assert _plan_verdict(Verdict.CONVERTIBLE, ()) == (Verdict.CONVERTIBLE, "")
    assert _plan_verdict(Verdict.BLOCKED, (CLOSED,)) == (Verdict.BLOCKED, "")
    assert _plan_verdict(Verdict.NEEDS_MANUAL, (CLOSED,)) == (Verdict.NEEDS_MANUAL, "")


def plan(verdict: Verdict, reason: str) -> AccountPlan:
    return cast(AccountPlan, SimpleNamespace(verdict=verdict, reason=reason))


def test_the_rehearsal_records_the_plan_verdict_or_the_scan_one_without_a_plan() -> None:
    got = _planned_verdict(Verdict.CONVERTIBLE, "nothing stands in the way", plan(Verdict.NEEDS_MANUAL, "M1-bird: x"))
    assert got == ("needs-manual-steps", "M1-bird: x")
    assert _planned_verdict(Verdict.BLOCKED, "why", None) == ("blocked", "why")
