"""The fast ownership walk against a reference walk that shares no code with it.

The reference is the plainest thing that can be right: recursion over full paths with os.lstat
and os.listdir, every directory in name order, and its own reading of ownership.tsv. The fast
walk (directory fds, a root-owned fast path, helper processes) must give exactly the same
OwnershipData and problems: owners, counts, flags, examples, special files, /etc entries,
unreadable directories, mount boundaries, depth limits, symlinks never followed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import scratch_dir
from dynmigrate.collect import ownership
from dynmigrate.collect.ownership import OwnershipData, walk_ownership
from dynmigrate.collect.rootfs import OwnershipManifest, RootFS
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.files import FileKind, NestedRoot, OwnedTree, PathInfo
from dynmigrate.model.findings import Problem

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted(p for p in (REPO / "samples").iterdir() if (p / "root").is_dir())
AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="owners other than the tester's need root (CI is root)")

# --- the reference walk ------------------------------------------------------------------------

KIND_LETTERS = {
    "d": "dir",
    "s": "socket",
    "p": "fifo",
    "c": "char-device",
    "b": "block-device",
    "f": "file",
    "l": "symlink",
}


def ref_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "dir"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISCHR, "char-device"),
        (stat.S_ISBLK, "block-device"),
    ):
        if test(mode):
            return name
    return "file"


def ref_manifest(path: Path) -> dict[str, tuple[int, int, int, str | None]]:
    out: dict[str, tuple[int, int, int, str | None]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = line.split("\t")
        kind = KIND_LETTERS[cols[4]] if len(cols) > 4 and cols[4] else None
        name = "/" + "/".join(c for c in cols[0].split("/") if c not in ("", "."))
        out[name] = (int(cols[1]), int(cols[2]), int(cols[3], 8), kind)
    return out


@dataclass
class RefRegion:
    top: PathInfo
    files: int = 0
    dirs: int = 0
    others: int = 0
    size: int = 0
    examples: list[str] = field(default_factory=list)
    special: list[PathInfo] = field(default_factory=list)
    truncated: int = 0


class Reference:
    def __init__(
        self,
        root: str,
        manifest: dict[str, tuple[int, int, int, str | None]] | None = None,
        skip: tuple[str, ...] = (),
        max_depth: int = 400,
    ) -> None:
        self.root = os.path.realpath(root)
        self.dev = os.stat(self.root).st_dev
        self.manifest = manifest
        self.skip = set(skip)
        self.max_depth = max_depth
        self.count = 0
        self.regions: list[RefRegion] = []
        self.etc: list[PathInfo] = []
        self.mounts: list[str] = []
        self.problems: list[Problem] = []
        self.nested: list[NestedRoot] = []

    def host(self, path: str) -> str:
        return self.root + ("" if path == "/" else path)

    def info(self, path: str, s: os.stat_result | None) -> PathInfo:
        m = self.manifest
        if s is None:
            assert m is not None
            uid, gid, mode, kind = m[path]
            assert kind is not None
            return PathInfo(RelPath(path), FileKind(kind), uid, gid, mode)
        kind = ref_kind(s.st_mode)
        uid, gid, mode = s.st_uid, s.st_gid, s.st_mode & 0o7777
        if m is not None:
            if path in m:
                uid, gid, mode, mkind = m[path]
                kind = mkind or kind
            else:
                uid = gid = 0
                mode = 0o777 if kind == "symlink" else 0o755 if kind == "dir" or mode & 0o111 else 0o644
        return PathInfo(
            RelPath(path),
            FileKind(kind),
            uid,
            gid,
            mode,
            size=s.st_size if kind == "file" else 0,
            mountpoint=kind == "dir" and s.st_dev != self.dev,
        )

    def add(self, region: RefRegion, info: PathInfo) -> None:
        if info.kind.value == "file":
            region.files += 1
            region.size += info.size
        elif info.kind.value == "dir":
            region.dirs += 1
        else:
            region.others += 1
        if len(region.examples) < 5 and info.path != region.top.path:
            region.examples.append(info.path)
        special = (
            (info.kind.value == "file" and info.mode & 0o4000)
            or (info.kind.value in ("file", "dir") and info.mode & 0o2000)
            or info.mountpoint
            or info.kind.value in ("socket", "fifo", "char-device", "block-device")
        )
        if special:
            if len(region.special) < 50:
                region.special.append(info)
            else:
                region.truncated += 1

    def children(self, path: str, real: bool) -> list[str]:
        names: set[str] = set()
        if real:
            try:
                names = set(os.listdir(self.host(path)))
            except OSError as exc:
                self.problems.append(Problem(Location(RelPath(path)), f"cannot list directory: {exc.strerror}"))
        if self.manifest is not None:
            prefix = "" if path == "/" else path
            for p, (_u, _g, _m, kind) in self.manifest.items():
                if kind is not None and p.rsplit("/", 1)[0] == prefix and p != "/":
                    names.add(p.rsplit("/", 1)[1])
        return sorted(names)

    def os_root(self, path: str) -> str | None:
        for steps in (("etc", "etc/os-release"), ("usr", "usr/lib", "usr/lib/os-release")):
            for i, rel in enumerate(steps):
                full = path + "/" + rel
                try:
                    info = self.info(full, os.lstat(self.host(full)))
                except OSError:
                    break
                if info.uid != 0:
                    break
                if i < len(steps) - 1:
                    if info.kind.value != "dir" or info.mode & 0o022:
                        break
                elif info.kind.value in ("file", "symlink"):
                    return f"an operating system root ({rel})"
        return None

    def walk_dir(
        self, path: str, real: bool, key: tuple[int, int], region: RefRegion | None, depth: int, trusted: bool
    ) -> None:
        started: dict[tuple[int, int], RefRegion] = {}
        for name in self.children(path, real):
            child = ("" if path == "/" else path) + "/" + name
            s: os.stat_result | None = None
            if real:
                try:
                    s = os.lstat(self.host(child))
                except FileNotFoundError:
                    s = None
                except OSError as exc:
                    self.problems.append(Problem(Location(RelPath(child)), f"cannot stat: {exc.strerror}"))
                    continue
            if s is None:
                m = self.manifest
                if m is None or child not in m or m[child][3] is None:
                    self.problems.append(Problem(Location(RelPath(child)), "vanished during the walk"))
                    continue
            info = self.info(child, s)
            self.count += 1
            ckey = (info.uid, info.gid)
            cregion: RefRegion | None
            if ckey == key and region is not None:
                cregion = region
                self.add(cregion, info)
            elif ckey == (0, 0):
                cregion = None
            else:
                if info.kind.value == "dir" or ckey not in started:
                    cregion = RefRegion(info)
                    self.regions.append(cregion)
                    if info.kind.value != "dir":
                        started[ckey] = cregion
                else:
                    cregion = started[ckey]
                self.add(cregion, info)
            if (ckey != (0, 0) or key != (0, 0)) and (child == "/etc" or child.startswith("/etc/")):
                self.etc.append(info)  # root's entries too, directly inside a directory an account owns
            if info.kind.value != "dir":
                continue
            if s is None:
                if depth + 1 <= self.max_depth:
                    self.walk_dir(child, False, ckey, cregion, depth + 1, False)
                continue
            if child in self.skip:
                continue
            if info.mountpoint:
                self.mounts.append(child)
                continue
            ctrusted = trusted and info.uid == 0 and not info.mode & 0o022
            if ctrusted and child in STORES:
                self.nested.append(NestedRoot(RelPath(child), "container storage"))
                continue
            if depth + 1 > self.max_depth:
                self.problems.append(Problem(Location(RelPath(child)), "deeper than 400 levels: not descended"))
                continue
            if not os.access(self.host(child), os.R_OK):
                self.problems.append(Problem(Location(RelPath(child)), "permission denied: not descended"))
                continue
            reason = self.os_root(child) if ctrusted else None
            if reason is not None:
                self.nested.append(NestedRoot(RelPath(child), reason))
                continue
            self.walk_dir(child, True, ckey, cregion, depth + 1, ctrusted)

    def run(self) -> tuple[OwnershipData, list[Problem]]:
        top = self.info("/", os.lstat(self.root))
        key = (top.uid, top.gid)
        region = None
        if key != (0, 0):
            region = RefRegion(top)
            self.regions.append(region)
            self.add(region, top)
        self.walk_dir("/", True, key, region, 0, top.uid == 0 and not top.mode & 0o022)
        trees = tuple(
            sorted(
                (
                    OwnedTree(
                        r.top,
                        r.files,
                        r.dirs,
                        r.others,
                        r.size,
                        tuple(RelPath(e) for e in r.examples),
                        tuple(r.special),
                        r.truncated,
                    )
                    for r in self.regions
                ),
                key=lambda t: t.top.path,
            )
        )
        data = OwnershipData(
            trees,
            tuple(sorted(self.etc)),
            tuple(RelPath(m) for m in sorted(self.mounts)),
            self.count,
            False,
            tuple(sorted(self.nested)),
        )
        return data, sorted(self.problems)


STORES = {
    "/var/lib/docker",
    "/var/lib/containers",
    "/var/lib/containerd",
    "/var/lib/machines",
    "/var/lib/lxc",
    "/var/lib/lxd",
    "/var/lib/incus",
}

# --- trees -----------------------------------------------------------------------------------


def owned(path: Path, uid: int, gid: int, mode: int | None = None) -> None:
    os.lchown(path, uid, gid)
    if mode is not None:
        os.chmod(path, mode)  # after the chown, which clears setuid and setgid


def make_tree(root: Path) -> None:
    """Every case the walk distinguishes, plus enough plain entries for helpers to share."""
    (root / "etc/redis").mkdir(parents=True)
    (root / "etc/redis/redis.conf").write_text("x")
    owned(root / "etc/redis", 103, 105, 0o2770)
    owned(root / "etc/redis/redis.conf", 103, 105, 0o640)
    (root / "etc/shadow").write_text("x")
    owned(root / "etc/shadow", 0, 42, 0o640)
    data = root / "var/lib/app"
    (data / "sub/deeper").mkdir(parents=True)
    owned(data, 120, 120, 0o750)
    owned(data / "sub", 120, 120)
    owned(data / "sub/deeper", 120, 0)
    for i in range(60):  # more special entries than a region lists
        f = data / "sub" / f"s{i:02d}"
        f.write_text("yy")
        owned(f, 120, 120, 0o4755 if i % 2 else 0o2755)
    (data / "sub/rootfile").write_text("r")  # root-owned inside a region
    (data / "sub/deeper/back").mkdir()
    owned(data / "sub/deeper/back", 120, 120)  # same key as the region two levels up: a new region
    os.mkfifo(data / "fifo")
    owned(data / "fifo", 120, 120, 0o600)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(data / "sock"))
    sock.close()
    owned(data / "sock", 120, 120)
    os.mknod(data / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(root / "var/lib/blk", 0o600 | stat.S_IFBLK, os.makedev(7, 0))
    # siblings in a root-owned directory that share an owner share one region (files only)
    for name in ("b", "a", "c"):
        (root / "var/lib" / f"pid{name}").write_text(name)
        owned(root / "var/lib" / f"pid{name}", 121, 121)
    (root / "var/lib/dirx").mkdir()
    owned(root / "var/lib/dirx", 121, 121)
    (root / "var/lib/setuid-root").write_text("s")
    os.chmod(root / "var/lib/setuid-root", 0o4755)
    # symlinks are recorded, never followed
    os.symlink("/etc", root / "var/lib/app/sub/to-etc")
    os.lchown(root / "var/lib/app/sub/to-etc", 120, 120)
    os.symlink("../..", root / "var/loop")
    os.symlink("missing", root / "var/dangling")
    os.symlink(str(root / "var"), root / "abs-out")
    # odd names (bytes that are not UTF-8, a newline)
    odd = root.as_posix().encode() + b"/var/odd-\xff\nname"
    with open(odd, "wb") as fh:
        fh.write(b"o")
    os.lchown(odd, 122, 122)
    # a home owned by a user, with a nested system-owned part
    home = root / "home/u"
    (home / "proj/cache").mkdir(parents=True)
    owned(root / "home/u", 1000, 1000, 0o700)
    owned(home / "proj", 1000, 1000)
    owned(home / "proj/cache", 120, 120)
    # unreadable and unsearchable directories (they matter only to a walker that is not root)
    (root / "srv/closed/inner").mkdir(parents=True)
    (root / "srv/closed/inner/f").write_text("c")
    os.chmod(root / "srv/closed", 0o700)
    (root / "srv/listonly/f").mkdir(parents=True)
    os.chmod(root / "srv/listonly", 0o744)
    # a chain deeper than the walk descends
    deep = root / "deep"
    deep.mkdir()
    fd = os.open(deep, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(402):
        os.mkdir("d", dir_fd=fd)
        nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.close(fd)
    # skipped by policy
    (root / "skipme/x").mkdir(parents=True)
    owned(root / "skipme/x", 120, 120)
    # other systems' trees: skipped where only root could have made them, walked otherwise
    for os_root, marker in (
        ("var/lib/machines/deb", "etc/os-release"),  # a container store
        ("srv/chroot", "etc/os-release"),
        ("srv/usrroot", "usr/lib/os-release"),
        ("var/lib/app/planted", "etc/os-release"),  # inside a region an account owns
        ("srv/pub/jail", "etc/os-release"),  # below a world-writable directory
        ("srv/badetc", "etc/os-release"),  # its etc belongs to an account
        ("srv/linketc", "usr/lib/os-release"),  # its usr is a symlink
    ):
        (root / os_root / marker).parent.mkdir(parents=True, exist_ok=True)
        (root / os_root / marker).write_text("ID=debian\n")
        (root / os_root / "var/lib/svc").mkdir(parents=True)
        owned(root / os_root / "var/lib/svc", 120, 120)
    os.chmod(root / "srv/pub", 0o1777)
    owned(root / "srv/badetc/etc", 120, 120)
    shutil.move(root / "srv/linketc/usr", root / "srv/linketc/real-usr")
    os.symlink("real-usr", root / "srv/linketc/usr")
    # plain bulk for the helper processes
    for t in range(12):
        for d in range(8):
            bulk = root / "usr/share" / f"t{t}" / f"d{d}"
            bulk.mkdir(parents=True)
            for n in range(30):
                (bulk / f"f{n}").write_bytes(b"")
            if (t, d) == (5, 3):
                owned(bulk, 110, 110)
                owned(bulk / "f7", 0, 0)


@pytest.fixture(scope="module")
def tree() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("owners other than the tester's need root (CI is root)")
    base = scratch_dir("dynmigrate-walk-")
    root = base / "root"
    try:
        os.chmod(base, 0o755)  # the unprivileged walk below must reach the tree
        root.mkdir()
        make_tree(root)
        yield root
    finally:  # also when building failed: scratch_dir's trees are not pytest's to clear
        for closed in ("srv/closed", "srv/listonly"):
            with contextlib.suppress(OSError):
                os.chmod(root / closed, 0o755)
        shutil.rmtree(base)


@pytest.fixture(scope="module")
def reference(tree: Path) -> tuple[OwnershipData, list[Problem]]:
    """The reference walk of the tree with /skipme skipped, made once for every number of helpers."""
    return Reference(str(tree), skip=("/skipme",)).run()


def fast(root: str, **kwargs: object) -> tuple[OwnershipData, list[Problem]]:
    return walk_ownership(RootFS(root), **kwargs)  # type: ignore[arg-type]


@AS_ROOT
@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_fast_walk_equals_reference(
    tree: Path, reference: tuple[OwnershipData, list[Problem]], jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ownership, "SPLIT_AFTER", 0)  # helpers from the first entry on
    expected = reference
    got = fast(str(tree), skip=("/skipme",), jobs=jobs)
    assert got == expected
    data, problems = got
    # the tree has what the comparison is meant to cover
    assert Problem(Location(RelPath("/deep" + "/d" * 400)), "deeper than 400 levels: not descended") in problems
    assert {t.top.path for t in data.trees} >= {"/var/lib/app", "/var/lib/pida", "/home/u", "/etc/redis"}
    assert data.nested_roots == (
        NestedRoot(RelPath("/srv/chroot"), "an operating system root (etc/os-release)"),
        NestedRoot(RelPath("/srv/usrroot"), "an operating system root (usr/lib/os-release)"),
        NestedRoot(RelPath("/var/lib/machines"), "container storage"),
    )
    walked = {t.top.path for t in data.trees}
    assert {
        "/var/lib/app/planted/var/lib/svc",
        "/srv/pub/jail/var/lib/svc",
        "/srv/badetc/etc",
        "/srv/linketc/var/lib/svc",
    } <= walked
    assert not any(p.startswith(("/srv/chroot/", "/srv/usrroot/", "/var/lib/machines/")) for p in walked)
    app = next(t for t in data.trees if t.top.path == "/var/lib/app")
    assert app.truncated_special > 0
    owners = {str(e.path): (e.uid, e.gid) for e in data.etc_entries}
    for e in data.etc_entries:  # root's entries only directly inside a directory an account owns
        assert e.uid != 0 or e.gid != 0 or owners.get(e.path.rsplit("/", 1)[0], (0, 0)) != (0, 0)


@AS_ROOT
def test_unprivileged_walk_equals_reference(tree: Path) -> None:
    """As nobody: directories it cannot open or list are reported the same way, and skipped."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(rd)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            ownership.SPLIT_AFTER = 0
            out = pickle.dumps((Reference(str(tree)).run(), fast(str(tree), jobs=2)))
            with os.fdopen(wr, "wb") as fh:
                fh.write(out)
        finally:
            os._exit(0)
    os.close(wr)
    with os.fdopen(rd, "rb") as fh:
        raw = fh.read()
    os.waitpid(pid, 0)
    expected, got = pickle.loads(raw)
    assert got == expected
    messages = {(p.location.file, p.message) for p in got[1]}
    assert ("/srv/closed", "permission denied: not descended") in messages
    assert ("/srv/listonly/f", "cannot stat: Permission denied") in messages


