"""collect(root) -> Snapshot: read everything once, in one place."""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from dynmigrate.collect import references as R
from dynmigrate.collect.accounts import parse_nsswitch, read_accounts
from dynmigrate.collect.ownership import OwnershipData, walk_ownership
from dynmigrate.collect.rootfs import InputError, OwnershipManifest, RootError, RootFS
from dynmigrate.collect.units import load_units
from dynmigrate.model.accounts import AccountData
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.files import FileKind, PathInfo
from dynmigrate.model.findings import Problem
from dynmigrate.model.paths import parent_of, rel
from dynmigrate.model.references import (
    Action,
    BusActivation,
    NssOverride,
    Package,
    Reference,
    RefKind,
    StatOverride,
    Target,
)
from dynmigrate.model.shellwords import split_words
from dynmigrate.model.snapshot import HostInfo, PathFact, Policy, RetiredId, SecretHint, Snapshot
from dynmigrate.model.units import DIRECTORY_BASES, DIRECTORY_KEYS, EXEC_KEYS, Unit
from dynmigrate.model.unitsyntax import exec_argv, expand_env, unit_environment

POLICY_PATH = "/etc/dynmigrate.ini"
LEDGER_PATH = "/var/lib/dynmigrate/retired-ids"
SCRIPT_LIMIT = 512 * 1024


class Events(Protocol):
    """How collect reports progress; the CLI draws it, tests ignore it."""

    def stage(self, name: str) -> None: ...

    def walk_progress(self, entries: int, current: str) -> None: ...


class NoEvents:
    def stage(self, name: str) -> None:
        return None

    def walk_progress(self, entries: int, current: str) -> None:
        return None


# -- site policy (the one place configparser is the right tool) -----------------------------


POLICY_LIMIT = 1024 * 1024


def _policy_line_without_key(text: str) -> int:
    """The number of the first line configparser would reject for lacking "=" or ":" (0: none).

    Lines are split at "\\n" only, as configparser splits them (not at the other line breaks
    str.splitlines knows, such as a vertical tab).
    """
    in_option = False
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if line[0] in " \t" and in_option:
            continue  # a continuation of the value above
        if stripped.startswith("[") and stripped.endswith("]"):
            in_option = False
            continue
        if "=" not in stripped and ":" not in stripped:
            return lineno
        in_option = True
    return 0


def _policy_errors(problems: list[Problem]) -> None:
    """Every problem in a policy file is fatal: a typo in [never] must not drop the list."""
    if problems:
        p = problems[0]
        where = f"{p.location.file}:{p.location.line}" if p.location.line else str(p.location.file)
        raise InputError(f"{where}: {p.message}")


def parse_policy(text: str, source: str) -> tuple[Policy, list[Problem]]:
    """dynmigrate.ini: plain INI written by admins for dynmigrate, so configparser fits.

    [never]
    accounts = postgres backup
    units = legacy.service
    [walk]
    skip = /srv/huge /var/lib/docker
    [probes]
    redis-server.service = redis-cli ping
    [ignore]
    redis = DM110
    redis-server.service = DM208
    """
    problems: list[Problem] = []
    if len(text) > POLICY_LIMIT:
        return Policy(source=source), [
            Problem(Location(RelPath(source)), f"policy file: larger than {POLICY_LIMIT // 1024} KiB")
        ]
    bad = _policy_line_without_key(text)
    if bad:
        # configparser would collect every such line into one message, quadratically
        return Policy(source=source), [
            Problem(Location(RelPath(source), bad), f"policy file: line {bad}: expected [section] or KEY = VALUE")
        ]
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        line = getattr(exc, "lineno", 0) or 0
        msg = str(exc).splitlines()[0]
        return Policy(source=source), [Problem(Location(RelPath(source), int(line)), f"policy file: {msg}")]

    def words(section: str, key: str) -> tuple[str, ...]:
        raw = parser.get(section, key, fallback="")
        return tuple(w for w in re.split(r"[\s,]+", raw) if w)

    problems += _policy_unknown(parser, source)
    probes = tuple(sorted(parser.items("probes"))) if parser.has_section("probes") else ()
    ignores = _policy_ignores(parser, text, source, problems)
    return (
        Policy(
            never_accounts=words("never", "accounts"),
            never_units=words("never", "units"),
            skip_paths=tuple(str(rel(p)) for p in words("walk", "skip")),
            probes=probes,
            source=source,
            ignores=ignores,
        ),
        problems,
    )


def _policy_unknown(parser: configparser.ConfigParser, source: str) -> list[Problem]:
    """A problem for each section and key of the policy file that dynmigrate does not know."""
    problems: list[Problem] = []
    known = {"never": {"accounts", "units"}, "walk": {"skip"}, "probes": None, "ignore": None}
    for section in parser.sections():
        if section not in known:
            problems.append(Problem(Location(RelPath(source)), f"policy file: unknown section [{section}]"))
            continue
        allowed = known[section]
        if allowed is None:
            continue
        for key in parser.options(section):
            if key not in allowed:
                problems.append(Problem(Location(RelPath(source)), f"policy file: unknown key {key} in [{section}]"))
    return problems


