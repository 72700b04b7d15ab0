"""A migration never widens read access: what the unprivileged `nobody` could not read before, it
cannot read after.

Each sample root is materialised with the owners and modes of its ownership.tsv (tests run as
root), the plan's changes are applied to it, and `nobody` itself tries every path before and after.
Stage 2's re-owning runs through the plan's own shell library (`fix_files` from the generated
`lib/dynmigrate.sh`, with the generated data section); what systemd and dpkg do afterwards is applied
the way they do it: managed directories move into 0700 `private/` parents, are chowned to the dynamic
UID and get their *DirectoryMode= (facts F2.3, F2.5, F2.8, F2.10), statoverride pins are applied as a
package upgrade applies them, and stage 3 re-owns leftovers to root.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, plan_sample
from plan.scriptlib import ROOT_PATH
from test_samples import PLANS as SAMPLE_PLANS

NOBODY = 65534
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable  # one nobody may execute
DYNAMIC_UID = 61184  # what systemd would hand out first
BASES = {"StateDirectory": "/var/lib", "CacheDirectory": "/var/cache", "LogsDirectory": "/var/log"}

# sample -> (accounts planned, --force): every sample plan whose golden plans an account, with the
# accounts and --force of that golden (test_samples.py), so that no planned account goes unchecked
PLANS: dict[str, tuple[list[str], bool]] = {
    sample if label == "plan" else f"{sample}-{label}": (accounts, force)
    for (sample, label), (accounts, force, code) in SAMPLE_PLANS.items()
    if code == 0
}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="materialising owners needs root")


def materialise(sample: str, dest: Path) -> Path:
    """Copy samples/SAMPLE/root to DEST with the owners and modes of its ownership.tsv."""
    src = REPO / "samples" / sample
    root = dest / "root"
    shutil.copytree(src / "root", root, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            s = p.lstat()
            if stat.S_ISLNK(s.st_mode):
                continue
            os.chown(p, 0, 0)
            p.chmod(0o755 if stat.S_ISDIR(s.st_mode) or s.st_mode & 0o111 else 0o644)
    root.chmod(0o755)
    for line in (src / "ownership.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        path, uid, gid, mode = fields[:4]
        kind = fields[4] if len(fields) > 4 else ""
        p = root / path.lstrip("/")
        if not p.exists() and not p.is_symlink():
            if kind == "d":
                p.mkdir(parents=True)
            elif kind == "p":
                os.mkfifo(p)
            else:
                continue  # sockets and devices: nothing to read
        os.lchown(p, int(uid), int(gid))
        if not p.is_symlink():
            p.chmod(int(mode, 8))
    return root


def all_paths(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if not p.is_symlink():
                out.append("/" + str(p.relative_to(root)))
    return sorted(out)


NOBODY_PROBE = """
import json, os, sys
root, paths = sys.argv[1], json.load(sys.stdin)
out = {}
for p in paths:
    full = root + p
    flags = ""
    if os.access(full, os.R_OK):
        flags += "r"
    if os.path.isdir(full) and os.access(full, os.X_OK):
        flags += "x"
    out[p] = flags
