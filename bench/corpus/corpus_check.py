"""`corpus.py check`: does each daemon's setup and probe work alone, before any migration?

For every daemon of a suite (or the ones named with --only), in a throwaway copy of its root (an
overlay whose upper layer is removed afterwards) booted with systemd-nspawn:

1. the units its package had enabled are enabled and started again, and the main unit with them,
   as the admin who installed the package would have found them;
2. the probe runs once before the setup: on the package's built-in defaults it must fail, or it
   does not check what the setup configured;
3. the setup runs, then the probe, as the plan's health check runs it (the unit settles, then one
   run of the probe);
4. the copy is powered off and thrown away, so the next daemon starts alone.

The outcome is one table row per daemon. Everything below ``CheckResult`` is pure and tested;
the container part needs root, systemd-nspawn and nsenter.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from corpus import HERE, PROBE_PATH, CorpusError, Daemon, enabled_units, shell_line

HOST_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT: Final = 120.0
START_TIMEOUT: Final = 90
SETTLE: Final = 3.0
SETUP_TIMEOUT: Final = 600.0
PROBE_TIMEOUT: Final = 300.0


class Status(enum.StrEnum):
    OK = "ok"  # the probe fails on defaults and passes after the setup
    WEAK = "weak"  # the setup and probe work, but the probe also passes on built-in defaults
    FAIL = "FAIL"  # the setup or the probe failed (or the copy did not boot)
    BROKEN = "broken"  # marked broken in daemons.ini and still not working
    UNBROKEN = "UNBROKEN"  # marked broken in daemons.ini, yet the setup and probe work


@dataclass(frozen=True, slots=True)
class Step:
    """One command run inside the copy: its exit status and the tail of what it printed."""

    code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def first_error(self) -> str:
        """The line that says why it failed: the last line mentioning a failure, else the last line."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        if not lines:
            return f"exit {self.code}"
        for line in reversed(lines):
            lowered = line.lower()
            if any(word in lowered for word in ("fail", "error", "denied", "refused", "timed out", "not ")):
                return line
        return lines[-1]


@dataclass(frozen=True, slots=True)
class CheckResult:
    daemon: str
    suite: str
    broken: str  # the daemons.ini reason, "" when the daemon is expected to work
    boot_error: str = ""
    before: Step | None = None  # the probe on built-in defaults
    setup: Step | None = None
    probe: Step | None = None
    state: str = ""  # the main unit's state after the probe


def classify(result: CheckResult) -> tuple[Status, str]:
    """The row's status and a short note saying why."""
    works = result.setup is not None and result.setup.ok and result.probe is not None and result.probe.ok
    if result.broken:
        if works:
            return Status.UNBROKEN, f"marked broken ({result.broken}) but the setup and probe work"
        return Status.BROKEN, result.broken
    if result.boot_error:
        return Status.FAIL, f"boot: {result.boot_error}"
    if result.setup is None or not result.setup.ok:
        why = result.setup.first_error() if result.setup is not None else "not run"
        return Status.FAIL, f"setup: {why}"
    if result.probe is None or not result.probe.ok:
        why = result.probe.first_error() if result.probe is not None else "not run"
        return Status.FAIL, f"probe: {why}"
    if result.before is not None and result.before.ok:
        return Status.WEAK, "the probe also passes before the setup, on built-in defaults"
    return Status.OK, ""


def _cell(text: str, width: int = 110) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def render_table(results: Sequence[CheckResult]) -> str:
    """A markdown table, one row per daemon in the order checked, and a count per status."""
    lines = [
        "| daemon | suite | before setup | setup | probe | unit | status | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    counts: dict[Status, int] = {}
    for r in results:
        status, note = classify(r)
        counts[status] = counts.get(status, 0) + 1

        def mark(step: Step | None, good: str, bad: str) -> str:
            return "-" if step is None else good if step.ok else bad

        lines.append(
            "| "
            + " | ".join(
                (
                    r.daemon,
                    r.suite,
                    mark(r.before, "passes", "fails"),
                    mark(r.setup, "ok", f"exit {r.setup.code}" if r.setup else ""),
                    mark(r.probe, "ok", f"exit {r.probe.code}" if r.probe else ""),
                    r.state or "-",
                    status.value,
                    _cell(note),
                )
            )
            + " |"
        )
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status if s in counts)
    lines.append("")
    lines.append(f"{len(results)} daemons: {summary}")
    return "\n".join(lines) + "\n"


