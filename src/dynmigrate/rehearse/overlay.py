"""Overlay layers over ROOT: which filesystems, which options, and whether this kernel can do it.

The running host (ROOT is /) is trusted: redirect_dir=on lets systemd rename a directory into
/var/lib/private/ as on a real filesystem, and metacopy=on makes a chown copy up only the
metadata. Any other image is untrusted: the kernel documentation calls redirect_dir and metacopy
unsafe with layers someone else prepared, so an image gets neither, and the directories the
migration renames are copied into the upper layer first (a directory that exists only in the
upper layer renames without redirect_dir).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Filesystems that hold no service data of their own (or are set up by systemd-nspawn itself).
PSEUDO_FS = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
        "efivarfs", "fuse.gvfsd-fuse", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "proc",
        "pstore", "ramfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs",
        "tracefs", "nfsd", "fuse.lxcfs", "fuse.portal",
    }
)  # fmt: skip
# Below these the container gets its own mounts from systemd-nspawn.
NSPAWN_OWNED = ("/proc", "/sys", "/dev", "/run", "/tmp")

HOST_OPTIONS = "redirect_dir=on,metacopy=on"
IMAGE_OPTIONS = "redirect_dir=off,metacopy=off"

MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2


class OverlayError(Exception):
    """The kernel cannot give the overlay the rehearsal needs; the message says what is missing."""


class MissingFeatures(OverlayError):
    """The kernel's overlayfs works but without redirect_dir or metacopy (--full-copy can do without)."""


FULL_COPY_HINT = (
    "; --full-copy lays the overlay without them and copies the directories the migration renames "
    "into the upper layer first (ROOT is still never written; the copies cost their size in memory)"
)


@dataclass(frozen=True, slots=True)
class Layering:
    """How the layers are laid: with redirect_dir and metacopy, or without them (seeded copies)."""

    features: bool  # redirect_dir=on,metacopy=on
    seed: bool  # copy the directories systemd renames into the upper layer before the migration
    note: str = ""  # what the report says about the choice ("" when there is nothing to say)

    @property
    def options(self) -> str:
        return HOST_OPTIONS if self.features else IMAGE_OPTIONS


def choose_layering(*, trusted: bool, full_copy: bool, missing: str) -> Layering:
    """The layering for a ROOT: trusted (/ or --trusted-image) or not, --full-copy asked or not, and
    missing: "" when this kernel's overlayfs has redirect_dir and metacopy, else why not.

    An untrusted image never gets the features. A trusted ROOT gets them when the kernel has them
    and the user did not ask for a full copy; without them it is refused (OverlayError, saying
    what is missing and that --full-copy exists) unless the user asked for the full copy.
    """
    if not trusted:
        return Layering(features=False, seed=True)
    if full_copy:
        why = f"this kernel's overlayfs {missing.split(':')[0]}" if missing else "asked for; the kernel has both"
        return Layering(
            features=False,
            seed=True,
            note=f"full copy (--full-copy; {why}): no redirect_dir or metacopy, the directories systemd "
            "renames are copied into the upper layer, and a chown copies a file's data up",
        )
    if missing:
        raise OverlayError(f"this kernel's overlayfs {missing}" + FULL_COPY_HINT)
    return Layering(features=True, seed=False)