def _policy_ignores(
    parser: configparser.ConfigParser, text: str, source: str, problems: list[Problem]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """[ignore]: account or unit -> the rule ids it ignores; a word that is no rule id is a problem."""
    ignores: list[tuple[str, tuple[str, ...]]] = []
    if not parser.has_section("ignore"):
        return ()
    for key, raw in sorted(parser.items("ignore")):
        ids = tuple(w.upper() for w in re.split(r"[\s,]+", raw) if w)
        not_ids = [w for w in ids if not re.fullmatch(r"DM\d{3}", w)]
        if not_ids or not ids:
            line = _key_line(text, key)
            what = f"{', '.join(not_ids)} is not a rule id" if not_ids else "no rule id given"
            problems.append(Problem(Location(RelPath(source), line), f"policy file: [ignore] {key}: {what}"))
            ids = tuple(w for w in ids if w not in not_ids)
        if ids:
            ignores.append((key, ids))
    return tuple(ignores)


def _key_line(text: str, key: str) -> int:
    """The line of `key =` in an INI text (configparser keeps no line numbers), 0 if not found."""
    for n, line in enumerate(text.splitlines(), 1):
        name, sep, _ = line.partition("=")
        if sep and name.strip() == key:
            return n
    return 0


# -- references -----------------------------------------------------------------------------


def _read(fs: RootFS, path: str, problems: list[Problem], limit: int = R.CONFIG_LIMIT) -> str | None:
    try:
        return fs.read_text(path, limit)
    except RootError as exc:
        problems.append(Problem(Location(RelPath(path)), exc.reason))
        return None


def _each(
    fs: RootFS,
    paths: list[RelPath],
    parse: Callable[[str, RelPath], tuple[list[Reference], list[Problem]]],
    refs: list[Reference],
    problems: list[Problem],
    keep: dict[RelPath, str] | None = None,
) -> None:
    for p in paths:
        text = _read(fs, p, problems)
        if text is None:
            continue
        if keep is not None:
            keep[p] = text
        found, probs = parse(text, p)
        refs += found
        problems += probs


def _small_file(fs: RootFS, path: str) -> bool:
    """Whether path is a regular file within the configuration size limit (False when missing or
    when its path cannot be followed)."""
    try:
        info = fs.stat(path)
    except RootError:
        return False
    return info is not None and info.kind is FileKind.FILE and info.size <= R.CONFIG_LIMIT


def _optional_text(fs: RootFS, path: str, problems: list[Problem]) -> str | None:
    """A small text file that may be absent: None when missing, not a regular file, too big or binary."""
    if not _small_file(fs, path):
        return None
    text = _read(fs, path, problems)
    return text if text is not None and "\x00" not in text else None


def _optional_file(fs: RootFS, path: str) -> list[RelPath]:
    try:
        info = fs.stat(path)
    except RootError:
        return [RelPath(path)]  # let the reader report the loop
    return [RelPath(path)] if info is not None else []


def _dir_files(fs: RootFS, directory: str, problems: list[Problem], suffix: str = "") -> list[RelPath]:
    out: list[RelPath] = []
    try:
        names = list(fs.files_in(directory, suffix))
    except RootError as exc:
        problems.append(Problem(Location(RelPath(directory)), exc.reason))
        return out
    for p in names:
        name = p.rsplit("/", 1)[-1]
        if name.startswith(".") or name.endswith(("~", ".dpkg-old", ".dpkg-dist", ".dpkg-new", ".ucf-dist")):
            continue
        try:
            info = fs.stat(p)
        except RootError as exc:
            problems.append(Problem(Location(p), exc.reason))
            continue
        if info is not None and info.kind is FileKind.FILE:
            out.append(p)
        elif info is not None and info.kind is not FileKind.DIR:
            problems.append(Problem(Location(p), f"{info.kind.value} where a file was expected: not read"))
    return out


def read_references(
    fs: RootFS,
    accounts: AccountData,
    units: tuple[Unit, ...],
    problems: list[Problem],
    keep: dict[RelPath, str] | None = None,
) -> list[Reference]:
    """References to accounts outside the units' User=/Group=: cron, sudoers, tmpfiles.d,
    sysusers.d, logrotate, D-Bus policies, udev rules, polkit, ssh keys of system accounts and
    SocketUser=/SocketGroup=. keep receives the texts of the files the rules quote."""
    known = frozenset({a.name for a in accounts.accounts} | {g.name for g in accounts.groups})
    refs: list[Reference] = []
    _read_cron(fs, known, refs, problems, keep)
    _each(fs, _optional_file(fs, "/etc/sudoers"), lambda t, p: R.parse_sudoers(t, p, known), refs, problems)
    _each(fs, _dir_files(fs, "/etc/sudoers.d", problems), lambda t, p: R.parse_sudoers(t, p, known), refs, problems)
    # tmpfiles.d and sysusers.d, with /etc > /run > /usr/lib precedence
    tmp = R.overlay_dir(fs, R.TMPFILES_DIRS, ".conf", problems)
    _each(fs, list(tmp.winners), R.parse_tmpfiles, refs, problems, keep)
    sysu = R.overlay_dir(fs, R.SYSUSERS_DIRS, ".conf", problems)
    _each(fs, list(sysu.winners), R.parse_sysusers, refs, problems, keep)
    _each(fs, _optional_file(fs, "/etc/logrotate.conf"), R.parse_logrotate, refs, problems, keep)
    _each(fs, _dir_files(fs, "/etc/logrotate.d", problems), R.parse_logrotate, refs, problems, keep)
    refs += _dbus_policy_references(fs, problems)
    # udev rules (OWNER=/GROUP=), /etc > /run > /usr/lib precedence by file name
    udev = R.overlay_dir(fs, R.UDEV_DIRS, ".rules", problems)
    _each(fs, list(udev.winners), R.parse_udev_rules, refs, problems)
    for d in R.POLKIT_DIRS:
        _each(fs, _dir_files(fs, d, problems, ".rules"), lambda t, p: R.parse_polkit(t, p, known), refs, problems)
    for d in R.PKLA_DIRS:
        _each(fs, R.files_recursive(fs, d, ".pkla", problems), lambda t, p: R.parse_polkit(t, p, known), refs, problems)
    refs += _ssh_key_references(fs, accounts, problems)
    refs += _socket_references(units)
    return refs


def _read_cron(
    fs: RootFS, known: frozenset[str], refs: list[Reference], problems: list[Problem], keep: dict[RelPath, str] | None
) -> None:
    """/etc/crontab, /etc/cron.d, and the users' crontabs in the spool (the file name is the owner)."""
    _each(fs, _optional_file(fs, "/etc/crontab"), lambda t, p: R.parse_crontab(t, p, known), refs, problems, keep)
    _each(fs, _dir_files(fs, "/etc/cron.d", problems), lambda t, p: R.parse_crontab(t, p, known), refs, problems, keep)
    for spool in ("/var/spool/cron/crontabs", "/var/spool/cron"):
        for spool_file in _dir_files(fs, spool, problems):
            owner = spool_file.rsplit("/", 1)[-1]
            text = _read(fs, spool_file, problems)
            if text is not None:
                found, probs = R.parse_crontab(text, spool_file, known, owner=owner)
                refs += found
                problems += probs


def _dbus_policy_references(fs: RootFS, problems: list[Problem]) -> list[Reference]:
    """The users and groups the D-Bus system policies name (read as bytes: the XML reader decodes)."""
    refs: list[Reference] = []
    for d in R.DBUS_DIRS:
        for p in _dir_files(fs, d, problems, ".conf"):
            try:
                data = fs.read_bytes(p, R.CONFIG_LIMIT)
            except RootError as exc:
                problems.append(Problem(Location(p), exc.reason))
                continue
            found, probs = R.parse_dbus_policy(data, p)
            refs += found
            problems += probs
    return refs


def _ssh_key_references(fs: RootFS, accounts: AccountData, problems: list[Problem]) -> list[Reference]:
    """A login for each system account whose home holds a non-empty authorized_keys file."""
    refs: list[Reference] = []
    for acc in accounts.accounts:
        if not accounts.system_range.is_system_uid(acc.uid) or not acc.home.startswith("/"):
            continue
        for keyfile in (".ssh/authorized_keys", ".ssh/authorized_keys2"):
            p = RelPath(f"{rel(acc.home).rstrip('/')}/{keyfile}")
            try:
                info = fs.stat(p)
            except RootError as exc:
                problems.append(Problem(Location(p), exc.reason))
                continue
            if info is None or info.kind is not FileKind.FILE or info.size == 0:
                continue
            text = _read(fs, p, problems)
            keys = sum(1 for line in (text or "").split("\n") if line.strip() and not line.startswith("#"))
            if keys:
                refs.append(
                    Reference(acc.name, Target.USER, RefKind.SSH_KEYS, Action.LOGIN, Location(p), f"{keys} key(s)")
                )
    return refs


def _socket_references(units: tuple[Unit, ...]) -> list[Reference]:
    """SocketUser=/SocketGroup= in socket units."""
    refs: list[Reference] = []
    for unit in units:
        if unit.type != "socket":
            continue
        for key, target in (("SocketUser", Target.USER), ("SocketGroup", Target.GROUP)):
            sd = unit.value("Socket", key)
            if sd is not None:
                refs.append(
                    Reference(
                        sd.value,
                        target,
                        RefKind.SOCKET,
                        Action.SOCKET,
                        sd.location,
                        f"{key}={sd.value}",
                        unit=unit.name,
                    )
                )
    return refs


# -- packages -------------------------------------------------------------------------------

DPKG_INFO = "/var/lib/dpkg/info"
INTERESTING = (
    "/lib/systemd/system/",
    "/usr/lib/systemd/system/",
    "/etc/init.d/",
    "/usr/lib/sysusers.d/",
    "/usr/lib/tmpfiles.d/",
    "/etc/",
    "/var/",
    "/usr/share/dbus-1/system.d/",
)


def read_packages(
    fs: RootFS, accounts: AccountData, interesting_paths: set[str], problems: list[Problem]
) -> tuple[list[Package], list[Reference], list[StatOverride]]:
    """The dpkg packages (their interesting files and maintainer scripts), the references their
    statoverrides and maintainer scripts make to accounts, and the statoverrides."""
    overrides, refs = _read_statoverrides(fs, problems)
    status: dict[str, tuple[str, tuple[str, ...]]] = {}
    if fs.exists("/var/lib/dpkg/status"):
        stext = _read(fs, "/var/lib/dpkg/status", problems, limit=64 * 1024 * 1024)
        if stext is not None:
            status = R.parse_dpkg_status(stext)
    if not fs.is_dir(DPKG_INFO):
        return [], refs, overrides
    try:
        names = fs.listdir(DPKG_INFO)
    except RootError as exc:
        problems.append(Problem(Location(RelPath(DPKG_INFO)), exc.reason))
        return [], refs, overrides
    # kept in a package's files too: a path with a statoverride (whose setgid helper it is), and
    # the sysusers.d files it ships (the accounts it declares)
    keep = interesting_paths | {str(o.path) for o in overrides}
    files, scripts = _dpkg_info(fs, names, keep, problems)
    sysusers_by_conf = _sysusers_by_conf(fs)
    packages: list[Package] = []
    for pkg in sorted(set(files) | set(scripts) | set(status)):
        version, depends = status.get(pkg, ("", ()))
        pkg_scripts = tuple(sorted(scripts.get(pkg, ())))
        packages.append(Package(pkg, depends, tuple(files.get(pkg, ())), pkg_scripts, version, pkg in status))
        for spath in pkg_scripts:
            stext = _read(fs, spath, problems, limit=SCRIPT_LIMIT)
            if stext is not None:
                refs += _maintainer_script_references(R.scan_maintainer_script(stext, spath), pkg, sysusers_by_conf)
    return packages, refs, overrides


def _read_statoverrides(fs: RootFS, problems: list[Problem]) -> tuple[list[StatOverride], list[Reference]]:
    """dpkg-statoverride's database, and the owner and group (other than root) each entry names."""
    text = None
    if fs.exists("/var/lib/dpkg/statoverride"):
        text = _read(fs, "/var/lib/dpkg/statoverride", problems)
    if text is None:
        return [], []
    overrides, probs = R.parse_statoverride(text, RelPath("/var/lib/dpkg/statoverride"))
    problems += probs
    refs: list[Reference] = []
    for o in overrides:
        for name, target in ((o.user, Target.USER), (o.group, Target.GROUP)):
            if not name.startswith("#") and name != "root":
                refs.append(
                    Reference(
                        name,
                        target,
                        RefKind.STATOVERRIDE,
                        Action.OWNS_PATH,
                        o.location,
                        f"{o.user} {o.group} {o.mode:o} {o.path}",
                        o.path,
                    )
                )
    return overrides, refs


def _dpkg_info(
    fs: RootFS, names: list[str], keep: set[str], problems: list[Problem]
) -> tuple[dict[str, list[RelPath]], dict[str, list[RelPath]]]:
    """From the names in /var/lib/dpkg/info: each package's files worth keeping (listed in keep,
    under an INTERESTING directory at most five levels deep, or a sysusers.d file), and its
    maintainer scripts."""
    files: dict[str, list[RelPath]] = {}
    scripts: dict[str, list[RelPath]] = {}
    for name in names:
        stem, dot, ext = name.rpartition(".")
        if not dot:
            continue
        pkg = stem.split(":", 1)[0]
        path = RelPath(f"{DPKG_INFO}/{name}")
        if ext == "list":
            ltext = _read(fs, path, problems, limit=32 * 1024 * 1024)
            if ltext is None:
                continue
            files[pkg] = [
                RelPath(line)
                for line in ltext.split("\n")
                if line in keep
                or (line.startswith(INTERESTING) and line.count("/") <= 5)
                or ("/sysusers.d/" in line and line.endswith(".conf"))
            ]
        elif ext in ("postinst", "preinst", "config", "postrm"):
            scripts.setdefault(pkg, []).append(path)
    return files, scripts


def _sysusers_by_conf(fs: RootFS) -> dict[str, list[Reference]]:
    """sysusers.d declarations by file name (the first directory's wins), for the
    "systemd-sysusers foo.conf" of maintainer scripts."""
    out: dict[str, list[Reference]] = {}
    for d in R.SYSUSERS_DIRS:
        for p in _dir_files(fs, d, [], ".conf"):
            t = _read(fs, p, [])
            if t:
                out.setdefault(p.rsplit("/", 1)[-1], R.parse_sysusers(t, p)[0])
    return out


def _maintainer_script_references(
    actions: list[R.ScriptAction], pkg: str, sysusers_by_conf: dict[str, list[Reference]]
) -> list[Reference]:
    """The references of one package's maintainer script: its account commands, and the accounts
    that the sysusers.d files it hands to systemd-sysusers create."""
    refs: list[Reference] = []
    for act in actions:
        if act.tool == "systemd-sysusers":
            refs += _sysusers_call_references(act, pkg, sysusers_by_conf)
            continue
        guard = " (skipped while the name resolves: guarded by getent)" if act.guarded_by_getent else ""
        action = _script_action(act.tool)
        for nm, target in act.names:
            refs.append(
                Reference(
                    nm,
                    target,
                    RefKind.PACKAGE_SCRIPT,
                    action,
                    act.location,
                    act.command + guard,
                    rel(act.path.split()[0]) if act.path.startswith("/") else None,
                    guarded=act.guarded_by_statoverride,
                    package=pkg,
                )
            )
    return refs


def _script_action(tool: str) -> Action:
    """What a maintainer script's account command does."""
    if tool in ("adduser", "addgroup", "useradd", "groupadd"):
        return Action.CREATES
    if tool in ("deluser", "delgroup", "userdel", "groupdel"):
        return Action.REMOVES
    if tool.startswith("dpkg-statoverride"):
        return Action.OWNS_PATH
    return Action.CHOWNS


def _sysusers_call_references(
    act: R.ScriptAction, pkg: str, sysusers_by_conf: dict[str, list[Reference]]
) -> list[Reference]:
    """The accounts `systemd-sysusers FILE.conf...` creates (PKG.conf when no file is named)."""
    refs: list[Reference] = []
    for conf in act.path.split() or [f"{pkg}.conf"]:
        for sref in sysusers_by_conf.get(conf.rsplit("/", 1)[-1], []):
            if sref.action is Action.CREATES:
                refs.append(
                    Reference(
                        sref.name,
                        sref.target,
                        RefKind.PACKAGE_SCRIPT,
                        Action.CREATES,
                        act.location,
                        f"systemd-sysusers {conf} ({sref.detail})",
                        package=pkg,
                    )
                )
    return refs


# -- D-Bus activation and nsswitch.conf files units use instead of /etc's ----------------------


def read_bus_activations(fs: RootFS, problems: list[Problem]) -> list[BusActivation]:
    out: list[BusActivation] = []
    seen: set[str] = set()
    for d in R.DBUS_SERVICE_DIRS:
        for p in _dir_files(fs, d, [], ".service"):
            name = p.rsplit("/", 1)[-1]
            if name in seen:
                continue  # an earlier directory's file of the same name wins
            seen.add(name)
            text = _read(fs, p, problems)
            if text is not None:
                out += R.parse_bus_activation(text, p)
    return out


def _nss_passwd(fs: RootFS, path: str, problems: list[Problem]) -> tuple[str, ...] | None:
    """passwd's sources in an nsswitch.conf under ROOT; glibc's default (files) when it is absent."""
    if not fs.exists(path):
        return ("files",)
    text = _optional_text(fs, path, problems)
    if text is None:
        return None
    dbs, _ = parse_nsswitch(text, RelPath(path))
    return dbs["passwd"][0] if "passwd" in dbs else ("files",)


_NssCandidate = tuple[
    str, str, bool, Location, bool
]  # (nsswitch.conf, how, inside another root, directive, must exist)


def _dir_value(fs: RootFS, value: str) -> str | None:
    """An absolute directory an argument or assignment names (its value after "="), if it exists."""
    value = value.split("=", 1)[-1]
    if value.startswith("/") and len(value) > 1 and fs.is_dir(value.rstrip("/")):
        return value.rstrip("/")
    return None


def _chroot_candidates(fs: RootFS, unit: Unit) -> list[_NssCandidate]:
    """RootDirectory=, and directories an Exec*= argument or Environment= value names."""
    out: list[_NssCandidate] = []
    root_dir = unit.value("Service", "RootDirectory")
    if root_dir is not None and root_dir.value.startswith("/") and root_dir.value.rstrip("/"):
        top = root_dir.value.rstrip("/")
        if fs.is_dir(top):
            out.append((f"{top}/etc/nsswitch.conf", f"RootDirectory={top}", True, root_dir.location, False))
    for key in EXEC_KEYS:
        for d in unit.values("Service", key):
            for arg in exec_argv(d.value)[1:]:
                base = _dir_value(fs, arg)
                if base is not None:
                    how = f"chroot directory {base} ({key}= argument)"
                    out.append((f"{base}/etc/nsswitch.conf", how, True, d.location, True))
    for d in unit.values("Service", "Environment"):
        try:
            words = split_words(d.value)
        except ValueError:
            continue  # an unclosed quote: systemd refuses the line too
        for word in words:
            base = _dir_value(fs, word)
            if base is not None:
                how = f"chroot directory {base} (Environment= {word.split('=', 1)[0]})"
                out.append((f"{base}/etc/nsswitch.conf", how, True, d.location, True))
    return out


def _bind_candidates(unit: Unit) -> list[_NssCandidate]:
    """BindPaths=/BindReadOnlyPaths= over /etc/nsswitch.conf or /etc."""
    out: list[_NssCandidate] = []
    for key in ("BindPaths", "BindReadOnlyPaths"):
        for d in unit.values("Service", key):
            for word in d.value.split():
                src, _, rest = word.lstrip("-+").partition(":")
                dest = rest.split(":", 1)[0] or src
                if not src.startswith("/"):
                    continue
                if dest.rstrip("/") == "/etc/nsswitch.conf":
                    out.append((src, f"{key}={word}", False, d.location, True))
                elif dest.rstrip("/") == "/etc":
                    out.append((f"{src.rstrip('/')}/nsswitch.conf", f"{key}={word}", False, d.location, True))
    return out


def read_nss_overrides(fs: RootFS, units: tuple[Unit, ...], problems: list[Problem]) -> list[NssOverride]:
    """nsswitch.conf files a unit's daemon reads instead of /etc/nsswitch.conf: in its RootDirectory=,
    in a directory an Exec*= argument or Environment= value names that holds etc/nsswitch.conf (a
    chroot the daemon enters itself), or bound over /etc/nsswitch.conf (BindPaths=)."""
    out: list[NssOverride] = []
    for unit in units:
        if unit.is_template or unit.type != "service":
            continue
        seen: set[str] = set()
        for path, how, chroot, loc, must_exist in (*_chroot_candidates(fs, unit), *_bind_candidates(unit)):
            if path in seen or (must_exist and not fs.exists(path)):
                continue
            seen.add(path)
            try:
                passwd = _nss_passwd(fs, path, problems)
            except RootError as exc:
                problems.append(Problem(Location(RelPath(path)), exc.reason))
                continue
            if passwd is not None:
                out.append(NssOverride(unit.name, RelPath(path), how, chroot, passwd, loc))
    return sorted(out)


# -- links from units to accounts (units without User=) -------------------------------------


def read_exec_links(
    fs: RootFS, accounts: AccountData, units: tuple[Unit, ...], problems: list[Problem]
) -> list[Reference]:
    known = frozenset({a.name for a in accounts.accounts} | {g.name for g in accounts.groups})
    refs: list[Reference] = []
    read_configs: set[tuple[str, str]] = set()

    def config(path: str, unit: str) -> None:
        if (path, unit) in read_configs:
            return
        read_configs.add((path, unit))
        text = _optional_text(fs, path, problems)
        if text is not None:
            refs.extend(R.scan_daemon_config(text, RelPath(path), known, unit))

    for unit in units:
        if unit.type != "service":
            continue
        env = {**unit_environment(unit), **_environment_files(fs, unit, problems)}
        for key in EXEC_KEYS:
            for d in unit.values("Service", key):
                argv = exec_argv(expand_env(d.value, env))
                if not argv:
                    continue
                script = R.shell_script_argument(argv)
                if script is not None:
                    refs.extend(R.scan_shell_command(script, env, d.location, key, known, unit.name))
                refs.extend(s.reference(d.location, key, unit.name, "certain") for s in R.user_switches(argv, known))
                prog = argv[0]
                for arg in argv[1:]:
                    for piece in arg.split("="):
                        if piece.startswith("/etc/"):
                            config(piece, unit.name)
                if not prog.startswith("/"):
                    continue
                for conv in _conventional_configs(argv, unit):
                    config(conv, unit.name)
                text = _wrapper_script(fs, prog)
                if text is None:
                    continue
                refs.extend(R.scan_wrapper_script(text, RelPath(prog), known, unit.name))
                for cpath in R.config_paths_in_script(text)[:20]:
                    config(cpath, unit.name)
    for unit in units:
        if unit.source_path.startswith("/etc/init.d/"):
            refs.extend(_sysv_links(fs, unit, known, problems))
    return refs


def _conventional_configs(argv: list[str], unit: Unit) -> list[str]:
    """The configuration files a daemon started by an absolute path reads without naming them."""
    base = argv[0].rsplit("/", 1)[-1]
    conventional = [
        f"/etc/{base}/{base}.conf",
        f"/etc/{base}.conf",
        f"/etc/{unit.prefix}/{unit.prefix}.conf",
    ]
    if base == "dbus-daemon" and "--system" in argv:
        conventional += ["/usr/share/dbus-1/system.conf", "/etc/dbus-1/system.conf"]
    return conventional


def _wrapper_script(fs: RootFS, prog: str) -> str | None:
    """The text of PROG when it is a script (#!, no NUL byte, within the config size limit), else None."""
    if not _small_file(fs, prog):
        return None
    try:
        head = fs.read_bytes(prog, R.CONFIG_LIMIT)
    except RootError:
        return None
    if not head.startswith(b"#!") or b"\x00" in head:
        return None
    return head.decode("utf-8", "surrogateescape")


def _environment_files(fs: RootFS, unit: Unit, problems: list[Problem]) -> dict[str, str]:
    """The variables of a unit's EnvironmentFile= files, for the user switches of its Exec*= lines
    only (-u "$SLAPD_USER"): they may hold secrets, so nothing else keeps them."""
    env: dict[str, str] = {}
    for d in unit.values("Service", "EnvironmentFile"):
        path = d.value.strip().lstrip("-")
        if not path.startswith("/") or "*" in path:
            continue
        text = _optional_text(fs, path, problems)
        if text is not None:
            env.update(R.parse_environment_file(text))
    return env


def _sysv_links(fs: RootFS, unit: Unit, known: frozenset[str], problems: list[Problem]) -> list[Reference]:
    """User switches in a SysV init script, with the variables of /etc/default/NAME filled in."""
    script = unit.source_path
    sysv_env: dict[str, str] = {}
    texts: list[tuple[RelPath, str]] = []
    for path in (f"/etc/default/{script.rsplit('/', 1)[-1]}", script):
        body = _optional_text(fs, path, problems)
        if body is None:
            continue
        texts.append((RelPath(path), body))
        for line in body.split("\n"):
            m = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*(?:#.*)?$", line)
            if m and "$(" not in m.group(2) and "`" not in m.group(2):
                sysv_env.setdefault(m.group(1), m.group(2).strip("\"'"))
    refs: list[Reference] = []
    for path, body in texts:
        expanded = "\n".join(expand_env(line, sysv_env) for line in body.split("\n"))
        refs.extend(R.scan_wrapper_script(expanded, path, known, unit.name))
    return refs


# -- paths of interest ----------------------------------------------------------------------


def interesting_paths(accounts: AccountData, units: tuple[Unit, ...]) -> set[str]:
    out: set[str] = {"/var/lib/private", "/var/cache/private", "/var/log/private", "/run/private"}
    for unit in units:
        if unit.type != "service":
            continue
        names = {unit.prefix}
        for key in DIRECTORY_KEYS:
            for word, _ in unit.words("Service", key):
                name = word.split(":", 1)[0]
                if name and not name.startswith("/") and ".." not in name.split("/"):
                    out.add(f"{DIRECTORY_BASES[key]}/{name}")
        for key in ("ReadWritePaths", "ReadWriteDirectories", "WorkingDirectory", "PIDFile", "RootDirectory"):
            for d in unit.values("Service", key):
                for word in d.value.split():
                    w = word.lstrip("-+~!")
                    if w.startswith("/"):
                        out.add(str(rel(w)))
                        if key == "PIDFile":
                            out.add(str(parent_of(rel(w))))
        for key in EXEC_KEYS:
            for d in unit.values("Service", key):
                argv = exec_argv(d.value)
                if argv and argv[0].startswith("/"):
                    out.add(str(rel(argv[0])))
        for name in names:
            for base in DIRECTORY_BASES.values():
                out.add(f"{base}/{name}")
            out.add(f"/var/run/{name}")
    for acc in accounts.accounts:
        if acc.uid == 0:
            continue
        if acc.home.startswith("/"):
            out.add(str(rel(acc.home)))
        for base in (*DIRECTORY_BASES.values(), "/var/run"):
            out.add(f"{base}/{acc.name}")
    return out


def path_fact(fs: RootFS, path: str, problems: list[Problem]) -> PathFact | None:
    p = rel(path)
    try:
        info = fs.lstat(p)
        resolved = fs.resolve(p)
        target = fs.lstat(resolved) if resolved != p else info
    except RootError as exc:
        problems.append(Problem(Location(p), exc.reason))
        return None
    entries = 0
    foreign = False
    dots: tuple[str, ...] = ()
    if target is not None and target.kind is FileKind.DIR:
        try:
            names = fs.listdir(resolved)
        except RootError:
            names = []
        entries = min(len(names), 1000)
        dots = tuple(n for n in names if n.startswith(".") and n not in (".", ".."))[:10]
        foreign = target.mountpoint
        parent = fs.lstat(parent_of(resolved))
        if parent is not None and not parent.mountpoint and target.mountpoint:
            foreign = True
    return PathFact(p, info, resolved, target, entries, foreign, dots)


# -- host -----------------------------------------------------------------------------------


def read_host(fs: RootFS, packages: list[Package], problems: list[Problem]) -> HostInfo:
    values: dict[str, str] = {}
    for candidate in ("/etc/os-release", "/usr/lib/os-release"):
        if fs.exists(candidate):
            text = _read(fs, candidate, problems) or ""
            for line in text.split("\n"):
                k, sep, v = line.partition("=")
                if sep:
                    values[k.strip()] = v.strip().strip('"')
            break
    version: int | None = None
    source = "unknown"
    for pkg in packages:
        if pkg.name == "systemd" and pkg.version:
            m = re.match(r"^(?:\d+:)?(\d+)", pkg.version)
            if m:
                version, source = int(m.group(1)), f"dpkg: systemd {pkg.version}"
    if version is None:
        for d in ("/usr/lib/systemd", "/lib/systemd", "/usr/lib/x86_64-linux-gnu/systemd", "/usr/lib64/systemd"):
            try:
                names = fs.listdir(d) if fs.is_dir(d) else []
            except RootError:
                continue
            for name in names:
                m = re.match(r"^libsystemd-(?:shared|core)-(\d+)", name)
                if m:
                    version, source = int(m.group(1)), f"{d}/{name}"
                    break
            if version is not None:
                break
    hostname = ""
    if fs.exists("/etc/hostname"):
        hostname = (_read(fs, "/etc/hostname", problems) or "").strip().split("\n")[0][:64]
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9.-]*$", hostname):
        hostname = ""
    return HostInfo(
        values.get("ID", ""), values.get("VERSION_ID", ""), values.get("PRETTY_NAME", ""), version, source, hostname
    )


SECRET_NAME = re.compile(
    r"(\.key$|\.pem$|\.p12$|\.pfx$|\.keytab$|\.psk$|psk|secret|passw|token|credential|htpasswd|private|\.jks$)",
    re.I,
)
# KEY = VALUE, KEY: VALUE or KEY VALUE where KEY contains a secret word. The key is taken whole
# (possessive, never given back) and the word looked for inside it by a lookahead, so that a long
# key or a run of blanks is one pass; the old nested \s*(?:[=:]|\s)\s* was quadratic in blanks.
SECRET_LINE = re.compile(
    r"^\s*+(?:export\s++)?+"
    r"(?=[A-Za-z0-9_.-]*?(?:password|passwd|secret|token|api[_-]?key|requirepass|masterauth|"
    r"private[_-]?key|auth[_-]?key|access[_-]?key))"
    r"([A-Za-z0-9_.-]*+)(?:\s++\S|[=:]\s*+\S)",
    re.I,
)
PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


ACL_XATTRS = ("system.posix_acl_access", "system.posix_acl_default")


def find_acls(fs: RootFS, entries: tuple[PathInfo, ...]) -> tuple[RelPath, ...]:
    """Which of the service-owned /etc entries carry a POSIX ACL (their mode bits do not tell who
    can read them). Read with getxattr on the entry itself, never following a link."""
    out: list[RelPath] = []
    for e in entries:
        if e.kind not in (FileKind.FILE, FileKind.DIR):
            continue
        try:
            names = os.listxattr(fs.host_path(e.path), follow_symlinks=False)
        except OSError:
            continue  # missing (a manifest-only entry), or a filesystem without xattrs
        if any(n in ACL_XATTRS for n in names):
            out.append(e.path)
    return tuple(sorted(out))


def find_secrets(fs: RootFS, entries: tuple[PathInfo, ...], problems: list[Problem]) -> list[SecretHint]:
    """Files under /etc owned by service accounts that look like secrets: by name or content.

    Only the keyword and the line number are kept; the value never leaves this function.
    """
    out: list[SecretHint] = []
    for info in entries:
        if info.kind is not FileKind.FILE or info.size > R.CONFIG_LIMIT:
            continue
        name = info.path.rsplit("/", 1)[-1]
        m = SECRET_NAME.search(name)
        if m:
            out.append(SecretHint(info.path, 0, f"file name ({m.group(1)})"))
        elif not info.mode & 0o044:
            # readable by its owner only: somebody meant it to be private; never make it world-readable
            out.append(SecretHint(info.path, 0, f"owner-only mode {info.mode_str()}"))
        try:
            text = fs.read_text(info.path, R.CONFIG_LIMIT)
        except RootError:
            continue
        if "\x00" in text:
            continue
        for lineno, line in enumerate(text.split("\n"), 1):
            if line.lstrip().startswith(("#", ";", "//")):
                continue
            if PEM_PRIVATE.search(line):
                out.append(SecretHint(info.path, lineno, "PEM private key"))
                break
            lm = SECRET_LINE.match(line)
            if lm:
                out.append(SecretHint(info.path, lineno, lm.group(1)[:40]))
    return out


def read_ledger(fs: RootFS, problems: list[Problem]) -> list[RetiredId]:
    if not fs.exists(LEDGER_PATH):
        return []
    text = _read(fs, LEDGER_PATH, problems) or ""
    out: list[RetiredId] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        try:
            out.append(RetiredId(int(f[0]), int(f[1]), f[2], f[3], f[4]))
        except (ValueError, IndexError):
            problems.append(Problem(Location(RelPath(LEDGER_PATH), lineno), "ledger line malformed"))
    return out


# -- the whole collect stage ----------------------------------------------------------------


def collect(
    root: str,
    *,
    manifest: OwnershipManifest | None = None,
    policy_file: str | None = None,
    cross_filesystems: bool = False,
    walk: bool = True,
    events: Events | None = None,
) -> Snapshot:
    """Read everything the later stages need from the tree at root, once, reporting progress to
    events. InputError for a policy that cannot be read and for a root without accounts."""
    ev = events or NoEvents()
    fs = RootFS(root, manifest)
    problems: list[Problem] = []
    if manifest is not None:
        manifest.check_paths(fs)
    ev.stage("policy")
    policy = _read_policy(fs, policy_file, problems)
    ev.stage("accounts")
    accounts = _read_accounts(fs, root, problems)
    ev.stage("units")
    loaded = load_units(fs)
    problems += loaded.problems
    ev.stage("references")
    found = _read_outside_units(fs, accounts, loaded.units, problems)
    ev.stage("paths")
    facts = [f for p in sorted(found.interest) if (f := path_fact(fs, p, problems)) is not None]
    owned = _walk(fs, policy, cross_filesystems, ev, problems) if walk else _NOT_WALKED
    activations = read_bus_activations(fs, problems)
    nss_overrides = read_nss_overrides(fs, loaded.units, problems)
    secrets = find_secrets(fs, owned.etc_entries, problems)
    acls = find_acls(fs, owned.etc_entries)
    host = read_host(fs, found.packages, problems)
    retired = read_ledger(fs, problems)
    ev.stage("done")
    return Snapshot(
        root_label=root,
        accounts=accounts,
        units=loaded.units,
        unit_texts=loaded.texts,
        search_path=loaded.search_path,
        references=tuple(sorted(set(found.references))),
        statoverrides=tuple(found.statoverrides),
        packages=tuple(found.packages),
        trees=owned.trees,
        etc_entries=owned.etc_entries,
        mountpoints=owned.mountpoints,
        walked_entries=owned.entries,
        paths=tuple(facts),
        host=host,
        policy=policy,
        retired=tuple(sorted(retired)),
        problems=tuple(sorted(set(problems))),
        secrets=tuple(sorted(set(secrets))),
        acl_paths=acls,
        config_texts=tuple(sorted(found.config_texts.items())),
        nested_roots=owned.nested_roots,
        bus_activations=tuple(sorted(activations)),
        nss_overrides=tuple(nss_overrides),
    )


def _walk(fs: RootFS, policy: Policy, cross_filesystems: bool, ev: Events, problems: list[Problem]) -> OwnershipData:
    ev.stage("walk")
    owned, probs = walk_ownership(fs, cross_filesystems=cross_filesystems, skip=policy.skip_paths, progress=ev)
    problems += probs
    return owned


# what a collect without the walk (walk=False) has of it: nothing
_NOT_WALKED = OwnershipData(trees=(), etc_entries=(), mountpoints=(), entries=0, crossed_filesystems=False)


def _read_policy(fs: RootFS, policy_file: str | None, problems: list[Problem]) -> Policy:
    """The site policy: the file given (--policy), else ROOT's own, else an empty policy. A policy
    that cannot be read is an error, never a silently empty policy: its [never] list is what keeps
    dynmigrate away from the site's accounts. [probes] count only in a file given from outside."""
    if policy_file is not None:
        try:
            with open(policy_file, encoding="utf-8") as fh:
                ptext = fh.read(POLICY_LIMIT + 1)
        except UnicodeDecodeError:
            raise InputError(f"{policy_file}: policy file is not UTF-8 text") from None
        except OSError as exc:
            raise InputError(f"{policy_file}: policy file: {exc.strerror or exc}") from None
        policy, probs = parse_policy(ptext, policy_file)
        _policy_errors(probs)
        return policy
    if not fs.exists(POLICY_PATH):
        return Policy()
    try:
        ptext = fs.read_text(POLICY_PATH)
    except RootError as exc:
        raise InputError(f"{exc.path}: policy file: {exc.reason}") from None
    policy, probs = parse_policy(ptext, POLICY_PATH)
    _policy_errors(probs)
    if not policy.probes:
        return policy
    problems.append(
        Problem(
            Location(RelPath(POLICY_PATH)),
            "[probes] inside the scanned root are ignored (pass the file with --policy)",
        )
    )
    return replace(policy, probes=())


def _read_accounts(fs: RootFS, root: str, problems: list[Problem]) -> AccountData:
    """The accounts and groups; a root without a single valid /etc/passwd line is no Linux root."""
    accounts, probs = read_accounts(fs)
    problems += probs
    if not accounts.accounts:
        why = next(
            (p.message for p in probs if p.location.file == "/etc/passwd" and not p.location.line),
            "no valid account line",
        )
        raise InputError(f"{root} is not a readable Linux root: /etc/passwd: {why}")
    return accounts


@dataclass(frozen=True, slots=True)
class _OutsideUnits:
    """What the references stage reads: the references to accounts (files outside the units,
    packages, Exec lines), the packages and statoverrides, the configuration texts the rules
    quote, and the paths worth a PathFact."""

    references: list[Reference]
    packages: list[Package]
    statoverrides: list[StatOverride]
    config_texts: dict[RelPath, str]
    interest: set[str]


def _read_outside_units(
    fs: RootFS, accounts: AccountData, units: tuple[Unit, ...], problems: list[Problem]
) -> _OutsideUnits:
    texts: dict[RelPath, str] = {}
    refs = read_references(fs, accounts, units, problems, texts)
    interest = interesting_paths(accounts, units)
    unit_files = {str(u.fragment) for u in units if u.fragment}
    packages, pkg_refs, overrides = read_packages(fs, accounts, interest | unit_files, problems)
    refs += pkg_refs
    refs += read_exec_links(fs, accounts, units, problems)
    return _OutsideUnits(refs, packages, overrides, texts, interest)


__all__ = ["Events", "NoEvents", "collect", "parse_policy"]
