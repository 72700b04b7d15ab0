"""Snapshots and reports built in memory: graph, rules and render tested without a root on disk.

    snap = snapshot(accounts=[account("redis", 120)], units=[unit("redis.service", "[Service]\\nUser=redis\\n")])
    result = scan(snap)          # graph, rules, verdicts: the ScanResult the CLI would get

A unit's text is split into directives here, line by line ([Section], Key=Value), with file and
line as /etc/systemd/system/NAME:LINE; nothing is read from disk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from dynmigrate.app import analyse
from dynmigrate.engine.result import ScanResult
from dynmigrate.model.accounts import Account, AccountData, Group, NssConfig, SystemRange
from dynmigrate.model.common import GroupName, Location, RelPath, UnitName, UserName
from dynmigrate.model.references import Reference
from dynmigrate.model.snapshot import HostInfo, PathFact, Policy, Snapshot
from dynmigrate.model.units import Directive, LoadState, Unit

UNIT_DIR = "/etc/systemd/system"


def account(name: str, uid: int, *, home: str = "/nonexistent", shell: str = "/usr/sbin/nologin") -> Account:
    """A system account with a group of the same name and id, as adduser --system makes it."""
    return Account(UserName(name), uid, uid, "", home, shell, Location(RelPath("/etc/passwd")))  # line: snapshot()


# the text of every unit file unit() made, by path: snapshot() gives its units' texts to the plan
# (the effective unit before and after, the diff), as collect gives those it read
TEXTS: dict[RelPath, str] = {}


def unit(name: str, text: str, *, enabled: bool = True, state: LoadState = LoadState.LOADED) -> Unit:
    """A unit from its file text (no drop-ins, no specifiers)."""
    path = RelPath(f"{UNIT_DIR}/{name}")
    TEXTS[path] = text
    directives: list[Directive] = []
    section = ""
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            directives.append(Directive(section, key.strip(), value.strip(), Location(path, lineno), value.strip()))
    return Unit(UnitName(name), state, path, path, (), tuple(directives), enabled=enabled)


def snapshot(
    *,
    accounts: Iterable[Account] = (),
    units: Iterable[Unit] = (),
    references: Iterable[Reference] = (),
    paths: Iterable[PathFact] = (),
    systemd_version: int = 252,
) -> Snapshot:
    """A Snapshot of a Debian 12 root with these accounts, units, references and path facts."""
    listed = (account("root", 0, home="/root", shell="/bin/bash"), *accounts)
    accs = tuple(replace(a, location=Location(RelPath("/etc/passwd"), i)) for i, a in enumerate(listed, 1))
    groups = tuple(
        Group(GroupName(a.name), a.gid, (), Location(RelPath("/etc/group"), i)) for i, a in enumerate(accs, 1)
    )
    units = tuple(units)
    return Snapshot(
        root_label="memory",
        accounts=AccountData(
            accs,
            groups,
            SystemRange(999, 999, ("distribution default",)),
            NssConfig(("files", "systemd"), ("files", "systemd"), None, RelPath("/usr/lib/libnss_systemd.so.2")),
        ),
        units=units,
        unit_texts=tuple((u.fragment, TEXTS[u.fragment]) for u in units if u.fragment in TEXTS),
        search_path=(UNIT_DIR, "/usr/lib/systemd/system"),
        references=tuple(references),
        statoverrides=(),
        packages=(),
        trees=(),
        etc_entries=(),
        mountpoints=(),
        walked_entries=0,
        paths=tuple(paths),
        host=HostInfo("debian", "12", "Debian GNU/Linux 12 (bookworm)", systemd_version, "memory"),
        policy=Policy(),
        retired=(),
        problems=(),
    )


def scan(snap: Snapshot) -> ScanResult:
    """Graph, rules and verdicts over an in-memory snapshot: what run_scan gives after collect."""
    return analyse(snap)
