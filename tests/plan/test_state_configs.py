"""Stage 1 copies a configuration file the daemon rewrites as its state into its state directory
(redis-sentinel), as the account; the rollback of stage 1 removes a copy the daemon never changed."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from plan.scriptlib import TEST_GID, TEST_UID, Sandbox, need_root


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A folder the test account can reach (pytest's own are root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="dynmigrate-state-config-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def sandbox(tmp_path: Path, reachable: Path) -> tuple[Sandbox, Path, Path]:
    etc = reachable / "etc-redis"
    state = reachable / "var-lib-redis"
    for d in (etc, state):
        d.mkdir()
        os.chown(d, TEST_UID, TEST_GID)
    src = etc / "sentinel.conf"
    src.write_text("sentinel myid 1\n", encoding="utf-8")
    os.chown(src, TEST_UID, TEST_GID)
    src.chmod(0o640)
    sb = Sandbox(tmp_path, arrays={"A_CFG_SRC": [str(src)], "A_CFG_DST": [str(state / "sentinel.conf")]})
    return sb, src, state / "sentinel.conf"


def test_stage1_copies_the_file_as_the_account_and_keeps_a_copy_that_exists(tmp_path: Path, reachable: Path) -> None:
    need_root()
    sb, _src, dst = sandbox(tmp_path, reachable)
    r = sb.run("copy_state_configs")
    assert r.returncode == 0, r.stderr
    st = dst.lstat()
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)) == (TEST_UID, TEST_GID, "0o640")
    assert dst.read_text(encoding="utf-8") == "sentinel myid 1\n"
    dst.write_text("sentinel myid 1\nsentinel current-epoch 3\n", encoding="utf-8")  # the daemon's state since
    r = sb.run("copy_state_configs")
    assert r.returncode == 0, r.stderr
    assert "exists: kept" in r.stderr
    assert "current-epoch 3" in dst.read_text(encoding="utf-8")


def test_the_copy_is_made_with_the_accounts_rights_not_roots(tmp_path: Path, reachable: Path) -> None:
    """A file the account cannot read (a link it planted to a root-only file is refused before, and
    one it cannot read fails the copy) never reaches its state directory."""
    need_root()
    sb, src, dst = sandbox(tmp_path, reachable)
    os.chown(src, 0, 0)
    src.chmod(0o600)
    r = sb.run("copy_state_configs")
    assert r.returncode != 0
    assert not dst.exists()
    src.unlink()
    src.symlink_to("/etc/shadow")
    r = sb.run("copy_state_configs")
    assert r.returncode != 0
    assert "is not a regular file" in r.stderr
    assert not dst.exists()


def test_the_rollback_removes_an_unchanged_copy_and_keeps_a_rewritten_one(tmp_path: Path, reachable: Path) -> None:
    need_root()
    sb, _src, dst = sandbox(tmp_path, reachable)
    assert sb.run("copy_state_configs").returncode == 0
    r = sb.run("drop_state_copies")
    assert r.returncode == 0, r.stderr
    assert not dst.exists()
    assert sb.run("copy_state_configs").returncode == 0
    dst.write_text("sentinel myid 1\nsentinel current-epoch 3\n", encoding="utf-8")
    r = sb.run("drop_state_copies")
    assert r.returncode == 0, r.stderr
    assert dst.exists()
    assert "holds what the daemon wrote since stage 1" in r.stderr
