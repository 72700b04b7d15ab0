"""REPORT.md says what the scan found, in words that follow the facts (the whole text is in the
sample goldens; these name the points a reviewer checks first)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import plan_sample


def report(tmp_path: Path, *accounts: str) -> str:
    res = plan_sample("debian-web", list(accounts), tmp_path / "plan", "--no-security")
    assert res.exit_code == 0, res.stderr
    return (tmp_path / "plan" / "REPORT.md").read_text(encoding="utf-8")


def section(text: str, account: str) -> str:
    return text.split(f"\n## {account} ", 1)[1].split("\n## ", 1)[0]


def test_a_convertible_account_shows_its_evidence(tmp_path: Path, in_repo: Path) -> None:
    shortlink = section(report(tmp_path, "shortlink"), "shortlink")
    evidence = shortlink.split("### Evidence\n", 1)[1].split("\n### ", 1)[0]
    assert evidence == (
        "\nVerdict: convertible (nothing stands in the way)\n\n"
        "Units that run as it:\n\n"
        "- shortlink.service via User= [certain] at `/etc/systemd/system/shortlink.service:12`: User=shortlink\n"
        "- shortlink.service via directory-ownership [possible] at `/var/lib/shortlink`: conventional directory "
        "/var/lib/shortlink is owned by shortlink\n\n"
        "Paths it owns:\n\n"
        "- `/var/lib/shortlink` dir 106:109 0750: 2 files, 1 dirs, 0 other, 203 bytes\n\n"
        "References outside unit files:\n\n"
        "- none\n\n"
        "Findings:\n\n"
        "- none: no rule found anything that stands in the way\n"
    )


def test_a_unit_in_etc_is_not_called_a_vendor_unit(tmp_path: Path, in_repo: Path) -> None:
    text = report(tmp_path, "shortlink", "redis")
    assert "(local unit file `/etc/systemd/system/shortlink.service` is never edited)" in section(text, "shortlink")
    assert "(vendor unit file `/usr/lib/systemd/system/redis-server.service` is never edited)" in section(text, "redis")
    assert "vendor unit `" not in text


def test_no_named_after_the_unit_when_the_names_are_the_same(tmp_path: Path, in_repo: Path) -> None:
    text = report(tmp_path, "shortlink", "redis")
    assert "would be named after the unit (shortlink" not in text
    assert "- User=shortlink: the unit's name would give the same dynamic user (shortlink, facts F1.9)" in text
    assert "- User=redis: without it the dynamic user would be named after the unit (redis-server, facts F1.9)" in text


def test_every_finding_names_its_rule_and_fix(tmp_path: Path, in_repo: Path) -> None:
    """REPORT.md's findings, like every scan format's, name the rule and its one-line fix."""
    from dynmigrate.engine.catalogue import fix_of

    plan = tmp_path / "plan"
    res = plan_sample("debian-web", ["redis", "memcache"], plan, "--no-security")
    assert res.exit_code == 0, res.stderr
    text = (plan / "REPORT.md").read_text(encoding="utf-8")
    data = json.loads((plan / "plan.json").read_text(encoding="utf-8"))
    for acc in data["accounts"]:
        findings = section(text, acc["account"]).split("\nFindings:\n\n", 1)[1].split("\n\n", 1)[0]
        rows = findings.splitlines()
        assert rows[0] == "| Rule | Effect | Message | Where | Fix |"
        assert len(rows) == 2 + len(acc["findings"])
        for row, f in zip(rows[2:], acc["findings"], strict=True):
            assert row.startswith(f"| {f['rule']} | ")
            assert row.endswith(f" | {fix_of(f['rule'])} |")
