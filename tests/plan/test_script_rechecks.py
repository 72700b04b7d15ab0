"""Checks before every stage, not only stage 0 (issue 10, item 5), and no upgrade guard while the
account exists (item 13).

The stages run with the machine's systemd, accounts and packages replaced: `systemctl` is a stub
that prints the unit from a file of the test, and the steps that would change accounts or install
files outside the test folder are bash functions that record their call.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dynmigrate.render.planfolder.script import unit_hash
from plan.scriptlib import Sandbox, need_root, q

UNIT = "dmtest.service"
VENDOR = (
    f"# /lib/systemd/system/{UNIT}\n[Unit]\nDescription=test\n\n[Service]\nUser=dmtestsvc\nExecStart=/usr/bin/dmtestd\n"
)
OURS = f"\n# /etc/systemd/system/{UNIT}.d/50-dynmigrate.conf\n[Service]\nDynamicUser=yes\nStateDirectory=dmtest\n"
CHANGED = VENDOR + f"\n# /etc/systemd/system/{UNIT}.d/override.conf\n[Service]\nReadWritePaths=/etc\n"

# the steps that would touch this machine, replaced by records of their call
STEPS = """
passwd_field() {{
	if [ "$1" = /etc/passwd ] && [ "$2" = dmtestsvc ] && [ ! -e {gone} ]; then
		echo "dmtestsvc:x:$A_UID:$A_GID::/nonexistent:/usr/sbin/nologin" | cut -d: -f"$3"
	else
		awk -F: -v n="$2" -v f="$3" '$1 == n {{ print $f; exit }}' "$1"
	fi
}}
account_uid() {{ echo "$A_UID"; }}
install_dropins() {{ echo install_dropins >>{log}; }}
remove_statoverrides() {{ echo remove_statoverrides >>{log}; }}
install_guard() {{ echo install_guard >>{log}; }}
delete_account() {{ echo delete_account >>{log}; {delete} }}
leftover_roots() {{ :; }}
"""


def sandbox(tmp: Path, *, delete: str = ": >{gone};") -> tuple[Sandbox, Path, str]:
    sb = Sandbox(tmp)
    unit_file = tmp / "unit.txt"
    unit_file.write_text(VENDOR, encoding="utf-8")
    sb.stub(
        "systemctl",
        f"""case "$1" in
cat) cat {q(unit_file)} ;;
--version) echo 'systemd 252 (252.33-1~deb12u1)' ;;
is-enabled) echo enabled ;;
is-active) echo inactive; exit 3 ;;
show) echo "" ;;
daemon-reload | restart | start | stop) ;;
*) echo "systemctl $*" >>{q(sb.calls)}; exit 97 ;;
esac
""",
    )
    sb.arrays["A_DROPIN_UNITS"] = [UNIT]
    sb.arrays["A_DROPIN_PATHS"] = [f"/etc/systemd/system/{UNIT}.d/50-dynmigrate.conf"]
    sb.arrays["A_UNIT_HASH"] = [unit_hash(VENDOR)]
    log = tmp / "steps"
    log.touch()
    gone = tmp / "account-deleted"
    steps = STEPS.format(gone=q(gone), log=q(log), delete=delete.format(gone=q(gone)))
    return sb, unit_file, steps


def steps_run(tmp: Path) -> list[str]:
    return (tmp / "steps").read_text(encoding="utf-8").split()


def run_stages(sb: Sandbox, steps: str, *stages: str) -> str:
    out = []
    for stage in stages:
        res = sb.run(steps + f"STAGE={stage}\nrun_{stage}")
        out.append(res.stderr)
        assert res.returncode == 0, res.stderr
    return "".join(out)


def test_stages_pass_while_the_unit_is_unchanged_with_the_dropin_installed(tmp_path: Path) -> None:
    """The control: the plan's own drop-in does not count as a change of the unit."""
    need_root()
    sb, unit_file, steps = sandbox(tmp_path)
    run_stages(sb, steps, "stage0")
    unit_file.write_text(VENDOR + OURS, encoding="utf-8")
    run_stages(sb, steps, "stage1", "stage2", "stage3")
    assert steps_run(tmp_path) == ["install_dropins", "remove_statoverrides", "delete_account", "install_guard"]
    assert sb.dangerous_calls() == []


