"""Start the worker in its own mount and pid namespace and collect its result (the CLI calls this)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import IO

from dynmigrate.rehearse.container import PATH, children, stat
from dynmigrate.rehearse.model import Rehearsal, from_json_data
from dynmigrate.rehearse.request import SCRIPT_ENV, Request


class CannotRehearse(Exception):
    """This machine or these arguments cannot give a rehearsal; the message says why."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage  # the arguments are wrong (an unknown account or unit), not the machine


def check_environment(root: str) -> None:
    if os.geteuid() != 0:
        raise CannotRehearse("rehearse needs root (it mounts an overlay and boots the copy with systemd-nspawn)")
    if sys.platform != "linux":
        raise CannotRehearse("rehearse needs Linux")
    missing = [t for t in ("unshare", "nsenter", "systemd-nspawn", "mount") if shutil.which(t, path=PATH) is None]
    if missing:
        raise CannotRehearse(f"rehearse needs {', '.join(missing)} (apt-get install systemd-container util-linux)")
    if not Path(root).is_dir():
        raise CannotRehearse(f"ROOT {root} is not a directory")
    if not any(Path(root, p).exists() for p in ("sbin/init", "lib/systemd/systemd", "usr/lib/systemd/systemd")):
        raise CannotRehearse(f"ROOT {root} has no systemd to boot (no /sbin/init, no /lib/systemd/systemd)")


def inside(path: str, root: str) -> bool:
    """path lies in the image ROOT (for the running host, /, a report file is the operator's own)."""
    p, r = os.path.realpath(path), os.path.realpath(root)
    return r != "/" and (p == r or p.startswith(r + "/"))


def _temp_parent() -> str:
    return "/run" if os.access("/run", os.W_OK) else tempfile.gettempdir()


def _host_pid_of_init(unshare_pid: int) -> tuple[int, int]:
    """Host pids of the worker (child of unshare) and of the copy's init (child of systemd-nspawn)."""
    workers = children(unshare_pid)
    if not workers:
        return 0, 0
    todo, init = [workers[0].pid], 0
    while todo and not init:
        pid = todo.pop()
        for ch in children(pid):
            parent = stat(pid)
            if ch.comm == "systemd" and parent is not None and parent.comm == "systemd-nspawn":
                init = ch.pid
            todo.append(ch.pid)
    return workers[0].pid, init


def _relay(stream: IO[str] | None) -> None:
    """Copy the worker's progress lines to stderr as they come."""
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):
        for line in stream:
            sys.stderr.write(line)
            sys.stderr.flush()


def rehearse(req_args: dict[str, object]) -> Rehearsal:
    """Run a rehearsal; req_args are Request fields except tmpdir, parent_pidfd and script_env."""
    root = str(req_args["root"])
    check_environment(root)
    tmpdir = tempfile.mkdtemp(prefix="dynmigrate-rehearse-", dir=_temp_parent())
    sys.stderr.write(f"rehearse: temporary folder {tmpdir}\n")
    pidfd = os.pidfd_open(os.getpid())
    env_pass = {k: os.environ[k] for k in SCRIPT_ENV if k in os.environ}
    req = Request(tmpdir=tmpdir, parent_pidfd=pidfd, script_env=env_pass, **req_args)  # type: ignore[arg-type]
    try:
        worker_pid, line = _run_worker(req, pidfd)
    finally:
        os.close(pidfd)
    if not req.keep or not line:
        with contextlib.suppress(OSError):
            os.rmdir(tmpdir)  # the worker removes it; this covers a worker that never started
    rehearsal = _result(line)
    if req.keep:
        rehearsal = replace(rehearsal, kept=_kept_copy(worker_pid, tmpdir))
    return rehearsal


def _worker_command() -> list[str]:
    """The worker in its own mount and pid namespace, killed with this process."""
    return [
        shutil.which("unshare", path=PATH) or "unshare",
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "--",
        sys.executable,
        "-m",
        "dynmigrate.rehearse.worker",
    ]


def _run_worker(req: Request, pidfd: int) -> tuple[int, str]:
    """Start the worker, hand it the request and read its result line: (its pid, the line).

    Without --keep, waits until the worker has ended; with it, the worker (and the copy) go on.
    """
    env = {"PATH": PATH, "LANG": "C.UTF-8", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    # stderr through a pipe relayed here, never inherited: a copy kept with --keep must not
    # hold the caller's stderr open (a caller that captures it would wait for ever)
    proc = subprocess.Popen(
        _worker_command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=(pidfd,),
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    relay = threading.Thread(target=_relay, args=(proc.stderr,), daemon=True)
    relay.start()
    sys.stderr.write(f"rehearse: worker {proc.pid}\n")
    sys.stderr.flush()
    proc.stdin.write(req.to_json())
    proc.stdin.close()
    line = proc.stdout.readline()
    if not req.keep:
        proc.wait()
        relay.join(timeout=10)
    return proc.pid, line


def _result(line: str) -> Rehearsal:
    """The rehearsal from the worker's result line; CannotRehearse for none or for its error."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        raise CannotRehearse("the rehearsal ended without a result (see the messages above)") from None
    if "error" in data:
        raise CannotRehearse(str(data["error"]), usage=bool(data.get("usage")))
    return from_json_data(data["rehearsal"])


def _kept_copy(unshare_pid: int, tmpdir: str) -> tuple[str, ...]:
    """How to enter, inspect and remove a copy kept running with --keep."""
    worker, init = _host_pid_of_init(unshare_pid)
    return (
        f"kept: the copy is still running; enter it with: nsenter -t {init} -a",
        f"see its files with: nsenter -t {worker} -m ls {tmpdir}/merged",
        f"remove it (power off, unmount, delete the folder) with: kill {worker}",
    )
