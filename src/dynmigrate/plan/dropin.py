"""The drop-in for one unit, the effective unit before and after, and their diff."""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dynmigrate import __version__
from dynmigrate.graph.queries import managed_slot
from dynmigrate.model.common import RelPath
from dynmigrate.model.daemons import state_config
from dynmigrate.model.paths import is_under, rel
from dynmigrate.model.plan import Credential, ExecMode, ManagedDir
from dynmigrate.model.snapshot import Snapshot
from dynmigrate.model.units import DIRECTORY_KEYS, EXEC_KEYS, Directive, Unit, parse_bool
from dynmigrate.model.unitsyntax import exec_argv, expand_env, render_unit, unit_environment
from dynmigrate.plan.directories import declared_paths, matched_text, run_path

PREFIX_RE = re.compile(r"^([@\-:+!|]*)(.*)$", re.S)
TMP_RE = re.compile(r"(?:^|[\s=:'\"])/(?:var/)?tmp(?:/|$|[\s'\"])")
FIXUP_TOOLS = frozenset({"chown", "chgrp", "chmod", "mkdir", "install", "rmdir"})
# Keys this drop-in sets; a later drop-in that sets them again would undo the migration.
OWN_KEYS = frozenset({"DynamicUser", "User", "Group", *DIRECTORY_KEYS, "ReadWritePaths", "PIDFile"})


@dataclass(slots=True)
class DropIn:
    items: list[tuple[str, str]] = field(default_factory=list)
    decisions: list[str] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)
    risks: list[str] = field(default_factory=list)
    # configuration files the daemon rewrites as its state: (as written in ExecStart=, where it moves)
    state_configs: list[tuple[str, str]] = field(default_factory=list)
    # PID files the command lines named straight in /run: (as written, where they point now)
    moved_pidfiles: list[tuple[str, str]] = field(default_factory=list)

    def set(self, key: str, value: str) -> None:
        self.items.append((key, value))


def split_prefix(value: str) -> tuple[str, str]:
    m = PREFIX_RE.match(value.strip())
    assert m is not None
    return m.group(1), m.group(2)


def with_bang(value: str) -> str:
    """Add the '!' prefix (run with full privileges for the credential change) unless + or ! is there."""
    prefix, rest = split_prefix(value)
    if "+" in prefix or "!" in prefix:
        return value.strip()
    return f"{prefix}!{rest}"


def with_plus(value: str) -> str:
    prefix, rest = split_prefix(value)
    if "+" in prefix or "!" in prefix:
        return value.strip()
    return f"{prefix}+{rest}"


def is_fixup(value: str, managed: list[ManagedDir]) -> bool:
    """An Exec line that creates or re-owns a path a managed directory now provides."""
    argv = exec_argv(value)
    if not argv:
        return False
    tool = argv[0].rsplit("/", 1)[-1]
    if tool not in FIXUP_TOOLS:
        return False
    if tool == "install" and not any(
        a in ("-o", "-g", "-d") or a.startswith(("--owner", "--group", "-d")) for a in argv
    ):
        return False
    paths = [a for a in argv[1:] if a.startswith("/")]
    if not paths:
        return False
    roots = [str(m.path) for m in managed] + [str(m.path).replace("/run/", "/var/run/", 1) for m in managed]
    return all(any(is_under(str(rel(p)), r) for r in roots) for p in paths)


def state_config_move(value: str, managed: list[ManagedDir]) -> tuple[str, str] | None:
    """(the file, where it goes) when an ExecStart= value names a configuration file under /etc that
    its daemon rewrites as its state: the plan gives /etc to root, so it moves into the unit's state
    directory (a file named with specifiers only when they are a template's instance)."""
    path = state_config(exec_argv(value))
    state = next((m for m in managed if m.key == "StateDirectory" and "%" not in m.name), None)
    if path is None or state is None or not path.startswith("/etc/") or "%" in path.replace("%i", ""):
        return None
    return path, f"{state.path}/{posixpath.basename(path)}"


