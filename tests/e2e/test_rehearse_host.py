"""The running host's overlay (ROOT=/): redirect_dir and metacopy work, and / is never written.

Booting the host itself is not tried here (the test machine's PID 1 need not be systemd); this
proves the layer set-up the host rehearsal relies on, in a private mount namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.harness import check_prerequisites

SCRIPT = r"""
import json, os, sys, threading
from pathlib import Path
from dynmigrate.rehearse import overlay
from dynmigrate.rehearse.request import Request
from dynmigrate.rehearse.worker import Teardown, mount_layers

tmp = Path(sys.argv[1])
overlay.mount("t", str(tmp), "tmpfs", 0, "mode=0700")
overlay.check_overlay(tmp / "check", host=True)
td = Teardown(tmp)
merged, points = mount_layers(Request(root="/", tmpdir=str(tmp), parent_pidfd=-1), tmp, td, True, True)
# systemd renames a directory of the lower layer into private/: needs redirect_dir
os.rename(merged / "usr/share/doc", merged / "usr/share/doc-moved")
# a chown copies up metadata only: needs metacopy
target = merged / "usr/bin/ls"
os.chown(target, 4242, 4242)
upper = tmp / "layers/0/upper/usr/bin/ls"
out = {
    "points": points[:1],
    "moved": sorted(os.listdir(merged / "usr/share/doc-moved")) == sorted(os.listdir("/usr/share/doc")),
    "owner_in_copy": os.stat(target).st_uid,
    "upper_blocks": os.lstat(upper).st_blocks,
    "copy_size": os.stat(target).st_size,
}
print(json.dumps(out))
"""


def identity(path: str) -> tuple[int, ...]:
    st = os.lstat(path)
    return (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def test_host_overlay_renames_and_chowns_without_touching_root(tmp_path: Path) -> None:
    try:
        check_prerequisites()
    except Exception as exc:
        pytest.skip(str(exc))
    before = (identity("/usr/share/doc"), identity("/usr/bin/ls"), os.path.exists("/usr/share/doc-moved"))
    tmp = tmp_path / "rehearsal"
    tmp.mkdir()
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", SCRIPT, str(tmp)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    size = os.stat("/usr/bin/ls").st_size
    assert out == {"points": ["/"], "moved": True, "owner_in_copy": 4242, "upper_blocks": 0, "copy_size": size}
    after = (identity("/usr/share/doc"), identity("/usr/bin/ls"), os.path.exists("/usr/share/doc-moved"))
    assert after == before
    assert str(tmp) not in Path("/proc/self/mountinfo").read_text()
