"""Stage 2's re-owning of configuration (`fix_files`) never makes readable to other users what they
could not read: it compares the planned mode with the mode on disk when the stage runs, and judges
"other" (mode bits 004; for a directory 005), not the group (root's group after the re-owning)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plan.scriptlib import TEST_GID, TEST_UID, Sandbox, need_root, owner_mode


def fix(tmp: Path, path: Path, planned: str) -> tuple[int, str]:
    sb = Sandbox(tmp)
    sb.arrays["A_FIX_PATH"] = [str(path)]
    sb.arrays["A_FIX_MODE"] = [planned]
    res = sb.run("fix_files")
    assert sb.dangerous_calls() == []
    return res.returncode, res.stderr


def make(path: Path, mode: int, text: str = "port 6379\n") -> Path:
    if text:
        path.write_text(text, encoding="utf-8")
    else:
        path.mkdir()
    os.chown(path, TEST_UID, TEST_GID)
    os.chmod(path, mode)
    return path


def test_a_file_others_can_no_longer_read_is_not_made_world_readable(tmp_path: Path) -> None:
    need_root()
    conf = make(tmp_path / "app.conf", 0o640)  # planned when it was 0644; chmod'ed since
    rc, err = fix(tmp_path, conf, "0644")
    assert rc == 1
    assert f"ERROR: {conf} is mode 640 now and others could not read it (the plan would make it 0644): re-plan" in err
    assert owner_mode(conf) == (TEST_UID, TEST_GID, "0o100640")


def test_a_directory_others_can_no_longer_enter_is_not_opened(tmp_path: Path) -> None:
    need_root()
    keys = make(tmp_path / "keys", 0o750, text="")
    rc, err = fix(tmp_path, keys, "0755")
    assert rc == 1
    assert f"ERROR: {keys} is mode 750 now and others could not read it (the plan would make it 0755): re-plan" in err
    assert owner_mode(keys) == (TEST_UID, TEST_GID, "0o40750")


@pytest.mark.parametrize("mode", [0o640, 0o600])
def test_a_group_readable_secret_kept_from_others_is_re_owned(tmp_path: Path, mode: int) -> None:
    """A mode the plan keeps (0640: the group becomes root's) exposes nothing to other users, secret or
    not: the old check refused every group-readable mode of a file with a secret line."""
    need_root()
    conf = make(tmp_path / "app.env", mode, "DB_PASS=hunter2\n")
    rc, err = fix(tmp_path, conf, f"{mode:04o}")
    assert rc == 0, err
    assert owner_mode(conf) == (0, 0, oct(0o100000 | mode))


def test_a_secret_that_appeared_since_planning_is_not_left_world_readable(tmp_path: Path) -> None:
    need_root()
    conf = make(tmp_path / "app.conf", 0o644, "requirepass hunter2\n")
    rc, err = fix(tmp_path, conf, "0644")
    assert rc == 1
    assert f"ERROR: {conf} holds a secret now (it did not when the plan was made)" in err
    assert owner_mode(conf) == (TEST_UID, TEST_GID, "0o100644")


def test_a_world_readable_config_becomes_root_0644(tmp_path: Path) -> None:
    need_root()
    conf = make(tmp_path / "app.conf", 0o664)
    rc, err = fix(tmp_path, conf, "0644")
    assert rc == 0, err
    assert owner_mode(conf) == (0, 0, "0o100644")