def failed(results: Sequence[CheckResult]) -> bool:
    """True when a row needs a fix: FAIL, WEAK, or a daemon marked broken that works."""
    return any(classify(r)[0] in (Status.FAIL, Status.WEAK, Status.UNBROKEN) for r in results)


# ---------------------------------------------------------------- the copy (root only)


class CopyError(Exception):
    pass


def _set_pdeathsig() -> None:
    """Child, before exec: when the check dies, its nspawn gets SIGTERM (an orderly poweroff)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


def _children(ppid: int) -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        comm = raw[raw.find("(") + 1 : raw.rfind(")")]
        if int(raw[raw.rfind(")") + 2 :].split()[1]) == ppid:
            found.append((int(entry), comm))
    return found


@contextlib.contextmanager
def overlay_copy(root: Path, scratch: Path) -> Iterator[Path]:
    """ROOT as the lower layer of an overlay; the upper layer is removed on the way out."""
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="copy-", dir=scratch))
    upper, ovl_work, merged = work / "upper", work / "work", work / "merged"
    for d in (upper, ovl_work, merged):
        d.mkdir()
    # redirect_dir=on: a directory of the lower layer can be renamed (systemd and dpkg do); the
    # root was built by corpus.py itself, so its layers are trusted
    options = f"lowerdir={root},upperdir={upper},workdir={ovl_work},redirect_dir=on"
    proc = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise CopyError(f"cannot mount an overlay over {root}: {proc.stderr.strip()}")
    try:
        yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


class Booted:
    """A directory booted with systemd-nspawn; commands run inside it through nsenter."""

    def __init__(self, root: Path, console: Path) -> None:
        self.root = root
        self.log = console
        self.machine = f"corpus-{uuid.uuid4().hex[:8]}"
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.init = 0

    def __enter__(self) -> Booted:
        Path("/run/systemd/nspawn").mkdir(parents=True, exist_ok=True)
        cmd = [
            "systemd-nspawn",
            "-D",
            str(self.root),
            "--boot",
            "--register=no",
            "--keep-unit",
            "--private-network",
            f"--machine={self.machine}",
            "--console=read-only",
        ]
        with open(self.log, "ab") as out:
            self.nspawn = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_set_pdeathsig,
                env={"PATH": HOST_PATH, "LANG": "C.UTF-8"},
            )
        try:
            self._wait_booted(time.monotonic() + BOOT_TIMEOUT)
        except BaseException:
            self.shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _wait_booted(self, deadline: float) -> None:
        assert self.nspawn is not None
        while not self.init:
            if self.nspawn.poll() is not None or time.monotonic() > deadline:
                raise CopyError(f"systemd-nspawn did not start the copy's init (see {self.log})")
            self.init = next((pid for pid, comm in _children(self.nspawn.pid) if comm == "systemd"), 0)
            time.sleep(0.1)
        state = ""
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise CopyError(f"systemd-nspawn exited during boot (see {self.log})")
            state = self.run("systemctl is-system-running", timeout=15).output.strip()
            if state in ("running", "degraded"):
                return
            if state == "maintenance":
                raise CopyError("the copy booted into maintenance mode")
            time.sleep(0.3)
        raise CopyError(f"the copy did not finish booting in {BOOT_TIMEOUT:.0f} s (last state: {state})")

    def run(self, command: str, timeout: float = 120.0) -> Step:
        """A shell line inside every namespace of the copy, as its root."""
        env = {"PATH": HOST_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "SYSTEMD_PAGER": ""}
        with subprocess.Popen(
            ["nsenter", "-t", str(self.init), "-a", "--", "/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
            start_new_session=True,
        ) as proc:
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
                return Step(124, f"{out}\ntimed out after {timeout:.0f} s")
        return Step(proc.returncode, out)

    def shutdown(self) -> None:
        if self.nspawn is None or self.nspawn.poll() is not None:
            return
        if self.init:
            with contextlib.suppress(OSError):
                self.run("systemctl poweroff --no-block", timeout=30)
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and self.nspawn.poll() is None:
                self.nspawn.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.nspawn.wait(timeout=60 if sig is None else 20)
            if self.nspawn.poll() is not None:
                return


def _logged(log: Path, title: str, step: Step) -> Step:
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"\n=== {title}: exit {step.code}\n{step.output}")
    return step


def _wait_settled(c: Booted, unit: str) -> str:
    """As the plan's health check: until the unit is active or failed, then a short settle."""
    state = ""
    for _ in range(START_TIMEOUT):
        state = c.run(f"systemctl is-active -- {unit}", timeout=30).output.strip()
        if state in ("active", "failed", "inactive"):
            break
        time.sleep(1)
    time.sleep(SETTLE)
    return c.run(f"systemctl is-active -- {unit}", timeout=30).output.strip()


