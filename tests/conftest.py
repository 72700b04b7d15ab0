"""Shared fixtures: golden files and the repository layout."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from click.testing import Result

REPO = Path(__file__).resolve().parent.parent
GOLDENS = REPO / "tests" / "goldens"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from robustness_stats import COUNTS

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


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(bool(request.config.getoption("--update-goldens")))


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
