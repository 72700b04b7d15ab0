"""Read-only, confined access to a root directory (a live "/", a mounted image, a sample).

Every path is resolved the way the scanned system itself would resolve it: an absolute symlink
target means ROOT/target, and ".." never climbs above ROOT (the semantics of chroot, or of
openat2's RESOLVE_IN_ROOT). Nothing here writes, and files are opened with O_NOFOLLOW and
O_NONBLOCK after an lstat shows a regular file, so a FIFO or device where a config file is
expected is reported, never opened, and never blocks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as st
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from dynmigrate.model.common import RelPath
from dynmigrate.model.files import FileKind, PathInfo
from dynmigrate.model.paths import parent_of, rel

_T = TypeVar("_T")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_SYMLINKS = 40  # what the Linux kernel allows (ELOOP beyond)
DEFAULT_READ_LIMIT = 4 * 1024 * 1024  # config files bigger than this are refused, not read


class _Stale(Exception):
    """A directory resolve() recorded is no longer the one on disk: the tree changed during the scan."""


class RootError(Exception):
    """A path could not be read. The message names the path; never raised out of collect."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class InputError(ValueError):
    """An input cannot be used at all (exit 3): the message names the file and line, in the user's terms."""


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    uid: int
    gid: int
    mode: int
    kind: FileKind | None  # only for entries git cannot store (sockets, FIFOs, devices)
    line: int = 0  # where the manifest says so


class OwnershipManifest:
    """An overlay of ownership for trees stored in git (which keeps no owners).

    Format (tab separated, "#" comments): PATH UID GID MODE [KIND]. PATH is root-relative,
    MODE octal (may include setuid/setgid/sticky bits), KIND one of d s p c b for entries that
    exist only in the manifest (git stores no empty directories, sockets, FIFOs or devices).
    Every path not listed is owned by 0:0 with mode 0755 (directories, executables) or 0644.
    """

    def __init__(self, entries: dict[RelPath, ManifestEntry], source: str = "") -> None:
        self.entries = entries
        self.source = source
        children: dict[RelPath, set[str]] = {}
        for path, entry in entries.items():
            if entry.kind is not None:
                children.setdefault(parent_of(path), set()).add(path.rsplit("/", 1)[1])
        self.virtual_children = children

    def overlay(self, path: RelPath, kind: FileKind, s: os.stat_result) -> tuple[FileKind, int, int, int]:
        """(kind, uid, gid, mode) of an entry found on disk with lstat result s, as the manifest
        says: its line, or 0:0 with git's mode for an entry it does not list."""
        entry = self.entries.get(path)
        if entry is None:
            return kind, 0, 0, normal_mode(kind, st.S_IMODE(s.st_mode))
        return kind if entry.kind is None else entry.kind, entry.uid, entry.gid, entry.mode

    @classmethod
    def parse(cls, text: str, source: str = "ownership.tsv") -> OwnershipManifest:
        """Parse a manifest; InputError names the line and what is wrong with it."""
        entries: dict[RelPath, ManifestEntry] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue

            def bad(message: str, lineno: int = lineno) -> InputError:
                return InputError(f"{source}: line {lineno}: {message}")

            fields = line.split("\t")
            if len(fields) not in (4, 5):
                raise bad("expected PATH UID GID MODE [KIND] separated by tabs")
            path, uid_s, gid_s, mode_s = fields[:4]
            if not path.startswith("/"):
                raise bad(f"path must be absolute, got {path!r}")
            numbers: list[int] = []
            for what, value in (("uid", uid_s), ("gid", gid_s)):
                if not value.isdigit() or not value.isascii():
                    raise bad(f"{what} must be a number, got {value!r}")
                numbers.append(int(value))
            if not mode_s or not mode_s.isascii() or any(c not in "01234567" for c in mode_s) or len(mode_s) > 5:
                raise bad(f"mode must be octal, got {mode_s!r}")
            kind = None
            if len(fields) == 5 and fields[4]:
                try:
                    kind = FileKind.from_letter(fields[4])
                except ValueError:
                    raise bad(f"kind must be one of d s p c b, got {fields[4]!r}") from None
            entries[rel(path)] = ManifestEntry(numbers[0], numbers[1], int(mode_s, 8), kind, lineno)
        return cls(entries, source)

    @classmethod
    def load(cls, path: str | Path) -> OwnershipManifest:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror or exc}") from None
        return cls.parse(text, str(path))

    def check_paths(self, fs: RootFS) -> None:
        """Every entry without a KIND names something that exists under ROOT (otherwise it is a typo
        that would silently give the real file the default owner)."""
        for path, entry in sorted(self.entries.items(), key=lambda item: item[1].line):
            if entry.kind is None and fs.lstat_real(path) is None:
                raise InputError(f"{self.source}: line {entry.line}: {path} does not exist under ROOT")


