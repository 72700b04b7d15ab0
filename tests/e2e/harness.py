"""End-to-end harness: cached Debian roots (one per suite) booted under systemd-nspawn.

The library is independent of pytest (conftest.py maps its exceptions onto skip/fail):

* :func:`build_root` debootstraps a Debian root of one suite (:data:`SUITES`: Debian 12
  bookworm with systemd 252, Debian 13 trixie with systemd 257) once and caches it outside the
  repository, in ``${DYNMIGRATE_E2E_CACHE:-/var/cache/dynmigrate-e2e}/<key>/root``; the suite is
  part of the key.
* :func:`fresh_copy` gives every test its own copy of that root (``cp -a --reflink=auto``).
* :class:`Container` boots a copy with ``systemd-nspawn --boot``, runs commands inside it with
  ``nsenter`` and always powers it off again.

Only processes started here are ever signalled, and only by pid.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

# Bump whenever the way the root is built changes: it is part of the cache key.
HARNESS_VERSION: Final = "2"

# The Debian suites the e2e tests run on, oldest first. DYNMIGRATE_E2E_SUITES (comma-separated)
# narrows the selection, e.g. to iterate on one suite locally.
SUITES: Final[tuple[str, ...]] = ("bookworm", "trixie")
SUITE: Final = SUITES[0]
VARIANT: Final = "minbase"
DEFAULT_MIRROR: Final = "http://deb.debian.org/debian"
DEFAULT_CACHE_DIR: Final = "/var/cache/dynmigrate-e2e"

# Installed into the root by debootstrap. python3 and its libraries let dynmigrate itself run
# inside the container.
PACKAGES: Final[tuple[str, ...]] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "redis-server",
    "memcached",
    "nginx-light",
    "avahi-daemon",
    "python3",
    "python3-click",
    "python3-rich",
    "python3-networkx",
    "procps",
)
# Downloaded into the root's /var/cache/apt/archives but NOT installed: tests install them
# offline (the containers have a private network without uplink).
DOWNLOAD_ONLY: Final[tuple[str, ...]] = ("libnss-systemd",)

BOOT_TIMEOUT: Final = 120.0
SHUTDOWN_TIMEOUT: Final = 60.0
BUILD_TIMEOUT: Final = 1800.0

CONTAINER_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_HOST_PATH: Final = CONTAINER_PATH
_LOG_TAIL_LINES: Final = 60


class E2EUnavailable(Exception):
    """This machine cannot run the e2e tests (skip locally, fail in CI)."""


class BuildError(RuntimeError):
    """Building the root failed for a reason other than a missing network."""


class BootError(RuntimeError):
    """The container did not reach running/degraded."""


class CommandError(subprocess.CalledProcessError):
    """A command inside the container failed; its message carries the output."""

    def __str__(self) -> str:
        parts = [super().__str__()]
        for label, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            if text:
                parts.append(f"--- {label} ---\n{_tail(str(text), _LOG_TAIL_LINES)}")
        return "\n".join(parts)


# --------------------------------------------------------------------------- environment


def ci_mode() -> bool:
    """True when running under CI (env CI set to anything but empty/0/false/no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def cache_dir() -> Path:
    return Path(os.environ.get("DYNMIGRATE_E2E_CACHE") or DEFAULT_CACHE_DIR)


def mirror() -> str:
    return (os.environ.get("DYNMIGRATE_E2E_MIRROR") or DEFAULT_MIRROR).rstrip("/")


def keep_roots() -> bool:
    """DYNMIGRATE_E2E_KEEP=1 keeps per-test root copies for debugging."""
    return os.environ.get("DYNMIGRATE_E2E_KEEP", "").strip().lower() not in ("", "0", "false", "no")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=_HOST_PATH)


def check_prerequisites() -> None:
    """Raise E2EUnavailable when nspawn containers cannot run here at all."""
    if sys.platform != "linux":
        raise E2EUnavailable(f"e2e tests need Linux (this is {sys.platform})")
    if os.geteuid() != 0:
        raise E2EUnavailable("e2e tests need root (systemd-nspawn, debootstrap, nsenter)")
    tools = ("systemd-nspawn", "debootstrap", "nsenter", "chroot")
    missing = [tool for tool in tools if not _which(tool)]
    if missing:
        raise E2EUnavailable(
            "e2e tests need " + ", ".join(missing) + " (apt-get install systemd-container debootstrap)"
        )


