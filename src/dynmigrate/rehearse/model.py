"""A rehearsal's result: pure data, with a lossless JSON form (the worker sends it to the CLI)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

REHEARSAL_SCHEMA_VERSION = 1


class Outcome(StrEnum):
    """What happened to one account (the truth corpus uses the same classes)."""

    AUTO = "AUTO"  # every stage worked with only the plan's --confirm ids; the rollback was clean
    MANUAL_OK = "MANUAL-OK"  # worked after the manual steps (--before-stage2) were done
    FAIL = "FAIL"  # a stage, a check after it, or a rollback failed
    REFUSED = "REFUSED"  # blocked: not planned (or planned with --force, see forced_result)
    NOT_APPLICABLE = "N/A"  # no dedicated account: nothing to migrate
    BROKEN_BEFORE = "BROKEN-BEFORE"  # the service did not work in the copy before any change


@dataclass(frozen=True, slots=True)
class Step:
    """One script run inside the copy: migrate.sh stageN, rollback.sh stageN or --before-stage2."""

    name: str
    ok: bool
    exit_code: int
    seconds: float
    error: str = ""  # its first error line ("" when it worked)


@dataclass(frozen=True, slots=True)
class UnitCheck:
    """A unit's state at one point: before, migrated (after stage 3) or rolled back."""

    unit: str
    active: bool
    uids: tuple[int, ...]  # UIDs of the processes in its cgroup
    probe: str  # the probe command ("" = none)
    probe_ok: bool | None  # None when there is no probe
    probe_answer: str  # first line of the probe's output, or why it failed


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """Everything observed for one account; classify() turns it into an outcome."""

    account: str
    verdict: str
    reason: str  # the verdict's reason
    units: tuple[str, ...]
    planned: bool
    forced: bool = False
    not_planned_why: str = ""
    dedicated: bool = True  # False: base-passwd, shared or nobody account (N/A)
    manual_steps: tuple[str, ...] = ()  # ids of the plan's manual steps (a person must change something)
    confirmed: tuple[str, ...] = ()  # every id stage 2 was given with --confirm (acknowledgements too)
    manual_done: bool = False  # --before-stage2 ran and worked
    setup: tuple[Step, ...] = ()  # the --setup commands, run before the scan (the same for every account)
    before: tuple[UnitCheck, ...] = ()
    stages: tuple[Step, ...] = ()
    migrated: tuple[UnitCheck, ...] = ()
    rollbacks: tuple[Step, ...] = ()
    restored: tuple[UnitCheck, ...] = ()
    static_uid: int = -1
    account_restored: bool | None = None  # passwd/group lines identical after the rollback
    manifest_restored: bool | None = None  # owner, mode and type of every recorded path identical
    manifest_diff: tuple[str, ...] = ()
    journal_error: str = ""
    seconds: float = 0.0
    # what nobody (other users) could newly read or enter, after the migration or the rollback, of
    # the paths the plan touches and their parents (access.py); access_checked: how many of those
    # paths were tried before stage 0 (0: not compared, access_error says why)
    access_widened: tuple[str, ...] = ()
    access_checked: int = 0
    access_error: str = ""


@dataclass(frozen=True, slots=True)
class AccountResult:
    facts: AccountFacts
    outcome: Outcome
    why: str
    dynamic_uid: int | None
    probe_answer: str
    rollback: str  # "clean", "not run", or what failed


@dataclass(frozen=True, slots=True)
class Environment:
    """Where the rehearsal ran and what the copy could and could not show."""

    root: str
    mode: str  # "host" (ROOT is /), "image" or "trusted image" (--trusted-image)
    os_release: str
    systemd_version: int | None
    kernel: str
    overlay_options: str
    layers: tuple[str, ...]  # mount points layered (host mode: / and the other real filesystems)
    private_users: bool
    idmap: str  # what systemd >= 257's id-mapped private directories do on this overlay
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rehearsal:
    environment: Environment
    accounts: tuple[AccountResult, ...]
    seconds: float
    error: str = ""  # the rehearsal itself could not finish (boot failed, ...)
    kept: tuple[str, ...] = ()  # with --keep: how to enter and remove the copy
    limits: tuple[str, ...] = field(default=())
    schema_version: int = REHEARSAL_SCHEMA_VERSION
    date: str = ""  # when it finished, UTC (YYYY-MM-DDTHH:MM:SSZ)


def to_json_data(r: Rehearsal) -> dict[str, Any]:
    return asdict(r)


def _step(d: dict[str, Any]) -> Step:
    return Step(**d)


def _check(d: dict[str, Any]) -> UnitCheck:
    return UnitCheck(**{**d, "uids": tuple(d["uids"])})


def _facts(d: dict[str, Any]) -> AccountFacts:
    return AccountFacts(
        **{
            **d,
            "units": tuple(d["units"]),
            "manual_steps": tuple(d["manual_steps"]),
            "confirmed": tuple(d.get("confirmed", ())),
            "before": tuple(_check(c) for c in d["before"]),
            "setup": tuple(_step(s) for s in d.get("setup", ())),
            "stages": tuple(_step(s) for s in d["stages"]),
            "migrated": tuple(_check(c) for c in d["migrated"]),
            "rollbacks": tuple(_step(s) for s in d["rollbacks"]),
            "restored": tuple(_check(c) for c in d["restored"]),
            "manifest_diff": tuple(d["manifest_diff"]),
            "access_widened": tuple(d.get("access_widened", ())),
        }
    )


def from_json_data(d: dict[str, Any]) -> Rehearsal:
    env = d["environment"]
    return Rehearsal(
        environment=Environment(**{**env, "layers": tuple(env["layers"]), "notes": tuple(env["notes"])}),
        accounts=tuple(
            AccountResult(**{**a, "facts": _facts(a["facts"]), "outcome": Outcome(a["outcome"])}) for a in d["accounts"]
        ),
        seconds=d["seconds"],
        error=d["error"],
        kept=tuple(d["kept"]),
        limits=tuple(d["limits"]),
        schema_version=d["schema_version"],
        date=d.get("date", ""),
    )
