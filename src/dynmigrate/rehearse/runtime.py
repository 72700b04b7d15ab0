"""What a booted copy keeps under /run that a scan reads: its generators' output and runtime units.

systemd runs its generators at boot and writes their units into /run/systemd/generator*
(postgresql-common's generator wants one postgresql@VERSION-CLUSTER.service per cluster there,
systemd-sysv-generator makes units of init scripts). systemd-nspawn mounts a tmpfs of its own on
the copy's /run, so the merged tree the rehearsal scans does not show them: they are read through
/proc/PID/root of the copy's init and copied into the merged tree's /run (its upper layer, which
the copy's own /run hides from the copy).

The copy never follows a link: directories are opened with O_NOFOLLOW below a directory already
open, a symbolic link is copied as a link (its target is text, never read), a file is read through
an fd opened with O_NOFOLLOW|O_NONBLOCK and only if fstat says it is a regular file, at most
FILE_LIMIT bytes of it. Devices, FIFOs and sockets are left out, as are other filesystems mounted
below, entries deeper than DEPTH_LIMIT and anything past ENTRY_LIMIT entries or TOTAL_LIMIT bytes;
each left-out entry is named in the result, as is one that cannot be copied (gone or replaced since
it was listed, the scanned tree full): the others are copied all the same. When the copy fails as
a whole, every listed directory is cleared in the scanned tree, so that no partial set is scanned.
A directory's owner and mode come from the directory opened (the same inode as the one listed).
Owners and permission bits are copied as they are (setuid, setgid and sticky bits of files
dropped), so nothing becomes readable to more users.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

FILE_LIMIT = 8 * 1024 * 1024  # the unit reader's own limit for a unit file
TOTAL_LIMIT = 64 * 1024 * 1024
ENTRY_LIMIT = 50_000
DEPTH_LIMIT = 8  # generator output is NAME.service, NAME.d/, NAME.wants/ (depth 2)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
SKIPPED_SHOWN = 10


@dataclass(frozen=True, slots=True)
class RuntimeCopy:
    """What was copied: the directories found in the copy, counts, and what was left out and why."""

    found: tuple[str, ...]
    files: int
    links: int
    dirs: int
    skipped: tuple[str, ...]

    def note(self) -> str:
        where = ", ".join(self.found) if self.found else "none of them there"
        text = (
            "the copy was booted before it was scanned, and the units it keeps in /run/systemd (generator "
            f"output and runtime units: {where}; {self.files} files, {self.links} symbolic links) were copied "
            "into the scanned tree: the plan sees what a scan of the running copy sees"
        )
        if self.skipped:
            shown = "; ".join(self.skipped[:SKIPPED_SHOWN])
            more = f" and {len(self.skipped) - SKIPPED_SHOWN} more" if len(self.skipped) > SKIPPED_SHOWN else ""
            text += f"; left out: {shown}{more}"
        return text


@dataclass
class _Copier:
    files: int = 0
    links: int = 0
    dirs: int = 0
    entries: int = 0
    total: int = 0
    skipped: list[str] = field(default_factory=list)

    def tree(self, src: int, dst: int, path: str, depth: int, dev: int) -> None:
        """Copy the directory open at src into the (new, empty) directory open at dst. An entry that
        cannot be copied (gone or replaced since the listing, the scanned tree full) is named in
        skipped and the others are copied all the same."""
        names, cut = _names(src, ENTRY_LIMIT - self.entries)
        self.entries += len(names)
        for name in names:
            where = f"{path}/{name}"
            try:
                self.entry(src, dst, name, where, depth, dev)
            except OSError as exc:
                self.skipped.append(f"{where}: {exc.strerror or exc}")
        if cut:
            self.skipped.append(
                f"{path}: more than {ENTRY_LIMIT} entries in all (only {len(names)} of its own, "
                "the first listed, were copied)"
            )

    def entry(self, src: int, dst: int, name: str, where: str, depth: int, dev: int) -> None:
        try:
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
        except FileNotFoundError:
            return  # gone since the listing
        if stat.S_ISLNK(st.st_mode):
            self.link(src, dst, name, st)
        elif stat.S_ISDIR(st.st_mode):
            self.directory(src, dst, name, st, where, depth, dev)
        elif stat.S_ISREG(st.st_mode):
            self.file(src, dst, name, where)
        else:
            self.skipped.append(f"{where}: not a file, directory or symbolic link")

    def link(self, src: int, dst: int, name: str, st: os.stat_result) -> None:
        os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        try:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        except OSError:
            os.unlink(name, dir_fd=dst)
            raise
        self.links += 1

    def directory(self, src: int, dst: int, name: str, st: os.stat_result, where: str, depth: int, dev: int) -> bool:
        """Copy one directory; False when it is left out (named in skipped)."""
        if st.st_dev != dev:
            self.skipped.append(f"{where}: another filesystem mounted there")
            return False
        if depth >= DEPTH_LIMIT:
            self.skipped.append(f"{where}: deeper than {DEPTH_LIMIT} levels")
            return False
        with _opened(name, src) as sub:
            now = os.fstat(sub)
            if now.st_dev != dev:
                self.skipped.append(f"{where}: another filesystem mounted there")
                return False
            if not stat.S_ISDIR(now.st_mode) or now.st_ino != st.st_ino:
                self.skipped.append(f"{where}: replaced since it was listed")
                return False
            os.mkdir(name, 0o700, dir_fd=dst)
            try:
                with _opened(name, dst) as out:
                    self.tree(sub, out, where, depth + 1, dev)
                    os.fchown(out, now.st_uid, now.st_gid)
                    os.fchmod(out, stat.S_IMODE(now.st_mode) & 0o1777)
            except OSError:
                with contextlib.suppress(OSError):
                    shutil.rmtree(name, dir_fd=dst)
                raise
        self.dirs += 1
        return True

    def file(self, src: int, dst: int, name: str, where: str) -> None:
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=src)
        except OSError as exc:
            self.skipped.append(f"{where}: {exc.strerror}")
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self.skipped.append(f"{where}: not a regular file when opened")
                return
            data = _read(fd, FILE_LIMIT + 1)
        finally:
            os.close(fd)
        if len(data) > FILE_LIMIT:
            self.skipped.append(f"{where}: larger than {FILE_LIMIT // 2**20} MiB")
            return
        if self.total + len(data) > TOTAL_LIMIT:
            self.skipped.append(f"{where}: the copy reached {TOTAL_LIMIT // 2**20} MiB")
            return
        self.total += len(data)
        out = os.open(name, WRITE_FLAGS, 0o600, dir_fd=dst)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
            os.fchown(out, st.st_uid, st.st_gid)
            os.fchmod(out, stat.S_IMODE(st.st_mode) & 0o777)
        except OSError:
            os.unlink(name, dir_fd=dst)  # never a partial file in the scanned tree
            raise
        finally:
            os.close(out)
        self.files += 1


def _names(src: int, budget: int) -> tuple[list[str], bool]:
    """At most budget names of the directory open at src, sorted; True when more were there."""
    names: list[str] = []
    with os.scandir(src) as it:
        for entry in it:
            if len(names) >= budget:
                return sorted(names), True
            names.append(entry.name)
    return sorted(names), False


def _read(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(1 << 20, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def _opened(name: str, dir_fd: int | None = None, *, follow: bool = False) -> Iterator[int]:
    fd = os.open(name, DIR_FLAGS & ~os.O_NOFOLLOW if follow else DIR_FLAGS, dir_fd=dir_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def _walk_down(top: int, parts: Sequence[str], *, make: bool) -> int:
    """An fd of top/parts..., each part opened without following a link (made 0755 when missing)."""
    fd = os.dup(top)
    for part in parts:
        if make:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
        try:
            nxt = os.open(part, DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nxt
    return fd


def _clear(parent: int, name: str) -> None:
    """Remove what the scanned tree has at name (a lower layer's stale copy): never through a link."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)


class CopyFailed(OSError):
    """The copy failed as a whole: every listed directory was cleared in the scanned tree (the
    scan reads it as it would offline), or clearing failed too (the message says which)."""


def copy_runtime(
    source: str, dest: str, dirs: Sequence[str], still_source: Callable[[], bool] = lambda: True
) -> RuntimeCopy:
    """Copy each of dirs (absolute, below /run) from the tree at source (the copy's root as its init
    sees it: /proc/PID/root) into the tree at dest, replacing what dest had there. still_source
    says, once source is open, that it still is what was meant (the copy's init, not a reused PID).
    An entry that cannot be copied is named in skipped; when the copy fails as a whole, CopyFailed
    (every one of dirs cleared in dest, so that no partial set is scanned)."""
    copier = _Copier()
    try:
        found = _copy_all(copier, source, dest, dirs, still_source)
    except OSError as exc:
        done = f"{copier.files} files, {copier.links} symbolic links and {copier.dirs} directories copied before"
        try:
            with _opened(dest, follow=True) as dst_root:
                for path in dirs:
                    *parents, name = path.strip("/").split("/")
                    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                        dst_parent = _walk_down(dst_root, parents, make=False)
                        try:
                            _clear(dst_parent, name)
                        finally:
                            os.close(dst_parent)
        except OSError as again:
            raise CopyFailed(f"{exc}; {done}, and clearing them failed too ({again})") from None
        raise CopyFailed(f"{exc}; {done} were removed: the scan reads the tree as it would offline") from None
    return RuntimeCopy(tuple(found), copier.files, copier.links, copier.dirs, tuple(copier.skipped))


def _copy_all(
    copier: _Copier, source: str, dest: str, dirs: Sequence[str], still_source: Callable[[], bool]
) -> list[str]:
    found: list[str] = []
    # the two tops are followed: /proc/PID/root is a link to the copy's root by design
    with _opened(source, follow=True) as src_root, _opened(dest, follow=True) as dst_root:
        if not still_source():
            raise OSError(errno.ESRCH, "the copy's init is gone: its /proc entry may be another process's")
        for path in dirs:
            *parents, name = path.strip("/").split("/")
            dst_parent = _walk_down(dst_root, parents, make=True)
            try:
                _clear(dst_parent, name)
                try:
                    src_parent = _walk_down(src_root, parents, make=False)
                except OSError as exc:
                    if exc.errno not in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                        raise
                    continue
                try:
                    if _copy_top(copier, src_parent, dst_parent, name, path):
                        found.append(path)
                finally:
                    os.close(src_parent)
            finally:
                os.close(dst_parent)
    return found


def _copy_top(copier: _Copier, src_parent: int, dst_parent: int, name: str, path: str) -> bool:
    """One of the listed directories; False when the copy has none (or a link or file there) or
    when it was left out (another filesystem mounted there)."""
    try:
        st = os.stat(name, dir_fd=src_parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        copier.skipped.append(f"{path}: not a directory")
        return False
    return copier.directory(src_parent, dst_parent, name, st, path, 0, os.fstat(src_parent).st_dev)