def _tool(name: str) -> str:
    path = _which(name)
    if path is None:
        raise E2EUnavailable(f"{name} not found")
    return path


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _file_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return _tail(path.read_text(encoding="utf-8", errors="replace"), lines)
    except OSError as exc:
        return f"(cannot read {path}: {exc})"


# --------------------------------------------------------------------------- root building


@dataclass(frozen=True)
class RootSpec:
    """Everything that determines the content of a built root (hashed into the cache key)."""

    suite: str = SUITE
    variant: str = VARIANT
    mirror: str = DEFAULT_MIRROR
    packages: tuple[str, ...] = PACKAGES
    download_only: tuple[str, ...] = DOWNLOAD_ONLY

    @property
    def key(self) -> str:
        doc = {
            "harness": HARNESS_VERSION,
            "suite": self.suite,
            "variant": self.variant,
            "mirror": self.mirror,
            "packages": sorted(self.packages),
            "download_only": sorted(self.download_only),
        }
        blob = json.dumps(doc, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def describe(self) -> str:
        return json.dumps(
            {
                "harness": HARNESS_VERSION,
                "suite": self.suite,
                "variant": self.variant,
                "mirror": self.mirror,
                "packages": list(self.packages),
                "download_only": list(self.download_only),
            },
            indent=2,
        )


def default_spec(suite: str = SUITE) -> RootSpec:
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    return RootSpec(suite=suite, mirror=mirror())


def selected_suites() -> tuple[str, ...]:
    """The suites to test: DYNMIGRATE_E2E_SUITES (comma-separated) or all of SUITES."""
    raw = os.environ.get("DYNMIGRATE_E2E_SUITES", "").strip()
    if not raw:
        return SUITES
    chosen = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    unknown = [name for name in chosen if name not in SUITES]
    if unknown:
        raise ValueError(f"DYNMIGRATE_E2E_SUITES: unknown suite {', '.join(unknown)}; known: {', '.join(SUITES)}")
    return chosen


def _probe_mirror(spec: RootSpec, timeout: float = 20.0) -> str | None:
    """None when the mirror answers, else a reason."""
    url = f"{spec.mirror}/dists/{spec.suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read(64)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"cannot reach the Debian mirror {url}: {exc}"
    return None


def _unescape_mount_path(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mounts_under(path: Path) -> list[Path]:
    """Mount points at or below path, deepest first."""
    base = os.path.realpath(path)
    found: list[Path] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) < 5:
                continue
            point = _unescape_mount_path(fields[4])
            if point == base or point.startswith(base + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_tree(path: Path) -> None:
    """Delete a root tree, first lazily unmounting anything left mounted inside it.

    A crashed debootstrap can leave /proc or /sys mounted in its target; rmtree must never walk
    into those.
    """
    if not path.exists() and not path.is_symlink():
        return
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
    left = _mounts_under(path)
    if left:
        raise RuntimeError(f"refusing to delete {path}: still mounted: {left}")
    shutil.rmtree(path)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"e2e: waiting for the build lock {lock_path}", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_env() -> dict[str, str]:
    env = {
        "PATH": _HOST_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        "HOME": "/root",
    }
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _run_logged(cmd: Sequence[str], log: Path, what: str) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {shlex.join(cmd)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(
                list(cmd),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_build_env(),
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"{what} timed out after {BUILD_TIMEOUT:.0f} s; log {log}") from exc
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode}); log {log}, last lines:\n{_file_tail(log)}")


def debootstrap_knows(suite: str) -> bool:
    """debootstrap has a script for suite (a bookworm host's debootstrap may lack newer ones)."""
    scripts = Path(os.environ.get("DEBOOTSTRAP_DIR") or "/usr/share/debootstrap") / "scripts"
    return (scripts / suite).exists()


def _build_into(target: Path, spec: RootSpec, log: Path) -> None:
    if not debootstrap_knows(spec.suite):
        raise E2EUnavailable(
            f"debootstrap has no script for {spec.suite}: install a newer debootstrap, or link"
            f" /usr/share/debootstrap/scripts/{spec.suite} to sid (.ci/run does)"
        )
    _run_logged(
        [
            _tool("debootstrap"),
            f"--variant={spec.variant}",
            "--include=" + ",".join(spec.packages),
            spec.suite,
            str(target),
            spec.mirror,
        ],
        log,
        "debootstrap",
    )
    # debootstrap leaves the package lists of its mirror in the root, so no apt-get update.
    _run_logged(
        [
            _tool("chroot"),
            str(target),
            *("apt-get", "--download-only", "-y", "install", *spec.download_only),
        ],
        log,
        "apt-get --download-only",
    )
    archives = target / "var/cache/apt/archives"
    for package in spec.download_only:
        if not list(archives.glob(f"{package}_*.deb")):
            raise BuildError(f"{package} .deb missing from {archives} after download; log {log}")
    status = (target / "var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    for package in spec.download_only:
        if f"\nPackage: {package}\n" in "\n" + status:
            raise BuildError(f"{package} got installed into the root; it must only be downloaded")
    # debootstrap copies the host's hostname and resolv.conf. Without /etc/hostname the container
    # keeps the hostname nspawn gives it: its machine name.
    for leaked in ("etc/hostname", "etc/resolv.conf"):
        (target / leaked).unlink(missing_ok=True)


def build_root(spec: RootSpec | None = None, cache: Path | None = None) -> Path:
    """Return the cached root for spec, building it first when needed.

    The build happens in a temporary directory beside the final one and is renamed into place,
    so a root that exists is complete. A lock file serialises concurrent builders.
    """
    check_prerequisites()
    spec = spec or default_spec()
    key_dir = (cache or cache_dir()) / spec.key
    final = key_dir / "root"
    if final.is_dir():
        return final
    with _locked(key_dir.parent / f"{spec.key}.lock"):
        if final.is_dir():
            return final
        for stale in key_dir.glob("build-*"):
            remove_tree(stale)
        unreachable = _probe_mirror(spec)
        if unreachable:
            raise E2EUnavailable(unreachable)
        key_dir.mkdir(parents=True, exist_ok=True)
        (key_dir / "spec.json").write_text(spec.describe() + "\n", encoding="utf-8")
        log = key_dir / "build.log"
        log.write_bytes(b"")
        work = Path(tempfile.mkdtemp(prefix="build-", dir=key_dir))
        try:
            print(f"e2e: building the Debian root in {key_dir} (log {log})", file=sys.stderr)
            started = time.monotonic()
            try:
                _build_into(work / "root", spec, log)
            except BuildError:
                unreachable = _probe_mirror(spec)
                if unreachable:
                    raise E2EUnavailable(f"building the root failed: {unreachable}") from None
                raise
            os.rename(work / "root", final)
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"\nbuilt in {time.monotonic() - started:.1f} s\n")
        finally:
            remove_tree(work)
    return final


def tmpfs_copies() -> bool | None:
    """DYNMIGRATE_E2E_TMPFS: 1 = per-test roots on tmpfs, 0 = on disk, unset = tmpfs if possible."""
    value = os.environ.get("DYNMIGRATE_E2E_TMPFS", "").strip().lower()
    if not value:
        return None
    return value not in ("0", "false", "no")


def fresh_copy(tmpdir: Path, source: Path | None = None, *, tmpfs: bool | None = None) -> Path:
    """Copy the cached root into tmpdir/root (cp -a --reflink=auto) and return that path.

    With tmpfs (default: DYNMIGRATE_E2E_TMPFS, else yes unless DYNMIGRATE_E2E_KEEP is set) the
    copy goes onto a private tmpfs mounted at tmpdir/root: creating ~15,000 inodes on a slow disk
    costs seconds per test, on tmpfs under one. Unlike overlayfs, tmpfs renames directories like a
    real filesystem. Delete the copy with remove_tree(), which also unmounts it.
    """
    src = source if source is not None else build_root()
    dest = Path(tmpdir) / "root"
    if dest.exists():
        raise FileExistsError(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if tmpfs is None:
        tmpfs = tmpfs_copies()
    use_tmpfs = (not keep_roots()) if tmpfs is None else tmpfs
    if use_tmpfs:
        dest.mkdir(mode=0o755)
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "mode=0755", "dm-e2e-root", str(dest)],
            check=False,
            capture_output=True,
            text=True,
            env={"PATH": _HOST_PATH},
        )
        if mounted.returncode != 0:
            dest.rmdir()
            if tmpfs:
                raise RuntimeError(f"cannot mount a tmpfs on {dest}: {mounted.stderr.strip()}")
            use_tmpfs = False
    try:
        copied = subprocess.run(
            ["cp", "-a", "--reflink=auto", f"{src}/." if use_tmpfs else str(src), str(dest)],
            check=False,
            capture_output=True,
            text=True,
            env={"PATH": _HOST_PATH},
        )
        if copied.returncode != 0:
            raise RuntimeError(f"copying {src} to {dest} failed: {copied.stderr.strip()}")
    except BaseException:
        remove_tree(dest)
        raise
    return dest


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class _Stat:
    pid: int
    comm: str
    state: str
    ppid: int
    starttime: int


