"""Outcome classes from observed facts (the truth corpus relies on exactly these)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dynmigrate.rehearse.classify import classify, dynamic_uid, rollback_summary
from dynmigrate.rehearse.model import AccountFacts, Outcome, Step
from rehearse.facts import ROLLBACKS, STAGES, check, redis


@pytest.mark.parametrize(
    ("facts", "outcome", "why"),
    [
        (redis(), Outcome.AUTO, "every stage worked with --confirm DM110-redis; rolled back cleanly"),
        (
            redis(manual_done=True),
            Outcome.MANUAL_OK,
            "worked after the manual steps (DM110-redis)",
        ),
        (
            redis(manual_steps=(), confirmed=(), manual_done=True),
            Outcome.AUTO,
            "every stage worked; rolled back cleanly",
        ),
        (
            # an acknowledgement is confirmed at stage 2 but is no manual step: --before-stage2 ran,
            # yet nothing a person had to change, so the outcome stays AUTO (a convertible verdict)
            redis(verdict="convertible", manual_steps=(), confirmed=("DM102-redis",), manual_done=True),
            Outcome.AUTO,
            "every stage worked with --confirm DM102-redis; rolled back cleanly",
        ),
        (
            redis(before=(check(101, active=False),)),
            Outcome.BROKEN_BEFORE,
            "redis-server.service is not active",
        ),
        (
            redis(before=(check(101, probe_ok=False, answer="exit 1: Connection refused"),)),
            Outcome.BROKEN_BEFORE,
            "redis-server.service's probe failed: exit 1: Connection refused",
        ),
        (redis(before=()), Outcome.BROKEN_BEFORE, "no unit of it is meant to run (none enabled)"),
        (
            redis(setup=(Step("setup 1", True, 0, 1.0), Step("setup 2", False, 1, 2.0, "redis-cli: NOAUTH"))),
            Outcome.BROKEN_BEFORE,
            "the setup failed before any change: redis-cli: NOAUTH",
        ),
        (
            redis(stages=(*STAGES[:2], Step("migrate.sh stage2", False, 1, 3.0, "userdel: user redis is in use"))),
            Outcome.FAIL,
            "migrate.sh stage2 failed: userdel: user redis is in use",
        ),
        (
            redis(migrated=(check(101),)),
            Outcome.FAIL,
            "redis-server.service runs under UID 101, not a dynamic one",
        ),
        (
            redis(migrated=(check(65030, probe_ok=False, answer="exit 1: NOAUTH"),)),
            Outcome.FAIL,
            "redis-server.service's probe failed: exit 1: NOAUTH",
        ),
        (
            redis(rollbacks=(ROLLBACKS[0], Step("rollback.sh stage2", False, 1, 1.0, "groupadd: GID 102 in use"))),
            Outcome.FAIL,
            "rollback rollback.sh stage2 failed: groupadd: GID 102 in use",
        ),
        (
            redis(restored=(check(65030),)),
            Outcome.FAIL,
            "after the rollback redis-server.service runs under UID 65030, not the static 101",
        ),
        (
            redis(account_restored=False),
            Outcome.FAIL,
            "after the rollback the passwd/group lines differ from before",
        ),
        (
            redis(
                manifest_restored=False,
                manifest_diff=("was d 101 102 750 /var/lib/redis, now d 0 0 755 /var/lib/redis",),
            ),
            Outcome.FAIL,
            "after the rollback ownership differs: was d 101 102 750 /var/lib/redis, now d 0 0 755 /var/lib/redis",
        ),
        (
            redis(planned=False, verdict="blocked", not_planned_why="blocked: DM205 owns bus name org.example"),
            Outcome.REFUSED,
            "blocked: DM205 owns bus name org.example",
        ),
        (
            redis(forced=True, verdict="blocked", reason="DM205: owns a bus name"),
            Outcome.REFUSED,
            "blocked (DM205: owns a bus name); the forced plan worked and rolled back cleanly",
        ),
        (
            redis(
                forced=True, verdict="blocked", reason="DM205: owns a bus name", migrated=(check(65030, active=False),)
            ),
            Outcome.REFUSED,
            "blocked (DM205: owns a bus name); the forced plan failed: redis-server.service is not active",
        ),
        (
            redis(dedicated=False, planned=False, verdict="blocked", reason="DM106: a base-passwd account"),
            Outcome.NOT_APPLICABLE,
            "no dedicated account (blocked: DM106: a base-passwd account)",
        ),
        (
            redis(planned=False, verdict="orphan", reason="nothing uses it", not_planned_why="orphan: nothing uses it"),
            Outcome.NOT_APPLICABLE,
            "orphan: nothing uses it",
        ),
    ],
)
def test_outcome(facts: AccountFacts, outcome: Outcome, why: str) -> None:
    result = classify(facts)
    assert (result.outcome, result.why) == (outcome, why)


def test_a_failed_stage_wins_over_a_failed_rollback() -> None:
    failed = Step("migrate.sh stage1", False, 1, 2.0, "Job for redis-server.service failed")
    facts = redis(stages=(STAGES[0], failed), rollbacks=(Step("rollback.sh stage1", False, 1, 1.0, "mv: cannot move"),))
    result = classify(facts)
    assert (result.outcome, result.why, result.rollback) == (
        Outcome.FAIL,
        "migrate.sh stage1 failed: Job for redis-server.service failed",
        "rollback rollback.sh stage1 failed: mv: cannot move",
    )


def test_dynamic_uid_and_probe_answer_are_reported() -> None:
    result = classify(redis())
    assert (result.dynamic_uid, result.probe_answer, result.rollback) == (
        65030,
        "redis-server.service: answered (exit 0)",
        "clean",
    )


@pytest.mark.parametrize(("uid", "expected"), [(61183, None), (61184, 61184), (65519, 65519), (65520, None)])
def test_dynamic_range_bounds(uid: int, expected: int | None) -> None:
    assert dynamic_uid((check(uid),)) == expected


def test_no_rollback_run() -> None:
    assert rollback_summary(replace(redis(), rollbacks=())) == "not run"
