"""The rehearsal itself. Runs as pid 1 of its own pid namespace, in its own mount namespace.

Started by launch.py under ``unshare --mount --propagation private --pid --fork --mount-proc``:
every mount made here is invisible to the host and disappears with the namespace, and when this
process ends the kernel kills everything in its pid namespace, the booted copy included. A
watchdog thread watches the CLI through a pidfd: when the CLI dies (even by SIGKILL) it kills
the copy, unmounts the tmpfs and removes the temporary folder before exiting.

Protocol: a Request as JSON on stdin; progress lines ("rehearse: ...") on stderr; the Rehearsal
as one JSON line on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from dynmigrate.app import RUNTIME_UNIT_DIRS, ScanResult, run_scan
from dynmigrate.model.common import Effect, Verdict
from dynmigrate.model.plan import AccountPlan, MigrationPlan
from dynmigrate.model.report import AccountVerdict
from dynmigrate.output.write import PlanWriteError, write_plan
from dynmigrate.plan.planner import PlanOptions, Selection, SelectionError, make_plan
from dynmigrate.rehearse import access, overlay, runtime
from dynmigrate.rehearse.classify import classify
from dynmigrate.rehearse.container import BootError, Container, alive
from dynmigrate.rehearse.model import (
    AccountFacts,
    Environment,
    Rehearsal,
    Step,
    UnitCheck,
    to_json_data,
)
from dynmigrate.rehearse.request import PLAN_FOLDER, SETUP_NEEDS_TRUST, SETUP_NO_FULL_COPY, Request

STAGES = ("stage0", "stage1", "stage2", "stage3")
# Accounts that are not a service's own: nothing to migrate (N/A), whatever else blocks them.
NOT_DEDICATED_RULES = frozenset({"DM102", "DM106", "DM109"})
ERROR_LINE = re.compile(r"error|fail|refus|cannot|denied|not found|no such", re.IGNORECASE)
STEP_TIMEOUT = 900.0
SETTLE_TIMEOUT = 30.0
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")

LIMITS = (
    "the copy has a private network without uplink: services that need the network, other hosts or "
    "hardware can fail here and work on the real host (or the other way round)",
    "the copy holds what ROOT held when it was mounted; state that lives elsewhere (other disks not "
    "layered, remote databases, secrets from a vault) is missing",
    "a lower layer that changes while mounted gives undefined results: rehearse a live host at a quiet "
    "moment, or rehearse a snapshot of it",
    "all selected accounts are migrated together with one plan, as an operator would run it: a stage "
    "that fails fails for every account in it, and their times are the same",
)


class RehearseError(Exception):
    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


def say(message: str) -> None:
    sys.stderr.write(f"rehearse: {message}\n")
    sys.stderr.flush()


# ------------------------------------------------------------------------------------ teardown


class Teardown:
    """Everything to undo, in one place: run by the normal path, a signal or the watchdog."""

    def __init__(self, tmpdir: Path) -> None:
        self.tmpdir = tmpdir
        self.mounted: list[str] = []
        self.cgroups: list[Path] = []
        self.container: Container | None = None
        self.lock = threading.Lock()
        self.done = False

    def run(self, *, graceful: bool) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
            if graceful and self.container is not None:
                say("powering the copy off")
                self.container.shutdown()
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(-1, signal.SIGKILL)  # pid 1 of this namespace: every other process in it
                _reap_all()
            for point in reversed(self.mounted):
                with contextlib.suppress(OSError):
                    overlay.umount(point)
            leave_cgroups(self.cgroups)
            with contextlib.suppress(OSError):
                self.tmpdir.rmdir()


def _reap_all(timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def watch_parent(pidfd: int, teardown: Teardown, disarmed: threading.Event) -> None:
    """Thread: when the CLI is gone, kill the copy, clean up and end the namespace."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    while True:
        if poller.poll(500) and not disarmed.is_set():
            teardown.run(graceful=False)
            os._exit(137)
        if disarmed.is_set():
            return


# ------------------------------------------------------------------------------------ cgroups


