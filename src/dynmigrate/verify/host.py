"""dynmigrate verify: on a live host, check every migrated account and report drift.

ROOT is read only through the confined reader scan uses, and nothing under ROOT is ever run:
--repair works on the live root only, with the repair file stage 2 installed when its sha256 is
the one the plan recorded, otherwise with dynmigrate's own copy of the same code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dynmigrate.collect.ownership import OwnershipData, walk_ownership
from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.model.accounts import DYNAMIC_UID_MAX, DYNAMIC_UID_MIN
from dynmigrate.model.checks import Check
from dynmigrate.model.files import FileKind
from dynmigrate.model.paths import rel
from dynmigrate.render.planfolder.script import INSTALLED_REPAIR, render_repair

STATE = "var/lib/dynmigrate"
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)


class RepairRefused(Exception):
    """verify --repair was asked for a root that is not the live one: nothing is run."""


# Everything under ROOT is read through RootFS, as scan reads it: symlinks resolve inside ROOT
# (an image's link to a host file is not followed out of it), and only regular files are opened.


def _text(fs: RootFS, path: str) -> str | None:
    try:
        return fs.read_text(path)
    except RootError:
        return None


def _lines_named(fs: RootFS, path: str, name: str) -> list[str]:
    text = _text(fs, path) or ""
    return [line for line in text.splitlines() if line.split(":", 1)[0] == name]


def _records(fs: RootFS) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        paths = list(fs.files_in(f"/{STATE}/migrated", ".json"))
    except RootError:
        return out
    for p in paths:
        stem = p.rsplit("/", 1)[-1][: -len(".json")]
        try:
            rec = json.loads(fs.read_text(p))
        except (RootError, ValueError):
            rec = None
        account = rec.get("account") if isinstance(rec, dict) else None
        if not isinstance(account, dict) or not isinstance(account.get("account"), str):
            rec = {"account": {"account": stem, "broken": True}}
        out.append(rec)
    return out


def records(root: str | Path) -> list[dict[str, Any]]:
    """The migration records under ROOT/var/lib/dynmigrate/migrated (read through the confined reader)."""
    return _records(RootFS(root))


def unit_uids(unit: str, runner: Runner) -> list[int]:
    """UIDs of the processes in the unit's cgroup, found through /proc/PID/cgroup (any cgroup layout)."""
    uids: set[int] = set()
    cg = runner(["systemctl", "show", "-p", "ControlGroup", "--value", "--", unit]).stdout.strip()
    pids: list[str] = []
    if cg:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                lines = (entry / "cgroup").read_text().splitlines()
            except OSError:
                continue
            if any(line.split(":", 2)[2:] == [cg] for line in lines):
                pids.append(entry.name)
    if not pids:
        main = runner(["systemctl", "show", "-p", "MainPID", "--value", "--", unit]).stdout.strip()
        pids = [main] if main and main != "0" else []
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Uid:"):
                    uids.add(int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(uids)


def verify_account(
    root: Path, rec: dict[str, Any], runner: Runner, *, live: bool, walk: bool, owned: OwnershipData | None = None
) -> list[Check]:
    a = rec["account"]
    name = a["account"]
    if a.get("broken"):
        return [Check(name, "record", False, "the migration record cannot be read")]
    try:
        return _verify_account(RootFS(root), a, runner, live=live, walk=walk, owned=owned)
    except (KeyError, TypeError, ValueError, AttributeError):
        return [Check(name, "record", False, "the migration record is malformed")]


def _verify_account(
    fs: RootFS, a: dict[str, Any], runner: Runner, *, live: bool, walk: bool, owned: OwnershipData | None
) -> list[Check]:
    checks = _name_checks(fs, a) + _override_checks(fs, a) + _dropin_checks(fs, a)
    if live:
        for unit in a.get("run_units", []):
            checks += _running_checks(a, unit, runner)
    if walk:
        checks.append(_old_files_check(fs, a, owned))
    return checks


def _name_checks(fs: RootFS, a: dict[str, Any]) -> list[Check]:
    """The account (and its group, when deleted) is gone from /etc and from dpkg's statoverrides."""
    name = a["account"]
    back = _lines_named(fs, "/etc/passwd", name)
    checks = [
        Check(
            name,
            "no static account",
            not back,
            f"a static {name} is back: {back[0].split(':')[2] if back else ''} (the unit runs as it, not "
            "as a dynamic user; a package upgrade recreates accounts)"
            if back
            else "absent from /etc/passwd",
        )
    ]
    if a["delete_group"]:
        gback = _lines_named(fs, "/etc/group", a["group"])
        checks.append(
            Check(
                name, "no static group", not gback, f"group {a['group']} is back" if gback else "absent from /etc/group"
            )
        )
    overrides = _text(fs, "/var/lib/dpkg/statoverride")
    if overrides is not None:
        named = [
            ln
            for ln in overrides.splitlines()
            if ln.split(" ")[:1] == [name] or (a["delete_group"] and ln.split(" ")[1:2] == [a["group"]])
        ]
        checks.append(
            Check(
                name,
                "no statoverride names it",
                not named,
                f"{named[0]} (dpkg aborts while the name does not resolve)" if named else "none",
            )
        )
    return checks


def _override_checks(fs: RootFS, a: dict[str, Any]) -> list[Check]:
    """Each mask and override file the plan installed in /etc is still in place."""
    name = a["account"]
    checks: list[Check] = []
    for o in a["overrides"]:
        target = rel(str(o["target"]))
        if o["content"] is None:
            try:
                info = fs.lstat(target)
                ok = info is not None and info.kind is FileKind.SYMLINK and fs.readlink(target) == "/dev/null"
            except RootError:
                ok = False
            checks.append(
                Check(name, f"mask {o['target']}", ok, "in place" if ok else "missing: sysusers recreates it")
            )
        else:
            ok = _is_file(fs, target)
            checks.append(Check(name, f"override {o['target']}", ok, "in place" if ok else "missing"))
    return checks


def _dropin_checks(fs: RootFS, a: dict[str, Any]) -> list[Check]:
    checks: list[Check] = []
    for u in a["units"]:
        installed = _is_file(fs, str(u["dropin_path"]))
        checks.append(
            Check(
                a["account"],
                f"drop-in of {u['unit']}",
                installed,
                "installed" if installed else "missing: the unit runs as before",
            )
        )
    return checks


def _running_checks(a: dict[str, Any], unit: str, runner: Runner) -> list[Check]:
    """The unit is active (or skipped by its conditions) and runs under a dynamic UID, not the old one."""
    name = a["account"]
    state = runner(["systemctl", "is-active", "--", unit]).stdout.strip()
    if state == "inactive" and _skipped_by_condition(unit, runner):
        return [Check(name, f"{unit} active", True, "skipped by its start conditions (Condition*=)")]
    uids = unit_uids(unit, runner)
    dyn = [u for u in uids if DYNAMIC_UID_MIN <= u <= DYNAMIC_UID_MAX]
    ok = bool(dyn) and a["uid"] not in uids
    return [
        Check(name, f"{unit} active", state == "active", state or "unknown"),
        Check(
            name,
            f"{unit} dynamic UID",
            ok,
            f"UIDs {', '.join(map(str, uids)) or 'none'}"
            + ("" if ok else f": expected one in {DYNAMIC_UID_MIN}-{DYNAMIC_UID_MAX} and not {a['uid']}"),
        ),
    ]


def _old_files_check(fs: RootFS, a: dict[str, Any], owned: OwnershipData | None) -> Check:
    """No file still belongs to the old UID (or to the deleted group's GID)."""
    data = owned if owned is not None else walk_ownership(fs)[0]
    old = [t for t in data.trees if t.uid == a["uid"] or (a["delete_group"] and t.gid == a.get("group_gid", a["gid"]))]
    skipped = ""
    if data.nested_roots:  # the trees stage 3 does not search either (DM308)
        first = data.nested_roots[0]
        count = len(data.nested_roots)
        skipped = f" (not searched: {count} other system tree(s), e.g. {first.path}, {first.reason})"
    return Check(
        a["account"],
        "no file of the old UID",
        not old,
        ("none" if not old else f"{len(old)} path(s), e.g. {old[0].top.path}: run stage3") + skipped,
    )


def _skipped_by_condition(unit: str, runner: Runner) -> bool:
    """systemd skipped the unit's last start because a Condition*= did not hold: not meant to run."""
    out = runner(["systemctl", "show", "-p", "ConditionResult", "-p", "ConditionTimestampMonotonic", "--", unit])
    fields = dict(line.partition("=")[::2] for line in out.stdout.splitlines())
    return fields.get("ConditionResult") == "no" and fields.get("ConditionTimestampMonotonic", "0") not in ("", "0")


def verify_host(
    root: str = "/", accounts: Sequence[str] = (), *, runner: Runner = run, walk: bool = True
) -> list[Check]:
    base = Path(root)
    live = os.path.realpath(root) == "/"
    out: list[Check] = []
    owned: OwnershipData | None = None  # one walk for every account
    for rec in records(base):
        name = rec["account"]["account"]
        if accounts and name not in accounts:
            continue
        if walk and owned is None and not rec["account"].get("broken"):
            owned = walk_ownership(RootFS(root))[0]
        out += verify_account(base, rec, runner, live=live, walk=walk, owned=owned)
    return out


def _is_file(fs: RootFS, path: str) -> bool:
    try:
        info = fs.stat(path)
    except RootError:
        return False
    return info is not None and info.kind is FileKind.FILE


def repair_script(fs: RootFS) -> tuple[str, str]:
    """The repair code to run on the live root, and where it comes from.

    The file stage 2 installed, when its sha256 is one a plan recorded; otherwise dynmigrate's own
    repair code (the same script, from this installation of dynmigrate).
    """
    own = render_repair()
    recorded = {r["repair_sha256"] for r in _records(fs) if isinstance(r.get("repair_sha256"), str)}
    if not recorded:
        return own, f"dynmigrate's own repair code (no sha256 recorded for {INSTALLED_REPAIR} in the plan)"
    try:
        data = fs.read_bytes(INSTALLED_REPAIR)
    except RootError as exc:
        return own, f"dynmigrate's own repair code: {INSTALLED_REPAIR} cannot be read ({exc.reason})"
    if hashlib.sha256(data).hexdigest() in recorded:
        # these very bytes run (from a private copy), not whatever the path holds a moment later
        return data.decode("utf-8", "surrogateescape"), f"{INSTALLED_REPAIR} (sha256 as recorded in the plan)"
    return own, f"dynmigrate's own repair code: {INSTALLED_REPAIR} does not match the sha256 recorded in the plan"


def repair(root: str = "/", runner: Runner = run) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run the repair on the live root: (its result, where the code came from).

    Nothing under any other root is ever executed: RepairRefused.
    """
    if os.path.realpath(root) != "/":
        raise RepairRefused(f"--repair works only on the live root /, not {root}: nothing under it is run")
    text, origin = repair_script(RootFS("/"))
    state = Path("/", STATE)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="repair-", dir=state)  # 0700, root's own state directory
    try:
        script = Path(tmp, "dynmigrate-repair")
        fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text)
        return runner(["/bin/bash", str(script)]), origin
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
