"""End-to-end: `dynmigrate rehearse` on a real Debian root, which it must never write.

The root under test is a fresh tmpfs copy of the cached e2e root (the shared cache is never the
lower layer of a test). Its manifest (type, owner, mode, size, mtime, ctime and xattrs of every
entry) is compared before and after each rehearsal, also after the tool was killed with SIGKILL
during boot, in the middle of a stage and in the middle of a rollback.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.harness import fresh_copy, remove_tree

ENV = {"DYNMIGRATE_SETTLE": "2", "DYNMIGRATE_START_TIMEOUT": "60"}
Entry = tuple[str, int, int, int, int, int, int, tuple[tuple[str, bytes], ...]]


def manifest(root: Path) -> dict[str, Entry]:
    """Every entry below root: type, uid, gid, mode, size, mtime, ctime (ns) and xattrs."""
    out: dict[str, Entry] = {}

    def add(path: str) -> None:
        st = os.lstat(path)
        kind = oct(st.st_mode >> 12)
        xattrs: list[tuple[str, bytes]] = []
        if not os.path.islink(path):
            for name in sorted(os.listxattr(path, follow_symlinks=False)):
                xattrs.append((name, os.getxattr(path, name, follow_symlinks=False)))
        out[os.path.relpath(path, root)] = (
            kind,
            st.st_uid,
            st.st_gid,
            st.st_mode & 0o7777,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            tuple(xattrs),
        )

    add(str(root))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            add(os.path.join(dirpath, name))
    return out


@pytest.fixture
def root(e2e_root: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the suite's cached root (the `suite` fixture picks it), to lay the overlay on."""
    copy = fresh_copy(tmp_path / "lower", e2e_root, tmpfs=True)
    try:
        yield copy
    finally:
        remove_tree(copy)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dynmigrate", "rehearse", *args]


