"""`dynmigrate plan --rehearsal FILE`: the rehearsal's result cited in REPORT.md (whole file golden)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import GOLDENS, Golden, plan_sample
from dynmigrate.cli.main import main
from dynmigrate.rehearse.render import render_json
from rehearse.test_render import sample


def test_report_cites_the_rehearsal(in_repo: Path, tmp_path: Path, golden: Golden) -> None:
    rehearsal = tmp_path / "rehearsal.json"
    rehearsal.write_text(render_json(replace(sample(), date="2026-01-02T03:04:05Z")))
    out = tmp_path / "plan"
    res = plan_sample("debian-web", ["redis", "memcache"], out, "--no-security", "--rehearsal", str(rehearsal))
    assert res.exit_code == 0, res.output
    report = (out / "REPORT.md").read_text().replace(str(tmp_path), "TMP")
    golden.check(GOLDENS / "rehearse" / "plan-report-cited.md", report)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "{path}:1: not JSON (Expecting property name enclosed in double quotes)"),
        (
            '{"schema_version": 7}',
            "{path}: not a rehearsal of schema version 1 (write one with dynmigrate rehearse --format json)",
        ),
        ('{"schema_version": 1}', "{path}: a rehearsal with a missing or wrong field ('environment')"),
    ],
)
def test_a_bad_rehearsal_file_is_an_input_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "rehearsal.json"
    path.write_text(content)
    result = CliRunner().invoke(
        main, ["plan", str(tmp_path), "--account", "redis", "-o", str(tmp_path / "out"), "--rehearsal", str(path)]
    )
    assert (result.exit_code, result.output) == (3, f"dynmigrate: {message.format(path=path)}\n")