json.dump(out, sys.stdout)
"""


def nobody_access(root: Path, paths: list[str]) -> dict[str, str]:
    """What `nobody` (no supplementary groups) can read ("r") and enter ("x"), asked as nobody."""
    res = subprocess.run(
        [SYSTEM_PYTHON, "-c", NOBODY_PROBE, str(root)],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        check=True,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        cwd="/",
    )
    data: dict[str, str] = json.loads(res.stdout)
    return data


def run_fix_files(plan_dir: Path, root: Path, account: str) -> None:
    """Stage 2's re-owning of configuration, by the generated library over the generated data."""
    script = f"""
set -euo pipefail
SCRIPT_NAME=test STATE=/nonexistent STAGE=stage2
source {plan_dir}/lib/dynmigrate.sh
eval "$(sed -n '/^# ---- data/,/^}}$/p' {plan_dir}/migrate.sh)"
load_account "$1"
A_MOVE=()
for i in "${{!A_FIX_PATH[@]}}"; do A_FIX_PATH[$i]="$2${{A_FIX_PATH[$i]}}"; done
fix_files
"""
    # root's PATH on a Debian host: a version manager's python3 shim on the test runner's PATH costs
    # a tenth of a second or more for every path the library's python3 helper re-owns
    env = {**os.environ, "PATH": ROOT_PATH}
    res = subprocess.run(["bash", "-c", script, "test", account, str(root)], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr


def systemd_directories(root: Path, acc: dict[str, Any]) -> None:
    """What systemd does at the first start under DynamicUser (facts F2.3, F2.5, F2.8, F2.10)."""
    for unit in acc["units"]:
        for d in unit["directories"]:
            if "%" in d["name"]:
                continue
            mode = int(d["mode"], 8) if d["mode"] else 0o755
            path = root / d["path"].lstrip("/")
            if d["key"] in BASES:
                private = root / BASES[d["key"]].lstrip("/") / "private"
                private.mkdir(mode=0o700, exist_ok=True)
                os.chown(private, 0, 0)
                private.chmod(0o700)
                target = private / d["name"]
                if path.is_dir() and not path.is_symlink() and not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    path.rename(target)
                    path.symlink_to(Path("private") / d["name"])
                target.mkdir(parents=True, exist_ok=True)
            elif d["key"] == "RuntimeDirectory":
                target = path
                target.mkdir(parents=True, exist_ok=True)
            else:  # ConfigurationDirectory: created if missing, never chowned
                if not path.exists():
                    path.mkdir(parents=True)
                    path.chmod(0o755)
                continue
            if target.stat().st_uid != DYNAMIC_UID:
                for dirpath, dirnames, filenames in os.walk(target):
                    for name in [*dirnames, *filenames]:
                        os.lchown(Path(dirpath, name), DYNAMIC_UID, DYNAMIC_UID)
                os.chown(target, DYNAMIC_UID, DYNAMIC_UID)
            target.chmod(mode)


def dpkg_pins(root: Path, acc: dict[str, Any]) -> None:
    """A package upgrade applies each statoverride pin: owner root:root and the pinned mode."""
    for pin in acc["pins"]:
        p = root / pin["path"].lstrip("/")
        if p.exists() and not p.is_symlink():
            os.chown(p, 0, 0)
            p.chmod(int(pin["mode"], 8))


def stage3_leftovers(root: Path, acc: dict[str, Any]) -> None:
    """Stage 3: files of the old UID (and GID, when the group goes) are re-owned to root."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath, name)
            s = p.lstat()
            uid = 0 if s.st_uid == acc["uid"] else -1
            gid = 0 if acc["delete_group"] and s.st_gid == acc["group_gid"] else -1
            if uid == 0 or gid == 0:
                os.lchown(p, uid, gid)


@pytest.fixture
def scratch() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp())
    d.chmod(0o755)  # nobody must reach the materialised root
    try:
        yield d
    finally:
        shutil.rmtree(d)


@pytest.mark.parametrize("sample", sorted(PLANS))
def test_plan_never_widens_read_access(sample: str, in_repo: Path, scratch: Path) -> None:
    accounts, force = PLANS[sample]
    out = scratch / "plan"
    res = plan_sample(sample, accounts, out, "--no-security", *(["--force"] if force else []))
    assert res.exit_code == 0, res.output + res.stderr
    assert sorted(a["account"] for a in json.loads((out / "plan.json").read_text())["accounts"]) == sorted(accounts)
    root = materialise(sample, scratch)
    paths = all_paths(root)
    before = nobody_access(root, paths)
    data = json.loads((out / "plan.json").read_text())
    for acc in data["accounts"]:
        systemd_directories(root, acc)
    for acc in data["accounts"]:
        run_fix_files(out, root, acc["account"])
        dpkg_pins(root, acc)
    for acc in data["accounts"]:
        stage3_leftovers(root, acc)
    after = nobody_access(root, paths)
    widened = {p: f"{before[p] or '-'} -> {after[p]}" for p in paths if set(after[p]) - set(before[p])}
    assert widened == {}


def _acl_blob() -> bytes:
    """system.posix_acl_access granting nobody read: user::rw- user:nobody:r-- group::r-- mask::r-- other::---."""
    import struct

    entries = [(1, 6, 0xFFFFFFFF), (2, 4, NOBODY), (4, 4, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, uid) for tag, perm, uid in entries)


def test_a_path_with_an_acl_is_a_manual_step(tmp_path: Path) -> None:
    """Mode bits do not tell who can read a path with an ACL: the plan leaves it alone and asks."""
    from dynmigrate.app import analyse
    from dynmigrate.collect.rootfs import OwnershipManifest
    from dynmigrate.collect.snapshot import collect
    from dynmigrate.plan.planner import PlanOptions, Selection, make_plan
    from treebuilder import build

    root = build(
        tmp_path / "root",
        {
            "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nfoo:x:120:120:Foo:/nonexistent:/usr/sbin/nologin\n",
            "etc/group": "root:x:0:\nfoo:x:120:\n",
            "etc/systemd/system/foo.service": "[Service]\nUser=foo\nExecStart=/usr/bin/foo -c /etc/foo/foo.conf\n",
            "etc/foo/foo.conf": "listen 127.0.0.1\n",
            "etc/foo/plain.conf": "x\n",
        },
    )
    try:
        os.setxattr(root / "etc/foo/foo.conf", "system.posix_acl_access", _acl_blob())
    except OSError as exc:  # a filesystem without ACLs
        pytest.skip(f"no POSIX ACLs here: {exc}")
    manifest = OwnershipManifest.parse("/etc/foo/foo.conf\t120\t120\t0640\n/etc/foo/plain.conf\t120\t120\t0644\n")
    result = analyse(collect(str(root), manifest=manifest))
    plan = make_plan(result.queries, result.report, Selection(accounts=("foo",)), PlanOptions())
    acc = plan.accounts[0]
    assert [f.path for f in acc.file_fixes] == ["/etc/foo/plain.conf"]
    assert [m.text for m in acc.manual_steps if "ACL" in m.text] == [
        "/etc/foo/foo.conf has an ACL (system.posix_acl_access): its mode bits do not tell who may read it, "
        "so the plan leaves its owner and ACL as they are; re-own it by hand without widening the ACL, and "
        "hand it to the service with LoadCredential= if the dynamic user must read it"
    ]