@AS_ROOT
def test_mount_boundary_is_not_crossed(tree: Path) -> None:
    mnt = tree / "mnt/inner"
    mnt.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mnt)], check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (mnt / "hidden").write_text("h")
        os.lchown(mnt / "hidden", 120, 120)
        os.lchown(mnt, 120, 120)
        expected = Reference(str(tree)).run()
        for jobs in (1, 2):
            assert fast(str(tree), jobs=jobs) == expected
        data = expected[0]
        assert "/mnt/inner" in data.mountpoints
        assert not any(t.top.path.startswith("/mnt/inner/") for t in data.trees)
        inner = next(t for t in data.trees if t.top.path == "/mnt/inner")
        assert inner.top.mountpoint
        assert inner.entries == 1
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_samples_equal_reference(sample: Path) -> None:
    manifest_file = sample / "ownership.tsv"
    manifest = OwnershipManifest.load(manifest_file)
    expected = Reference(str(sample / "root"), manifest=ref_manifest(manifest_file)).run()
    got = walk_ownership(RootFS(sample / "root", manifest))
    assert got == expected
    assert got[0].trees  # the samples have owned regions


def test_helper_failure_falls_back_to_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper that dies costs time, never results."""
    for d in range(20):
        (tmp_path / f"d{d}").mkdir()
        for f in range(20):
            (tmp_path / f"d{d}" / f"f{f}").write_text("")
    expected = walk_ownership(RootFS(tmp_path), jobs=1)

    monkeypatch.setattr(ownership, "SPLIT_AFTER", 0)
    real_run_task = ownership._Walker.run_task

    def run_task(self: ownership._Walker, root_fd: int, task: ownership._Task) -> None:
        if self.progress is None and os.getpid() != main_pid:
            os._exit(3)
        real_run_task(self, root_fd, task)

    main_pid = os.getpid()
    monkeypatch.setattr(ownership._Walker, "run_task", run_task)
    assert walk_ownership(RootFS(tmp_path), jobs=2) == expected
