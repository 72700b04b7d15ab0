"""Which managed directories a unit gets, derived from real ownership and from the unit itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from dynmigrate.graph.queries import Queries, managed_slot
from dynmigrate.model.accounts import Account
from dynmigrate.model.common import RelPath
from dynmigrate.model.files import FileKind, PathInfo
from dynmigrate.model.paths import is_under, parent_of, rel
from dynmigrate.model.plan import ManagedDir
from dynmigrate.model.references import RefKind, Target
from dynmigrate.model.units import DIRECTORY_BASES, DIRECTORY_KEYS, Directive, Unit
from dynmigrate.model.unitsyntax import exec_argv, unit_environment

# Names under the bases that belong to the system, never to one service.
# Directory names as systemd accepts them (specifiers allowed for templates): anything else is
# refused here, so that no odd byte from a scanned root ever reaches the scripts' data.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.@%+:=-]+(/[A-Za-z0-9_.@%+:=-]+)*$")
RESERVED = frozenset({"lock", "user", "systemd", "private", "shm", "log", "lib", "cache", "dbus", "sudo", "sshd"})
# Directories under the bases that the distribution's own tools keep (never one service's to own).
SYSTEM_DIRS = frozenset(
    {
        "dpkg",
        "apt",
        "aptitude",
        "debconf",
        "ucf",
        "misc",
        "pam",
        "polkit-1",
        "dhcp",
        "man-db",
        "sgml-base",
        "xml-core",
        "initramfs-tools",
        "os-prober",
        "logrotate",
        "ldconfig",
        "python",
        "vim",
        "containers",
        "docker",
        "machines",
        "lxc",
        "snapd",
        "installer",
        "journal",
    }
)
KEY_ORDER = {
    k: i
    for i, k in enumerate(
        ("StateDirectory", "CacheDirectory", "LogsDirectory", "RuntimeDirectory", "ConfigurationDirectory")
    )
}


def _mode_key(key: str) -> str:
    return f"{key}Mode"


def swallowed(q: Queries, acc: Account, path: RelPath) -> str:
    """Why PATH may not become a managed directory of ACC ("" when it may).

    systemd re-owns the whole tree of a State/Cache/Logs/Runtime directory to the dynamic user at
    every start where its top has another owner (facts F2.5). So the path must be the account's
    alone: not a directory the system keeps, its top owned by the account (or its own group), and no
    region of another owner below it. Root-owned entries are not regions of the walk: a root-owned top
    is seen as such when anything below it was walked.
    """
    name = path.rsplit("/", 1)[-1]
    if name in SYSTEM_DIRS:
        return f"{path} belongs to the system, not to {acc.name}"
    grp = q.primary_group(acc)
    own_gid = grp.gid if grp is not None and str(grp.name) == str(acc.name) else None

    def mine(uid: int, gid: int) -> bool:
        return uid == acc.uid or (uid == 0 and own_gid is not None and gid == own_gid)

    fact = q.snap.path(path)
    below = [t for t in q.snap.trees if is_under(str(t.top.path), str(path))]
    if fact is not None and fact.target is not None:
        owner: tuple[int, int] = (fact.target.uid, fact.target.gid)
    elif any(t.top.path == path for t in below):
        top = next(t for t in below if t.top.path == path)
        owner = (top.uid, top.gid)
    elif below or any(is_under(str(p.path), str(path)) and p.exists for p in q.snap.paths):
        owner = (0, 0)  # it exists, and no region of another owner starts at it
    else:
        return ""  # it does not exist: systemd creates it fresh
    problems = []
    if not mine(*owner):
        problems.append(f"{path} is owned by {owner[0]}:{owner[1]}, not by {acc.name} alone")
    others = sorted(f"{t.uid}:{t.gid} {t.top.path}" for t in below if t.top.path != path and not mine(t.uid, t.gid))
    if others:
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        problems.append(f"holds files of other owners ({', '.join(others[:3])}{more})")
    if not problems:
        return ""
    text = ", and ".join(problems)
    return text if text.startswith("/") else f"{path} {text}"


def nested_name(q: Queries, acc: Account, key: str, path: str) -> str:
    """The name of a managed directory nested below the top of its base (StateDirectory=foo/bar for
    /var/lib/foo/bar), for a directory of the account whose top (/var/lib/foo) is not the account's
    alone; "" when there is none. PATH must be a real directory (no link on the way, not a mount
    point), owned by the account, holding nothing of other owners: systemd then moves that directory
    alone into private/ and re-owns it, and leaves its parent and the parent's other entries as they
    are (systemd creates the nested private/ parents 0755 root and links the public path to them)."""
    base = DIRECTORY_BASES[key]
    if key in ("ConfigurationDirectory", "RuntimeDirectory") or not is_under(path, base):
        return ""
    name = path[len(base) + 1 :].rstrip("/")
    if "/" not in name or not SAFE_NAME.match(name) or name.split("/", 1)[0] in RESERVED | SYSTEM_DIRS:
        return ""
    fact = q.snap.path(RelPath(path))
    tree = next((t for t in q.trees_of(acc) if t.top.path == path), None)
    if fact is not None:
        info = fact.info
        if info is None or fact.resolved != path or fact.foreign_fs:
            return ""
    elif tree is not None:
        info = tree.top
    else:
        return ""
    if info.kind is not FileKind.DIR or info.uid != acc.uid or info.mountpoint:
        return ""
    return "" if swallowed(q, acc, RelPath(path)) else name


@dataclass(frozen=True, slots=True)
class _Wanted:
    """A managed directory that one part of the unit, or of the account's files, asks for."""

    key: str
    name: str
    why: str
    declared: bool = False  # the unit sets it already
    mode: int | None = None
    # the directory below the top that the unit really writes: it becomes the managed directory
    # itself when the top may not (a directory of other owners' things)
    deeper: str = ""


