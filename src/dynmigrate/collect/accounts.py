"""Readers for passwd, group, gshadow, shadow, login.defs, adduser.conf and nsswitch.conf.

Each reader is a pure function of (text, path) returning values and problems, so property
tests can feed it arbitrary input; `read_accounts` wires them to a RootFS.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.model.accounts import (
    Account,
    AccountData,
    Group,
    NssConfig,
    PasswordState,
    SystemRange,
)
from dynmigrate.model.common import GroupName, Location, RelPath, UserName
from dynmigrate.model.findings import Problem

DEFAULT_SYS_MAX = 999  # Debian, Ubuntu, Fedora, Arch: SYS_UID_MAX / LAST_SYSTEM_UID default
NAME_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$")


@dataclass(frozen=True, slots=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str
    location: Location


def _lines(text: str) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]


def _records(
    text: str, path: RelPath, kind: str, width: int, nis: str, problems: list[Problem]
) -> Iterator[tuple[Location, list[str]]]:
    """The records of a passwd-like file (kind "passwd" or "group"): its lines that are neither
    blank nor comments, split into width fields, with a valid name first. Every line left out
    for being malformed is a problem: a NUL byte, a NIS compat entry (nis says what of it), a
    wrong number of fields, an invalid name."""
    for lineno, line in _lines(text):
        loc = Location(path, lineno)
        if line.startswith("#"):
            continue
        if "\x00" in line:
            problems.append(Problem(loc, "NUL byte in the line: ignored"))
            continue
        if line[0] in "+-":
            problems.append(Problem(loc, nis))
            continue
        fields = line.split(":")
        if len(fields) != width:
            problems.append(Problem(loc, f"{kind} line has {len(fields)} fields, expected {width}"))
            continue
        if not NAME_RE.match(fields[0]):
            problems.append(Problem(loc, f"invalid {'user' if kind == 'passwd' else 'group'} name {fields[0]!r}"))
            continue
        yield loc, fields


def parse_passwd(text: str, path: RelPath) -> tuple[list[PasswdEntry], list[Problem]]:
    entries: list[PasswdEntry] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    nis = "NIS compat entry ignored (accounts from NIS are not read)"
    for loc, fields in _records(text, path, "passwd", 7, nis, problems):
        name, _pw, uid_s, gid_s, gecos, home, shell = fields
        try:
            uid, gid = int(uid_s), int(gid_s)
        except ValueError:
            problems.append(Problem(loc, f"non-numeric UID or GID for {name!r}"))
            continue
        if uid < 0 or gid < 0 or uid > 0xFFFFFFFE or gid > 0xFFFFFFFE:
            problems.append(Problem(loc, f"UID or GID out of range for {name!r}"))
            continue
        if name in seen:
            problems.append(Problem(loc, f"duplicate user {name!r}: the first entry wins"))
            continue
        seen.add(name)
        entries.append(PasswdEntry(name, uid, gid, gecos, home, shell.strip(), loc))
    return entries, problems


@dataclass(frozen=True, slots=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]
    location: Location


def parse_group(text: str, path: RelPath) -> tuple[list[GroupEntry], list[Problem]]:
    entries: list[GroupEntry] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for loc, fields in _records(text, path, "group", 4, "NIS compat entry ignored", problems):
        name, _pw, gid_s, members = fields
        try:
            gid = int(gid_s)
        except ValueError:
            problems.append(Problem(loc, f"non-numeric GID for group {name!r}"))
            continue
        if gid < 0 or gid > 0xFFFFFFFE:
            problems.append(Problem(loc, f"GID out of range for group {name!r}"))
            continue
        if name in seen:
            problems.append(Problem(loc, f"duplicate group {name!r}: the first entry wins"))
            continue
        seen.add(name)
        mem = tuple(m.strip() for m in members.split(",") if m.strip())
        entries.append(GroupEntry(name, gid, mem, loc))
    return entries, problems


def parse_gshadow(text: str, path: RelPath) -> tuple[dict[str, tuple[str, ...]], list[Problem]]:
    """Group name -> members listed in gshadow (administrators count as members too)."""
    members: dict[str, tuple[str, ...]] = {}
    problems: list[Problem] = []
    for lineno, line in _lines(text):
        fields = line.split(":")
        if len(fields) != 4:
            problems.append(Problem(Location(path, lineno), "gshadow line malformed (not shown)"))
            continue
        name, _pw, admins, mem = fields
        names = [m.strip() for m in (admins + "," + mem).split(",") if m.strip()]
        members[name] = tuple(dict.fromkeys(names))
    return members, problems


def password_state(hash_field: str) -> PasswordState:
    if hash_field == "":
        return PasswordState.EMPTY
    if hash_field[0] in "!*":
        return PasswordState.LOCKED
    return PasswordState.SET


def parse_shadow(text: str, path: RelPath) -> tuple[dict[str, PasswordState], list[Problem]]:
    """Only whether each account is locked or has a password. The hash is dropped here.

    Problem messages never quote the line: it may hold a hash.
    """
    states: dict[str, PasswordState] = {}
    problems: list[Problem] = []
    for lineno, line in _lines(text):
        fields = line.split(":")
        if len(fields) < 2 or not fields[0]:
            problems.append(Problem(Location(path, lineno), "shadow line malformed (not shown)"))
            continue
        states.setdefault(fields[0], password_state(fields[1]))
    return states, problems


def parse_keyvalue(
    text: str, path: RelPath, keys: frozenset[str], sep: str
) -> tuple[dict[str, tuple[int, Location]], list[Problem]]:
    """login.defs ("KEY VALUE") and adduser.conf ("KEY=VALUE"): integer settings only."""
    out: dict[str, tuple[int, Location]] = {}
    problems: list[Problem] = []
    for lineno, line in _lines(text):
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if sep == "=":
            key, eq, value = stripped.partition("=")
            if not eq:
                continue
        else:
            parts = stripped.split(None, 1)
            if len(parts) != 2:
                continue
            key, value = parts
        key = key.strip()
        if key not in keys:
            continue
        value = value.strip().strip('"').strip("'")
        try:
            out[key] = (int(value, 0), Location(path, lineno))
        except ValueError:
            problems.append(Problem(Location(path, lineno), f"{key} is not a number: {value!r}"))
    return out, problems


def parse_nsswitch(text: str, path: RelPath) -> tuple[dict[str, tuple[tuple[str, ...], Location]], list[Problem]]:
    out: dict[str, tuple[tuple[str, ...], Location]] = {}
    for lineno, line in _lines(text):
        stripped = line.split("#", 1)[0].strip()
        if ":" not in stripped:
            continue
        db, _, rest = stripped.partition(":")
        sources = tuple(w for w in re.sub(r"\[[^\]]*\]", " ", rest).split() if w)
        out[db.strip()] = (sources, Location(path, lineno))
    return out, []


LIB_DIRS = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
)


def find_nss_systemd(fs: RootFS) -> RelPath | None:
    for base in LIB_DIRS:
        candidates = [f"{base}/libnss_systemd.so.2"]
        try:
            for name in fs.listdir(base):
                if name.endswith("-linux-gnu") or name.endswith("-linux-musl"):
                    candidates.append(f"{base}/{name}/libnss_systemd.so.2")
        except RootError:
            continue
        for cand in candidates:
            try:
                info = fs.stat(cand)
            except RootError:
                continue
            if info is not None:
                return RelPath(cand)
    return None


def _read(fs: RootFS, path: str, problems: list[Problem], *, required: bool) -> str | None:
    try:
        return fs.read_text(path)
    except RootError as exc:
        if required or exc.reason != "no such file":
            problems.append(Problem(Location(RelPath(path)), exc.reason))
        return None


def read_accounts(fs: RootFS) -> tuple[AccountData, list[Problem]]:
    problems: list[Problem] = []
    passwd_entries: list[PasswdEntry] = []
    group_entries: list[GroupEntry] = []
    text = _read(fs, "/etc/passwd", problems, required=True)
    if text is not None:
        passwd_entries, more = parse_passwd(text, RelPath("/etc/passwd"))
        problems += more
    text = _read(fs, "/etc/group", problems, required=True)
    if text is not None:
        group_entries, more = parse_group(text, RelPath("/etc/group"))
        problems += more
    shadow: dict[str, PasswordState] = {}
    text = _read(fs, "/etc/shadow", problems, required=False)
    if text is not None:
        shadow, more = parse_shadow(text, RelPath("/etc/shadow"))
        problems += more
    gshadow: dict[str, tuple[str, ...]] = {}
    text = _read(fs, "/etc/gshadow", problems, required=False)
    if text is not None:
        gshadow, more = parse_gshadow(text, RelPath("/etc/gshadow"))
        problems += more

    accounts = tuple(
        Account(
            UserName(e.name),
            e.uid,
            e.gid,
            e.gecos,
            e.home,
            e.shell,
            e.location,
            shadow.get(e.name, PasswordState.UNKNOWN),
        )
        for e in passwd_entries
    )
    groups = tuple(
        Group(
            GroupName(g.name),
            g.gid,
            tuple(UserName(m) for m in dict.fromkeys((*g.members, *gshadow.get(g.name, ())))),
            g.location,
        )
        for g in group_entries
    )

    system_range = _system_range(fs, problems)
    nss = _nss_config(fs, problems)
    return AccountData(accounts, groups, system_range, nss), problems


def _system_range(fs: RootFS, problems: list[Problem]) -> SystemRange:
    """The highest system UID and GID: login.defs' SYS_*_MAX, raised by adduser.conf's LAST_SYSTEM_*."""
    sources: list[str] = []
    uid_max: int | None = None
    gid_max: int | None = None
    text = _read(fs, "/etc/login.defs", problems, required=False)
    if text is not None:
        vals, more = parse_keyvalue(text, RelPath("/etc/login.defs"), frozenset({"SYS_UID_MAX", "SYS_GID_MAX"}), " ")
        problems += more
        if "SYS_UID_MAX" in vals:
            uid_max = vals["SYS_UID_MAX"][0]
            sources.append(f"{vals['SYS_UID_MAX'][1]} SYS_UID_MAX={uid_max}")
        if "SYS_GID_MAX" in vals:
            gid_max = vals["SYS_GID_MAX"][0]
            sources.append(f"{vals['SYS_GID_MAX'][1]} SYS_GID_MAX={gid_max}")
    text = _read(fs, "/etc/adduser.conf", problems, required=False)
    if text is not None:
        vals, more = parse_keyvalue(
            text,
            RelPath("/etc/adduser.conf"),
            frozenset({"LAST_SYSTEM_UID", "LAST_SYSTEM_GID"}),
            "=",
        )
        problems += more
        if "LAST_SYSTEM_UID" in vals:
            v = vals["LAST_SYSTEM_UID"][0]
            uid_max = v if uid_max is None else max(uid_max, v)
            sources.append(f"{vals['LAST_SYSTEM_UID'][1]} LAST_SYSTEM_UID={v}")
        if "LAST_SYSTEM_GID" in vals:
            v = vals["LAST_SYSTEM_GID"][0]
            gid_max = v if gid_max is None else max(gid_max, v)
            sources.append(f"{vals['LAST_SYSTEM_GID'][1]} LAST_SYSTEM_GID={v}")
    if uid_max is None or gid_max is None:
        sources.append(f"distribution default {DEFAULT_SYS_MAX}")
    return SystemRange(
        uid_max if uid_max is not None else DEFAULT_SYS_MAX,
        gid_max if gid_max is not None else (uid_max if uid_max is not None else DEFAULT_SYS_MAX),
        tuple(sources),
    )


def _nss_config(fs: RootFS, problems: list[Problem]) -> NssConfig:
    """The passwd and group sources of /etc/nsswitch.conf, and whether nss-systemd is installed."""
    passwd_src: tuple[str, ...] = ()
    group_src: tuple[str, ...] = ()
    nss_loc: Location | None = None
    text = _read(fs, "/etc/nsswitch.conf", problems, required=False)
    if text is not None:
        dbs, _ = parse_nsswitch(text, RelPath("/etc/nsswitch.conf"))
        if "passwd" in dbs:
            passwd_src, nss_loc = dbs["passwd"]
        if "group" in dbs:
            group_src = dbs["group"][0]
    return NssConfig(passwd_src, group_src, nss_loc, find_nss_systemd(fs))