@pytest.mark.parametrize("stage", ["stage1", "stage2", "stage3"])
def test_every_stage_refuses_a_unit_changed_since_planning(tmp_path: Path, stage: str) -> None:
    need_root()
    sb, unit_file, steps = sandbox(tmp_path)
    order = ["stage0", "stage1", "stage2", "stage3"]
    run_stages(sb, steps, *order[: order.index(stage)])
    done = steps_run(tmp_path)
    unit_file.write_text(CHANGED + OURS, encoding="utf-8")
    res = sb.run(steps + f"STAGE={stage}\nrun_{stage}")
    assert res.returncode != 0
    assert f"unit {UNIT} differs from the one the plan was made for" in res.stderr
    assert steps_run(tmp_path) == done  # nothing more happened
    assert not (sb.state / f"accounts/dmtestsvc/{stage}.done").exists()


@pytest.mark.parametrize("lost", ["passwd", "shadow", "group", "manifest", "member-of"])
def test_stage2_refuses_when_a_backup_file_is_gone_but_its_marker_is_not(tmp_path: Path, lost: str) -> None:
    need_root()
    sb, _, steps = sandbox(tmp_path)
    run_stages(sb, steps, "stage0", "stage1")
    backup = sb.state / "accounts/dmtestsvc"
    assert (backup / "backup.done").exists()
    (backup / lost).unlink()
    res = sb.run(steps + "STAGE=stage2\nrun_stage2")
    assert res.returncode != 0
    assert f"the backup in {backup} was changed or deleted since it was made" in res.stderr
    assert "delete_account" not in steps_run(tmp_path)


@pytest.mark.parametrize("stage", ["stage1", "stage3"])
def test_other_stages_refuse_a_changed_backup(tmp_path: Path, stage: str) -> None:
    need_root()
    sb, _, steps = sandbox(tmp_path)
    order = ["stage0", "stage1", "stage2", "stage3"]
    run_stages(sb, steps, *order[: order.index(stage)])
    backup = sb.state / "accounts/dmtestsvc"
    with (backup / "passwd").open("a", encoding="utf-8") as f:
        f.write("dmtestsvc:x:0:0::/:/bin/bash\n")
    res = sb.run(steps + f"STAGE={stage}\nrun_{stage}")
    assert res.returncode != 0
    assert f"the backup in {backup} was changed or deleted since it was made" in res.stderr
    assert not (backup / f"{stage}.done").exists()


def test_no_upgrade_guard_when_stage2_fails_at_userdel(tmp_path: Path) -> None:
    """The guard (APT hook and dynmigrate-repair) is installed only once the account is gone: a
    later apt run must not delete an account whose migration never happened."""
    need_root()
    sb, _, steps = sandbox(tmp_path, delete="echo 'userdel: user dmtestsvc is currently used' >&2; return 1;")
    run_stages(sb, steps, "stage0", "stage1")
    res = sb.run(steps + "STAGE=stage2\nrun_stage2")
    assert res.returncode != 0
    assert steps_run(tmp_path) == ["install_dropins", "remove_statoverrides", "delete_account"]
    assert "install_guard" not in steps_run(tmp_path)


def test_every_crash_point_of_the_scripts_is_exercised_end_to_end() -> None:
    """Every rollback succeeds from any partial state (item 13): each crash point the scripts
    define is one an end-to-end test stops at and recovers from."""
    from dynmigrate.render.planfolder import script

    here = Path(script.__file__).parent
    defined = {
        m.group(1)
        for name in ("lib.sh", "stages.sh")
        for m in re.finditer(r"^\s*crashpoint ([a-z0-9-]+)\s*$", (here / name).read_text(), re.M)
    }
    assert len(defined) >= 9
    e2e = "".join(p.read_text() for p in (Path(__file__).parents[1] / "e2e").glob("test_*.py"))
    assert sorted(p for p in defined if f'"{p}"' not in e2e) == []