def enter_cgroups(name: str) -> list[Path]:
    """Move this process into a child of its systemd cgroups (named and unified hierarchy).

    A user-namespaced container needs a cgroup it may own; the one this process started in may be
    the root cgroup (a host whose PID 1 is not systemd), which systemd-nspawn cannot hand over.
    """
    made: list[Path] = []
    for line in Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "name=systemd":
            base = Path("/sys/fs/cgroup/systemd")
        elif controllers == "":
            unified = Path("/sys/fs/cgroup/unified")
            base = unified if unified.is_dir() else Path("/sys/fs/cgroup")
        else:
            continue
        child = base / path.lstrip("/") / name
        try:
            child.mkdir()
            (child / "cgroup.procs").write_text(f"{os.getpid()}\n", encoding="ascii")
        except OSError as exc:
            raise RehearseError(f"cannot make a cgroup for the copy at {child}: {exc.strerror}") from None
        made.append(child)
    return made


def leave_cgroups(made: Sequence[Path]) -> None:
    for child in made:
        with contextlib.suppress(OSError):
            (child.parent / "cgroup.procs").write_text(f"{os.getpid()}\n", encoding="ascii")
        for sub in sorted((p for p in child.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            child.rmdir()


# ------------------------------------------------------------------------------------ in the copy

UIDS_SCRIPT = r"""
cg=$(systemctl show -p ControlGroup --value -- "$1")
[ -n "$cg" ] || exit 0
for f in /proc/[0-9]*/cgroup; do
  if awk -F: -v cg="$cg" '$3 == cg { found = 1 } END { exit !found }' "$f" 2>/dev/null; then
    pid=${f#/proc/}; pid=${pid%/cgroup}
    awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null
  fi
done | sort -un
"""

MANIFEST_SCRIPT = r"""
for p in "$@"; do
  [ -e "$p" ] || [ -L "$p" ] || continue
  find "$p" -printf '%y %U %G %m %p\n' 2>/dev/null
done | LC_ALL=C sort
"""


def first_error(out: str, err: str) -> str:
    """The line that says why a script failed: its own ERROR line, else an error-like line, else its last."""
    lines = [TIMESTAMP.sub("", x.strip()) for x in err.splitlines() if x.strip()]
    lines += [TIMESTAMP.sub("", x.strip()) for x in out.splitlines() if x.strip()]
    found = next((x for x in lines if "ERROR:" in x), None) or next((x for x in lines if ERROR_LINE.search(x)), None)
    if found is not None:
        return found[:300]
    errors = [x for x in err.splitlines() if x.strip()]
    last = errors[-1] if errors else (lines[-1] if lines else "")
    return TIMESTAMP.sub("", last.strip())[:300]


def check_unit(c: Container, unit: str, probe: str) -> UnitCheck:
    active = c.run(["systemctl", "is-active", "--quiet", "--", unit], timeout=30).returncode == 0
    uids = tuple(int(x) for x in c.run(["bash", "-c", UIDS_SCRIPT, "uids", unit], timeout=30).stdout.split())
    if not probe:
        return UnitCheck(unit, active, uids, "", None, "")
    proc = c.run(["bash", "-c", probe], timeout=60)
    text = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    answer = text[0][:200] if text else ""
    if proc.returncode == 0:
        answer = answer or "answered (exit 0)"
    else:
        answer = f"exit {proc.returncode}" + (f": {answer}" if answer else "")
    return UnitCheck(unit, active, uids, probe, proc.returncode == 0, answer)


def settled_check(c: Container, unit: str, probe: str, timeout: float = SETTLE_TIMEOUT) -> UnitCheck:
    """check_unit, repeated until the unit is active and its probe answers, or the timeout passes.

    A daemon of Type=simple is "active" before it listens; the scripts wait the same way.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check_unit(c, unit, probe)
        if (result.active and result.probe_ok is not False) or time.monotonic() >= deadline:
            return result
        time.sleep(1.0)


def run_step(c: Container, name: str, argv: Sequence[str] | str, env: dict[str, str]) -> Step:
    say(name)
    started = time.monotonic()
    proc = c.run(argv, env=env, timeout=STEP_TIMEOUT)
    ok = proc.returncode == 0
    error = "" if ok else first_error(proc.stdout, proc.stderr)
    return Step(name, ok, proc.returncode, round(time.monotonic() - started, 1), error)


def identity(c: Container, a: AccountPlan) -> tuple[str, str]:
    pw = c.run(["getent", "passwd", a.account], timeout=30).stdout.strip()
    gr = c.run(["getent", "group", a.group], timeout=30).stdout.strip()
    return pw, gr


def manifest(c: Container, a: AccountPlan) -> list[str]:
    return c.run(["bash", "-c", MANIFEST_SCRIPT, "manifest", *a.manifest_paths], timeout=120).stdout.splitlines()


def manifest_diff(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """Entries that were there before and are gone or changed (type, owner, group, mode).

    New files are not a difference: the service writes while it runs (redis saves on stop). Nor is
    the mode of a socket: its daemon binds a new one at every start, with whatever umask it has then
    (prosody's came back 0750 once and 0755 another time), so only its owner says who made it.
    """
    now = {line.split(" ", 4)[-1]: line for line in after}
    out: list[str] = []
    for line in before:
        path = line.split(" ", 4)[-1]
        if path not in now:
            out.append(f"gone: {line}")
        elif now[path] != line and not (line[:2] == "s " and now[path].split(" ")[:3] == line.split(" ")[:3]):
            out.append(f"was {line}, now {now[path]}")
    return out


def journal_error(c: Container, units: Sequence[str], since: str) -> str:
    if not units:
        return ""
    args = ["journalctl", "-q", "--no-pager", "-o", "cat", "-p", "err", f"--since=@{since}"]
    args += [f"--unit={u}" for u in units]
    lines = [x.strip() for x in c.run(args, timeout=60).stdout.splitlines() if x.strip()]
    return lines[0][:300] if lines else ""


# ------------------------------------------------------------------------------------ the rehearsal


def _dedicated(av: AccountVerdict) -> bool:
    if av.verdict in (Verdict.NOT_SERVICE, Verdict.ORPHAN, Verdict.NEVER):
        return False
    return not any(f.rule in NOT_DEDICATED_RULES and f.effect is Effect.BLOCKS for f in av.findings)


def _planned_verdict(verdict: Verdict, reason: str, plan: AccountPlan | None) -> tuple[str, str]:
    """The verdict the plan states (it counts manual steps only planning finds), else the scan's."""
    if plan is None:
        return verdict.value, reason
    return plan.verdict.value, plan.reason


def _idmap(systemd: int | None, error: str) -> str:
    """Whether systemd >= 257's id-mapped private directories can work on this overlay."""
    if systemd is None or systemd < 257:
        seen = "can be id-mapped" if not error else f"cannot be id-mapped ({error})"
        return f"not used by systemd {systemd or '?'} (they came in 257); this overlay {seen}"
    if not error:
        return f"systemd {systemd} id-maps new private directories here as on a real filesystem"
    return (
        f"systemd {systemd} cannot id-map private directories on this overlay ({error}), so it chowns them: "
        "on the real filesystem new private directories are owned by 65534 on disk and mapped; owners seen "
        "here differ from that"
    )


def upper_bytes(top: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(top):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def mount_layers(req: Request, tmp: Path, td: Teardown, host: bool, features: bool) -> tuple[Path, list[str]]:
    merged = tmp / "merged"
    merged.mkdir()
    if host:
        mounts = overlay.parse_mountinfo(Path("/proc/self/mountinfo").read_text(encoding="utf-8"))
        points = overlay.host_layers(mounts, skip=(str(tmp),))
    else:
        points = ["/"]
    _mount_points(req, tmp, td, points, features)
    return merged, points


def _lower(req: Request, point: str) -> str:
    return req.root if point == "/" else point


def _mount_points(req: Request, tmp: Path, td: Teardown, points: Sequence[str], features: bool) -> None:
    merged = tmp / "merged"
    for n, point in enumerate(points):
        layer = tmp / "layers" / str(n)
        (layer / "upper").mkdir(parents=True, exist_ok=True)
        (layer / "work").mkdir(exist_ok=True)
        target = merged / point.lstrip("/") if point != "/" else merged
        if not target.is_dir():
            continue  # nothing to lay it over in the copy
        data = overlay.overlay_data(_lower(req, point), str(layer / "upper"), str(layer / "work"), host=features)
        try:
            overlay.mount("dynmigrate-rehearsal", str(target), "overlay", 0, data)
        except OSError as exc:
            raise RehearseError(f"cannot lay an overlay over {_lower(req, point)}: {exc.strerror}") from None
        td.mounted.append(str(target))


def layer_of(points: Sequence[str], path: str) -> tuple[int, str]:
    """The layer a path of the copy lies in (the deepest mount point above it) and its path there."""
    above = [n for n, p in enumerate(points) if p == "/" or path == p or path.startswith(p + "/")]
    best = max(above, key=lambda n: len(points[n]))
    return best, path if points[best] == "/" else path[len(points[best]) :] or "/"


def seed_layers(req: Request, tmp: Path, td: Teardown, points: Sequence[str], seeded: Sequence[str]) -> None:
    """Unmount the layers, copy each seeded directory into the upper layer it lies in, mount them again.

    Without redirect_dir, overlayfs refuses to rename a directory of the lower layer (EXDEV): the
    directories systemd moves into private/ are copied up first, as opaque directories.
    """
    merged = str(tmp / "merged")
    for point in [m for m in td.mounted if m == merged or m.startswith(merged + "/")][::-1]:
        overlay.umount(point)
        td.mounted.remove(point)
    by_layer: dict[int, list[str]] = {}
    for path in seeded:
        n, rel = layer_of(points, path)
        by_layer.setdefault(n, []).append(rel)
    for n, rels in sorted(by_layer.items()):
        overlay.seed_upper(Path(_lower(req, points[n])), tmp / "layers" / str(n) / "upper", rels)
    _mount_points(req, tmp, td, points, False)


MOVED_KEYS = ("StateDirectory", "CacheDirectory", "LogsDirectory")  # what systemd renames into private/


def renamed_dirs(plan: MigrationPlan) -> list[str]:
    return sorted(
        {d.path for a in plan.accounts for u in a.units for d in u.directories if d.exists and d.key in MOVED_KEYS}
    )


def plan_for(result: ScanResult, req: Request, accounts: Sequence[str] | None = None) -> MigrationPlan:
    sel = (
        Selection(accounts=tuple(accounts))
        if accounts is not None
        else Selection(req.units, req.accounts, req.all_convertible)
    )
    try:
        return make_plan(result.queries, result.report, sel, PlanOptions(force=req.force, probes=req.probes))
    except SelectionError as exc:
        raise RehearseError(str(exc), usage=True) from None


def shift_owner(top: Path, base: int) -> None:
    """Hand a folder written from outside to the copy's root (its user namespace starts at base)."""
    for dirpath, dirnames, filenames in os.walk(top):
        for name in (*dirnames, *filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            os.chown(p, st.st_uid + base, st.st_gid + base, follow_symlinks=False)
    st = os.lstat(top)
    os.chown(top, st.st_uid + base, st.st_gid + base)


TRUSTED_NOTE = (
    "ROOT was declared an image built by the caller (--trusted-image): booted without a user namespace, "
    "on an overlay with redirect_dir=on,metacopy=on, which the kernel documents as unsafe with layers "
    "someone else prepared"
)


def boot(c: Container, req: Request) -> None:
    say("booting the copy")
    try:
        c.boot(req.boot_timeout)
    except BootError as exc:
        raise RehearseError(f"the copy did not boot: {exc}") from None
    say("booted")


def run_setup(c: Container, req: Request) -> tuple[Step, ...]:
    """The --setup commands in order, as the copy's root; the first one that fails ends them."""
    steps: list[Step] = []
    for n, cmd in enumerate(req.setup, 1):
        step = run_step(c, f"setup {n}", ["/bin/sh", "-c", cmd], dict(req.script_env))
        steps.append(step)
        if not step.ok:
            break
    return tuple(steps)


def choose_layering(tmp: Path, req: Request, trusted: bool) -> overlay.Layering:
    """Ask the kernel what its overlayfs can do, then choose (RehearseError when it cannot)."""
    try:
        missing = overlay.missing_features(tmp / "check") if trusted else ""
        if not trusted:
            overlay.check_overlay(tmp / "check", host=False)
        return overlay.choose_layering(trusted=trusted, full_copy=req.full_copy, missing=missing)
    except overlay.OverlayError as exc:
        raise RehearseError(str(exc)) from None


GENERATORS_UNSEEN = (
    "units made at boot are not seen: {why}; units that generators write into /run/systemd/generator* "
    "at boot (a PostgreSQL cluster's postgresql@VERSION-CLUSTER.service, for one) are not in the plan{hint}"
)


@dataclass(frozen=True, slots=True)
class Copy:
    """The copy as laid: where it is mounted and how, and the container that boots it."""

    tmp: Path
    merged: Path
    points: tuple[str, ...]
    layering: overlay.Layering
    container: Container
    host: bool
    trusted: bool

    @property
    def boot_first(self) -> bool:
        """Booted before the scan, which then sees what a scan of the running copy sees (its
        generators' output included). Not when the layers are seeded after the scan (an untrusted
        image, --full-copy): seeding remounts them, which a running copy forbids."""
        return self.trusted and not self.layering.seed


SETUP_NOT_BOOTED_FIRST = (
    "--setup needs the copy booted before the scan (/ or --trusted-image, without --full-copy), "
    "and this one would be booted after it"
)


def check_setup_boots_first(req: Request, cp: Copy) -> None:
    """--setup runs in the copy booted before the scan: check_request keeps it to such copies."""
    if req.setup and not cp.boot_first:
        raise RehearseError(SETUP_NOT_BOOTED_FIRST)


def check_request(req: Request, trusted: bool) -> None:
    if req.setup and not trusted:
        raise RehearseError(SETUP_NEEDS_TRUST, usage=True)
    if req.setup and req.full_copy:
        raise RehearseError(SETUP_NO_FULL_COPY, usage=True)


def lay_copy(req: Request, td: Teardown) -> Copy:
    """The private tmpfs, the overlays over ROOT on it, and the container that will boot them."""
    tmp = Path(req.tmpdir)
    host = os.path.realpath(req.root) == "/"
    # a trusted image is laid and booted like the running host: no user namespace (its owners
    # stay as they are, so a scan after the boot sees the real ones), redirect_dir and metacopy
    trusted = host or req.trusted_image
    check_request(req, trusted)
    overlay.mount("dynmigrate-rehearsal", str(tmp), "tmpfs", 0, "mode=0700")
    td.mounted.append(str(tmp))
    layering = choose_layering(tmp, req, trusted)
    merged, points = mount_layers(req, tmp, td, host, layering.features)
    say(f"copy of {req.root} mounted")
    extra: list[str] = []
    if not trusted:
        extra = ["--private-users=pick", "--private-users-ownership=auto"]
        td.cgroups = enter_cgroups(f"dynmigrate-rehearse-{uuid.uuid4().hex[:8]}")
    c = Container(merged, machine=f"dm-rehearse-{uuid.uuid4().hex[:8]}", log=tmp / "nspawn.log", extra=extra)
    return Copy(tmp, merged, tuple(points), layering, c, host, trusted)


def boot_and_set_up(cp: Copy, req: Request, td: Teardown) -> tuple[tuple[Step, ...], str]:
    """Boot, run the admin's --setup (enable, configure, write data), then copy what the running
    copy holds in /run/systemd into the scanned tree: the setup's steps and what the report says."""
    td.container = cp.container
    boot(cp.container, req)
    setup = run_setup(cp.container, req)
    return setup, copy_runtime_units(cp)


def copy_runtime_units(cp: Copy) -> str:
    init = cp.container.init
    if init is None:
        return GENERATORS_UNSEEN.format(why="the booted copy's init is not known", hint="")
    say("copying the booted copy's generator output and runtime units")
    try:
        # /proc/PID/root is checked, once open, to still be the copy's init (not a PID reused since)
        copied = runtime.copy_runtime(f"/proc/{init.pid}/root", str(cp.merged), RUNTIME_UNIT_DIRS, lambda: alive(init))
    except OSError as exc:
        return GENERATORS_UNSEEN.format(why=f"the booted copy's /run/systemd could not be copied ({exc})", hint="")
    return copied.note()


def scan_notes(req: Request, cp: Copy, runtime_note: str) -> list[str]:
    notes: list[str] = [TRUSTED_NOTE] if req.trusted_image and not cp.host else []
    if req.setup:
        notes.append(f"the copy was booted and set up ({len(req.setup)} command(s)) before it was scanned")
    if runtime_note:
        notes.append(runtime_note)
    elif not cp.trusted:
        why = "the copy of an image boots in a user namespace that shifts the owner of every file"
        why += ", so it is scanned before it boots"
        notes.append(GENERATORS_UNSEEN.format(why=why, hint=" (--trusted-image for an image you built)"))
    else:
        why = "--full-copy remounts the layers after the scan, which a running copy forbids"
        why += ", so it is scanned before it boots"
        notes.append(GENERATORS_UNSEEN.format(why=why, hint=""))
    if cp.layering.note:
        notes.append(cp.layering.note)
    return notes


def seed(req: Request, cp: Copy, td: Teardown, plan: MigrationPlan) -> str:
    """Copy what the migration renames into the upper layers (no redirect_dir); the report's note."""
    seeded = renamed_dirs(plan)
    if not seeded:
        return ""
    seed_layers(req, cp.tmp, td, cp.points, seeded)
    why = "an image gets no redirect_dir" if not cp.trusted else "no redirect_dir"
    return f"copied into the upper layer first ({why}, so overlayfs cannot rename them): " + ", ".join(seeded)


def environment(req: Request, cp: Copy, result: ScanResult, notes: Sequence[str]) -> tuple[Environment, bool]:
    """The report's environment section, and whether the kernel refused an id-mapped clone."""
    systemd = result.snapshot.host.systemd_version
    idmap_error = overlay.idmap_error(str(cp.merged))
    env = Environment(
        root=req.root,
        mode="host" if cp.host else ("trusted image" if cp.trusted else "image"),
        os_release=result.snapshot.host.pretty_name,
        systemd_version=systemd,
        kernel=os.uname().release,
        overlay_options=cp.layering.options,
        layers=cp.points,
        private_users=not cp.trusted,
        idmap=_idmap(systemd, idmap_error),
        notes=tuple(notes),
    )
    return env, bool(idmap_error)


def account_facts(result: ScanResult, plan: MigrationPlan, setup: tuple[Step, ...]) -> dict[str, AccountFacts]:
    """What the scan and the plan say of every selected account (planned or refused), by name."""
    planned = {a.account: a for a in plan.accounts}
    refused = {r.account: r.why for r in plan.refused}
    out: dict[str, AccountFacts] = {}
    for name in sorted({*planned, *refused}):
        av = result.report.account(name)
        assert av is not None
        a = planned.get(name)
        verdict, reason = _planned_verdict(av.verdict, av.reason, a)
        out[name] = AccountFacts(
            account=name,
            verdict=verdict,
            reason=reason,
            units=av.units,
            planned=a is not None,
            forced=a is not None and a.forced,
            not_planned_why=refused.get(name, ""),
            dedicated=_dedicated(av),
            manual_steps=tuple(m.id for m in a.manual_steps) if a is not None else (),
            confirmed=a.confirm_ids if a is not None else (),
            setup=setup,
            static_uid=av.uid,
        )
    return out


def health_before(c: Container, plan: MigrationPlan) -> tuple[dict[str, tuple[UnitCheck, ...]], list[str]]:
    """Every planned unit checked before any change, and the accounts whose units all work: a
    service that does not work in the copy is not rehearsed."""
    before = {a.account: tuple(settled_check(c, unit, probe) for unit, probe in a.run_units) for a in plan.accounts}
    broken = [n for n, cs in before.items() if not cs or any(not x.active or x.probe_ok is False for x in cs)]
    return before, [a.account for a in plan.accounts if a.account not in broken]


def write_plan_into(cp: Copy, result: ScanResult, plan: MigrationPlan) -> None:
    folder = cp.merged / PLAN_FOLDER.lstrip("/")
    try:
        # a new directory at the top of the copy: mkdir never follows a symlink the image
        # may have put there, and nothing below it comes from the image
        folder.mkdir(mode=0o700)
        write_plan(result.snapshot, plan, folder, security=False)
    except (PlanWriteError, OSError) as exc:
        raise RehearseError(f"cannot write the plan into the copy: {exc}") from None
    if not cp.trusted:
        init = cp.container.init.pid if cp.container.init else 0
        base = int(Path(f"/proc/{init}/uid_map").read_text().split()[1])
        if base:
            shift_owner(folder, base)


def end_notes(cp: Copy, idmap_refused: bool) -> list[str]:
    used = upper_bytes(cp.tmp / "layers")
    notes = [f"the upper layers held {used / 2**20:.0f} MiB at the end (on a tmpfs: memory)"]
    if not cp.trusted and idmap_refused:
        notes.append(
            "systemd-nspawn chowned the copy into its user namespace's range (this overlay cannot be "
            "id-mapped), so the upper layer holds a copy of every file of ROOT: the tmpfs needs that much memory"
        )
    return notes


def rehearse(req: Request, td: Teardown, disarmed: threading.Event) -> Rehearsal:
    started = time.monotonic()
    cp = lay_copy(req, td)
    c = cp.container
    check_setup_boots_first(req, cp)
    setup, runtime_note = boot_and_set_up(cp, req, td) if cp.boot_first else ((), "")
    result = run_scan(str(cp.merged), policy=req.policy)
    plan = plan_for(result, req)
    notes = scan_notes(req, cp, runtime_note)
    if cp.layering.seed and (seeded := seed(req, cp, td, plan)):
        notes.append(seeded)
    env, idmap_refused = environment(req, cp, result, notes)
    base_facts = account_facts(result, plan, setup)
    if not plan.accounts or any(not s.ok for s in setup):
        accounts = tuple(classify(f) for f in base_facts.values())
        return Rehearsal(env, accounts, round(time.monotonic() - started, 1), limits=LIMITS)
    if not cp.boot_first:
        td.container = c
        boot(c, req)
    before, working = health_before(c, plan)
    if len(working) < len(plan.accounts) and working:
        plan = plan_for(result, req, working)
    if working:
        write_plan_into(cp, result, plan)
    facts = {n: replace(f, before=before.get(n, ())) for n, f in base_facts.items()}
    plan_accounts = [a for a in plan.accounts if a.account in working]
    if plan_accounts:
        facts.update(migrate_and_roll_back(c, req, plan_accounts, facts))
    env = replace(env, notes=(*notes, *end_notes(cp, idmap_refused)))
    kept = keep_message(c, cp.tmp) if req.keep else ()
    accounts = tuple(classify(facts[n]) for n in sorted(facts))
    return Rehearsal(env, accounts, round(time.monotonic() - started, 1), kept=kept, limits=LIMITS)


def access_now(c: Container) -> tuple[dict[str, str], str]:
    """What nobody can do with each listed path now (access.PROBE_SCRIPT), or why it is unknown."""
    proc = c.run(["bash", "-c", access.PROBE_SCRIPT, "probe", access.LIST_FILE], timeout=600)
    if proc.returncode != 0:
        return {}, f"the probe as nobody failed: {first_error(proc.stdout, proc.stderr) or f'exit {proc.returncode}'}"
    return access.parse_probe(proc.stdout), ""


def access_before(c: Container, accounts: Sequence[AccountPlan]) -> tuple[dict[str, str], str]:
    """List the paths the plan touches (as the copy's root), then what nobody can do with them."""
    say("trying the paths the plan touches as nobody")
    argv = ["bash", "-c", access.LIST_SCRIPT, "list", access.LIST_FILE, *access.touched_paths(accounts)]
    proc = c.run(argv, timeout=600)
    if proc.returncode != 0:
        return {}, f"listing the paths failed: {first_error(proc.stdout, proc.stderr) or f'exit {proc.returncode}'}"
    return access_now(c)


def run_stages(c: Container, req: Request, confirms: Sequence[str], env: dict[str, str]) -> tuple[list[Step], bool]:
    """migrate.sh stage0 to stage3 (and --before-stage2 before stage 2) until one fails."""
    stages: list[Step] = []
    manual_done = False
    for stage in STAGES:
        if stage == "stage2" and req.before_stage2:
            step = run_step(c, "before-stage2", ["/bin/sh", "-c", req.before_stage2], env)
            stages.append(step)
            if not step.ok:
                break
            manual_done = True
        args = confirms if stage == "stage2" else []
        step = run_step(c, f"migrate.sh {stage}", [f"{PLAN_FOLDER}/migrate.sh", *args, stage], env)
        stages.append(step)
        if not step.ok:
            break
    return stages, manual_done


def migrate_and_roll_back(
    c: Container, req: Request, accounts: Sequence[AccountPlan], facts: dict[str, AccountFacts]
) -> dict[str, AccountFacts]:
    started = time.monotonic()
    env = dict(req.script_env)
    since = c.run(["date", "+%s"], timeout=30).stdout.strip() or "0"
    ids_before = {a.account: identity(c, a) for a in accounts}
    manifests_before = {a.account: manifest(c, a) for a in accounts}
    access_was, access_error = access_before(c, accounts)
    confirms = [f"--confirm={i}" for a in accounts for i in a.confirm_ids]
    stages, manual_done = run_stages(c, req, confirms, env)
    reached = [s.name.split()[-1] for s in stages if s.name.startswith("migrate.sh")]
    migrated = {a.account: tuple(settled_check(c, u, p) for u, p in a.run_units) for a in accounts}
    access_migrated, error = access_now(c) if not access_error else ({}, "")
    access_error = access_error or error
    rollbacks: list[Step] = []
    for stage in reversed(reached):
        step = run_step(c, f"rollback.sh {stage}", [f"{PLAN_FOLDER}/rollback.sh", stage], env)
        rollbacks.append(step)
        if not step.ok:
            break
    restored = {a.account: tuple(settled_check(c, u, p) for u, p in a.run_units) for a in accounts}
    access_restored, error = access_now(c) if not access_error else ({}, "")
    access_error = access_error or error
    found = [
        ("migration", access.widened(access_was, access_migrated)),
        ("rollback", access.widened(access_was, access_restored)),
    ]
    out: dict[str, AccountFacts] = {}
    seconds = round(time.monotonic() - started, 1)
    for a in accounts:
        diff = manifest_diff(manifests_before[a.account], manifest(c, a))
        touched = access.touched_paths([a])
        out[a.account] = replace(
            facts[a.account],
            manual_done=manual_done,
            stages=tuple(stages),
            migrated=migrated[a.account],
            rollbacks=tuple(rollbacks),
            restored=restored[a.account],
            account_restored=identity(c, a) == ids_before[a.account],
            manifest_restored=not diff,
            manifest_diff=tuple(diff[:20]),
            journal_error=journal_error(c, [u for u, _ in a.run_units], since),
            seconds=seconds,
            access_widened=() if access_error else access.account_widened(touched, found),
            access_checked=0 if access_error else access.related_count(access_was, touched),
            access_error=access_error,
        )
    return out


def keep_message(c: Container, tmp: Path) -> tuple[str, ...]:
    # pids of this namespace mean nothing outside: the CLI translates them (launch.py)
    init = c.init.pid if c.init else 0
    return (
        f"kept: the copy is still running (container init {init} in the rehearsal's pid namespace)",
        f"merged tree: {tmp / 'merged'} (inside the rehearsal's mount namespace)",
    )


def main() -> None:
    req = Request.from_json(sys.stdin.read())
    td = Teardown(Path(req.tmpdir))
    disarmed = threading.Event()
    threading.Thread(target=watch_parent, args=(req.parent_pidfd, td, disarmed), daemon=True).start()

    def on_signal(signum: int, frame: object) -> None:
        td.run(graceful=True)
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        rehearsal = replace(rehearse(req, td, disarmed), date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    except RehearseError as exc:
        td.run(graceful=True)
        print(json.dumps({"error": str(exc), "usage": exc.usage}), flush=True)
        sys.exit(0)
    except OSError as exc:
        td.run(graceful=True)
        print(json.dumps({"error": str(exc)}), flush=True)
        sys.exit(0)
    except BaseException as exc:
        td.run(graceful=True)
        print(json.dumps({"error": f"internal error ({type(exc).__name__}: {exc}); this is a bug"}), flush=True)
        sys.exit(0)
    if req.keep and td.container is not None and td.container.nspawn is not None:
        disarmed.set()
        print(json.dumps({"rehearsal": to_json_data(rehearsal)}), flush=True)
        # let go of the caller's pipes: a caller that captures them waits for their end
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        # poll rather than wait(): a SIGTERM handler must be able to poll the same process
        while td.container.nspawn.poll() is None:
            time.sleep(0.5)
        td.run(graceful=False)
        return
    td.run(graceful=True)
    print(json.dumps({"rehearsal": to_json_data(rehearsal)}), flush=True)


if __name__ == "__main__":
    main()
