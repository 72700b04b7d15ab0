"""The merged tree booted with systemd-nspawn; commands run in it through nsenter.

Runs inside the rehearsal's own pid namespace: every pid here is one of that namespace, and when
the worker (its pid 1) ends, the kernel kills the container with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BootError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    comm: str
    ppid: int
    starttime: int


def stat(pid: int) -> Proc | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    open_paren, close_paren = raw.find("("), raw.rfind(")")
    fields = raw[close_paren + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return Proc(pid, raw[open_paren + 1 : close_paren], int(fields[1]), int(fields[19]))


def alive(p: Proc) -> bool:
    now = stat(p.pid)
    return now is not None and now.starttime == p.starttime


def children(ppid: int) -> list[Proc]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            p = stat(int(entry))
            if p is not None and p.ppid == ppid:
                out.append(p)
    return out


def tool(name: str) -> str:
    found = shutil.which(name, path=PATH)
    if found is None:
        raise BootError(f"{name} not found (apt-get install systemd-container util-linux)")
    return found


class Container:
    def __init__(self, root: Path, *, machine: str, log: Path, extra: Sequence[str] = ()) -> None:
        self.root = root
        self.machine = machine
        self.log = log
        self.extra = tuple(extra)
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.init: Proc | None = None
        self.nsenter = tool("nsenter")

    def boot(self, timeout: float) -> None:
        Path("/run/systemd/nspawn").mkdir(parents=True, exist_ok=True)
        cmd = [
            tool("systemd-nspawn"),
            "-D",
            str(self.root),
            "--boot",
            "--register=no",
            "--keep-unit",
            "--private-network",
            f"--machine={self.machine}",
            "--console=read-only",
            *self.extra,
        ]
        deadline = time.monotonic() + timeout
        with open(self.log, "ab") as out:
            self.nspawn = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={"PATH": PATH, "LANG": "C.UTF-8"},
            )
        while self.init is None:
            if self.nspawn.poll() is not None or time.monotonic() > deadline:
                raise BootError(f"systemd-nspawn did not start the copy's init: {self.tail()}")
            self.init = next((c for c in children(self.nspawn.pid) if c.comm == "systemd"), None)
            time.sleep(0.05)
        state = ""
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise BootError(f"systemd-nspawn exited during boot: {self.tail()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                state = self.run(["systemctl", "is-system-running"], timeout=15).stdout.strip()
            if state in ("running", "degraded"):
                return
            if state == "maintenance":
                raise BootError("the copy booted into maintenance mode")
            time.sleep(0.2)
        raise BootError(f"the copy did not finish booting in {timeout:.0f} s (last state: {state or 'none'})")

    def tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(x.strip() for x in text.splitlines()[-lines:] if x.strip())

    def run(
        self,
        argv: Sequence[str] | str,
        *,
        timeout: float = 120.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """argv inside every namespace of the copy, as its root; a str goes to /bin/sh -c."""
        if self.init is None:
            raise BootError("the copy is not booted")
        cmd = ["/bin/sh", "-c", argv] if isinstance(argv, str) else list(argv)
        full_env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "SYSTEMD_PAGER": ""}
        full_env.update(env or {})
        with subprocess.Popen(
            [self.nsenter, "-t", str(self.init.pid), "-a", "--", *cmd],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=full_env,
            start_new_session=True,
        ) as proc:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                return subprocess.CompletedProcess(cmd, 124, out, err + f"\n(timed out after {timeout:.0f} s)")
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def shutdown(self, timeout: float = 60.0) -> None:
        """Power off; then SIGTERM and SIGKILL our nspawn; then the init itself."""
        if self.nspawn is None:
            return
        if self.nspawn.poll() is None and self.init is not None and alive(self.init):
            with contextlib.suppress(OSError):
                self.run(["systemctl", "poweroff", "--no-block"], timeout=30)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.nspawn.wait(timeout=timeout)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.nspawn.poll() is None:
                self.nspawn.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.nspawn.wait(timeout=20)
        if self.init is not None and alive(self.init):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init.pid, signal.SIGKILL)
