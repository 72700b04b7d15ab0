"""dynmigrate verify: on a live host, check every migrated account and report drift."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynmigrate.collect.ownership import OwnershipData, walk_ownership
from dynmigrate.collect.rootfs import RootFS
from dynmigrate.model.accounts import DYNAMIC_UID_MAX, DYNAMIC_UID_MIN

STATE = "var/lib/dynmigrate"
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)


@dataclass(frozen=True, slots=True)
class Check:
    account: str
    check: str
    ok: bool
    detail: str


def _lines_named(path: Path, name: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.split(":", 1)[0] == name]


def records(root: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted((root / STATE / "migrated").glob("*.json")):
        try:
            out.append(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            out.append({"account": {"account": p.stem, "broken": True}})
    return out


def unit_uids(unit: str, runner: Runner) -> list[int]:
    """UIDs of the processes in the unit's cgroup, found through /proc/PID/cgroup (any cgroup layout)."""
    uids: set[int] = set()
    cg = runner(["systemctl", "show", "-p", "ControlGroup", "--value", unit]).stdout.strip()
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
        main = runner(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout.strip()
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
    checks: list[Check] = []
    if a.get("broken"):
        return [Check(name, "record", False, "the migration record cannot be read")]
    back = _lines_named(root / "etc/passwd", name)
    checks.append(
        Check(
            name,
            "no static account",
            not back,
            f"a static {name} is back: {back[0].split(':')[2] if back else ''} (the unit runs as it, not "
            "as a dynamic user; a package upgrade recreates accounts)"
            if back
            else "absent from /etc/passwd",
        )
    )
    if a["delete_group"]:
        gback = _lines_named(root / "etc/group", a["group"])
        checks.append(
            Check(
                name, "no static group", not gback, f"group {a['group']} is back" if gback else "absent from /etc/group"
            )
        )
    so = root / "var/lib/dpkg/statoverride"
    if so.exists():
        named = [
            ln
            for ln in so.read_text(errors="surrogateescape").splitlines()
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
    for o in a["overrides"]:
        target = root / o["target"].lstrip("/")
        if o["content"] is None:
            ok = target.is_symlink() and os.readlink(target) == "/dev/null"
            checks.append(
                Check(name, f"mask {o['target']}", ok, "in place" if ok else "missing: sysusers recreates it")
            )
        else:
            ok = target.is_file()
            checks.append(Check(name, f"override {o['target']}", ok, "in place" if ok else "missing"))
    for u in a["units"]:
        dropin = root / u["dropin_path"].lstrip("/")
        checks.append(
            Check(
                name,
                f"drop-in of {u['unit']}",
                dropin.is_file(),
                "installed" if dropin.is_file() else "missing: the unit runs as before",
            )
        )
    if live:
        for unit in a.get("run_units", []):
            state = runner(["systemctl", "is-active", unit]).stdout.strip()
            checks.append(Check(name, f"{unit} active", state == "active", state or "unknown"))
            uids = unit_uids(unit, runner)
            dyn = [u for u in uids if DYNAMIC_UID_MIN <= u <= DYNAMIC_UID_MAX]
            ok = bool(dyn) and a["uid"] not in uids
            checks.append(
                Check(
                    name,
                    f"{unit} dynamic UID",
                    ok,
                    f"UIDs {', '.join(map(str, uids)) or 'none'}"
                    + ("" if ok else f": expected one in {DYNAMIC_UID_MIN}-{DYNAMIC_UID_MAX} and not {a['uid']}"),
                )
            )
    if walk:
        data = owned if owned is not None else walk_ownership(RootFS(root))[0]
        old = [t for t in data.trees if t.uid == a["uid"] or (a["delete_group"] and t.gid == a["gid"])]
        skipped = ""
        if data.nested_roots:  # the trees stage 3 does not search either (DM308)
            first = data.nested_roots[0]
            count = len(data.nested_roots)
            skipped = f" (not searched: {count} other system tree(s), e.g. {first.path}, {first.reason})"
        checks.append(
            Check(
                name,
                "no file of the old UID",
                not old,
                ("none" if not old else f"{len(old)} path(s), e.g. {old[0].top.path}: run stage3") + skipped,
            )
        )
    return checks


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


def repair(root: str = "/", runner: Runner = run) -> subprocess.CompletedProcess[str]:
    script = Path(root) / "usr/local/sbin/dynmigrate-repair"
    return runner([str(script)])
