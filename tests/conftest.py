"""Shared fixtures: golden files and the repository layout."""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import Result

if TYPE_CHECKING:
    from dynmigrate.app import ScanResult
    from dynmigrate.model.report import Report

REPO = Path(__file__).resolve().parent.parent
GOLDENS = REPO / "tests" / "goldens"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from robustness_stats import COUNTS

    for error in _count_errors:
        terminalreporter.write_line(f"README counts: {error} (pytest --update-goldens rewrites them)", red=True)

    if not COUNTS:
        return
    terminalreporter.section("robustness counts")
    props = {k: v for k, v in COUNTS.items() if k.startswith("property:")}
    if props:
        total = sum(props.values())
        terminalreporter.write_line(f"property tests: {total} generated inputs over {len(props)} readers/writers")
        for name, n in sorted(props.items()):
            terminalreporter.write_line(f"  {name.split(':', 1)[1]}: {n}")
    hostile = {k: v for k, v in COUNTS.items() if k.startswith("hostile:")}
    if hostile:
        terminalreporter.write_line(f"hostile-root cases: {len(hostile)}")
        for name, n in sorted(hostile.items()):
            terminalreporter.write_line(f"  {name.split(':', 1)[1]}" + (f" ({n} checks)" if n > 1 else ""))


# The counts README.md quotes ("Robustness") come from the test run: after a run of the whole of
# tests/robustness/ (both tiers) that passed, they are compared with what the run counted (and
# rewritten with --update-goldens); a difference fails the run. The quick loop's number of tests
# likewise, after a whole `pytest -m 'not e2e'` that passed.
README_COUNTS = (
    (re.compile(r"\*\*A hostile root built by the test\*\* \((\d+) cases\)"), "hostile cases"),
    (re.compile(r"([\d,]+) generated inputs over"), "generated inputs"),
    (re.compile(r"generated inputs over (\d+) readers and writers"), "readers and writers"),
    (re.compile(r"round-trips (\d+) generated files"), "round-tripped unit files"),
    (re.compile(r"\*\*Bounded work\*\* \(`test_bounded_work.py`\): (\d+) worst cases"), "bounded-work worst cases"),
    (re.compile(r"like\s+`shlex.split` \(([\d,]+) generated lines per run\)"), "generated shell-word lines"),
    (re.compile(r"\(([\d,]+) tests without the booted containers"), "quick-loop tests"),
)
_deselected_robustness: list[str] = []
_deselected_other: list[str] = []  # anything but an e2e test
_deselected_files: set[str] = set()
_count_errors: list[str] = []


_collected: list[str] = []  # under pytest-xdist (-n 2): what the workers collected, in the controller


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected_robustness.extend(i.nodeid for i in items if i.nodeid.startswith("tests/robustness/"))
    _deselected_other.extend(i.nodeid for i in items if i.get_closest_marker("e2e") is None)
    _deselected_files.update(i.nodeid.split("::", 1)[0] for i in items)


def _collected_ids(session: pytest.Session) -> list[str]:
    """The node ids of the tests this run selected: its own, or under pytest-xdist those its workers
    collected (every worker collects all of them and runs its share)."""
    return [item.nodeid for item in session.items] or _collected


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _send_to_controller(session: pytest.Session) -> None:
    """A pytest-xdist worker's part of the README's counts, for the controller (pytest_testnodedown):
    what it collected and deselected, and what each robustness test it ran counted."""
    from robustness_stats import COUNTS

    session.config.workeroutput["dynmigrate"] = {  # type: ignore[attr-defined]
        "items": [item.nodeid for item in session.items],
        "deselected_robustness": _deselected_robustness,
        "deselected_other": _deselected_other,
        "deselected_files": sorted(_deselected_files),
        "counts_by_test": _counts_by_test,
        "counts": dict(COUNTS),
    }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """In the pytest-xdist controller: add a worker's part of the counts (_send_to_controller)."""
    from robustness_stats import COUNTS

    part = getattr(node, "workeroutput", {}).get("dynmigrate")
    if part is None:
        return
    if not _collected:  # every worker collected the same tests and deselected the same ones
        _collected.extend(part["items"])
        _deselected_robustness.extend(part["deselected_robustness"])
        _deselected_other.extend(part["deselected_other"])
        _deselected_files.update(part["deselected_files"])
    _counts_by_test.update(part["counts_by_test"])
    COUNTS.update(part["counts"])


def _quick_loop(session: pytest.Session) -> int | None:
    """The number of tests of a whole `pytest -m 'not e2e'` (every test file, nothing but e2e left out)."""
    option = session.config.option
    files = {p.relative_to(REPO).as_posix() for p in (REPO / "tests").rglob("test_*.py")}
    collected = {nodeid.split("::", 1)[0] for nodeid in _collected_ids(session)}
    e2e = {p for p in files if p.startswith("tests/e2e/")}
    # a file outside tests/e2e/ may hold slow-tier tests only: collected, then deselected as e2e
    if option.markexpr != "not e2e" or option.keyword or _deselected_other:
        return None
    if not files - e2e <= collected | _deselected_files:
        return None
    return len(_collected_ids(session))


