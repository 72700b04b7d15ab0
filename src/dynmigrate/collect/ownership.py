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
import os
import resource
import stat as st
from dataclasses import dataclass, field
from typing import Protocol

from dynmigrate.collect.rootfs import RootFS, normal_mode
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.files import FileKind, OwnedTree, PathInfo
from dynmigrate.model.findings import Problem

MAX_DEPTH = 400
EXAMPLES = 5
MAX_SPECIAL = 50
PROGRESS_EVERY = 4096
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


@dataclass(slots=True)
class _Frame:
    fd: int
    names: list[str]
    path: RelPath
    key: tuple[int, int]
    region: _Region | None
    depth: int
    started: dict[tuple[int, int], _Region] = field(default_factory=dict)


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


def walk_ownership(
    fs: RootFS,
    *,
    cross_filesystems: bool = False,
    skip: tuple[str, ...] = (),
    progress: Progress | None = None,
) -> tuple[OwnershipData, list[Problem]]:
    problems: list[Problem] = []
    regions: list[_Region] = []
    etc_entries: list[PathInfo] = []
    mountpoints: list[RelPath] = []
    manifest = fs.manifest
    pseudo = _pseudo_mounts(fs.root) if cross_filesystems else set()
    skip_set = {s.rstrip("/") or "/" for s in skip}
    _raise_fd_limit()
    count = 0

    def info_for(path: RelPath, s: os.stat_result) -> PathInfo:
        kind = FileKind.from_mode(s.st_mode)
        uid, gid, mode = s.st_uid, s.st_gid, st.S_IMODE(s.st_mode)
        if manifest is not None:
            entry = manifest.entries.get(path)
            if entry is None:
                uid, gid, mode = 0, 0, normal_mode(kind, mode)
            else:
                uid, gid, mode = entry.uid, entry.gid, entry.mode
                if entry.kind is not None:
                    kind = entry.kind
        return PathInfo(
            path=path,
            kind=kind,
            uid=uid,
            gid=gid,
            mode=mode,
            size=s.st_size if kind is FileKind.FILE else 0,
            mountpoint=kind is FileKind.DIR and s.st_dev != fs.root_dev,
        )

    try:
        root_fd = os.open(fs.root, DIR_FLAGS)
    except OSError as exc:
        problems.append(Problem(Location(RelPath("/")), f"cannot open ROOT: {exc.strerror}"))
        return OwnershipData((), (), (), 0, cross_filesystems), problems

    def listing(fd: int, path: RelPath) -> list[str]:
        names: list[str] = []
        try:
            with os.scandir(fd) as it:
                names = [e.name for e in it]
        except OSError as exc:
            problems.append(Problem(Location(path), f"cannot list directory: {exc.strerror}"))
        if manifest is not None:
            virtual = manifest.virtual_children.get(path)
            if virtual:
                names = list(set(names) | virtual)
        names.sort(reverse=True)  # popped from the end: visited in name order
        return names

    root_stat = os.fstat(root_fd)
    root_info = info_for(RelPath("/"), root_stat)
    root_region: _Region | None = None
    if (root_info.uid, root_info.gid) != (0, 0):
        root_region = _Region(root_info)
        root_region.add(root_info)
        regions.append(root_region)
    stack: list[_Frame] = [
        _Frame(root_fd, listing(root_fd, RelPath("/")), RelPath("/"), (root_info.uid, root_info.gid), root_region, 0)
    ]
    try:
        while stack:
            frame = stack[-1]
            if not frame.names:
                if frame.fd >= 0:
                    os.close(frame.fd)
                stack.pop()
                continue
            name = frame.names.pop()
            path = RelPath(("" if frame.path == "/" else frame.path) + "/" + name)
            s: os.stat_result | None
            try:
                if frame.fd < 0:
                    raise FileNotFoundError(name)  # inside a directory that only the manifest has
                s = os.stat(name, dir_fd=frame.fd, follow_symlinks=False)
            except FileNotFoundError:
                virt = fs.virtual_entry(path)
                if virt is None:
                    problems.append(Problem(Location(path), "vanished during the walk"))
                    continue
                info = virt
                s = None
            except OSError as exc:
                problems.append(Problem(Location(path), f"cannot stat: {exc.strerror}"))
                continue
            else:
                info = info_for(path, s)
            count += 1
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress.walk_progress(count, path)
            key = (info.uid, info.gid)
            region: _Region | None
            if key == frame.key and frame.region is not None:
                region = frame.region
                region.add(info)
            elif key == (0, 0):
                region = None
            else:
                region = frame.started.get(key)
                if region is None or info.kind is FileKind.DIR:
                    region = _Region(info)
                    regions.append(region)
                    if info.kind is not FileKind.DIR:
                        frame.started[key] = region
                region.add(info)
            if key != (0, 0) and (path == "/etc" or path.startswith("/etc/")):
                etc_entries.append(info)
            if info.kind is not FileKind.DIR:
                continue
            if s is None:
                if manifest is not None and frame.depth + 1 <= MAX_DEPTH:
                    children = sorted(manifest.virtual_children.get(path, ()), reverse=True)
                    stack.append(_Frame(-1, children, path, key, region, frame.depth + 1))
                continue
            if path in skip_set:
                continue
            if info.mountpoint:
                mountpoints.append(path)
                host = fs.host_path(path)
                if not cross_filesystems or host in pseudo:
                    continue
            if frame.depth + 1 > MAX_DEPTH:
                problems.append(Problem(Location(path), f"deeper than {MAX_DEPTH} levels: not descended"))
                continue
            try:
                fd = os.open(name, DIR_FLAGS, dir_fd=frame.fd)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM):
                    problems.append(Problem(Location(path), "permission denied: not descended"))
                elif exc.errno == errno.EMFILE:
                    problems.append(Problem(Location(path), "too many open directories: not descended"))
                elif exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    problems.append(Problem(Location(path), "changed during the walk: not descended"))
                else:
                    problems.append(Problem(Location(path), f"cannot open: {exc.strerror}"))
                continue
            stack.append(_Frame(fd, listing(fd, path), path, key, region, frame.depth + 1))
    finally:
        for frame in stack:
            if frame.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(frame.fd)
    trees = tuple(sorted((r.freeze() for r in regions), key=lambda t: t.top.path))
    return (
        OwnershipData(
            trees=trees,
            etc_entries=tuple(sorted(etc_entries)),
            mountpoints=tuple(sorted(mountpoints)),
            entries=count,
            crossed_filesystems=cross_filesystems,
        ),
        problems,
    )