def run_path(path: str) -> str:
    """PATH with /var/run/ read as /run/ (a link to it on every systemd host): the first one in it."""
    return path.replace("/var/run/", "/run/", 1)


def matched_text(unit: Unit, d: Directive) -> str:
    """The value the plan reads of a directive: as written in a template (its specifiers stay, each
    instance fills them in), expanded in any other unit."""
    return d.raw if unit.is_template else d.value


class _Directories:
    """The managed directories of one unit as they are found, the names refused and the manual steps
    for directories that would swallow a tree that is not the account's alone."""

    def __init__(self, q: Queries, acc: Account) -> None:
        self.q = q
        self.acc = acc
        self.found: dict[tuple[str, str], ManagedDir] = {}
        self.rejected: list[str] = []
        self.manual: dict[tuple[str, str], str] = {}

    def add(self, w: _Wanted) -> None:
        """W, unless systemd would refuse its name, or it would swallow a tree that is not the
        account's alone: then the directory of its own below (W.deeper), or a manual step."""
        if not w.name or w.name in RESERVED or ".." in w.name.split("/") or w.name.startswith("/"):
            return
        if not SAFE_NAME.match(w.name):
            self.rejected.append(f"{w.key}={w.name!r} ({w.why}): not a name systemd accepts here; left out of the plan")
            return
        path = RelPath(f"{DIRECTORY_BASES[w.key]}/{w.name}")
        if not w.declared and w.key != "ConfigurationDirectory" and "%" not in w.name:
            problem = swallowed(self.q, self.acc, path)
            inner = nested_name(self.q, self.acc, w.key, w.deeper) if problem and w.deeper else ""
            if inner:
                why = f"{w.why}; its own directory, as {path} is not {self.acc.name}'s alone"
                self.add(_Wanted(w.key, inner, why, mode=w.mode))
                return
            if problem:
                self.manual.setdefault(
                    (w.key, w.name),
                    f"{w.key}={w.name} is not planned ({w.why}): {problem}; systemd would re-own the whole tree to "
                    "the dynamic user at every start. Keep the path writable by hand (ReadWritePaths= and its owner), "
                    "or move the service's files into a directory of their own",
                )
                return
        self._record(w, path)

    def _record(self, w: _Wanted, path: RelPath) -> None:
        """The directory as planned; a second source of the same one adds to what the first found."""
        fact = self.q.snap.path(path)
        t = fact.target if fact is not None else None
        new = ManagedDir(
            w.key,
            w.name,
            path,
            _planned_mode(w.key, w.mode, t),
            t is not None,
            w.declared,
            w.why,
            f"{t.uid}:{t.gid} {t.mode:04o}" if t is not None else "",
        )
        old = self.found.get((w.key, w.name))
        if old is not None:
            new = replace(
                new,
                mode=old.mode if old.mode is not None else new.mode,
                declared=old.declared or w.declared,
                why=old.why,
            )
        self.found[w.key, w.name] = new

    def covers(self, path: str) -> bool:
        return any(is_under(path, str(m.path)) for m in self.found.values())

    def result(self) -> tuple[list[ManagedDir], list[str], list[str]]:
        steps = [text for k, text in sorted(self.manual.items()) if k not in self.found]
        return sorted(self.found.values(), key=lambda m: (KEY_ORDER[m.key], m.name)), self.rejected, steps