@dataclass(frozen=True, slots=True, order=True)
class Mount:
    point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Mount points of /proc/self/mountinfo (fields: ... point ... - fstype source ...)."""
    out: list[Mount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        out.append(Mount(_unescape(fields[4]), tail[0], _unescape(tail[1])))
    return out


def _below(path: str, top: str) -> bool:
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def host_layers(mounts: Iterable[Mount], skip: Iterable[str] = ()) -> list[str]:
    """For ROOT=/: "/" and every other real filesystem below it that the services may need.

    Pseudo filesystems, what systemd-nspawn mounts itself (/proc, /sys, /dev, /run, /tmp) and the
    skip paths (the rehearsal's own folder) are left out; a point mounted twice counts once (the
    last mount is the one visible). Sorted so that a parent is mounted before what lies below it.
    """
    skipped = tuple(skip)
    visible: dict[str, Mount] = {}
    for m in mounts:
        visible[m.point] = m
    points = ["/"]
    for point, m in visible.items():
        if point == "/" or m.fstype in PSEUDO_FS:
            continue
        if any(_below(point, top) for top in NSPAWN_OWNED) or any(_below(point, top) for top in skipped):
            continue
        points.append(point)
    return sorted(set(points), key=lambda p: (p.count("/") if p != "/" else 0, p))


def escape_option(path: str) -> str:
    """A path as overlayfs reads it inside lowerdir=/upperdir=/workdir= (\\ , and : escaped)."""
    return re.sub(r"([\\,:])", r"\\\1", path)


def overlay_data(lower: str, upper: str, work: str, *, host: bool) -> str:
    return ",".join(
        (
            f"lowerdir={escape_option(lower)}",
            f"upperdir={escape_option(upper)}",
            f"workdir={escape_option(work)}",
            HOST_OPTIONS if host else IMAGE_OPTIONS,
        )
    )


# ---------------------------------------------------------------- system calls (root, own namespace)

_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    rc = _libc.mount(
        os.fsencode(source),
        os.fsencode(target),
        None if fstype is None else fstype.encode(),
        ctypes.c_ulong(flags),
        None if data is None else os.fsencode(data),
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind'} on {target}: {os.strerror(err)}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    if _libc.umount2(os.fsencode(target), ctypes.c_int(flags)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def _parameter(name: str) -> str:
    try:
        return Path(f"/sys/module/overlay/parameters/{name}").read_text(encoding="ascii").strip()
    except OSError:
        return ""


def missing_features(scratch: Path) -> str:
    """ "" when this kernel's overlayfs takes redirect_dir=on,metacopy=on, else what it lacks.

    OverlayError when there is no usable overlayfs at all (not even without the features)."""
    try:
        check_overlay(scratch / "features", host=True)
    except MissingFeatures as exc:
        check_overlay(scratch / "plain", host=False)
        return str(exc).removeprefix("this kernel's overlayfs ")
    return ""


def check_overlay(scratch: Path, *, host: bool) -> None:
    """Mount a tiny overlay with the options the rehearsal will use; OverlayError says what is missing."""
    dirs = {name: scratch / name for name in ("lower", "upper", "work", "merged")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    data = overlay_data(str(dirs["lower"]), str(dirs["upper"]), str(dirs["work"]), host=host)
    try:
        mount("overlay", str(dirs["merged"]), "overlay", 0, data)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise OverlayError("this kernel has no overlayfs (modprobe overlay)") from None
        if host and exc.errno == errno.EINVAL:
            have = [n for n in ("redirect_dir", "metacopy") if _parameter(n)]
            missing = sorted({"redirect_dir", "metacopy"} - set(have))
            what = f"lacks {' and '.join(missing)}" if missing else "refused redirect_dir=on,metacopy=on"
            raise MissingFeatures(
                f"this kernel's overlayfs {what}: rehearsing the running host needs both "
                "(systemd renames state directories into private/, and a chown must not copy file data)"
            ) from None
        raise OverlayError(f"cannot mount an overlay: {exc.strerror}") from None
    umount(str(dirs["merged"]))


def seed_upper(lower: Path, upper: Path, rels: Iterable[str]) -> None:
    """Copy lower/REL into upper/REL as an opaque directory (renamable without redirect_dir).

    Parents are created in upper with the lower layer's owner, mode and times (they stay merged);
    a REL whose path holds a symlink in the lower layer is skipped (it is not moved by systemd).
    """
    import shutil
    import subprocess

    for rel in rels:
        parts = [p for p in rel.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            continue
        src, dst = lower, upper
        ok = True
        for i, part in enumerate(parts):
            src, dst = src / part, dst / part
            st = os.lstat(src) if os.path.lexists(src) else None
            if st is None or not _is_dir(st.st_mode):
                ok = False
                break
            if i < len(parts) - 1 and not dst.exists():
                dst.mkdir()
                os.chown(dst, st.st_uid, st.st_gid)
                os.chmod(dst, st.st_mode & 0o7777)
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
        if not ok or os.path.lexists(dst):
            continue
        cp = shutil.which("cp", path="/usr/bin:/bin") or "cp"
        subprocess.run([cp, "-a", "--no-target-directory", "--", str(src), str(dst)], check=True)
        os.setxattr(dst, "trusted.overlay.opaque", b"y", follow_symlinks=False)


def _is_dir(mode: int) -> bool:
    import stat

    return stat.S_ISDIR(mode)


# open_tree(2) and mount_setattr(2): the same numbers on every architecture that has them
SYS_OPEN_TREE = 428
SYS_MOUNT_SETATTR = 442
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
MOUNT_ATTR_IDMAP = 0x00100000
CLONE_NEWUSER = 0x10000000


class _MountAttr(ctypes.Structure):
    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


def _new_userns() -> tuple[int, int]:
    """A user namespace mapping 0-65535 to 100000-165535: (pid holding it, fd of it)."""
    import subprocess

    def enter() -> None:
        if _libc.unshare(ctypes.c_int(CLONE_NEWUSER)) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")

    proc = subprocess.Popen(["sleep", "60"], preexec_fn=enter, env={"PATH": "/usr/bin:/bin"})
    for name in ("uid_map", "gid_map"):
        Path(f"/proc/{proc.pid}/{name}").write_text("0 100000 65536\n", encoding="ascii")
    fd = os.open(f"/proc/{proc.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    return proc.pid, fd


def idmap_error(path: str) -> str:
    """ "" when the filesystem at path accepts an id-mapped mount (as systemd >= 257 makes for
    private directories), else the kernel's reason. Mounts nothing: the clone is never attached."""
    try:
        holder, userns = _new_userns()
    except OSError as exc:
        return f"cannot make a user namespace to try: {exc.strerror}"
    try:
        tree = _libc.syscall(
            ctypes.c_long(SYS_OPEN_TREE),
            ctypes.c_int(AT_FDCWD),
            os.fsencode(path),
            ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC),
        )
        if tree < 0:
            return f"open_tree: {os.strerror(ctypes.get_errno())}"
        try:
            attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns)
            rc = _libc.syscall(
                ctypes.c_long(SYS_MOUNT_SETATTR),
                ctypes.c_int(tree),
                b"",
                ctypes.c_uint(AT_EMPTY_PATH),
                ctypes.byref(attr),
                ctypes.c_size_t(ctypes.sizeof(attr)),
            )
            return "" if rc == 0 else f"mount_setattr(MOUNT_ATTR_IDMAP): {os.strerror(ctypes.get_errno())}"
        finally:
            os.close(tree)
    finally:
        os.close(userns)
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder, 9)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(holder, 0)
