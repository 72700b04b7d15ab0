"""The single ownership walk: one pass over ROOT, recording what non-root IDs own.

Like `find ROOT -xdev`, the walk stays on ROOT's filesystem unless asked to cross, and it
never descends into pseudo filesystems. It walks with directory file descriptors (openat and
fstatat), so depth is not limited by PATH_MAX and a symlink is never followed. What it keeps
is small: one OwnedTree per region of same-owner entries, every non-root-owned entry under
/etc, and the special entries (setuid/setgid, sockets, FIFOs, devices, mount points).
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing as mp

# what the helper processes need, imported up front (a walk may run with privileges dropped,
# where the standard library is no longer readable)
import multiprocessing.connection
import multiprocessing.popen_fork
import multiprocessing.queues
import multiprocessing.sharedctypes
import multiprocessing.synchronize
import os
import queue
import resource
import stat as st
import sys
from dataclasses import dataclass, field
from typing import Protocol

from dynmigrate.collect.rootfs import OwnershipManifest, RootFS
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.files import FileKind, NestedRoot, OwnedTree, PathInfo
from dynmigrate.model.findings import Problem

MAX_DEPTH = 400
EXAMPLES = 5
MAX_SPECIAL = 50
PROGRESS_EVERY = 4096
SPLIT_AFTER = 5_000  # entries walked alone before helper processes are worth their start (measured)
PSEUDO_FS = frozenset(
    {
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "securityfs",
        "debugfs",
        "tracefs",
        "pstore",
        "bpf",
        "mqueue",
        "hugetlbfs",
        "configfs",
        "fusectl",
        "binfmt_misc",
        "autofs",
        "efivarfs",
        "rpc_pipefs",
        "nsfs",
        "selinuxfs",
        "ramfs",
    }
)
# Where container engines and machine managers keep other systems' trees (their UIDs belong to
# other user namespaces or images, not to this host's accounts).
CONTAINER_STORES = frozenset(
    {
        "/var/lib/docker",
        "/var/lib/containers",
        "/var/lib/containerd",
        "/var/lib/machines",
        "/var/lib/lxc",
        "/var/lib/lxd",
        "/var/lib/incus",
    }
)
# An operating system root: a directory with one of these, each step owned by root.
OS_RELEASE = (("etc", "etc/os-release"), ("usr", "usr/lib", "usr/lib/os-release"))
_MARKER_DIRS = frozenset(chain[0] for chain in OS_RELEASE)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class Progress(Protocol):
    def walk_progress(self, entries: int, current: str) -> None: ...


@dataclass(frozen=True, slots=True)
class OwnershipData:
    trees: tuple[OwnedTree, ...]
    etc_entries: tuple[PathInfo, ...]
    mountpoints: tuple[RelPath, ...]
    entries: int
    crossed_filesystems: bool
    nested_roots: tuple[NestedRoot, ...] = ()


@dataclass(slots=True)
class _Region:
    top: PathInfo
    files: int = 0
    dirs: int = 0
    others: int = 0
    bytes: int = 0
    examples: list[RelPath] = field(default_factory=list)
    special: list[PathInfo] = field(default_factory=list)
    truncated: int = 0

    def add(self, info: PathInfo) -> None:
        if info.kind is FileKind.FILE:
            self.files += 1
            self.bytes += info.size
        elif info.kind is FileKind.DIR:
            self.dirs += 1
        else:
            self.others += 1
        if len(self.examples) < EXAMPLES and info.path != self.top.path:
            self.examples.append(info.path)
        if info.special:
            if len(self.special) < MAX_SPECIAL:
                self.special.append(info)
            else:
                self.truncated += 1

    def freeze(self) -> OwnedTree:
        return OwnedTree(
            top=self.top,
            files=self.files,
            dirs=self.dirs,
            others=self.others,
            bytes=self.bytes,
            examples=tuple(self.examples),
            special=tuple(self.special),
            truncated_special=self.truncated,
        )


def _pseudo_mounts(root: str) -> set[str]:
    """Host paths of pseudo-filesystem mounts (only read when crossing filesystems)."""
    out: set[str] = set()
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields = left.split()
                fstype = right.split()[0] if right.split() else ""
                if len(fields) > 4 and fstype in PSEUDO_FS:
                    mnt = fields[4].replace("\\040", " ")
                    if mnt == root or mnt.startswith(root.rstrip("/") + "/"):
                        out.add(mnt)
    except OSError:
        pass
    return out


def _raise_fd_limit() -> None:
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@dataclass(slots=True)
class _Frame:
    fd: int
    prefix: str  # the directory's path with a trailing "/" ("/" for ROOT)
    todo: list[tuple[str, _Item]]  # popped from the end
    key: tuple[int, int]
    region: _Region | None
    depth: int
    trusted: bool  # root owns this directory and every one above it, and none is group/other-writable
    started: dict[tuple[int, int], _Region] | None = None


# What is left to do in a directory: an entry to record (its stat result, or the manifest's
# PathInfo for an entry only the manifest has), or, as an int (its inode), a directory that
# 0:0 owns inside a directory 0:0 owns: descend, nothing to record.
_Item = os.stat_result | PathInfo | int
_S_IFMT = 0o170000
_S_IFDIR = 0o040000


class _Walker:
    """The walk's state. The per-entry loop in `_list` is the hot path: an entry that root owns,
    in a directory root owns, costs one fstatat (through DirEntry.stat) and a comparison."""

    def __init__(
        self,
        fs: RootFS,
        cross_filesystems: bool,
        skip: tuple[str, ...],
        progress: Progress | None,
        jobs: int,
        root_fd: int,
    ) -> None:
        self.fs = fs
        self.jobs = jobs
        self.root_fd = root_fd
        self.pool: _Pool | None = None
        self.split_after = SPLIT_AFTER if jobs > 1 else sys.maxsize
        self.manifest = fs.manifest
        self.cross = cross_filesystems
        self.pseudo = _pseudo_mounts(fs.root) if cross_filesystems else set()
        self.skip = {s.rstrip("/") or "/" for s in skip}
        self.progress = progress
        self.next_report = PROGRESS_EVERY
        self.problems: list[Problem] = []
        self.regions: list[_Region] = []
        self.etc_entries: list[PathInfo] = []
        self.mountpoints: list[RelPath] = []
        self.nested: list[NestedRoot] = []
        self.count = 0

    # -- entries ----------------------------------------------------------------------------

    def info_for(self, path: RelPath, s: os.stat_result) -> PathInfo:
        kind = FileKind.from_mode(s.st_mode)
        uid, gid, mode = s.st_uid, s.st_gid, st.S_IMODE(s.st_mode)
        if self.manifest is not None:
            kind, uid, gid, mode = self.manifest.overlay(path, kind, s)
        return PathInfo(
            path=path,
            kind=kind,
            uid=uid,
            gid=gid,
            mode=mode,
            size=s.st_size if kind is FileKind.FILE else 0,
            mountpoint=kind is FileKind.DIR and s.st_dev != self.fs.root_dev,
        )

    def _list(
        self, fd: int, path: RelPath, key: tuple[int, int], region: _Region | None, detect: bool = False
    ) -> list[tuple[str, _Item]] | None:
        """Stat every entry of the directory open as fd; return what is left to do, in reverse order.

        Without a manifest, in a directory that 0:0 owns, entries that 0:0 owns are only counted
        here and their directories (same filesystem, not group/other-writable) come back as
        (name, inode): descend, no region. Every other entry comes back with its stat result,
        sorted by name. With detect, a directory that turns out to be an operating system root
        is recorded as a nested root and nothing of its listing is kept (None).
        """
        mark = len(self.problems)
        dirs: list[tuple[str, _Item]]
        if self.manifest is None:
            dirs, slow, n = self._stat_entries(fd, path, region is None and key == (0, 0))
        else:
            dirs = []
            slow = self._manifest_entries(fd, path, self.manifest)
            n = len(slow)
        if detect and fd >= 0 and any(name in _MARKER_DIRS for name, _ in (*dirs, *slow)):
            reason = self._os_root(fd, path)
            if reason is not None:
                del self.problems[mark:]
                self.nested.append(NestedRoot(path, reason))
                return None
        self.count += n
        if self.progress is not None and self.count >= self.next_report:
            self.progress.walk_progress(self.count, path)
            self.next_report = self.count + PROGRESS_EVERY
        slow.sort(key=_name, reverse=True)
        if dirs:
            dirs.sort(key=_name, reverse=True)
            return dirs + slow
        return slow

    def _stat_entries(
        self, fd: int, path: RelPath, fast: bool
    ) -> tuple[list[tuple[str, _Item]], list[tuple[str, _Item]], int]:
        """The entries of the directory open as fd, by lstat (no manifest): the directories to
        descend without recording them as (name, inode), the entries to record with their stat
        result, and how many were stat'ed. With fast (a directory 0:0 owns, outside any region),
        an entry 0:0 owns is only counted, and so is its directory when it is on ROOT's filesystem
        and not group/other-writable. The hot loop of the walk: no call per entry but the stat."""
        problems = self.problems
        slow: list[tuple[str, _Item]] = []
        dirs: list[tuple[str, _Item]] = []
        n = 0
        root_dev = self.fs.root_dev
        try:
            with os.scandir(fd) as it:
                for e in it:
                    try:
                        s = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        problems.append(Problem(Location(RelPath(_join(path, e.name))), "vanished during the walk"))
                        continue
                    except OSError as exc:
                        problems.append(Problem(Location(RelPath(_join(path, e.name))), f"cannot stat: {exc.strerror}"))
                        continue
                    n += 1
                    if fast and s.st_uid == 0 and s.st_gid == 0:
                        if s.st_mode & _S_IFMT == _S_IFDIR:
                            if s.st_dev == root_dev and not s.st_mode & 0o022:
                                dirs.append((e.name, s.st_ino))
                            else:
                                slow.append((e.name, s))
                        continue
                    slow.append((e.name, s))
        except OSError as exc:
            problems.append(Problem(Location(path), f"cannot list directory: {exc.strerror}"))
        return dirs, slow, n

    def _manifest_entries(self, fd: int, path: RelPath, manifest: OwnershipManifest) -> list[tuple[str, _Item]]:
        """The entries of a directory with an ownership manifest: those on disk (fd, or -1 for a
        directory only the manifest has) with their stat result, those only the manifest has with
        its PathInfo."""
        problems = self.problems
        names: set[str] = set()
        if fd >= 0:
            try:
                with os.scandir(fd) as it:
                    names = {e.name for e in it}
            except OSError as exc:
                problems.append(Problem(Location(path), f"cannot list directory: {exc.strerror}"))
        names |= manifest.virtual_children.get(path, set())
        entries: list[tuple[str, _Item]] = []
        for name in names:
            child = RelPath(_join(path, name))
            item: os.stat_result | PathInfo | None
            try:
                if fd < 0:
                    raise FileNotFoundError(name)  # inside a directory that only the manifest has
                item = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                item = self.fs.virtual_entry(child)
                if item is None:
                    problems.append(Problem(Location(child), "vanished during the walk"))
                    continue
            except OSError as exc:
                problems.append(Problem(Location(child), f"cannot stat: {exc.strerror}"))
                continue
            entries.append((name, item))
        return entries

    def _os_root(self, fd: int, path: RelPath) -> str | None:
        """Why the directory open as fd is another system's root, or None. Every step to the
        os-release file must be root's and not writable by others: an account that could plant
        one must not be able to hide its files from the walk."""
        for steps in OS_RELEASE:
            for i, rel in enumerate(steps):
                try:
                    s = os.stat(rel, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    break
                info = self.info_for(RelPath(f"{path}/{rel}"), s)
                if info.uid != 0:
                    break
                if i < len(steps) - 1:
                    if info.kind is not FileKind.DIR or info.mode & 0o022:
                        break
                elif info.kind in (FileKind.FILE, FileKind.SYMLINK):
                    return f"an operating system root ({steps[-1]})"
        return None

    # -- the walk ---------------------------------------------------------------------------

    def open_dir(self, name: str, dir_fd: int, path: RelPath) -> int | None:
        try:
            return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                msg = "permission denied: not descended"
            elif exc.errno == errno.EMFILE:
                msg = "too many open directories: not descended"
            elif exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                msg = "changed during the walk: not descended"
            else:
                msg = f"cannot open: {exc.strerror}"
            self.problems.append(Problem(Location(path), msg))
            return None

    def entry(self, frame: _Frame, name: str, item: os.stat_result | PathInfo) -> _Frame | None:
        """Record one entry that is not plain root-owned; return the frame to descend into, if any."""
        path = RelPath(frame.prefix + name)
        if isinstance(item, PathInfo):
            info = item
            real = False
        else:
            info = self.info_for(path, item)
            real = True
        key = (info.uid, info.gid)
        region: _Region | None
        if key == frame.key and frame.region is not None:
            region = frame.region
            region.add(info)
        elif key == (0, 0):
            region = None
        else:
            started = frame.started
            if started is None:
                started = frame.started = {}
            region = started.get(key)
            if region is None or info.kind is FileKind.DIR:
                region = _Region(info)
                self.regions.append(region)
                if info.kind is not FileKind.DIR:
                    started[key] = region
            region.add(info)
        # configuration: what an account owns under /etc, and what root owns directly inside a
        # directory an account owns (so the plan knows every entry of such a directory)
        if (key != (0, 0) or frame.key != (0, 0)) and (path == "/etc" or path.startswith("/etc/")):
            self.etc_entries.append(info)
        if info.kind is not FileKind.DIR:
            return None
        if not real:
            if self.manifest is not None and frame.depth + 1 <= MAX_DEPTH:
                todo = self._list(-1, path, key, region) or []
                return _Frame(-1, path + "/", todo, key, region, frame.depth + 1, False)
            return None
        if path in self.skip:
            return None
        if info.mountpoint:
            self.mountpoints.append(path)
            if not self.cross or self.fs.host_path(path) in self.pseudo:
                return None
        trusted = frame.trusted and info.uid == 0 and not info.mode & 0o022
        return self.descend(frame, name, path, key, region, trusted)

    def store(self, path: RelPath, trusted: bool) -> bool:
        """Record a container store that nobody but root could have made; True if it is one."""
        if trusted and path in CONTAINER_STORES:
            self.nested.append(NestedRoot(path, "container storage"))
            return True
        return False

    def descend(
        self, frame: _Frame, name: str, path: RelPath, key: tuple[int, int], region: _Region | None, trusted: bool
    ) -> _Frame | None:
        if self.store(path, trusted):
            return None
        if frame.depth + 1 > MAX_DEPTH:
            self.problems.append(Problem(Location(path), f"deeper than {MAX_DEPTH} levels: not descended"))
            return None
        fd = self.open_dir(name, frame.fd, path)
        if fd is None:
            return None
        todo = self._list(fd, path, key, region, trusted)
        if todo is None:
            os.close(fd)
            return None
        return _Frame(fd, path + "/", todo, key, region, frame.depth + 1, trusted)

    def run(self, stack: list[_Frame]) -> None:
        """Walk until the stack is empty, handing directories to idle helpers when there are any."""
        try:
            while stack:
                if self.pool is not None:
                    if self.pool.wants_work():
                        self.share(stack)
                elif self.count >= self.split_after:
                    self.start_pool()
                frame = stack[-1]
                if not frame.todo:
                    if frame.fd >= 0:
                        os.close(frame.fd)
                    stack.pop()
                    continue
                name, item = frame.todo.pop()
                if isinstance(item, int):
                    path = RelPath(frame.prefix + name)
                    skipped = path in self.skip
                    child = None if skipped else self.descend(frame, name, path, (0, 0), None, frame.trusted)
                else:
                    child = self.entry(frame, name, item)
                if child is not None:
                    stack.append(child)
        finally:
            for frame in stack:
                if frame.fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(frame.fd)

    # -- splitting the walk across processes ------------------------------------------------

    def start_pool(self) -> None:
        self.split_after = sys.maxsize
        if self.jobs > 1:
            try:
                self.pool = _Pool(self, self.jobs - 1)
            except (OSError, ImportError):  # no processes to be had: walk alone
                self.pool = None

    def share(self, stack: list[_Frame]) -> None:
        """Give an idle helper the plain root-owned directory nearest to the top of the tree."""
        assert self.pool is not None
        for frame in stack:
            todo = frame.todo
            if todo:
                name, ino = todo[0]
                if isinstance(ino, int):
                    del todo[0]
                    path = RelPath(frame.prefix + name)
                    if path not in self.skip:
                        self.pool.put((path, ino, frame.depth + 1, frame.trusted))
                    return

    def run_task(self, root_fd: int, task: _Task) -> None:
        """Walk one directory handed over by another process (opened again, component by component)."""
        path, ino, depth, trusted = task
        if self.store(path, trusted):
            return
        if depth > MAX_DEPTH:  # as descend() does: a shared directory keeps its depth
            self.problems.append(Problem(Location(path), f"deeper than {MAX_DEPTH} levels: not descended"))
            return
        fd = os.dup(root_fd)
        try:
            for comp in path.split("/")[1:]:
                parent = fd
                fd = os.open(comp, DIR_FLAGS, dir_fd=parent)
                os.close(parent)
            s = os.fstat(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.close(fd)
            self.problems.append(Problem(Location(path), "changed during the walk: not descended"))
            return
        if s.st_ino != ino or s.st_dev != self.fs.root_dev:
            os.close(fd)
            self.problems.append(Problem(Location(path), "changed during the walk: not descended"))
            return
        todo = self._list(fd, path, (0, 0), None, trusted)
        if todo is None:
            os.close(fd)
            return
        self.run([_Frame(fd, path + "/", todo, (0, 0), None, depth, trusted)])

    def result(self) -> _Result:
        return _Result(
            trees=[r.freeze() for r in self.regions],
            etc_entries=self.etc_entries,
            mountpoints=self.mountpoints,
            nested=self.nested,
            problems=self.problems,
            count=self.count,
        )


_Task = tuple[RelPath, int, int, bool]  # a directory's path, inode, depth, and whether it is trusted


@dataclass(slots=True)
class _Result:
    trees: list[OwnedTree]
    etc_entries: list[PathInfo]
    mountpoints: list[RelPath]
    nested: list[NestedRoot]
    problems: list[Problem]
    count: int


class _HelperFailed(Exception):
    pass


class _Pool:
    """Helper processes (forked, so they share the walker's state up to the fork) that take
    directories from a queue; any process hands over work when another is idle. `pending` counts
    tasks handed out and not finished (the main walk is one): when it drops to 0 nothing can
    create work any more, and every process is told to stop. Helpers send their results once."""

    def __init__(self, walker: _Walker, helpers: int) -> None:
        ctx = mp.get_context("fork")
        self.walker = walker
        self.tasks: mp.queues.Queue[_Task | None] = ctx.Queue()
        self.results: mp.queues.Queue[_Result | str] = ctx.Queue()
        self.lock = ctx.Lock()  # for the three counters (read without it: a hint is enough there)
        self.pending = ctx.RawValue("q", 1)  # the main walk
        self.idle = ctx.RawValue("q", 0)
        self.queued = ctx.RawValue("q", 0)
        self.counts = ctx.Array("q", helpers, lock=False)
        self.stopped = False
        self.procs = [ctx.Process(target=self._helper, args=(i,), daemon=True) for i in range(helpers)]
        for proc in self.procs:
            proc.start()

    def wants_work(self) -> bool:
        return bool(self.idle.value > self.queued.value)

    def put(self, task: _Task) -> None:
        with self.lock:
            self.pending.value += 1
            self.queued.value += 1
        self.tasks.put(task)

    def finished(self) -> None:
        with self.lock:
            self.pending.value -= 1
            done = self.pending.value == 0
        if done:
            for _ in range(len(self.procs) + 1):
                self.tasks.put(None)

    def get(self, main: bool) -> _Task | None:
        with self.lock:
            self.idle.value += 1
        try:
            while True:
                try:
                    task = self.tasks.get(timeout=0.25)
                    break
                except queue.Empty:
                    if main:
                        self.report()
                        if not all(p.is_alive() for p in self.procs):
                            raise _HelperFailed from None
        finally:
            with self.lock:
                self.idle.value -= 1
        if task is not None:
            with self.lock:
                self.queued.value -= 1
        return task

    def report(self) -> None:
        walker = self.walker
        if walker.progress is not None:
            walker.progress.walk_progress(walker.count + sum(self.counts), "")

    def _helper(self, index: int) -> None:
        walker = self.walker
        walker.pool = self
        walker.progress = None
        walker.regions, walker.etc_entries, walker.mountpoints, walker.problems = [], [], [], []
        walker.nested = []
        walker.count = 0
        root_fd = walker.root_fd
        try:
            while (task := self.get(main=False)) is not None:
                walker.run_task(root_fd, task)
                self.counts[index] = walker.count
                self.finished()
            self.results.put(walker.result())
        except BaseException as exc:  # the main process falls back to walking alone
            self.results.put(f"{type(exc).__name__}: {exc}")
            raise

    def drain(self) -> list[_Result]:
        """In the main process, after its own walk: take tasks until everything is done."""
        self.finished()
        while (task := self.get(main=True)) is not None:
            self.walker.run_task(self.walker.root_fd, task)
            self.finished()
        out: list[_Result] = []
        for _ in self.procs:
            while True:
                try:
                    res = self.results.get(timeout=0.25)
                    break
                except queue.Empty:
                    if not all(p.is_alive() for p in self.procs):
                        raise _HelperFailed from None
            if isinstance(res, str):
                raise _HelperFailed(res)
            out.append(res)
        for proc in self.procs:
            proc.join()
        return out

    def close(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
            proc.join()
        self.tasks.close()
        self.results.close()


def _name(item: tuple[str, object]) -> str:
    return item[0]


def _join(path: str, name: str) -> str:
    return ("" if path == "/" else path) + "/" + name


def default_jobs() -> int:
    """Processes for the walk: the CPUs this process may use, at most 4 (find uses one)."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def walk_ownership(
    fs: RootFS,
    *,
    cross_filesystems: bool = False,
    skip: tuple[str, ...] = (),
    progress: Progress | None = None,
    jobs: int | None = None,
) -> tuple[OwnershipData, list[Problem]]:
    """Walk ROOT once. With jobs > 1 (default: see default_jobs) and no ownership manifest, a
    walk that passes SPLIT_AFTER entries forks helpers and shares directories with them."""
    _raise_fd_limit()
    try:
        root_fd = os.open(fs.root, DIR_FLAGS)
    except OSError as exc:
        problems = [Problem(Location(RelPath("/")), f"cannot open ROOT: {exc.strerror}")]
        return OwnershipData((), (), (), 0, cross_filesystems), problems
    try:
        njobs = default_jobs() if jobs is None else max(1, jobs)
        if fs.manifest is not None:
            njobs = 1
        try:
            results = _walk(fs, root_fd, cross_filesystems, skip, progress, njobs)
        except _HelperFailed:
            results = _walk(fs, root_fd, cross_filesystems, skip, progress, 1)
    finally:
        os.close(root_fd)
    trees = sorted((t for r in results for t in r.trees), key=lambda t: t.top.path)
    return (
        OwnershipData(
            trees=tuple(trees),
            etc_entries=tuple(sorted(e for r in results for e in r.etc_entries)),
            mountpoints=tuple(sorted(m for r in results for m in r.mountpoints)),
            entries=sum(r.count for r in results),
            crossed_filesystems=cross_filesystems,
            nested_roots=tuple(sorted(n for r in results for n in r.nested)),
        ),
        sorted(p for r in results for p in r.problems),
    )


def _walk(
    fs: RootFS,
    root_fd: int,
    cross_filesystems: bool,
    skip: tuple[str, ...],
    progress: Progress | None,
    jobs: int,
) -> list[_Result]:
    walker = _Walker(fs, cross_filesystems, skip, progress, jobs, os.dup(root_fd))
    try:
        root_info = walker.info_for(RelPath("/"), os.fstat(walker.root_fd))
        key = (root_info.uid, root_info.gid)
        region: _Region | None = None
        if key != (0, 0):
            region = _Region(root_info)
            region.add(root_info)
            walker.regions.append(region)
        fd = os.dup(walker.root_fd)
        trusted = root_info.uid == 0 and not root_info.mode & 0o022
        todo = walker._list(fd, RelPath("/"), key, region) or []
        walker.run([_Frame(fd, "/", todo, key, region, 0, trusted)])
        if walker.pool is None:
            return [walker.result()]
        others = walker.pool.drain()
        return [walker.result(), *others]
    finally:
        if walker.pool is not None:
            walker.pool.close()
        os.close(walker.root_fd)
