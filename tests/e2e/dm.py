"""Helpers for the migration scenarios: dynmigrate inside the container, plans, manifests."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynmigrate.app import run_scan
from dynmigrate.output.write import write_plan
from dynmigrate.plan.planner import PlanOptions, Selection, make_plan
from e2e.harness import Container

REPO = Path(__file__).resolve().parents[2]
DYN_MIN, DYN_MAX = 61184, 65519
# Every stage restarts units and waits for them to settle: keep it short in tests.
ENV = {"DYNMIGRATE_SETTLE": "2", "DYNMIGRATE_START_TIMEOUT": "60"}
PY = "PYTHONPATH=/opt/dynmigrate/src python3 -m dynmigrate"


def install_dynmigrate(root: Path) -> None:
    """Copy the checkout's dynmigrate into ROOT/opt/dynmigrate; Debian's python3-click, -rich and
    -networkx (in the built root) run it, as on a real Debian 12 host."""
    dest = root / "opt/dynmigrate"
    shutil.copytree(REPO / "src/dynmigrate", dest / "src/dynmigrate", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "rules", dest / "rules", ignore=shutil.ignore_patterns("good", "bad", "__pycache__"))


def plan_into(c: Container, accounts: tuple[str, ...], *, force: bool = False, folder: str = "root/plan") -> Path:
    """Scan the container's root from the host (read-only) and write the plan into it.

    The first plan written into a running container records what `nobody` can read and enter; at
    the end of the test (make_container's teardown: check_access) nothing may have become readable."""
    if c.running and id(c) not in ACCESS_BEFORE:
        ACCESS_BEFORE[id(c)] = (c, nobody_access(c))
    result = run_scan(str(c.root))
    plan = make_plan(result.queries, result.report, Selection(accounts=accounts), PlanOptions(force=force))
    out = c.root / folder
    write_plan(result.snapshot, plan, out, security=False)
    return out


def migrate(c: Container, *args: str, check: bool = True) -> Any:
    return c.run(["/root/plan/migrate.sh", *args], env=ENV, check=check, timeout=300)


def rollback(c: Container, *args: str, check: bool = True) -> Any:
    return c.run(["/root/plan/rollback.sh", *args], env=ENV, check=check, timeout=300)


def confirms(plan_dir: Path) -> list[str]:
    """--confirm for every acknowledgement and manual step of the plan (the test plays the operator
    who checked them)."""
    data = json.loads((plan_dir / "plan.json").read_text())
    return [f"--confirm={i}" for a in data["accounts"] for i in a["confirm"]]


def passwd(c: Container) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in c.run(["cat", "/etc/passwd"]).stdout.splitlines():
        f = line.split(":")
        out[f[0]] = f
    return out


def unit_uids(c: Container, unit: str) -> list[int]:
    cg = c.run(["systemctl", "show", "-p", "ControlGroup", "--value", unit]).stdout.strip()
    script = (
        f"awk -F: -v cg='{cg}' '$3 == cg {{ split(FILENAME, p, \"/\"); print p[3] }}' /proc/[0-9]*/cgroup"
        " 2>/dev/null | sort -u | while read -r pid; do awk '/^Uid:/ { print $2 }' /proc/$pid/status; done"
    )
    return sorted({int(x) for x in c.run(["bash", "-c", script], check=False).stdout.split()})


def main_uid(c: Container, unit: str) -> int:
    pid = c.run(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout.strip()
    assert pid not in ("", "0"), f"{unit} has no main process"
    for line in c.run(["cat", f"/proc/{pid}/status"]).stdout.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def manifest(c: Container, *paths: str) -> list[str]:
    """owner, group, mode and path of every entry below the paths (following the top symlink)."""
    quoted = " ".join(f"'{p}/'" for p in paths)
    script = f'for p in {quoted}; do [ -e "$p" ] && find "$p" -printf \'%U %G %m %P\\n\'; done | sort'
    return c.run(["bash", "-c", script]).stdout.splitlines()


def files_owned_by(c: Container, uid: int, gid: int) -> list[str]:
    script = f"find / -xdev \\( -uid {uid} -o -gid {gid} \\) -print 2>/dev/null | sort"
    return c.run(["bash", "-c", script], check=False).stdout.splitlines()


def redis_get(c: Container, key: str) -> str:
    out: str = c.wait_for(["redis-cli", "get", key]).stdout.strip()
    return out


def memcached_version(c: Container) -> str:
    script = "exec 3<>/dev/tcp/127.0.0.1/11211 && printf 'version\\r\\n' >&3 && timeout 5 head -n1 <&3"
    out: str = c.wait_for(["bash", "-c", script]).stdout.strip()
    return out


def verify(c: Container, *args: str, check: bool = False) -> Any:
    return c.run(["bash", "-c", f"{PY} verify {' '.join(args)}"], check=check, timeout=300)


# What the unprivileged `nobody` (no supplementary groups) can read ("r") and enter ("x"): every path
# of the root filesystem (-xdev: not /proc, /sys, /run or /tmp, mounts of their own in the container)
# is listed as root, then tried by nobody itself (setpriv, util-linux, essential), so that a file
# inside a directory nobody may enter but not list is judged too.
NOBODY_PROBE = (
    "f=$(mktemp); find / -xdev -printf '%p\\n' 2>/dev/null >\"$f\" || true; cat \"$f\"; echo '--'; "
    "setpriv --reuid=65534 --regid=65534 --clear-groups -- bash -c "
    '\'while IFS= read -r p; do [ -L "$p" ] && continue; [ -r "$p" ] && echo "r $p"; '
    '[ -d "$p" ] && [ -x "$p" ] && echo "x $p"; done; true\' <"$f"; rm -f "$f"'
)


@dataclass(frozen=True)
class Access:
    """Every path of the root filesystem, and what nobody could do with each."""

    paths: frozenset[str]
    allowed: frozenset[str]  # "r /path" and "x /dir"


def nobody_access(c: Container) -> Access:
    out = c.run(["bash", "-c", NOBODY_PROBE]).stdout.splitlines()
    cut = out.index("--")
    allowed = frozenset(out[cut + 1 :])
    assert "r /etc/passwd" in allowed, "the nobody probe saw nothing"
    assert "r /etc/shadow" not in allowed, "the probe did not run as nobody"
    return Access(frozenset(out[:cut]), allowed)


# containers a plan was written into, and nobody's access before (see plan_into, check_access)
ACCESS_BEFORE: dict[int, tuple[Container, Access]] = {}


def check_access(made: list[Container]) -> list[str]:
    """For every container of a test that a plan was written into and that still runs: what nobody
    can read or enter now that it could not before the plan (every e2e migration, whatever else the
    test checks)."""
    out: list[str] = []
    for c in made:
        entry = ACCESS_BEFORE.pop(id(c), None)
        if entry is None or entry[0] is not c or not c.running:
            continue
        out += widened(entry[1], nobody_access(c))
    return out


def widened(before: Access, after: Access) -> list[str]:
    """What nobody can do now with a path that existed before and that it could not do then
    (files created since, such as the drop-ins, are not widening)."""
    return sorted(a for a in after.allowed - before.allowed if a.split(" ", 1)[1] in before.paths)
