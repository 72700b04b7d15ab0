"""The APT hook runs the installed dynmigrate-repair only while it has the sha256 the plan recorded,
and runs a private copy of it (never the path, which could change between the check and the run)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

from conftest import plan_sample
from dynmigrate.render.planfolder.script import INSTALLED_REPAIR, REPAIR_STATE, apt_hook

REPAIR = '#!/bin/bash\nprintf \'ran %s from %s\\n\' "$*" "$0" >>{marker}\n'


def hook_command(hook: str) -> str:
    """The shell command of the hook's only DPkg::Post-Invoke string (apt runs it with sh -c)."""
    strings = re.findall(r'^\s*"(.*)";$', hook, flags=re.MULTILINE)
    assert len(strings) == 1, hook
    command: str = strings[0]
    return command


def run_hook(tmp: Path, repair: str | None, recorded: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the hook with the installed repair file and the state folder inside TMP."""
    installed, state, marker = tmp / "sbin-dynmigrate-repair", tmp / "state", tmp / "marker"
    state.mkdir()
    if repair is not None:
        installed.write_text(repair.format(marker=marker), encoding="utf-8")
        installed.chmod(0o755)
    command = hook_command(apt_hook(recorded))
    command = command.replace(INSTALLED_REPAIR, str(installed)).replace(REPAIR_STATE, str(state))
    res = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False, timeout=30)
    assert list(state.iterdir()) == []  # the private copy is gone
    return res, marker.read_text(encoding="utf-8") if marker.exists() else ""


def sha(tmp: Path, text: str) -> str:
    return hashlib.sha256(text.format(marker=tmp / "marker").encode()).hexdigest()


def test_the_recorded_repair_runs_from_a_private_copy(tmp_path: Path) -> None:
    res, ran = run_hook(tmp_path, REPAIR, sha(tmp_path, REPAIR))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert re.fullmatch(rf"ran --from-apt from {tmp_path}/state/repair\.\w{{6}}\n", ran), ran


def test_a_changed_repair_file_is_not_run(tmp_path: Path) -> None:
    tampered = REPAIR + "touch /tmp/planted-by-the-account\n"
    res, ran = run_hook(tmp_path, tampered, sha(tmp_path, REPAIR))
    assert res.returncode == 0  # an apt run goes on
    assert ran == ""
    assert res.stderr == (
        f"dynmigrate: {INSTALLED_REPAIR} does not have the sha256 the plan recorded: not run "
        "(run dynmigrate verify --repair)\n"
    ).replace(INSTALLED_REPAIR, str(tmp_path / "sbin-dynmigrate-repair"))


def test_no_repair_file_no_run(tmp_path: Path) -> None:
    res, ran = run_hook(tmp_path, None, sha(tmp_path, REPAIR))
    assert (res.returncode, res.stderr, ran) == (0, "", "")


def test_a_plan_hook_records_the_sha256_of_the_repair_file_it_installs(tmp_path: Path, in_repo: Path) -> None:
    out = tmp_path / "plan"
    res = plan_sample("debian-web", ["redis"], out, "--no-security")
    assert res.exit_code == 0, res.stderr
    repair = (out / "files/dynmigrate-repair").read_bytes()
    digest = hashlib.sha256(repair).hexdigest()
    hook = (out / "files/80dynmigrate-repair").read_text(encoding="utf-8")
    assert hook == apt_hook(digest)
    assert json.loads((out / "accounts/redis.json").read_text(encoding="utf-8"))["repair_sha256"] == digest