def check_daemon(daemon: Daemon, suite: str, root: Path, scratch: Path, log: Path) -> CheckResult:
    """Boot a throwaway copy of ROOT and enable, probe, set up and probe DAEMON in it alone."""
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"{daemon.name} on {suite}, root {root}\n", encoding="utf-8")
    log.with_suffix(".console").write_bytes(b"")
    base = CheckResult(daemon=daemon.name, suite=suite, broken=daemon.broken)
    try:
        with overlay_copy(root, scratch) as merged:
            target = merged / PROBE_PATH.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HERE / "probe.py", target)
            target.chmod(0o755)
            units = [*enabled_units(merged, daemon.package), daemon.unit]
            with Booted(merged, log.with_suffix(".console")) as c:
                # enable, then start: "enable --now" starts nothing when systemctl hands an init
                # script over to systemd-sysv-install, and a unit without [Install] cannot be enabled
                start = "; ".join(f"systemctl enable -- {u}; systemctl start -- {u}" for u in units)
                _logged(log, "start", c.run(start, timeout=300))
                _wait_settled(c, daemon.unit)
                before = _logged(log, "probe before the setup", c.run(shell_line(daemon.probe), PROBE_TIMEOUT))
                setup = _logged(log, "setup", c.run(shell_line(daemon.setup), SETUP_TIMEOUT))
                probe: Step | None = None
                if setup.ok:
                    _wait_settled(c, daemon.unit)
                    probe = _logged(log, "probe", c.run(shell_line(daemon.probe), PROBE_TIMEOUT))
                state = c.run(f"systemctl is-active -- {daemon.unit}", timeout=30).output.strip()
                if probe is None or not probe.ok:
                    status = f"systemctl status --no-pager -n 0 -- {daemon.unit}; journalctl -n 60 --no-pager -o cat"
                    _logged(log, "status and journal", c.run(status, timeout=60))
                return CheckResult(
                    daemon=daemon.name,
                    suite=suite,
                    broken=daemon.broken,
                    before=before,
                    setup=setup,
                    probe=probe,
                    state=state,
                )
    except (CopyError, OSError) as err:
        return CheckResult(daemon=base.daemon, suite=suite, broken=base.broken, boot_error=str(err))


def check_suite(
    daemons: Sequence[Daemon],
    suite: str,
    root_of: Callable[[Daemon], Path],
    workdir: Path,
    report: Callable[[CheckResult], None],
) -> list[CheckResult]:
    results = []
    for daemon in daemons:
        try:
            root = root_of(daemon)
        except CorpusError as err:
            result = CheckResult(daemon=daemon.name, suite=suite, broken=daemon.broken, boot_error=str(err))
        else:
            result = check_daemon(daemon, suite, root, workdir / "scratch", workdir / suite / f"{daemon.name}.log")
        report(result)
        results.append(result)
    return results