def _move_state_config(unit: Unit, value: str, managed: list[ManagedDir], out: DropIn) -> str:
    """ExecStart= with its state configuration file moved into the state directory (see state_config_move)."""
    move = state_config_move(value, managed)
    if move is None or ("%" in move[0] and not unit.is_template):
        return value
    path, target = move
    out.state_configs.append(move)
    program = exec_argv(value)[0].rsplit("/", 1)[-1]
    out.decisions.append(
        f"ExecStart= names {target} instead of {path}: {program} rewrites its configuration file as its state "
        f"(it exits when the file is not writable, and saves by renaming a new file over it), and "
        f"{posixpath.dirname(path)} becomes root's; stage 1 copies the file there (as the account), and the "
        "daemon keeps it in its state directory from then on"
    )
    out.risks.append(
        f"{unit.name}: {path} stays as it was and is no longer read: change {target} instead"
        + (" (an instance started later needs its file copied there first)" if unit.is_template else "")
    )
    return re.sub(rf"(?<=\s){re.escape(path)}(?=\s|$)", target.replace("\\", "\\\\"), value)


@dataclass(frozen=True, slots=True)
class _RunFile:
    """A file a command line tells the daemon to write straight into /run (or /var/run): an argument,
    or a piece of one split at '=', after the unit's variables are filled in."""

    key: str  # the Exec key of the line
    line: str  # the line as the plan matches it (see matched_text)
    path: str  # as written: /run/NAME.EXT or /var/run/NAME.EXT
    name: str  # NAME.EXT


def _files_in_run(unit: Unit) -> Iterator[_RunFile]:
    env = unit_environment(unit)
    for key in EXEC_KEYS:
        for d in unit.values("Service", key):
            line = matched_text(unit, d)
            for arg in exec_argv(expand_env(line, env))[1:]:
                for piece in arg.split("="):
                    p = run_path(piece)
                    name = p.rsplit("/", 1)[-1]
                    if p.startswith("/run/") and p.count("/") == 2 and "." in name:
                        yield _RunFile(key, line, piece, name)


def _pid_file_moves(unit: Unit) -> dict[str, str]:
    """PID files that the unit's own command lines put straight in /run (or /var/run), written out in
    the line (not from a variable): the plan points them into the unit's runtime directory, as it
    does PIDFile=. Other files there (sockets, locks) have readers the plan cannot follow."""
    return {
        f.path: f"/run/{unit.prefix}/{f.name}"
        for f in _files_in_run(unit)
        if f.name.endswith(".pid") and f.path in f.line
    }


def pid_file_readers(snap: Snapshot, unit: Unit, moves: list[tuple[str, str]]) -> list[str]:
    """Manual steps for files outside the unit that name a PID file the plan moved (a logrotate
    postrotate script, another unit): they would read a file that is no longer written."""
    own = {unit.fragment, *unit.dropins}
    texts = [(p, t) for p, t in snap.unit_texts if p not in own] + list(snap.config_texts)
    steps: list[str] = []
    files = {run_path(old): new for old, new in moves}
    for base, new in files.items():
        for path, text in texts:
            # a mention anywhere, not a whole word: the name sits in "$(cat /run/x.pid)", in quotes, or
            # as /var/run/x.pid (which contains it); a false match costs a manual step to read, a missed
            # reader would go on reading a file that is no longer written
            if base in text:
                steps.append(f"{path} names the PID file {base}, which the daemon now writes as {new}: point it there")
    return steps


def _repoint(value: str, moves: dict[str, str]) -> str:
    for old, new in moves.items():
        value = re.sub(rf"(?<![\w./-]){re.escape(old)}(?![\w./-])", _literal(new), value)
    return value


