"""Observed facts -> outcome class. Pure: the tests feed it facts built in memory."""

from __future__ import annotations

from collections.abc import Sequence

from dynmigrate.rehearse.model import AccountFacts, AccountResult, Outcome, Step, UnitCheck

DYN_MIN, DYN_MAX = 61184, 65519  # systemd's dynamic UID range (never read from login.defs)


def is_dynamic(uid: int) -> bool:
    return DYN_MIN <= uid <= DYN_MAX


def dynamic_uid(checks: Sequence[UnitCheck]) -> int | None:
    """The dynamic UID the migrated units ran under (the first one seen), or None."""
    for c in checks:
        for uid in c.uids:
            if is_dynamic(uid):
                return uid
    return None


def _probe_answer(checks: Sequence[UnitCheck]) -> str:
    answers = [f"{c.unit}: {c.probe_answer}" for c in checks if c.probe]
    return "; ".join(answers) if answers else "(no probe)"


def _unit_problem(c: UnitCheck, *, want_dynamic: bool | None, static_uid: int) -> str:
    """What is wrong with a unit at a check point, or "" (want_dynamic None: any UID)."""
    if not c.active:
        return f"{c.unit} is not active"
    if want_dynamic is True and not any(is_dynamic(u) for u in c.uids):
        return f"{c.unit} runs under UID {', '.join(map(str, c.uids)) or '(none)'}, not a dynamic one"
    if want_dynamic is False and static_uid >= 0 and static_uid not in c.uids:
        return f"{c.unit} runs under UID {', '.join(map(str, c.uids)) or '(none)'}, not the static {static_uid}"
    if c.probe_ok is False:
        return f"{c.unit}'s probe failed: {c.probe_answer or '(no output)'}"
    return ""


def _first_problem(checks: Sequence[UnitCheck], *, want_dynamic: bool | None, static_uid: int) -> str:
    for c in checks:
        problem = _unit_problem(c, want_dynamic=want_dynamic, static_uid=static_uid)
        if problem:
            return problem
    return ""


def _failed(steps: Sequence[Step]) -> Step | None:
    return next((s for s in steps if not s.ok), None)


def rollback_summary(f: AccountFacts) -> str:
    """ "clean", "not run", or the first thing the rollback left wrong."""
    if not f.rollbacks:
        return "not run"
    bad = _failed(f.rollbacks)
    if bad is not None:
        return f"rollback {bad.name} failed: {bad.error or f'exit {bad.exit_code}'}"
    problem = _first_problem(f.restored, want_dynamic=False, static_uid=f.static_uid)
    if problem:
        return f"after the rollback {problem}"
    if f.account_restored is False:
        return "after the rollback the passwd/group lines differ from before"
    if f.manifest_restored is False:
        first = f.manifest_diff[0] if f.manifest_diff else "(no detail)"
        return f"after the rollback ownership differs: {first}"
    return "clean"


def access_problem(f: AccountFacts) -> str:
    """The plan made a path readable to other users: it broke a safety rule, whatever else worked."""
    if not f.access_widened:
        return ""
    more = len(f.access_widened) - 1
    return f"read access widened: {f.access_widened[0]}" + (f" ({more} more listed)" if more else "")


def _migration_problem(f: AccountFacts) -> str:
    bad = _failed(f.stages)
    if bad is not None:
        return f"{bad.name} failed: {bad.error or f'exit {bad.exit_code}'}"
    if not f.migrated:
        return "no unit was checked after the migration"
    return _first_problem(f.migrated, want_dynamic=True, static_uid=f.static_uid)


def classify(f: AccountFacts) -> AccountResult:
    """The outcome class of one account, with the reason a reader needs."""
    dyn = dynamic_uid(f.migrated)
    answer = _probe_answer(f.migrated or f.before)
    rollback = rollback_summary(f)

    def result(outcome: Outcome, why: str) -> AccountResult:
        return AccountResult(f, outcome, why, dyn, answer, rollback)

    setup_failed = _failed(f.setup)
    if setup_failed is not None:
        why = setup_failed.error or f"exit {setup_failed.exit_code}"
        return result(Outcome.BROKEN_BEFORE, f"the setup failed before any change: {why}")
    if not f.dedicated:
        return result(Outcome.NOT_APPLICABLE, f"no dedicated account ({f.verdict}: {f.reason})")
    if not f.planned:
        if f.verdict == "blocked":
            return result(Outcome.REFUSED, f.not_planned_why or f.reason)
        return result(Outcome.NOT_APPLICABLE, f.not_planned_why or f"{f.verdict}: {f.reason}")
    broken = _first_problem(f.before, want_dynamic=None, static_uid=f.static_uid)
    if broken or not f.before:
        return result(Outcome.BROKEN_BEFORE, broken or "no unit of it is meant to run (none enabled)")
    problem = access_problem(f) or _migration_problem(f)
    if not problem and rollback != "clean":
        problem = rollback
    if f.forced:
        stated = f.reason
        if problem:
            return result(Outcome.REFUSED, f"blocked ({stated}); the forced plan failed: {problem}")
        return result(Outcome.REFUSED, f"blocked ({stated}); the forced plan worked and rolled back cleanly")
    if problem:
        return result(Outcome.FAIL, problem)
    if f.manual_done and f.manual_steps:
        return result(Outcome.MANUAL_OK, f"worked after the manual steps ({', '.join(f.manual_steps)})")
    confirmed = f" with --confirm {', '.join(f.confirmed)}" if f.confirmed else ""
    return result(Outcome.AUTO, f"every stage worked{confirmed}; rolled back cleanly")