def _planned_mode(key: str, mode: int | None, target: PathInfo | None) -> int | None:
    """The *DirectoryMode= to set (None: systemd's default 0755)."""
    if key == "ConfigurationDirectory":
        # the plan re-owns it to root: 0755 (systemd's default) when others could list it, else its
        # own mode, so that systemd does not warn about it (F2.5: never chowned, never chmodded)
        mode = None
        if target is not None and target.kind is FileKind.DIR and target.mode & 0o005 != 0o005:
            mode = target.mode & 0o777
    elif mode is None and target is not None and target.kind is FileKind.DIR:
        mode = target.mode
    return None if mode == 0o755 else mode


def derive_directories(q: Queries, acc: Account, unit: Unit) -> tuple[list[ManagedDir], list[str], list[str]]:
    """The managed directories a unit gets, the names refused (with why), and the manual steps for
    directories that would swallow a tree that is not the account's alone."""
    dirs = _Directories(q, acc)
    for source in (
        _declared(unit),
        _read_write_paths(unit),
        _exec_fixups(unit),
        _pid_file_parent(unit),
        _environment_files(unit),
        _owned_trees(q, acc, unit, dirs),  # run lazily: it sees what the sources before it found
        _tmpfiles_lines(q, acc),
    ):
        for wanted in source:
            dirs.add(wanted)
    return dirs.result()


def _declared(unit: Unit) -> Iterator[_Wanted]:
    """1. What the unit already declares (modes from *DirectoryMode=)."""
    for key in DIRECTORY_KEYS:
        mode_d = unit.value("Service", _mode_key(key))
        mode = int(mode_d.value, 8) if mode_d is not None and _octal(mode_d.value) else None
        for d in unit.values("Service", key):
            for word in matched_text(unit, d).split():
                yield _Wanted(key, word.split(":", 1)[0], f"declared at {d.location}", declared=True, mode=mode)


def declared_paths(unit: Unit, key: str) -> list[str]:
    """The paths of the managed directories of KEY the unit declares, as it writes them (before
    the plan's checks of their names, which may leave one out of the plan but not of the unit)."""
    return [f"{DIRECTORY_BASES[key]}/{w.name}" for w in _declared(unit) if w.key == key]


def _read_write_paths(unit: Unit) -> Iterator[_Wanted]:
    """2. ReadWritePaths= that a managed directory can replace."""
    for key in ("ReadWritePaths", "ReadWriteDirectories"):
        for d in unit.values("Service", key):
            for word in matched_text(unit, d).split():
                path = word.lstrip("-+")
                if not path.startswith("/"):
                    continue
                slot = managed_slot(str(rel(path)))
                if slot is not None:
                    yield _Wanted(slot[0], slot[1], f"{key}={path} at {d.location}", deeper=str(rel(path)))


def _exec_fixups(unit: Unit) -> Iterator[_Wanted]:
    """3. Directories that ExecStartPre=/ExecStartPost= create or re-own by hand (replaced by *Directory=)."""
    for key in ("ExecStartPre", "ExecStartPost"):
        for d in unit.values("Service", key):
            argv = exec_argv(matched_text(unit, d))
            if not argv or argv[0].rsplit("/", 1)[-1] not in ("mkdir", "chown", "chgrp", "chmod", "install"):
                continue
            tool = argv[0].rsplit("/", 1)[-1]
            mode = _fixup_mode(tool, argv)
            for arg in argv[1:]:
                if arg.startswith("/"):
                    slot = managed_slot(str(rel(arg)))
                    if slot is not None and slot[0] != "ConfigurationDirectory":
                        why = f"{key}={tool} ... {arg} at {d.location}"
                        yield _Wanted(slot[0], slot[1], why, mode=mode, deeper=str(rel(arg)))


def _fixup_mode(tool: str, argv: list[str]) -> int | None:
    """The mode a fix-up command line gives (mkdir -m, install -m, chmod MODE)."""
    if tool in ("mkdir", "install") and "-m" in argv[:-1] and _octal(argv[argv.index("-m") + 1]):
        return int(argv[argv.index("-m") + 1], 8)
    if tool == "chmod" and len(argv) > 2 and _octal(argv[1]):
        return int(argv[1], 8)
    return None


def _pid_file_parent(unit: Unit) -> Iterator[_Wanted]:
    """4. PIDFile= in a runtime subdirectory."""
    pid = unit.value("Service", "PIDFile")
    if pid is not None and pid.value.startswith("/"):
        parent = parent_of(rel(run_path(matched_text(unit, pid))))
        if parent not in ("/run",) and parent.startswith("/run/"):
            yield _Wanted("RuntimeDirectory", parent[len("/run/") :], f"PIDFile={pid.value} at {pid.location}")