def _stat(pid: int) -> _Stat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    open_paren, close_paren = raw.find("("), raw.rfind(")")
    fields = raw[close_paren + 2 :].split()
    return _Stat(pid, raw[open_paren + 1 : close_paren], fields[0], int(fields[1]), int(fields[19]))


def _children(ppid: int) -> list[_Stat]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st.ppid == ppid:
                found.append(st)
    return found


def _alive(st: _Stat) -> bool:
    """The very process st describes still exists (same pid *and* start time) and is no zombie."""
    now = _stat(st.pid)
    return now is not None and now.starttime == st.starttime and now.state not in ("Z", "X")


def _set_pdeathsig() -> None:
    """Child, before exec: when the test process dies, nspawn gets SIGTERM (orderly poweroff)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


_LIVE: set[Container] = set()


@atexit.register
def _kill_leftovers() -> None:
    for container in list(_LIVE):
        with contextlib.suppress(Exception):
            container.kill()


def unique_machine_name(hint: str = "") -> str:
    """A valid, unique machine (host) name: 'dm-<hint>-<8 hex>', at most 64 characters."""
    cleaned = "".join(c if c.isascii() and c.isalnum() else "-" for c in hint.lower())
    cleaned = "-".join(filter(None, cleaned.split("-")))[:40].strip("-")
    return "-".join(filter(None, ("dm", cleaned, uuid.uuid4().hex[:8])))


class Container:
    """A root directory booted with systemd-nspawn.

    Use as a context manager (boots on enter, always shuts down on exit)::

        with Container(root, log_path=tmp / "nspawn.log") as c:
            print(c.run(["redis-cli", "ping"]).stdout)
    """

    def __init__(
        self,
        root: Path,
        *,
        log_path: Path,
        machine: str | None = None,
        boot_timeout: float = BOOT_TIMEOUT,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.root = Path(root)
        self.log_path = Path(log_path)
        self.machine = machine or unique_machine_name()
        self.boot_timeout = boot_timeout
        self.shutdown_timeout = shutdown_timeout
        self.extra_args = tuple(extra_args)
        self.nspawn: subprocess.Popen[bytes] | None = None
        self._init: _Stat | None = None
        self._nsenter = _tool("nsenter")
        # Timings in seconds, and how the last shutdown ended: poweroff, sigterm or sigkill.
        self.boot_seconds: float | None = None
        self.shutdown_seconds: float | None = None
        self.shutdown_method: str | None = None

    # ---- state

    @property
    def pid(self) -> int:
        """Host pid of the container's init (systemd)."""
        if self._init is None:
            raise RuntimeError(f"container {self.machine} is not booted")
        return self._init.pid

    @property
    def nspawn_pid(self) -> int:
        if self.nspawn is None:
            raise RuntimeError(f"container {self.machine} was never started")
        return self.nspawn.pid

    @property
    def running(self) -> bool:
        """Our systemd-nspawn process has not exited."""
        return self.nspawn is not None and self.nspawn.poll() is None

    @property
    def init_alive(self) -> bool:
        """The container's init (same pid and start time as found at boot) still exists."""
        return self._init is not None and _alive(self._init)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return _file_tail(self.log_path, lines)

    # ---- lifecycle

    def boot(self) -> Self:
        """Start nspawn and wait until the system is running (or degraded)."""
        if self.nspawn is not None:
            raise RuntimeError(f"container {self.machine} was already started")
        Path("/run/systemd/nspawn").mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            _tool("systemd-nspawn"),
            "-D",
            str(self.root),
            "--boot",
            "--register=no",
            "--keep-unit",
            "--private-network",
            f"--machine={self.machine}",
            "--console=read-only",
            *self.extra_args,
        ]
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            log.write(f"$ {shlex.join(cmd)}\n".encode())
            log.flush()
            self.nspawn = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal ^C reaches pytest, which then shuts down
                preexec_fn=_set_pdeathsig,
                env={"PATH": _HOST_PATH, "LANG": "C.UTF-8"},
            )
        _LIVE.add(self)
        try:
            self._init = self._find_init(started + self.boot_timeout)
            self._wait_running(started + self.boot_timeout)
        except BaseException:
            self.shutdown()
            raise
        self.boot_seconds = time.monotonic() - started
        return self

    def _find_init(self, deadline: float) -> _Stat:
        assert self.nspawn is not None
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise BootError(self._diagnose("systemd-nspawn exited during boot"))
            for child in _children(self.nspawn.pid):
                if child.comm == "systemd":
                    return child
            time.sleep(0.05)
        raise BootError(self._diagnose("no container init (systemd) appeared under systemd-nspawn"))

    def _wait_running(self, deadline: float) -> None:
        state = "(never asked)"
        while time.monotonic() < deadline:
            if not self.running:
                raise BootError(self._diagnose("systemd-nspawn exited during boot"))
            try:
                proc = self.run(["systemctl", "is-system-running"], check=False, timeout=15)
                state = proc.stdout.strip() or proc.stderr.strip()
            except subprocess.TimeoutExpired:
                state = "(systemctl is-system-running timed out)"
            if state in ("running", "degraded"):
                return
            if state == "maintenance":
                raise BootError(self._diagnose("the container booted into maintenance mode"))
            time.sleep(0.2)
        raise BootError(self._diagnose(f"not running after {self.boot_timeout:.0f} s (last state: {state})"))

    def _diagnose(self, headline: str) -> str:
        parts = [f"container {self.machine} ({self.root}): {headline}"]
        if self.running and self._init is not None:
            try:
                for what in ("--failed", "list-jobs"):
                    shown = self.run(["systemctl", what, "--no-legend", "--full"], check=False, timeout=15)
                    parts.append(f"--- systemctl {what} ---\n{shown.stdout}{shown.stderr}".strip())
            except (subprocess.TimeoutExpired, OSError) as exc:
                parts.append(f"(systemctl inside failed: {exc})")
        parts.append(f"--- {self.log_path} (tail) ---\n{self.log_tail()}")
        message = "\n".join(parts)
        print(message, file=sys.stderr, flush=True)
        return message

    def shutdown(self) -> None:
        """Power off; after a timeout SIGTERM, then SIGKILL, the nspawn process we started.

        Safe to call more than once, and on a container that never booted or already died.
        """
        if self.nspawn is None:
            return
        if self.nspawn.poll() is not None:
            self._reap_init()
            _LIVE.discard(self)
            return
        started = time.monotonic()
        try:
            self.shutdown_method = "poweroff"
            if self._init is not None and _alive(self._init):
                with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                    self.run(["systemctl", "poweroff", "--no-block"], check=False, timeout=30)
                self._wait_nspawn(self.shutdown_timeout)
            if self.nspawn.poll() is None:
                # nspawn turns SIGTERM into an orderly poweroff of the container
                self.shutdown_method = "sigterm"
                self.nspawn.send_signal(signal.SIGTERM)
                self._wait_nspawn(min(30.0, self.shutdown_timeout))
            if self.nspawn.poll() is None:
                self.kill()
        finally:
            self._reap_init()
            _LIVE.discard(self)
            self.shutdown_seconds = time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL our nspawn and the container init (pid 1 of the container's pid namespace)."""
        if self.nspawn is None:
            return
        if self.nspawn.poll() is None:
            self.shutdown_method = "sigkill"
            self.nspawn.kill()
            self.nspawn.wait(timeout=30)
        self._reap_init()
        _LIVE.discard(self)

    def _reap_init(self) -> None:
        # Killing pid 1 of the container's pid namespace ends every process in it. The start
        # time check makes sure the pid was not reused by someone else's process.
        if self._init is not None and _alive(self._init):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._init.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while _alive(self._init) and time.monotonic() < deadline:
                time.sleep(0.05)

    def _wait_nspawn(self, timeout: float) -> None:
        assert self.nspawn is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.nspawn.wait(timeout=timeout)

    def __enter__(self) -> Self:
        if self.nspawn is None:
            self.boot()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # ---- commands

    def run(
        self,
        cmd: Sequence[str] | str,
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run cmd inside the container (all its namespaces, as root) and capture text output.

        A str is run with /bin/sh -c. The environment is a clean one (PATH, HOME, LANG) plus env.
        On timeout the whole nsenter process group is killed and TimeoutExpired raised; with
        check=True a non-zero exit raises CommandError (whose message includes the output).
        """
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        full_env = {
            "PATH": CONTAINER_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "SYSTEMD_PAGER": "",
            "SYSTEMD_COLORS": "0",
        }
        full_env.update(env or {})
        full = [self._nsenter, "-t", str(self.pid), "-a", "--", *argv]
        with subprocess.Popen(
            full,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=full_env,
            start_new_session=True,
        ) as proc:
            try:
                stdout, stderr = proc.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise
        result = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
        if check and result.returncode != 0:
            raise CommandError(result.returncode, argv, stdout, stderr)
        return result

    def wait_for(
        self, cmd: Sequence[str] | str, *, timeout: float = 30.0, interval: float = 0.2
    ) -> subprocess.CompletedProcess[str]:
        """Re-run cmd until it exits 0 (e.g. a daemon starts listening); CommandError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.run(cmd, check=False, timeout=max(1.0, deadline - time.monotonic()))
            if result.returncode == 0:
                return result
            if time.monotonic() >= deadline:
                raise CommandError(result.returncode, result.args, result.stdout, result.stderr)
            time.sleep(interval)

    def read_text(self, path: str) -> str:
        """A file's content as seen inside the container (symlinks resolve in there)."""
        return self.run(["cat", "--", path]).stdout

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Container {self.machine} {state} root={self.root}>"


class ContainerFactory:
    """Makes containers from fresh copies of a built root, each in its own dir under tmp_path.

    close() powers all of them off and deletes their root copies (logs stay; set
    DYNMIGRATE_E2E_KEEP=1 to keep the roots too).
    """

    def __init__(self, root: Path, tmp_path: Path, name: str) -> None:
        self._root = root
        self._tmp_path = tmp_path
        self._name = name
        self._made: list[Container] = []
        self._roots: list[Path] = []

    def __call__(self, *, prepare: Callable[[Path], None] | None = None, boot: bool = True) -> Container:
        """A new container; prepare(root_copy) runs on the host before boot."""
        workdir = self._tmp_path / f"c{len(self._roots)}"
        workdir.mkdir()
        root = fresh_copy(workdir, self._root)
        self._roots.append(root)
        container = Container(root, log_path=workdir / "nspawn.log", machine=unique_machine_name(self._name))
        self._made.append(container)
        if prepare is not None:
            prepare(root)
        if boot:
            container.boot()
        return container

    @property
    def made(self) -> list[Container]:
        return list(self._made)

    def close(self) -> None:
        """Shut every container down, then delete the root copies of the stopped ones."""
        errors: list[BaseException] = []
        for container in reversed(self._made):
            try:
                container.shutdown()
            except Exception as exc:  # shut the others down regardless
                errors.append(exc)
        busy = {c.root for c in self._made if c.running or c.init_alive}
        if not keep_roots():
            for root in self._roots:
                if root in busy:
                    continue
                try:
                    remove_tree(root)
                except Exception as exc:
                    errors.append(exc)
        self._made.clear()
        self._roots.clear()
        if errors:
            raise errors[0]