_counts_by_test: dict[str, dict[str, int]] = {}
COUNTS_CACHE = "dynmigrate/robustness-counts"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """Record what each robustness test counted (robustness_stats), test by test."""
    from robustness_stats import COUNTS

    before = Counter(COUNTS)
    try:
        return (yield)
    finally:
        if item.nodeid.startswith("tests/robustness/"):
            _counts_by_test[item.nodeid] = dict(COUNTS - before)


def _robustness_counts(session: pytest.Session) -> Counter[str] | None:
    """The counts of a whole run of tests/robustness/, or None. The tests of the quick tier and those
    of the slow tier (`pytest -m e2e`) run in two pytest runs (CI: .ci/run): a passing run keeps
    what each of its robustness tests counted in pytest's cache, and the next run adds the counts
    of the tests it left out, when they were counted by the same test files."""
    files = sorted((REPO / "tests" / "robustness").glob("test_*.py"))
    known = {nodeid for nodeid in _collected_ids(session) if nodeid.startswith("tests/robustness/")}
    known |= set(_deselected_robustness)
    if not {p.relative_to(REPO).as_posix() for p in files} <= {k.split("::", 1)[0] for k in known}:
        return None  # a robustness file was left out of the collection
    fingerprint = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()
    cache = session.config.cache if hasattr(session.config, "cache") else None
    kept: dict[str, dict[str, int]] = {}
    if cache is not None:
        stored = cache.get(COUNTS_CACHE, {})
        if isinstance(stored, dict) and stored.get("fingerprint") == fingerprint:
            kept = {k: v for k, v in stored.get("tests", {}).items() if k in known}
    kept |= {k: v for k, v in _counts_by_test.items() if k in known}
    if cache is not None:
        cache.set(COUNTS_CACHE, {"fingerprint": fingerprint, "tests": kept})
    if set(kept) != known:
        return None
    total: Counter[str] = Counter()
    for counts in kept.values():
        total.update(counts)
    return total


def _counted(session: pytest.Session) -> dict[str, int]:
    """What this run counted of the README's figures: the quick loop's tests after a whole
    `pytest -m 'not e2e'`, the robustness counts after a whole run of tests/robustness/ (both tiers,
    in this run or with the previous one: _robustness_counts)."""
    quick = _quick_loop(session)
    counted = {} if quick is None else {"quick-loop tests": quick}
    counts = _robustness_counts(session)
    if counts is None:
        return counted  # a partial run of tests/robustness/ counts less than the README says
    props = {k: v for k, v in counts.items() if k.startswith("property:")}
    return counted | {
        "hostile cases": len([k for k in counts if k.startswith("hostile:")]),
        "generated inputs": sum(props.values()),
        "readers and writers": len(props),
        "round-tripped unit files": counts.get("property:unit-roundtrip", 0),
        "bounded-work worst cases": len([k for k in counts if k.startswith("hostile:bounded work: ")]),
        "generated shell-word lines": counts.get("property:split_words", 0),
    }


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _is_xdist_worker(session.config):
        _send_to_controller(session)
        return  # the controller checks the counts of all the workers
    if exitstatus != 0 or session.config.option.collectonly:
        return  # a failed run counts less than the README says
    counted = _counted(session)
    if not counted:
        return
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    for pattern, what in README_COUNTS:
        if what not in counted:
            continue  # counted by another run (see _counted)
        m = pattern.search(text)
        if m is None:
            _count_errors.append(f"README.md no longer quotes the {what}")
            continue
        want = f"{counted[what]:,}" if "," in m.group(1) or counted[what] >= 1000 else str(counted[what])
        if m.group(1) != want:
            if session.config.getoption("--update-goldens"):
                text = text[: m.start(1)] + want + text[m.end(1) :]
            else:
                _count_errors.append(f"README.md quotes {m.group(1)} {what}; this run counted {want}")
    if session.config.getoption("--update-goldens"):
        readme.write_text(text, encoding="utf-8")
    if _count_errors:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", help="Rewrite golden files from current output.")


class Golden:
    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, path: Path, actual: str) -> None:
        """Compare a whole output with its golden file (review golden diffs like code)."""
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(f"golden {path.relative_to(REPO)} missing: run pytest --update-goldens and review it")
        expected = path.read_text(encoding="utf-8")
        if expected != actual:
            diff = "".join(
                difflib.unified_diff(
                    expected.splitlines(True), actual.splitlines(True), str(path.relative_to(REPO)), "actual"
                )
            )
            pytest.fail(f"output differs from golden:\n{diff[:20000]}")