def normal_mode(kind: FileKind, mode: int) -> int:
    """The mode git would give an entry a manifest does not list (checkouts differ by umask)."""
    if kind is FileKind.SYMLINK:
        return 0o777
    if kind is FileKind.DIR or mode & 0o111:
        return 0o755
    return 0o644


class RootFS:
    """Confined, read-only view of ROOT."""

    def __init__(self, root: str | Path, manifest: OwnershipManifest | None = None) -> None:
        real = os.path.realpath(os.fspath(root))
        try:
            st_root = os.stat(real)
            os.listdir(real)
        except PermissionError:
            raise RootError(os.fspath(root), "permission denied") from None
        except OSError as exc:
            raise RootError(os.fspath(root), exc.strerror or "cannot be read") from None
        if not st.S_ISDIR(st_root.st_mode):
            raise RootError(os.fspath(root), "not a directory")
        self.root = real
        self._prefix = real.rstrip("/") + "/"  # host_path without os.path.join's cost per call
        self.manifest = manifest
        self.root_dev = st_root.st_dev
        # Directories this scan has seen as real directories (lstat, not a symlink), by their resolved
        # path, with (st_dev, st_ino): resolve() skips their lstat, and every open through them checks
        # that the directory it got is still that inode (_open_dir), so a directory replaced by a
        # symlink after it was cached is never followed out of ROOT.
        self._dirs: dict[RelPath, tuple[int, int]] = {RelPath("/"): (st_root.st_dev, st_root.st_ino)}

    # -- path handling -------------------------------------------------------------------

    def host_path(self, path: RelPath) -> str:
        """The path on the scanning machine for a root-relative path (no resolution)."""
        if path == "/":
            return self.root
        return self._prefix + path.lstrip("/")

    def _lstat_raw(self, path: RelPath) -> os.stat_result | None:
        if "\x00" in path:
            return None  # no file name holds a NUL byte: such a path (from a config field) never exists
        try:
            return os.lstat(self.host_path(path))
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise RootError(path, "path too long") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise RootError(path, "permission denied") from None
            raise RootError(path, exc.strerror or str(exc)) from None

    def resolve(self, path: str, *, follow_last: bool = True) -> RelPath:
        """Resolve symlinks inside ROOT. Returns the root-relative real path.

        Missing components are allowed at the end (the result is then lexical for the rest).
        Raises RootError for symlink loops.
        """
        known = self._resolve_known(path, follow_last)
        if known is not None:
            return known
        pending = [c for c in path.split("/") if c not in ("", ".")]
        pending.reverse()
        done: list[str] = []
        hops = 0
        while pending:
            comp = pending.pop()
            if comp == "..":
                if done:
                    done.pop()
                continue
            candidate = RelPath("/" + "/".join([*done, comp]))
            if not pending and not follow_last:
                done.append(comp)
                break
            if candidate in self._dirs:
                done.append(comp)
                continue
            info = self._lstat_raw(candidate)
            if info is None:
                # the rest does not exist: finish lexically
                done.append(comp)
                for rest in reversed(pending):
                    if rest == "..":
                        if done:
                            done.pop()
                    elif rest not in ("", "."):
                        done.append(rest)
                break
            if st.S_ISLNK(info.st_mode):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise RootError(path, "too many levels of symbolic links")
                try:
                    target = os.readlink(self.host_path(candidate))
                except OSError as exc:
                    raise RootError(candidate, exc.strerror or str(exc)) from None
                if target.startswith("/"):
                    done = []
                parts = [c for c in target.split("/") if c not in ("", ".")]
                pending.extend(reversed(parts))
                continue
            if st.S_ISDIR(info.st_mode):
                self._dirs[candidate] = (info.st_dev, info.st_ino)
            done.append(comp)
        return RelPath("/" + "/".join(done))

    def _resolve_known(self, path: str, follow_last: bool) -> RelPath | None:
        """The common case: a plain absolute path whose directory this scan has resolved already
        (one lstat, or none). None when the whole walk is needed."""
        if not follow_last:
            return RelPath(path) if self._plain_in_resolved_dir(path) else None
        known, _ = self._lstat_known(path)
        return RelPath(path) if known else None

    def _plain_in_resolved_dir(self, path: str) -> bool:
        parent, _, leaf = path.rpartition("/")
        return (
            bool(leaf) and path[:1] == "/" and "/." not in path and "//" not in path and (parent or "/") in self._dirs
        )

    def _lstat_known(self, path: str) -> tuple[bool, os.stat_result | None]:
        """(True, its lstat or None when missing) when path is its own resolution: plain, absolute,
        in a directory this scan has resolved, and not a symlink; (False, None) otherwise."""
        if not self._plain_in_resolved_dir(path):
            return False, None
        info = self._lstat_raw(RelPath(path))
        if info is None:
            return True, None
        if st.S_ISLNK(info.st_mode):
            return False, None
        if st.S_ISDIR(info.st_mode):
            self._dirs[RelPath(path)] = (info.st_dev, info.st_ino)
        return True, info

    def lstat_and_resolve(self, path: RelPath) -> tuple[PathInfo | None, RelPath]:
        """lstat(path) and resolve(path), with a single lstat in the common case (a plain path in a
        resolved directory that is not a symlink)."""
        known, raw = self._lstat_known(path)
        if not known:
            return self.lstat(path), self.resolve(path)
        return (self.virtual_entry(path) if raw is None else self._info_from_stat(path, raw)), path

    def _open_dir(self, real: RelPath) -> int:
        """An fd of the resolved directory real, checked to be the inode resolve() recorded there.

        Raises _Stale when the tree changed since (the directory replaced, or a symlink now where
        it was), OSError for what open() raises otherwise (ENOENT, ENOTDIR, EACCES).
        """
        expected = self._dirs.get(real)
        try:
            fd = os.open(self.host_path(real), DIR_FLAGS)
        except OSError as exc:
            if expected is not None and exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR):
                raise _Stale from None
            raise
        try:
            fst = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        if (fst.st_dev, fst.st_ino) != expected:
            os.close(fd)
            raise _Stale
        return fd

    def _check_parent(self, real: RelPath) -> None:
        """Raise _Stale when the directory holding real is no longer the one resolve() recorded."""
        with contextlib.suppress(OSError):
            os.close(self._open_dir(RelPath(real.rpartition("/")[0] or "/")))

    def _twice(self, path: str, operation: Callable[[str], _T]) -> _T:
        """Run operation(path); when the tree changed under the cache, forget it and run it again."""
        try:
            return operation(path)
        except _Stale:
            self._dirs = {RelPath("/"): self._dirs[RelPath("/")]}
        try:
            return operation(path)
        except _Stale:
            raise RootError(path, "changed while reading, not followed") from None

    # -- metadata ------------------------------------------------------------------------

    def _info_from_stat(self, path: RelPath, s: os.stat_result) -> PathInfo:
        kind = FileKind.from_mode(s.st_mode)
        uid, gid, mode = s.st_uid, s.st_gid, st.S_IMODE(s.st_mode)
        if self.manifest is not None:
            kind, uid, gid, mode = self.manifest.overlay(path, kind, s)
        link = ""
        if kind is FileKind.SYMLINK:
            try:
                link = os.readlink(self.host_path(path))
            except OSError:
                link = ""
        return PathInfo(
            path=path,
            kind=kind,
            uid=uid,
            gid=gid,
            mode=mode,
            size=s.st_size if kind is FileKind.FILE else 0,
            mountpoint=s.st_dev != self.root_dev and kind is FileKind.DIR,
            link_target=link,
        )

    def virtual_entry(self, path: RelPath) -> PathInfo | None:
        if self.manifest is None:
            return None
        entry = self.manifest.entries.get(path)
        if entry is None or entry.kind is None:
            return None
        return PathInfo(path, entry.kind, entry.uid, entry.gid, entry.mode)

    def lstat_real(self, path: RelPath) -> os.stat_result | None:
        """lstat of the entry on disk (not the manifest's view); None if it does not exist."""
        return self._lstat_raw(path)

    def lstat(self, path: RelPath) -> PathInfo | None:
        """The entry itself (a symlink is not followed). None if it does not exist."""
        s = self._lstat_raw(path)
        if s is None:
            return self.virtual_entry(path)
        return self._info_from_stat(path, s)

    def stat(self, path: str) -> PathInfo | None:
        """Follow symlinks inside ROOT; the PathInfo carries the resolved path."""
        real = self.resolve(path)
        return self.lstat(real)

    def exists(self, path: str) -> bool:
        try:
            return self.stat(path) is not None
        except RootError:
            return False

    def is_dir(self, path: str) -> bool:
        try:
            info = self.stat(path)
        except RootError:
            return False
        return info is not None and info.kind is FileKind.DIR

    def readlink(self, path: RelPath) -> str:
        if "\x00" in path:
            raise RootError(path, "no such file")
        try:
            return os.readlink(self.host_path(path))
        except OSError as exc:
            raise RootError(path, exc.strerror or str(exc)) from None

    # -- contents --------------------------------------------------------------------------

    def listdir(self, path: str) -> list[str]:
        """Sorted entry names of a directory (following symlinks inside ROOT)."""
        return self._twice(path, self._listdir)

    def _listdir(self, path: str) -> list[str]:
        real = self.resolve(path)
        if "\x00" in real:
            raise RootError(real, "no such directory")
        names: set[str] = set()
        virtual = self.virtual_entry(real)
        if virtual is not None and virtual.kind is FileKind.DIR and self.manifest is not None:
            return sorted(self.manifest.virtual_children.get(real, ()))
        try:
            fd = self._open_dir(real)
            try:
                names.update(os.listdir(fd))
            finally:
                os.close(fd)
        except FileNotFoundError:
            raise RootError(real, "no such directory") from None
        except NotADirectoryError:
            raise RootError(real, "not a directory") from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise RootError(real, "permission denied") from None
            if exc.errno == errno.ELOOP:
                raise RootError(real, "changed into a symlink while reading, not followed") from None
            raise RootError(real, exc.strerror or str(exc)) from None
        if self.manifest is not None:
            names.update(self.manifest.virtual_children.get(real, ()))
        return sorted(names)

    def read_bytes(self, path: str, limit: int = DEFAULT_READ_LIMIT) -> bytes:
        """Contents of a regular file inside ROOT, refusing anything else."""
        return self._twice(path, lambda p: self._read_bytes(p, limit))

    def _read_bytes(self, path: str, limit: int) -> bytes:
        known, raw = self._lstat_known(path)  # one lstat resolves and checks the common path
        if known:
            real = RelPath(path)
        else:
            real = self.resolve(path)
            raw = self._lstat_raw(real)
        if raw is None or not st.S_ISREG(raw.st_mode) or self.manifest is not None:
            info = self.lstat(real)
            if info is None or info.kind is not FileKind.FILE:
                self._check_parent(real)  # the answer may come from a directory that changed since
                if info is None:
                    raise RootError(real, "no such file")
                raise RootError(real, f"not a regular file ({info.kind.value}), not opened")
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        parent, _, name = real.rpartition("/")
        try:
            dir_fd = self._open_dir(RelPath(parent or "/"))
            try:
                fd = os.open(name, flags, dir_fd=dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise RootError(real, "permission denied") from None
            if exc.errno == errno.ELOOP:
                raise RootError(real, "changed into a symlink while reading, not followed") from None
            raise RootError(real, exc.strerror or str(exc)) from None
        try:
            fst = os.fstat(fd)
            if not st.S_ISREG(fst.st_mode):
                raise RootError(real, "not a regular file, not read")
            if fst.st_size > limit:
                raise RootError(real, f"file too large ({fst.st_size} bytes, limit {limit})")
            return _read_all(fd, real, fst.st_size, limit)
        except OSError as exc:
            raise RootError(real, exc.strerror or str(exc)) from None
        finally:
            os.close(fd)

    def read_text(self, path: str, limit: int = DEFAULT_READ_LIMIT) -> str:
        """UTF-8 text; undecodable bytes are kept with surrogateescape."""
        return self.read_bytes(path, limit).decode("utf-8", "surrogateescape")

    def files_in(self, directory: str, suffix: str = "") -> Iterator[RelPath]:
        """Regular files (after following symlinks) directly in a directory, sorted by name.

        Missing directories yield nothing. Errors inside are raised for the caller to record.
        """
        real = self.resolve(directory)
        info = self.lstat(real)
        if info is None or info.kind is not FileKind.DIR:
            return
        for name in self.listdir(real):
            if suffix and not name.endswith(suffix):
                continue
            yield RelPath(f"{real.rstrip('/')}/{name}")


def _read_all(fd: int, real: RelPath, size: int, limit: int) -> bytes:
    """The contents of an open regular file of size bytes (as fstat said), at most limit. A read
    that returns less than asked at or past a non-zero size is the end (one read for most files); a
    file that grew since is read on, and one past limit refused."""
    chunks: list[bytes] = []
    total = 0
    ask = min(size, limit) + 1
    while True:
        chunk = os.read(fd, ask)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise RootError(real, f"file too large (over {limit} bytes)")
        chunks.append(chunk)
        if size and len(chunk) < ask and total >= size:  # size 0: a pseudo-file's size says nothing
            break
        ask = 1 << 16
    return b"".join(chunks)
