"""The Ansible rollout in every plan folder: valid, and its waves and rollback behave.

The behaviour test runs the real playbook on local "hosts" whose plan scripts are stubs that log
what they were asked to do (the real scripts are proven on a booted systemd in tests/e2e); it takes
seconds of ansible-playbook, so it is in the slow tier (`pytest -m e2e`), and the quick tier runs
the syntax check only.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import plan_sample

STUB = """#!/bin/sh
echo "{host} $(basename "$0") $*" >> {log}
[ ! -e {fail} ] || {{ [ "$(basename "$0")" = rollback.sh ] || exit 1; }}
"""


def _plan(tmp_path: Path) -> Path:
    out = tmp_path / "plan"
    res = plan_sample("debian-web", ["shortlink"], out, "--no-security")
    assert res.exit_code == 0, res.stderr
    return out


def _ansible(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ansible-playbook", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_NOCOLOR": "1",
        },
    )


def _syntax_check(tmp_path: Path, plan: Path) -> None:
    proc = _ansible(
        tmp_path, "--syntax-check", "-i", "localhost,", str(plan / "ansible/site.yml"), "-e", "dynmigrate_stage=stage1"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not installed")
def test_playbook_passes_the_syntax_check(tmp_path: Path, in_repo: Path) -> None:
    """The quick tier's part of the test below: the generated playbook is one ansible-playbook accepts."""
    _syntax_check(tmp_path, _plan(tmp_path))


@pytest.mark.e2e  # the slow tier: ansible-playbook runs the waves on four local hosts (about 15 s)
@pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-playbook not installed")
def test_waves_stop_after_a_failed_host_and_roll_it_back(tmp_path: Path, in_repo: Path) -> None:
    plan = _plan(tmp_path)
    _syntax_check(tmp_path, plan)
    log = tmp_path / "calls.log"
    plans = tmp_path / "plans"
    hosts = ["web1", "web2", "web3", "web4"]
    for h in hosts:
        shutil.copytree(plan, plans / h)
        for script in ("migrate.sh", "rollback.sh"):
            (plans / h / script).write_text(STUB.format(host=h, log=log, fail=tmp_path / f"fail-{h}"))
            (plans / h / script).chmod(0o755)
    (tmp_path / "fail-web2").touch()
    inventory = tmp_path / "inventory"
    inventory.write_text(
        "\n".join(
            f"{h} ansible_connection=local ansible_python_interpreter=/usr/bin/python3 "
            f"dynmigrate_plan_dest={tmp_path / 'dest' / h}"
            for h in hosts
        )
        + "\n"
    )
    proc = _ansible(
        tmp_path,
        "-i",
        str(inventory),
        str(plan / "ansible/site.yml"),
        "-e",
        "dynmigrate_stage=stage1",
        "-e",
        f"dynmigrate_plans={plans}",
        "-e",
        '{"dynmigrate_waves": [1, 1, 2]}',
        "-e",
        '{"dynmigrate_confirm": ["DM110-x"]}',
    )
    assert proc.returncode != 0, proc.stdout
    calls = log.read_text().splitlines()
    # wave 1: web1 migrates; wave 2: web2 fails and is rolled back; the play stops before wave 3
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["web1", "web2"]
    assert calls == [
        "web1 migrate.sh --confirm=DM110-x stage1",
        "web2 migrate.sh --confirm=DM110-x stage1",
        "web2 rollback.sh stage1",
    ]