def ci_mode() -> bool:
    """True under CI (env CI set to anything but empty/0/false/no): a check that cannot run fails there."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_tool(name: str) -> None:
    """Skip the rest of a test when the tool NAME is not installed; under CI, which installs it, fail."""
    if shutil.which(name) is None:
        if ci_mode():
            pytest.fail(f"{name} is not installed and CI is set: CI installs it (.ci/run)", pytrace=False)
        pytest.skip(f"{name} not installed")


def scratch_dir(prefix: str) -> Path:
    """A new directory for a test tree of thousands of directories, which the caller removes: on
    /dev/shm when that is a tmpfs this process can write, else in the temp directory. On a tmpfs
    creating them costs no disk: the hostile root's 10,000 nested directories took 0.3 s to 5.7 s
    on ext4, depending on what the disk was writing back at the time."""
    shm = "/dev/shm"
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        tmpfs = any(line.split()[1:3] == [shm, "tmpfs"] for line in mounts)
    where = shm if tmpfs and os.access(shm, os.W_OK | os.X_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=where))


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(bool(request.config.getoption("--update-goldens")))


@functools.cache
def scan_sample(name: str) -> ScanResult:
    """The scan of samples/NAME with its ownership.tsv, made once per test process (read it, never
    change it): the goldens, the SARIF, the README and the security tests all read the same scans."""
    from dynmigrate.app import run_scan

    old = Path.cwd()
    os.chdir(REPO)  # relative paths, so that reports carry machine-neutral ROOT labels
    try:
        return run_scan(f"samples/{name}/root", ownership=f"samples/{name}/ownership.tsv")
    finally:
        os.chdir(old)


_SCANS: dict[tuple[str | bytes | bool | None, ...], ScanResult] = {}
_SCANS_DATA: dict[int, tuple[Report, dict[str, Any]]] = {}


def _scan_key(
    root: str, ownership: str | None, policy: str | None, cross_filesystems: bool
) -> tuple[str | bytes | bool | None, ...] | None:
    """What a scan of a sample root depends on: the paths as typed (reports quote them), where they
    lead, and the policy file's bytes. None for any root outside samples/ (a test may change those)."""
    samples = REPO / "samples"
    real = [os.path.realpath(p) for p in (root, ownership) if p is not None]
    if not all(Path(r).is_relative_to(samples) for r in real) or not Path(root).is_dir():
        return None
    try:
        policy_bytes = None if policy is None else Path(policy).read_bytes()
    except OSError:
        return None
    return (root, ownership, policy, policy_bytes, cross_filesystems, *real)


@pytest.fixture(scope="module")
def shared_scans() -> Iterator[None]:
    """For the tests of a module that uses it, the CLI scans each sample root once per test process:
    a command that names samples/NAME/root again, with the same ownership and policy, gets the
    ScanResult of the first scan (a frozen value; scanning is a pure function of the root, which the
    goldens prove), and the report's plain data is made once (its callers only read it). Only scans
    that draw no progress and print nothing (no --verbose) are shared, so stderr is a fresh scan's.
    A test that proves something by scanning twice must not use this fixture."""
    import dynmigrate.cli.base as cli

    real = cli.scan_root

    def scan_root(
        root: str,
        ownership: str | None,
        policy: str | None,
        cross_filesystems: bool,
        color: str,
        no_progress: bool,
        *,
        progress: bool = True,
        quiet: bool = False,
        verbose: int = 0,
    ) -> ScanResult:
        key = _scan_key(root, ownership, policy, cross_filesystems)
        args = (root, ownership, policy, cross_filesystems, color, no_progress)
        drawn = progress and not no_progress and not quiet and sys.stderr.isatty()
        if key is None or verbose or drawn:
            return real(*args, progress=progress, quiet=quiet, verbose=verbose)
        if key not in _SCANS:
            name = Path(root).parent.name
            usual = (f"samples/{name}/root", f"samples/{name}/ownership.tsv", None, False)
            if (root, ownership, policy, cross_filesystems) == usual and Path(root).resolve() == REPO / usual[0]:
                _SCANS[key] = scan_sample(name)  # the same scan as the one the other tests read
            else:
                _SCANS[key] = real(*args, progress=progress, quiet=quiet, verbose=verbose)
        return _SCANS[key]

    import dynmigrate.render.common as render_common
    import dynmigrate.render.jsonout as jsonout

    real_data = render_common.report_data

    def report_data(report: Report) -> dict[str, Any]:
        """The report's plain data, made once for a shared scan's report (callers only read it)."""
        shared = _SCANS_DATA.get(id(report))
        if shared is None or shared[0] is not report:
            if not any(r.report is report for r in _SCANS.values()):
                return real_data(report)
            shared = _SCANS_DATA[id(report)] = (report, real_data(report))
        return shared[1]

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(cli, "scan_root", scan_root)
        monkeypatch.setattr(render_common, "report_data", report_data)
        monkeypatch.setattr(jsonout, "report_data", report_data)
        yield


def plan_sample(sample: str, accounts: list[str], out: Path, *extra: str) -> Result:
    """`dynmigrate plan samples/SAMPLE/root --ownership ... --account A ... -o OUT` (run from the repository)."""
    from click.testing import CliRunner

    from dynmigrate.cli.main import main

    args = [
        "plan",
        f"samples/{sample}/root",
        "--ownership",
        f"samples/{sample}/ownership.tsv",
        "-o",
        str(out),
        "--no-progress",
        *extra,
    ]
    for a in accounts:
        args += ["--account", a]
    return CliRunner().invoke(main, args)


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root, so that reports carry relative, machine-neutral ROOT labels."""
    monkeypatch.chdir(REPO)
    return REPO
