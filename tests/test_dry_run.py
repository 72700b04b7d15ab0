"""plan --dry-run prints the drop-ins and the diffs that the plan folder would hold, and writes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import GOLDENS, REPO, Golden
from dynmigrate.cli.main import main


def tree(path: Path) -> list[tuple[str, int, int]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        for name in sorted(dirnames + filenames):
            st = os.lstat(os.path.join(dirpath, name))
            out.append((os.path.relpath(os.path.join(dirpath, name), path), st.st_mode, st.st_mtime_ns))
    return sorted(out)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory that sees the samples under their relative path."""
    (tmp_path / "samples").symlink_to(REPO / "samples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


ARGS = ["samples/debian-web/root", "--ownership", "samples/debian-web/ownership.tsv", "--no-progress"]


def test_dry_run_prints_dropins_and_diffs_and_writes_nothing(workdir: Path, golden: Golden) -> None:
    before, samples = tree(workdir), tree(REPO / "samples")
    accounts = ["--account", "redis", "--account", "memcache", "--account", "shortlink"]
    result = CliRunner().invoke(main, ["plan", *ARGS, *accounts, "--dry-run", "-o", "never-written"])
    assert result.exit_code == 0, result.stderr
    assert tree(workdir) == before
    assert tree(REPO / "samples") == samples
    golden.check(GOLDENS / "samples" / "debian-web" / "plan-dry-run.txt", result.stdout)
    # the same text as the files a real plan writes
    written = CliRunner().invoke(main, ["plan", *ARGS, *accounts, "-o", "plan", "--no-security"])
    assert written.exit_code == 0, written.stderr
    shown = 0
    for block in result.stdout.split("=== ")[1:]:
        title, _, body = block.partition("\n")
        body = body.split("\n## ")[0]  # the next account's heading
        rel = title.split(" -> ")[0]
        text = (workdir / "plan" / rel).read_text(encoding="utf-8")
        assert body.rstrip("\n") == text.rstrip("\n"), rel
        shown += 1
    dropins = sorted(str(p.relative_to(workdir / "plan")) for p in (workdir / "plan").rglob("50-dynmigrate.conf"))
    diffs = sorted(str(p.relative_to(workdir / "plan")) for p in (workdir / "plan").rglob("effective.diff"))
    assert shown == len(dropins) + len(diffs)


def test_dry_run_needs_no_output_folder_and_still_refuses_blocked(workdir: Path) -> None:
    result = CliRunner().invoke(main, ["plan", *ARGS, "--account", "messagebus", "--dry-run"])
    assert (result.exit_code, result.stdout) == (4, "")
    assert "dynmigrate: not planned: messagebus: blocked: DM205" in result.stderr
    assert [name for name, _, _ in tree(workdir)] == ["samples"]
    # with something planned, the refused account is listed in the preview too
    result = CliRunner().invoke(main, ["plan", *ARGS, "--account", "messagebus", "--account", "redis", "--dry-run"])
    assert result.exit_code == 4
    assert "\n## not planned: messagebus: blocked: DM205" in result.stdout
    assert [name for name, _, _ in tree(workdir)] == ["samples"]
    result = CliRunner().invoke(main, ["plan", *ARGS, "--account", "redis"])
    assert result.exit_code == 2
    assert (
        result.stderr == "dynmigrate: give the plan folder with -o DIR (or --dry-run to print the drop-ins and diffs)\n"
    )


def test_dry_run_escapes_terminal_controls() -> None:
    from dynmigrate.render.planfolder.preview import printable

    assert (
        printable("ExecStart=/bin/x \\\n\t--flag \x1b[31mred\x07") == "ExecStart=/bin/x \\\n\t--flag \\x1b[31mred\\x07"
    )