def rehearse_json(root: Path, tmp_path: Path, *args: str) -> tuple[Any, str]:
    """`dynmigrate rehearse ROOT ARGS --format json -o FILE`, which must succeed: the report it wrote,
    and what it printed on stderr."""
    out = tmp_path / "rehearsal.json"
    proc = subprocess.run(
        cli(str(root), *args, "--format", "json", "-o", str(out)),
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc.stderr


def summary(data: dict[str, object]) -> list[tuple[object, ...]]:
    """The parts of a rehearsal that do not change between runs (UIDs only as 'dynamic or not')."""
    out: list[tuple[object, ...]] = []
    for a in data["accounts"]:  # type: ignore[attr-defined]
        f = a["facts"]
        uid = a["dynamic_uid"]
        out.append(
            (
                f["account"],
                f["verdict"],
                a["outcome"],
                uid is not None and 61184 <= uid <= 65519,
                a["rollback"],
                [(s["name"], s["ok"]) for s in f["stages"] + f["rollbacks"]],
                [(c["unit"], c["active"], c["probe_ok"]) for c in f["migrated"]],
                f["account_restored"],
                f["manifest_restored"],
            )
        )
    return out


def access_not_kept(data: dict[str, object]) -> list[str]:
    """What nobody could newly read or enter after the migration or the rollback, or why that was
    not compared, for every account the rehearsal migrated (empty: nothing widened)."""
    out: list[str] = []
    for a in data["accounts"]:  # type: ignore[attr-defined]
        f = a["facts"]
        if not f["stages"]:
            continue
        if f["access_error"] or not f["access_checked"]:
            out.append(f"{f['account']}: not compared: {f['access_error']}")
        out += [f"{f['account']}: {x}" for x in f["access_widened"]]
    return out


STEPS = [
    ("migrate.sh stage0", True),
    ("migrate.sh stage1", True),
    ("migrate.sh stage2", True),
    ("migrate.sh stage3", True),
    ("rollback.sh stage3", True),
    ("rollback.sh stage2", True),
    ("rollback.sh stage1", True),
    ("rollback.sh stage0", True),
]


def clean(account: str, unit: str) -> tuple[object, ...]:
    """summary()'s row for an account whose rehearsal passed everything: convertible, AUTO, a
    dynamic UID, a clean rollback, every stage and rollback passed, the unit active with its probe
    passed once migrated, the account and the manifest restored."""
    return (account, "convertible", "AUTO", True, "clean", STEPS, [(unit, True, True)], True, True)


def test_rehearsal_of_redis_and_memcached(root: Path, tmp_path: Path) -> None:
    before = manifest(root)
    data, stderr = rehearse_json(root, tmp_path, "--account", "redis", "--account", "memcache")
    # the verdict predicts convertible (acknowledgements only: DM110 and others): with only the plan's
    # --confirm ids every stage works, the units run under a dynamic UID, and the rollback is clean: AUTO
    assert summary(data) == [
        clean("memcache", "memcached.service"),
        clean("redis", "redis-server.service"),
    ]
    assert access_not_kept(data) == []
    env = data["environment"]
    assert (env["mode"], env["private_users"], env["overlay_options"]) == (
        "image",
        True,
        "redirect_dir=off,metacopy=off",
    )
    assert manifest(root) == before
    tmpdir = next(x.split()[-1] for x in stderr.splitlines() if x.startswith("rehearse: temporary folder"))
    assert not os.path.exists(tmpdir)


def test_setup_on_a_trusted_image(root: Path, tmp_path: Path) -> None:
    """--setup boots the copy first: the key it writes is read back after the migration and after
    the rollback; a trusted image boots without a user namespace, on the host's overlay options."""
    before = manifest(root)
    probe = "redis-cli get corpus-key | grep -qx written-before"
    data, _ = rehearse_json(
        root,
        tmp_path,
        "--trusted-image",
        "--account",
        "redis",
        "--setup",
        "redis-cli get corpus-key | grep -qx written-before && exit 1; true",
        "--setup",
        "redis-cli set corpus-key written-before",
        "--probe",
        f"redis-server.service={probe}",
    )
    assert summary(data) == [clean("redis", "redis-server.service")]
    assert access_not_kept(data) == []
    facts = data["accounts"][0]["facts"]
    assert [(s["name"], s["ok"]) for s in facts["setup"]] == [("setup 1", True), ("setup 2", True)]
    checks = [(c["unit"], c["probe"], c["probe_ok"]) for c in facts["before"] + facts["migrated"] + facts["restored"]]
    assert checks == [("redis-server.service", probe, True)] * 3
    env = data["environment"]
    assert (env["mode"], env["private_users"], env["overlay_options"]) == (
        "trusted image",
        False,
        "redirect_dir=on,metacopy=on",
    )
    assert manifest(root) == before


@pytest.mark.suites("bookworm")  # the layering is the kernel's, not the suite's
def test_full_copy_without_redirect_dir_or_metacopy(root: Path, tmp_path: Path) -> None:
    """--full-copy, the fallback for kernels without redirect_dir/metacopy (asked for here on a kernel
    that has them): a trusted image laid without them, the directories systemd renames copied into
    the upper layer first; the migration and its rollback work, and ROOT is not written."""
    before = manifest(root)
    data, stderr = rehearse_json(root, tmp_path, "--trusted-image", "--full-copy", "--account", "redis")
    assert summary(data) == [clean("redis", "redis-server.service")]
    env = data["environment"]
    assert (env["mode"], env["private_users"], env["overlay_options"]) == (
        "trusted image",
        False,
        "redirect_dir=off,metacopy=off",
    )
    notes = [n.split(":")[0] for n in env["notes"]]
    assert "full copy (--full-copy; asked for; the kernel has both)" in notes
    assert (
        "copied into the upper layer first (no redirect_dir, so overlayfs cannot rename them): "
        "/var/lib/redis, /var/log/redis"
    ) in env["notes"]
    assert manifest(root) == before
    tmpdir = next(x.split()[-1] for x in stderr.splitlines() if x.startswith("rehearse: temporary folder"))
    assert not os.path.exists(tmpdir)


@pytest.mark.suites("bookworm")  # refused before anything boots: one suite says it
def test_unknown_account_is_a_usage_error(root: Path) -> None:
    proc = subprocess.run(cli(str(root), "--account", "nosuch"), capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stderr.splitlines()[-1]) == (2, "dynmigrate: no static system account named nosuch")


# ------------------------------------------------------------------------------- SIGKILL


def _stat(pid: int) -> tuple[int, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return (int(fields[1]), int(fields[19]))  # ppid, start time


def descendants(top: int) -> set[tuple[int, int]]:
    """(pid, start time) of every process below top."""
    procs = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p))) is not None}
    found: set[tuple[int, int]] = set()
    todo = [top]
    while todo:
        parent = todo.pop()
        for pid, (ppid, start) in procs.items():
            if ppid == parent:
                found.add((pid, start))
                todo.append(pid)
    return found


def mount_namespaces(pids: set[tuple[int, int]]) -> set[str]:
    """The mount namespaces of pids other than the host's (the one this test runs in)."""
    out = set()
    for pid, _ in pids:
        with contextlib.suppress(OSError):
            out.add(os.readlink(f"/proc/{pid}/ns/mnt"))
    return out - {os.readlink("/proc/self/ns/mnt")}


def ticks_now() -> int:
    return int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK"))


def namespaces_in_use(started_before: int) -> dict[str, list[str]]:
    """Mount namespace -> the processes in it that started before a tick (pid and command line).

    Namespace inode numbers are recycled: a container started by someone else after the kill may
    get the number of a namespace that has gone.
    """
    out: dict[str, list[str]] = {}
    for p in os.listdir("/proc"):
        st = _stat(int(p)) if p.isdigit() else None
        if st is not None and st[1] < started_before:
            with contextlib.suppress(OSError):
                cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                out.setdefault(os.readlink(f"/proc/{p}/ns/mnt"), []).append(f"{p} {cmd}")
    return out