def _literal(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _m: text


def build_dropin(
    unit: Unit,
    account: str,
    exec_mode: ExecMode,
    managed: list[ManagedDir],
    supplementary: list[str],
    credentials: list[Credential],
    own_group_names: tuple[str, ...] = (),
    runtime_sockets: frozenset[str] = frozenset(),
    home: str = "",
) -> DropIn:
    """The drop-in that moves UNIT to the dynamic user ACCOUNT, each line with the decision behind it."""
    out = DropIn()
    out.set("DynamicUser", "yes")
    _user(unit, account, exec_mode, out)
    _groups(unit, account, exec_mode, supplementary, own_group_names, out)
    _managed_directories(unit, managed, runtime_sockets, out)
    _read_write_paths(unit, managed, credentials, out)
    pid_moves = _pid_file_moves(unit)
    out.moved_pidfiles += pid_moves.items()
    _exec_lines(unit, exec_mode, managed, pid_moves, out)
    _pid_files(unit, managed, pid_moves, out)
    _files_left_in_run(unit, pid_moves, out)
    _exec_paths(unit, managed, out)
    _private_tmp(unit, out)
    _home(unit, exec_mode, managed, home, out)
    _credentials(credentials, out)
    return out


def _user(unit: Unit, account: str, exec_mode: ExecMode, out: DropIn) -> None:
    out.set("User", account)
    if unit.prefix == account:
        out.decisions.append(
            f"User={account}: the unit's name would give the same dynamic user ({unit.prefix}, facts F1.9); set "
            "explicitly so that it does not depend on the unit's name and every unit of the account shares it (F1.10)"
        )
    else:
        out.decisions.append(
            f"User={account}: without it the dynamic user would be named after the unit ({unit.prefix}, facts "
            "F1.9), and the data, configs"
            + (" and the daemon's own switch all" if exec_mode is ExecMode.BANG else "")
            + " use the old name"
        )


def _groups(
    unit: Unit,
    account: str,
    exec_mode: ExecMode,
    supplementary: list[str],
    own_group_names: tuple[str, ...],
    out: DropIn,
) -> None:
    """Group= (the dynamic user's own group) and SupplementaryGroups= (the static groups it keeps)."""
    group = unit.value("Service", "Group")
    if group is not None and group.value in own_group_names:
        out.set("Group", account)
        out.decisions.append(f"Group={group.value} is the account's own group: Group={account} (dynamic too)")
    elif group is not None and group.value != account:
        out.set("Group", "")
        if group.value not in supplementary:
            supplementary = [*supplementary, group.value]
        out.decisions.append(
            f"Group={group.value} reset (the dynamic user gets its own group {account}); "
            f"{group.value} moves to SupplementaryGroups="
        )
    elif group is not None:
        out.set("Group", account)
    if supplementary:
        out.set("SupplementaryGroups", " ".join(supplementary))
        out.decisions.append(
            f"SupplementaryGroups={' '.join(supplementary)}: static groups the account was in keep granting access"
        )
        if exec_mode is ExecMode.BANG:
            out.risks.append(
                "SupplementaryGroups= is lost for commands with the '!' prefix (systemd issue 26636); the daemon's "
                "own initgroups() only finds groups that list the user by name in /etc/group"
            )


def _managed_directories(unit: Unit, managed: list[ManagedDir], runtime_sockets: frozenset[str], out: DropIn) -> None:
    """The managed directories the unit does not declare yet, and the modes they keep."""
    for m in managed:
        if m.declared:
            continue
        out.set(m.key, m.name)
        out.decisions.append(f"{m.key}={m.name}: {m.why}")
    preserve = sorted(m.name for m in managed if m.key == "RuntimeDirectory" and m.name in runtime_sockets)
    if preserve and unit.value("Service", "RuntimeDirectoryPreserve") is None:
        out.set("RuntimeDirectoryPreserve", "restart")
        out.decisions.append(
            f"RuntimeDirectoryPreserve=restart: clients connect to sockets in /run/{', /run/'.join(preserve)}, which "
            "would vanish at every restart otherwise (under DynamicUser the directory then lives in /run/private)"
        )
    for m in managed:
        if m.declared or m.mode is None:
            continue
        out.set(f"{m.key}Mode", f"{m.mode:04o}")
        out.decisions.append(f"{m.key}Mode={m.mode:04o}: keeps the existing mode of {m.path}")


def _read_write_paths(unit: Unit, managed: list[ManagedDir], credentials: list[Credential], out: DropIn) -> None:
    """ReadWritePaths= now managed, or shadowed by a read-only tmpfs (a directory others could not enter)."""
    shadowed = [str(c.path) for c in credentials if c.directory]
    for key in ("ReadWritePaths", "ReadWriteDirectories"):
        keep: list[str] = []
        dropped: list[str] = []
        for d in unit.values("Service", key):
            # emit the words as written (systemd expands specifiers itself); match on the expanded ones
            written, expanded = d.raw.split(), d.value.split()
            pairs = zip(written, expanded if len(expanded) == len(written) else written, strict=True)
            for word, value in pairs:
                path = (word if unit.is_template else value).lstrip("-+")
                replaced = _is_managed(path, managed) or (
                    path.startswith("/") and any(is_under(str(rel(path)), sh) for sh in shadowed)
                )
                (dropped if replaced else keep).append(word)
        if not dropped:
            continue
        out.set(key, "")
        for word in keep:
            out.set(key, word)
        out.decisions.append(
            f"{key}= reset: {' '.join(dropped)} are managed directories now (or read-only credentials)"
        )
        if keep:
            out.manual.append(
                f"{unit.name}: {key}={' '.join(keep)} stays writable outside the managed directories; "
                "files written there keep the dynamic UID after it is recycled (facts F1.15)"
            )


def _is_managed(path: str, managed: list[ManagedDir]) -> bool:
    slot = managed_slot(str(rel(path))) if path.startswith("/") else None
    return slot is not None and any(
        m.key == slot[0] and (m.name == slot[1] or is_under(str(rel(path)), str(m.path))) for m in managed
    )


def _exec_lines(
    unit: Unit, exec_mode: ExecMode, managed: list[ManagedDir], pid_moves: dict[str, str], out: DropIn
) -> None:
    """Exec lines: fix-ups out, prefixes for the identity model, moved files pointed at."""
    pso = unit.flag("Service", "PermissionsStartOnly")
    for key in EXEC_KEYS:
        entries = unit.values("Service", key)
        new: list[str] = []
        removed: list[str] = []
        for d in entries:
            if key in ("ExecStartPre", "ExecStartPost") and is_fixup(matched_text(unit, d), managed):
                removed.append(d.raw)
                continue
            # as written: systemd expands specifiers (%i, %n, %%) itself
            line = _with_prefix(key, d.raw, exec_mode, pso)
            if key == "ExecStart":
                line = _move_state_config(unit, line, managed, out)
            new.append(_repoint(line, pid_moves))
        if not removed and new == [d.raw.strip() for d in entries]:
            continue
        out.set(key, "")
        for v in new:
            out.set(key, v)
        if removed:
            out.decisions.append(
                f"{key}: dropped {len(removed)} fix-up line(s) that managed directories replace: " + "; ".join(removed)
            )
    if pso:
        out.set("PermissionsStartOnly", "no")
        out.decisions.append("PermissionsStartOnly= translated to '+' prefixes on every line but ExecStart=")
    if exec_mode is ExecMode.BANG:
        out.decisions.append(
            "no User= in the unit: the daemon starts as root and switches to the account itself, so every "
            "Exec line keeps that with the '!' prefix (the dynamic user is allocated and resolvable by name; the "
            "sandbox still applies). Not chosen: running it unprivileged, which means removing the daemon's own "
            "switch; some daemons refuse that (Debian's memcached wrapper exits unless it is root) and it cannot "
            "be verified offline"
        )


def _with_prefix(key: str, value: str, exec_mode: ExecMode, permissions_start_only: bool) -> str:
    """The command line with the prefix of the identity model: '!' for a daemon that switches to the
    account itself, '+' for what PermissionsStartOnly= ran as root."""
    if exec_mode is ExecMode.BANG:
        return with_bang(value)
    if permissions_start_only and key != "ExecStart":
        return with_plus(value)
    return value.strip()


def _pid_files(unit: Unit, managed: list[ManagedDir], pid_moves: dict[str, str], out: DropIn) -> None:
    """PIDFile= and the PID files the command lines name go into the unit's runtime directory."""
    moved = {str(rel(run_path(old))): new for old, new in pid_moves.items()}
    pid = unit.value("Service", "PIDFile")
    if pid is not None:
        ppath = str(rel(run_path(matched_text(unit, pid))))
        # the runtime directories the plan manages, and those the unit declares (a name the plan
        # never claims itself, such as RuntimeDirectory=cache, is still the unit's own)
        runtime = [str(m.path) for m in managed if m.key == "RuntimeDirectory"]
        runtime += declared_paths(unit, "RuntimeDirectory")
        if not any(is_under(ppath, r) and ppath != r for r in runtime):
            target = f"/run/{unit.prefix}/{ppath.rsplit('/', 1)[-1]}"
            _own_runtime_directory(unit, managed, out)
            out.set("PIDFile", target)
            out.decisions.append(f"PIDFile={target}: /run is read-only under DynamicUser, even for root")
            if moved.get(ppath) != target and ppath != target:  # the daemon may write there already
                out.manual.append(
                    f"{unit.name}: point the daemon's PID file at {target} (it was {pid.value}) in its configuration"
                )
    if moved:
        _own_runtime_directory(unit, managed, out)
        for pid_old, pid_new in pid_moves.items():
            out.decisions.append(
                f"{pid_old} -> {pid_new} in the command lines: the daemon writes its PID file there, and /run is "
                "read-only under DynamicUser, even for root"
            )


def _own_runtime_directory(unit: Unit, managed: list[ManagedDir], out: DropIn) -> None:
    """RuntimeDirectory= named after the unit, where the plan moves its PID files, unless it has it."""
    if not any(m.key == "RuntimeDirectory" and m.name == unit.prefix for m in managed) and (
        ("RuntimeDirectory", unit.prefix) not in out.items
    ):
        out.set("RuntimeDirectory", unit.prefix)


def _files_left_in_run(unit: Unit, pid_moves: dict[str, str], out: DropIn) -> None:
    """Files the daemon is told to write straight into /run (a PID file in an argument or variable)
    that the plan did not move: a manual step each."""
    for f in _files_in_run(unit):
        if f.path in pid_moves and f.path in f.line:
            continue
        out.manual.append(
            f"{unit.name}: {f.key} makes the daemon write {f.path}, straight in /run, which is read-only "
            f"under DynamicUser: point it into RuntimeDirectory= (e.g. /run/{unit.prefix}/)"
        )


def _exec_paths(unit: Unit, managed: list[ManagedDir], out: DropIn) -> None:
    """Programs the unit runs from its own managed directories: systemd >= 257 mounts an id-mapped
    one (a directory it creates, or one root owned) noexec; ExecPaths= (247+) allows them again."""
    env = unit_environment(unit)
    exec_dirs: list[str] = []
    for key in EXEC_KEYS:
        for d in unit.values("Service", key):
            argv = exec_argv(expand_env(matched_text(unit, d), env))
            if not argv or not argv[0].startswith("/"):
                continue
            program = str(rel(argv[0]))
            for m in managed:
                where = str(m.path)
                if m.key in ("RuntimeDirectory", "ConfigurationDirectory") or where in exec_dirs:
                    continue
                if is_under(program, where):
                    exec_dirs.append(where)
                    out.set("ExecPaths", where)
                    out.decisions.append(
                        f"ExecPaths={where}: {key} runs {argv[0]} from it, and systemd 257 mounts an id-mapped "
                        "managed directory noexec"
                    )


def _private_tmp(unit: Unit, out: DropIn) -> None:
    """One /tmp for all of the unit's commands: DynamicUser= implies PrivateTmp=disconnected from
    systemd 257 on, and then ExecStartPre= and friends do not share /tmp with ExecStart= (systemd
    issue 37177); PrivateTmp=yes is what DynamicUser= implied before 257."""
    if unit.value("Service", "PrivateTmp") is not None:
        return
    for key in EXEC_KEYS:
        if key == "ExecStart":
            continue
        hit = next((d for d in unit.values("Service", key) if TMP_RE.search(matched_text(unit, d))), None)
        if hit is not None:
            out.set("PrivateTmp", "yes")
            out.decisions.append(
                f"PrivateTmp=yes: {key} uses /tmp or /var/tmp ({hit.location}), and the disconnected /tmp that "
                "DynamicUser= implies from systemd 257 on is not shared between the unit's commands"
            )
            return


def _home(unit: Unit, exec_mode: ExecMode, managed: list[ManagedDir], home: str, out: DropIn) -> None:
    """HOME: systemd sets it from the user record, and a dynamic user's home is / (facts F1.6); a
    daemon that keeps files or settings under $HOME would silently start on its defaults. When the
    old home is one of the unit's managed directories, the unit keeps it."""
    if (
        exec_mode is ExecMode.USER
        and home
        and "HOME" not in unit_environment(unit)
        and any(str(m.path) == home.rstrip("/") and m.key in ("StateDirectory", "CacheDirectory") for m in managed)
    ):
        out.set("Environment", f"HOME={home.rstrip('/')}")
        out.decisions.append(
            f"Environment=HOME={home.rstrip('/')}: the account's home is a managed directory now; a dynamic "
            "user's home is /, where the daemon would find none of the files it keeps under $HOME"
        )


def _credentials(credentials: list[Credential], out: DropIn) -> None:
    """Secrets reach the unit as credentials, bound back where the daemon reads them."""
    for c in credentials:
        if c.directory:
            out.set("TemporaryFileSystem", f"{c.path}:ro")
            out.decisions.append(
                f"TemporaryFileSystem={c.path}:ro: other users could not enter {c.path} and the dynamic user "
                "cannot either once it is root's; the unit sees an empty read-only directory there with each "
                "of its files bound in from its credential"
            )
            continue
        out.set("LoadCredential", f"{c.name}:{c.path}")
        out.set("BindReadOnlyPaths", f"%d/{c.name}:{c.path}")
        out.decisions.append(
            f"LoadCredential={c.name}:{c.path} and bound back over {c.path}: on disk it keeps the owner and mode "
            "the plan gives it, and the daemon reads it where it always did"
        )


def systemctl_cat(snap: Snapshot, unit: Unit, extra: tuple[RelPath, str] | None = None) -> str:
    """The effective unit as `systemctl cat` prints it: each file after a '# path' line."""
    parts: list[tuple[RelPath, str]] = []
    if unit.fragment is not None:
        parts.append((unit.fragment, snap.unit_text(unit.fragment) or ""))
    dropins = [(p, snap.unit_text(p) or "") for p in unit.dropins]
    if extra is not None:
        dropins = [d for d in dropins if d[0] != extra[0]] + [extra]
        dropins.sort(key=lambda d: d[0].rsplit("/", 1)[-1])
    parts += dropins
    chunks = []
    for path, text in parts:
        body = text if text.endswith("\n") or not text else text + "\n"
        chunks.append(f"# {path}\n{body}")
    return "\n".join(chunks)


def later_conflicts(unit: Unit, items: list[tuple[str, str]], name: str) -> list[Directive]:
    """Directives in drop-ins that sort after ours and undo what ours sets: DynamicUser= off, another
    User=/Group=, a reset of a managed directory list, another PIDFile=, a command line ours rewrote."""
    later = {p for p in unit.dropins if p.rsplit("/", 1)[-1] > name}
    ours = dict(items)  # the last assignment of each key wins
    out: list[Directive] = []
    # command lines ours rewrites (a '!' prefix, a path): a later drop-in that assigns them again
    # (systemctl edit's override.conf resetting ExecStart=) replaces ours, prefix and all
    rewritten = {k for k, _ in items if k.startswith("Exec")}
    last = {(d.location.file, d.key): d for d in unit.directives if d.key in rewritten and d.location.file in later}
    out += last.values()
    for d in unit.directives:
        if d.location.file not in later or d.key not in OWN_KEYS:
            continue
        if d.key == "DynamicUser" and parse_bool(d.value) is True:
            continue
        if d.key in ("User", "Group", "PIDFile") and d.value == ours.get(d.key, d.value):
            continue
        if d.key in DIRECTORY_KEYS and d.value.strip():
            continue  # adding a directory is fine; an empty assignment would drop ours
        if d.key == "ReadWritePaths":
            continue
        out.append(d)
    return out


def dropin_text(unit: Unit, account: str, uid: int, items: list[tuple[str, str]]) -> str:
    header = (
        f"Written by dynmigrate {__version__}: {unit.name} moves from static account {account} "
        f"(UID {uid}) to DynamicUser=yes.\nReview REPORT.md before installing; remove this file to roll back."
    )
    return render_unit([("Service", items)], header=header)


def unified_diff(before: str, after: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(True), after.splitlines(True), f"a/{name} (effective)", f"b/{name} (effective)"
        )
    )
