"""The corpus runner (bench/corpus/run.py) without booting anything: a stand-in for the rehearse
command returns rehearsals built in memory; the records, RESULTS.md and the resume choices are
compared whole with goldens."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import run as runner

from conftest import GOLDENS, Golden
from corpus import Daemon
from dynmigrate.rehearse.classify import classify
from dynmigrate.rehearse.model import AccountFacts, Environment, Rehearsal, Step, UnitCheck
from dynmigrate.rehearse.render import render_json
from rehearse.facts import STAGES, redis

TREES = runner.Trees("a" * 40, "b" * 40)
OLD = runner.Trees("c" * 40, "b" * 40)
ROOT = Path("/var/cache/dynmigrate-corpus/0123456789abcdef/root")
PROBE_SOURCE = b"print('probe')\n"


def daemon(name: str, account: str, **changes: Any) -> Daemon:
    base = Daemon(
        name=name,
        package=name,
        unit=f"{name}.service",
        account=account,
        group="main",
        suites=("bookworm", "trixie"),
        setup="systemctl restart " + name,
        probe="$PROBE tcp 127.0.0.1 1 --expect ok",
    )
    return replace(base, **changes)


ENV = Environment(
    root=str(ROOT),
    mode="trusted image",
    os_release="Debian GNU/Linux 12 (bookworm)",
    systemd_version=252,
    kernel="6.1.0-28-amd64",
    overlay_options="redirect_dir=on,metacopy=on",
    layers=("/",),
    private_users=False,
    idmap="not used by systemd 252 (they came in 257)",
)


def rehearsal(*facts: AccountFacts) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render_json(Rehearsal(ENV, tuple(classify(f) for f in facts), 80.0)))
    return data


def as_account(name: str, unit: str, **changes: Any) -> AccountFacts:
    return replace(redis(), account=name, units=(unit,), **changes)


BLOCKED = {
    "verdict": "blocked",
    "reason": "DM205: cups.service owns bus name org.cups.cupsd",
    "manual_steps": (),
}
REFUSED = as_account("lp", "cups.service", planned=False, before=(), stages=(), migrated=(), rollbacks=(), **BLOCKED)
FORCED_FAILS = as_account(
    "lp",
    "cups.service",
    forced=True,
    stages=(*STAGES[:2], Step("migrate.sh stage2", False, 1, 3.0, "ERROR: bus name org.cups.cupsd is not owned")),
    **BLOCKED,
)
FORCED_WORKS = as_account("lp", "cups.service", forced=True, **BLOCKED)
# the failed step names only the health check; the daemon's own first journal error names the cause
FORCED_FAILS_JOURNAL = as_account(
    "lp",
    "cups.service",
    forced=True,
    stages=(*STAGES[:2], Step("migrate.sh stage2", False, 1, 3.0, "ERROR: health check failed")),
    journal_error="cupsd[81]: Unable to own name org.cups.cupsd on the system bus",
    **BLOCKED,
)
# the forced rehearsal finds nothing meant to run before any change (exim4 on bookworm did this)
FORCED_BROKEN = as_account(
    "lp", "cups.service", forced=True, before=(), stages=(), migrated=(), rollbacks=(), restored=(), **BLOCKED
)
WHEN = "2026-01-02T03:04:05Z"

# What the stand-in returns per daemon: (first rehearsal, forced rehearsal or None)
SCRIPT: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
    "redis": (rehearsal(redis(verdict="convertible", manual_steps=(), confirmed=())), None),
    "manual": (rehearsal(as_account("manual", "manual.service", manual_done=True)), None),
    "failing": (
        rehearsal(
            as_account(
                "failing",
                "failing.service",
                verdict="convertible",
                stages=(*STAGES[:2], Step("migrate.sh stage2", False, 1, 3.0, "userdel: user failing is in use")),
            )
        ),
        None,
    ),
    "cups": (rehearsal(REFUSED), rehearsal(FORCED_FAILS)),
    "cups-optional": (rehearsal(REFUSED), rehearsal(FORCED_WORKS)),
    "cups-broken": (rehearsal(REFUSED), rehearsal(FORCED_BROKEN)),
    "cups-journal": (rehearsal(REFUSED), rehearsal(FORCED_FAILS_JOURNAL)),
    "broken": (
        rehearsal(
            as_account(
                "broken",
                "broken.service",
                migrated=(),
                rollbacks=(),
                restored=(),
                stages=(),
                setup=(Step("setup 1", False, 1, 1.0, "Failed to start broken.service"),),
            )
        ),
        None,
    ),
    "nobooted": (None, None),
    "rootdaemon": (None, None),
}
DAEMONS = (
    daemon("redis", "redis"),
    daemon("manual", "manual", manual="sed -i s/a/b/ /etc/manual.conf"),
    daemon("failing", "failing"),
    daemon("cups", "lp"),
    daemon("cups-optional", "lp"),
    daemon("cups-broken", "lp"),
    daemon("cups-journal", "lp"),
    daemon("broken", "broken"),
    daemon("nobooted", "nobooted"),
    daemon("rootdaemon", "-"),
    daemon("trixie-only", "valkey", suites=("trixie",)),
)


class StandIn:
    """Answers like `dynmigrate rehearse`, from SCRIPT; remembers every call."""

    def __init__(self) -> None:
        self.calls: list[Sequence[str]] = []
        self.envs: list[dict[str, str]] = []

    def __call__(self, argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str, Mapping[str, Any] | None]:
        self.calls.append(argv)
        self.envs.append(dict(env))
        name = Path(argv[argv.index("-o") + 1]).stem.removeprefix("bookworm-").removesuffix("-forced")
        first, forced = SCRIPT[name]
        data = forced if "--force" in argv else first
        if data is None and "--unit" in argv:
            return 2, "dynmigrate: no static system account runs rootdaemon.service", None
        if data is None:
            return 1, "rehearse: the copy did not boot: systemd-nspawn exited during boot", None
        return 0, "", data


def run_all() -> tuple[list[dict[str, Any]], StandIn]:
    stand_in = StandIn()
    records = [
        runner.rehearse_daemon(d, "bookworm", ROOT, TREES, stand_in, Path("/nonexistent"), PROBE_SOURCE, lambda: WHEN)
        for d in DAEMONS
        if "bookworm" in d.suites
    ]
    return records, stand_in


def test_records(golden: Golden) -> None:
    records, _ = run_all()
    text = json.dumps(records, indent=1, sort_keys=True) + "\n"
    golden.check(GOLDENS / "corpus" / "records.json", text)


def test_a_refused_daemon_is_rehearsed_again_with_force() -> None:
    _, stand_in = run_all()
    forced = [Path(c[c.index("-o") + 1]).name for c in stand_in.calls if "--force" in c]
    assert forced == [
        "bookworm-cups-forced.json",
        "bookworm-cups-optional-forced.json",
        "bookworm-cups-broken-forced.json",
        "bookworm-cups-journal-forced.json",
    ]


def test_results_md(golden: Golden) -> None:
    records, _ = run_all()
    golden.check(GOLDENS / "corpus" / "RESULTS.md", runner.render_results(records, DAEMONS))


def test_argv(golden: Golden) -> None:
    out = Path("/var/tmp/out.json")
    lines = []
    for d in (DAEMONS[0], DAEMONS[1], daemon("collectd", "-")):
        lines.append(json.dumps(runner.rehearse_argv(d, ROOT, PROBE_SOURCE, out, force=d.account == "-"), indent=1))
    golden.check(GOLDENS / "corpus" / "argv.txt", "\n".join(lines) + "\n")


def _record(name: str, trees: runner.Trees, suite: str = "bookworm") -> dict[str, Any]:
    return {"suite": suite, "daemon": name, "src_tree": trees.src, "rules_tree": trees.rules}


RESUME_CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "nothing run yet": ([], {}),
    "redis and cups done with these trees": ([_record("redis", TREES), _record("cups", TREES)], {}),
    "redis done with older trees only": ([_record("redis", OLD)], {}),
    "redis done on trixie only": ([_record("redis", TREES, "trixie")], {}),
    "everything done, --again": ([_record(d.name, TREES) for d in DAEMONS], {"again": True}),
    "everything done": ([_record(d.name, TREES) for d in DAEMONS], {}),
    "--only cups and trixie-only, nothing done": ([], {"only": ("cups", "trixie-only")}),
    "--group other": ([], {"group": "other"}),
}


def test_resume(golden: Golden) -> None:
    lines = []
    for case, (results, options) in RESUME_CASES.items():
        for suite in ("bookworm", "trixie"):
            todo = runner.pending(DAEMONS, suite, results, TREES, **options)
            lines.append(f"{case} [{suite}]: {' '.join(d.name for d in todo) or '(none)'}")
    golden.check(GOLDENS / "corpus" / "resume.txt", "\n".join(lines) + "\n")


def test_results_file_round_trip(tmp_path: Path) -> None:
    records, _ = run_all()
    path = tmp_path / "results.json"
    runner.save_results(path, records)
    runner.save_results(path, [*runner.load_results(path), records[0]])
    assert runner.load_results(path) == [*records, records[0]]


def test_a_broken_results_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text('{"schema_version": 99, "results": []}\n')
    with pytest.raises(runner.RunnerError) as info:
        runner.load_results(path)
    assert str(info.value) == f"{path}: not a results file of schema version 1"


@pytest.mark.parametrize(
    ("error", "reason", "matches"),
    [
        ("ERROR: bus name org.cups.cupsd is not owned", "DM205: cups.service owns bus name org.cups.cupsd", True),
        ("userdel: user lp is in use", "DM205: cups.service owns bus name org.cups.cupsd", False),
        ("", "DM205: cups.service owns bus name org.cups.cupsd", False),
    ],
)
def test_error_matches_reason(error: str, reason: str, matches: bool) -> None:
    assert runner.error_matches_reason(error, reason) is matches


def test_a_failed_health_check_is_followed_by_what_the_probe_said() -> None:
    stopped = Step("migrate.sh stage1", False, 1, 3.0, "ERROR: health check failed with the drop-ins installed")
    failed = UnitCheck("cups.service", True, (0,), "probe", False, "exit 1: probe failed: INBOX is read-only")
    forced = rehearsal(replace(FORCED_FAILS, stages=(STAGES[0], stopped), migrated=(failed,)))
    assert runner.first_error(forced["accounts"][0]) == (
        "ERROR: health check failed with the drop-ins installed;"
        " the probe said: exit 1: probe failed: INBOX is read-only"
    )
    other = rehearsal(FORCED_FAILS)  # a step that failed for its own reason says it alone
    assert runner.first_error(other["accounts"][0]) == "ERROR: bus name org.cups.cupsd is not owned"


def test_a_widened_path_is_the_first_error() -> None:
    # the plan broke a safety rule: that comes before a failed step and makes the outcome FAIL
    widened = ("after the rollback, other users can read /etc/cups/cupsd.conf",)
    data = rehearsal(replace(FORCED_FAILS, forced=False, verdict="convertible", access_widened=widened))
    account = data["accounts"][0]
    assert account["outcome"] == "FAIL"
    assert (
        runner.first_error(account)
        == "read access widened: after the rollback, other users can read /etc/cups/cupsd.conf"
    )


def test_a_daemon_with_a_probe_timeout_gives_it_to_the_plan_scripts() -> None:
    # tomcat10's probe deploys an archive after a restart: longer than the scripts' 30 s default
    slow = replace(DAEMONS[0], probe_timeout=180)
    assert runner.script_env(slow) == {"DYNMIGRATE_PROBE_TIMEOUT": "180"}
    assert runner.script_env(DAEMONS[0]) == {}