def rehearsal_cgroups() -> set[str]:
    found: set[str] = set()
    for base in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        for dirpath, dirnames, _ in os.walk(base):
            found |= {os.path.join(dirpath, d) for d in dirnames if d.startswith("dynmigrate-rehearse-")}
            dirnames[:] = [d for d in dirnames if d.startswith("dynmigrate-rehearse-")]
    return found


@pytest.mark.suites("bookworm")  # the tool's own teardown: the same on every suite
@pytest.mark.parametrize(
    ("marker", "delay"),
    [("booting the copy", 1.0), ("migrate.sh stage2", 3.0), ("rollback.sh stage1", 2.0)],
    ids=["during-boot", "mid-stage", "mid-rollback"],
)
def test_sigkill_leaves_nothing(root: Path, marker: str, delay: float) -> None:
    before = manifest(root)
    cgroups_before = rehearsal_cgroups()
    tool = subprocess.Popen(
        cli(str(root), "--account", "redis", "--format", "json"),
        env={**os.environ, **ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tool.stderr is not None
    tmpdir, seen = "", []
    deadline = time.monotonic() + 600
    for line in tool.stderr:
        seen.append(line)
        if line.startswith("rehearse: temporary folder"):
            tmpdir = line.split()[-1]
        if line.strip() == f"rehearse: {marker}" or time.monotonic() > deadline:
            break
    assert seen[-1].strip() == f"rehearse: {marker}", "".join(seen)
    time.sleep(delay)
    procs = descendants(tool.pid)
    namespaces = mount_namespaces(procs)
    assert any(_stat(pid) is not None for pid, _ in procs)  # the copy is running
    assert namespaces  # the rehearsal's own mount namespace, and the copy's
    killed_at = ticks_now()
    tool.send_signal(signal.SIGKILL)
    tool.wait()
    tool.stderr.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        alive = {(pid, start) for pid, start in procs if (_stat(pid) or (0, -1))[1] == start}
        if not alive and not os.path.exists(tmpdir):
            break
        time.sleep(0.2)
    assert alive == set(), "processes of the rehearsal survived the kill"
    assert not os.path.exists(tmpdir), "the temporary folder survived the kill"
    in_use = namespaces_in_use(killed_at)
    assert {ns: in_use[ns] for ns in namespaces if ns in in_use} == {}, "a mount namespace is still in use"
    assert tmpdir not in Path("/proc/self/mountinfo").read_text()
    assert rehearsal_cgroups() <= cgroups_before
    assert manifest(root) == before


@pytest.mark.suites("bookworm")
def test_keep_and_before_stage2(root: Path) -> None:
    """--before-stage2 runs inside the copy; --keep leaves it running until `kill WORKER`."""
    before = manifest(root)
    proc = subprocess.run(
        cli(str(root), "--account", "memcache", "--keep", "--before-stage2", "echo done > /root/manual-step"),
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # memcached's plan has acknowledgements only (the --confirm ids), no manual step: the command ran
    # (checked inside the copy below), and the outcome stays AUTO, as its convertible verdict says
    outcome = next(x for x in lines if x.startswith("memcache: "))
    assert outcome.startswith("memcache: AUTO: every stage worked with --confirm DM110-memcache"), outcome
    assert outcome.endswith("; rolled back cleanly"), outcome
    assert any(x.startswith("  other users' access: nothing widened (") for x in lines), proc.stdout
    enter = next(x for x in lines if x.startswith("kept: the copy is still running; enter it with: nsenter -t "))
    remove = next(x for x in lines if x.startswith("remove it (power off, unmount, delete the folder) with: kill "))
    init, worker = int(enter.split()[-2]), int(remove.split()[-1])
    tmpdir = next(x.split()[-1] for x in proc.stderr.splitlines() if x.startswith("rehearse: temporary folder"))
    try:
        inside = subprocess.run(
            ["nsenter", "-t", str(init), "-a", "cat", "/root/manual-step"], capture_output=True, text=True, check=False
        )
        assert inside.stdout == "done\n"
        assert os.path.isdir(tmpdir)
    finally:
        procs = descendants(worker) | {(worker, (_stat(worker) or (0, 0))[1])}
        os.kill(worker, signal.SIGTERM)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (os.path.exists(tmpdir) or _stat(worker) is not None):
        time.sleep(0.5)
    assert not os.path.exists(tmpdir)
    assert {(pid, start) for pid, start in procs if (_stat(pid) or (0, -1))[1] == start} == set()
    assert manifest(root) == before
