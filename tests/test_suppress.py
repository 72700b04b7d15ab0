"""Suppressions: --ignore, --select, [ignore] in the policy, baselines. Reports change; verdicts and plans do not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dynmigrate.cli.main import main

pytestmark = pytest.mark.usefixtures("shared_scans")  # each sample is scanned once here (conftest)
SAMPLE = ["samples/debian-web/root", "--ownership", "samples/debian-web/ownership.tsv", "--no-progress"]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def scan_json(*args: str, root: list[str] | None = None) -> dict[str, Any]:
    code, out, err = run("scan", *(root or SAMPLE), "--format", "json", *args)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def findings(data: dict[str, Any]) -> list[tuple[str, str, str | None, str]]:
    out = [(a["name"], f["rule"], f["location"], f["message"]) for a in data["accounts"] for f in a["findings"]]
    out += [("", f["rule"], f["location"], f["message"]) for f in data["host_findings"]]
    return sorted(out)


def suppressed(data: dict[str, Any]) -> list[tuple[str, str, str | None, str]]:
    return sorted((s["subject"], s["rule"], s["location"], s["message"]) for s in data["suppressed"])


def verdicts(data: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {a["name"]: (a["verdict"], a["reason"]) for a in data["accounts"]}


def test_ignore_moves_findings_to_suppressed_and_keeps_verdicts(in_repo: Path) -> None:
    full = scan_json()
    data = scan_json("--ignore", "DM110,dm201", "--ignore", "DM408")
    gone = [f for f in findings(full) if f[1] in ("DM110", "DM201", "DM408")]
    assert gone
    assert findings(data) == [f for f in findings(full) if f not in gone]
    assert suppressed(data) == gone
    assert {s["why"] for s in data["suppressed"]} == {"ignore"}
    assert verdicts(data) == verdicts(full)  # messagebus stays blocked, redis needs manual steps
    assert full["suppressed"] == []


def test_select_reports_only_the_chosen_rules(in_repo: Path) -> None:
    full = scan_json()
    data = scan_json("--select", "DM205")
    assert findings(data) == [f for f in findings(full) if f[1] == "DM205"]
    assert sorted(findings(data) + suppressed(data)) == findings(full)
    assert verdicts(data) == verdicts(full)


def test_unknown_rule_in_ignore_is_a_usage_error(in_repo: Path) -> None:
    code, out, err = run("scan", *SAMPLE, "--ignore", "DM110,DM998")
    assert (code, out) == (2, "")
    assert "--ignore: unknown rule DM998" in err


def test_policy_ignore_per_account_and_unit(in_repo: Path, tmp_path: Path) -> None:
    policy = tmp_path / "dynmigrate.ini"
    policy.write_text("[ignore]\nredis = DM110 DM408\nmemcached.service = DM201\n", encoding="utf-8")
    full = scan_json()
    data = scan_json("--policy", str(policy))
    gone = [
        f
        for f in findings(full)
        if (f[0] == "redis" and f[1] in ("DM110", "DM408")) or (f[0] == "memcache" and f[1] == "DM201")
    ]
    assert len(gone) == 3
    assert suppressed(data) == gone
    assert {s["why"] for s in data["suppressed"]} == {"policy"}
    assert findings(data) == [f for f in findings(full) if f not in gone]
    assert verdicts(data) == verdicts(full)


def test_bad_policy_ignore_fails_closed_with_file_and_line(in_repo: Path, tmp_path: Path) -> None:
    # a broken policy stops the scan (exit 3) rather than dropping what it asked for
    policy = tmp_path / "dynmigrate.ini"
    policy.write_text("[ignore]\n# comment\nredis = DM110 everything\n", encoding="utf-8")
    code, out, err = run("scan", *SAMPLE, "--format", "json", "--policy", str(policy))
    assert (code, out) == (3, "")
    assert err == f"dynmigrate: {policy}:3: policy file: [ignore] redis: EVERYTHING is not a rule id\n"


def test_table_and_markdown_count_suppressed_findings(in_repo: Path) -> None:
    n = len([f for f in findings(scan_json()) if f[1] == "DM110"])
    assert n > 1
    code, out, _ = run("scan", *SAMPLE, "--ignore", "DM110", "--color", "never")
    assert code == 0
    assert f"Suppressed findings: {n} (ignore {n})\n" in out
    code, out, _ = run("scan", *SAMPLE, "--ignore", "DM110", "--format", "markdown")
    assert f"- Suppressed findings (left out below, still counted for verdicts): {n} (ignore {n})\n" in out


def test_suppressed_blocker_still_blocks_plan(in_repo: Path, tmp_path: Path) -> None:
    policy = tmp_path / "dynmigrate.ini"
    policy.write_text("[ignore]\nmessagebus = DM205 DM403\n", encoding="utf-8")
    data = scan_json("--policy", str(policy), "--ignore", "DM205")
    assert verdicts(data)["messagebus"][0] == "blocked"
    assert not [f for f in findings(data) if f[0] == "messagebus" and f[1] == "DM205"]
    code, _, err = run("plan", *SAMPLE, "--policy", str(policy), "--account", "messagebus", "--dry-run")
    assert code == 4
    assert "not planned: messagebus: blocked" in err


def copy_sample(tmp_path: Path) -> list[str]:
    root = tmp_path / "root"
    shutil.copytree("samples/debian-web/root", root, symlinks=True)
    return [str(root), "--ownership", "samples/debian-web/ownership.tsv", "--no-progress"]


def test_baseline_round_trip_survives_moved_lines_and_reports_new_findings(in_repo: Path, tmp_path: Path) -> None:
    root_args = copy_sample(tmp_path)
    baseline = tmp_path / "baseline.json"
    full = scan_json("--write-baseline", str(baseline), root=root_args)
    recorded = json.loads(baseline.read_text(encoding="utf-8"))
    assert recorded["baseline_version"] == 1
    assert sorted((e["account"], e["rule"], e["message"]) for e in recorded["findings"]) == sorted(
        (f[0], f[1], f[3]) for f in findings(full)
    )
    # nothing new: everything is suppressed, and counted
    again = scan_json("--baseline", str(baseline), root=root_args)
    assert findings(again) == []
    assert suppressed(again) == findings(full)
    assert verdicts(again) == verdicts(full)
    # lines move (two lines inserted at the top of the cron file) and a new cron job appears
    cron = Path(root_args[0]) / "etc/cron.d/pg-backup"
    cron.write_text("# moved\n# down\n" + cron.read_text(encoding="utf-8"), encoding="utf-8")
    (Path(root_args[0]) / "etc/cron.d/redis-dump").write_text(
        "SHELL=/bin/sh\n17 3 * * * redis redis-cli save\n", encoding="utf-8"
    )
    later = scan_json("--baseline", str(baseline), root=root_args)
    assert findings(later) == [
        (
            "redis",
            "DM401",
            "/etc/cron.d/redis-dump:2",
            next(f[3] for f in findings(scan_json(root=root_args)) if f[2] == "/etc/cron.d/redis-dump:2"),
        )
    ]
    moved = [s for s in later["suppressed"] if s["rule"] == "DM401" and s["subject"] == "postgres"]
    assert [s["location"] for s in moved] == ["/etc/cron.d/pg-backup:8"]


def test_a_broken_baseline_is_an_input_error(in_repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "baseline.json"
    bad.write_text('{"baseline_version": 1, "findings": [{"rule": "DM110"}]}', encoding="utf-8")
    code, out, err = run("scan", *SAMPLE, "--baseline", str(bad))
    assert (code, out) == (3, "")
    assert err == f"dynmigrate: baseline {bad}: findings[0] needs rule, account, file, line and message\n"
    bad.write_text("{not json", encoding="utf-8")
    code, _, err = run("scan", *SAMPLE, "--baseline", str(bad))
    assert code == 3
    assert err.startswith(f"dynmigrate: baseline {bad}:1: not JSON")
