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


SEPARATE_FS = r"""
import errno, json, os, sys
from pathlib import Path
from dynmigrate.rehearse import overlay
from dynmigrate.rehearse.request import Request
from dynmigrate.rehearse.worker import Teardown, mount_layers, seed_layers

tmp, source, point, moved, seeded, kept, untouched = Path(sys.argv[1]), *sys.argv[2:]
# this namespace's own filesystem at point (a bind mount keeps the source's real filesystem type):
# a host whose point is a separate disk, as a separate /var is
overlay.mount(source, point, None, overlay.MS_BIND)
overlay.mount("t", str(tmp), "tmpfs", 0, "mode=0700")
td = Teardown(tmp)
req = Request(root="/", tmpdir=str(tmp), parent_pidfd=-1)
merged, points = mount_layers(req, tmp, td, True, True)
n = points.index(point)
copy = merged / point.lstrip("/")
out = {"first": points[0], "layered": sorted(os.listdir(copy)) == sorted(os.listdir(source))}
# its own overlay, with redirect_dir and metacopy: a rename and a chown work as on the real disk
os.rename(copy / moved, copy / (moved + "-moved"))
os.chown(copy / kept, 4242, 4242)
out["renamed"] = (copy / (moved + "-moved")).is_dir()
out["metacopy_blocks"] = os.lstat(tmp / "layers" / str(n) / "upper" / kept).st_blocks
# --full-copy: the layers again without the features, the seeded directory copied into this layer
seed_layers(req, tmp, td, points, [f"{point}/{seeded}"])
upper = tmp / "layers" / str(n) / "upper" / seeded
out["seeded_opaque"] = os.getxattr(upper, "trusted.overlay.opaque") == b"y"
os.rename(copy / seeded, copy / (seeded + "-moved"))
out["seeded_renamed"] = (copy / (seeded + "-moved")).is_dir()
# a directory of that disk nobody touched: no redirect_dir now, so overlayfs refuses to rename it
others = [untouched]
try:
    os.rename(copy / others[0], copy / (others[0] + "-moved"))
    out["unseeded_rename"] = "worked"
except OSError as exc:
    out["unseeded_rename"] = errno.errorcode[exc.errno]
print(json.dumps(out))
"""


def test_a_separate_filesystem_of_the_host_gets_its_own_layer(tmp_path: Path) -> None:
    """A real filesystem mounted below / (here: a bind mount made in a private mount namespace at
    an existing empty folder of /, so the host sees nothing) is layered at the same place in the
    copy, with redirect_dir and metacopy; with --full-copy's seeding, the directory the migration
    renames is copied into that filesystem's own upper layer. Neither it nor / is written."""
    try:
        check_prerequisites()
    except Exception as exc:
        pytest.skip(str(exc))
    point = next((p for p in ("/srv", "/media", "/mnt") if os.path.isdir(p) and not os.listdir(p)), None)
    if point is None or os.lstat(point).st_dev != os.lstat("/").st_dev:
        pytest.skip("no empty folder of the root filesystem to mount a separate one at")
    source = "/usr/share/doc"
    dirs = sorted(
        d
        for d in os.listdir(source)
        if os.path.isdir(os.path.join(source, d)) and not os.path.islink(os.path.join(source, d))
    )
    moved, seeded = dirs[0], dirs[1]
    kept = next(
        os.path.join(d, f)
        for d in dirs[2:]
        for f in sorted(os.listdir(os.path.join(source, d)))
        if os.path.isfile(os.path.join(source, d, f)) and not os.path.islink(os.path.join(source, d, f))
    )
    watched = [source, *(os.path.join(source, d) for d in dirs[:4]), os.path.join(source, kept), point]
    before = [identity(p) for p in watched]
    tmp = tmp_path / "rehearsal"
    tmp.mkdir()
    proc = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            "-c",
            SEPARATE_FS,
            str(tmp),
            source,
            point,
            moved,
            seeded,
            kept,
            dirs[3],
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "first": "/",
        "layered": True,
        "renamed": True,
        "metacopy_blocks": 0,
        "seeded_opaque": True,
        "seeded_renamed": True,
        "unseeded_rename": "EXDEV",
    }
    assert [identity(p) for p in watched] == before
    assert not os.listdir(point)
    assert str(tmp) not in Path("/proc/self/mountinfo").read_text()