def _environment_files(unit: Unit) -> Iterator[_Wanted]:
    """4b. Files Environment= points into a /run subdirectory (a PID file or control socket the
    daemon takes from a variable): /run is read-only under DynamicUser, even for root."""
    for var, value in sorted(unit_environment(unit).items()):
        for piece in re.split(r"[\s:=]+", value):
            p = run_path(piece)
            if not p.startswith("/run/") or "%" in p or p.count("/") < 3:
                continue
            where = next((d.location for d in unit.values("Service", "Environment") if f"{var}=" in d.value), None)
            why = f"Environment={var}={piece}" + (f" at {where}" if where else "")
            yield _Wanted("RuntimeDirectory", p.split("/")[2], why)


def _owned_trees(q: Queries, acc: Account, unit: Unit, dirs: _Directories) -> Iterator[_Wanted]:
    """5. What the account really owns under the managed bases."""
    for tree in q.trees_of(acc):
        slot = managed_slot(tree.top.path) if tree.top.kind is FileKind.DIR else None
        if slot is None:
            continue
        key, name = slot
        if key == "ConfigurationDirectory":
            if tree.top.path == f"/etc/{name}":
                yield _Wanted(key, name, f"/etc/{name} is owned by {acc.name}")
            continue
        top = f"{DIRECTORY_BASES[key] if key != 'RuntimeDirectory' else '/run'}/{name}"
        deeper = ""
        if tree.top.path != top and swallowed(q, acc, RelPath(top)):
            if dirs.covers(tree.top.path) or not _writable(unit, tree.top.path):
                # planned already, or the unit cannot write it today (ProtectSystem=strict): a
                # leftover that stage 3 gives to root, still readable as before
                continue
            deeper = tree.top.path
        owner = "owned" if tree.uid == acc.uid else "group-owned"
        yield _Wanted(key, name, f"{tree.top.path} is {owner} by {acc.name}", deeper=deeper)


def _tmpfiles_lines(q: Queries, acc: Account) -> Iterator[_Wanted]:
    """6. tmpfiles.d lines that create directories for the account."""
    for ref in q.refs_to(acc.name, Target.USER):
        if ref.kind is RefKind.TMPFILES and ref.path is not None and ref.detail[:1] in ("d", "D", "v", "q", "Q"):
            slot = managed_slot(ref.path)
            if slot is not None and slot[0] != "ConfigurationDirectory":
                yield _Wanted(slot[0], slot[1], f"tmpfiles.d creates {ref.path} for {acc.name} ({ref.location})")


def _writable(unit: Unit, path: str) -> bool:
    """Whether the unit's sandbox lets it write PATH today: everything but what ProtectSystem=strict
    makes read-only and no ReadWritePaths= opens again."""
    strict = unit.value("Service", "ProtectSystem")
    if strict is None or strict.value.strip() != "strict":
        return True
    opened = (
        str(rel(w.lstrip("-+")))
        for key in ("ReadWritePaths", "ReadWriteDirectories")
        for d in unit.values("Service", key)
        for w in d.value.split()
    )
    return any(is_under(path, o) for o in opened)


def _octal(text: str) -> bool:
    try:
        int(text, 8)
    except ValueError:
        return False
    return True


def root_daemon_runtime(unit: Unit, managed: list[ManagedDir]) -> list[ManagedDir]:
    """A daemon that starts as root (the plan's '!' prefix) keeps its PID file, control socket or
    chroot in /run/NAME, made at start by the daemon or a helper (sslh's --pidfile in its
    EnvironmentFile=, bird's prepare-environment). Under DynamicUser= /run is read-only even for a
    '!' command (the sandbox still applies, facts F4.3): the unit gets its conventional runtime
    directory, which rollback recreates through tmpfiles.d like any other."""
    name = unit.prefix
    if any(m.key == "RuntimeDirectory" for m in managed) or not SAFE_NAME.match(name) or name in RESERVED:
        return managed
    why = (
        f"the daemon starts as root, and root daemons keep their PID file, socket or chroot in /run/{name}, "
        "which is read-only under DynamicUser even with the '!' prefix"
    )
    extra = ManagedDir("RuntimeDirectory", name, RelPath(f"/run/{name}"), None, False, False, why)
    return sorted([*managed, extra], key=lambda m: (KEY_ORDER[m.key], m.name))
