"""References to accounts in the system's configuration outside the units: cron, sudoers,
tmpfiles.d, sysusers.d, logrotate, D-Bus policies, udev rules, polkit, ssh keys, socket units."""

from __future__ import annotations

from dynmigrate.collect import references as R
from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.collect.textfiles import dir_files, optional_file, parse_each, read_text
from dynmigrate.model.accounts import AccountData
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.files import FileKind
from dynmigrate.model.findings import Problem
from dynmigrate.model.paths import rel
from dynmigrate.model.references import Action, Reference, RefKind, Target
from dynmigrate.model.units import Unit


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
    parse_each(fs, optional_file(fs, "/etc/sudoers"), lambda t, p: R.parse_sudoers(t, p, known), refs, problems)
    parse_each(fs, dir_files(fs, "/etc/sudoers.d", problems), lambda t, p: R.parse_sudoers(t, p, known), refs, problems)
    # tmpfiles.d and sysusers.d, with /etc > /run > /usr/lib precedence
    tmp = R.overlay_dir(fs, R.TMPFILES_DIRS, ".conf", problems)
    parse_each(fs, list(tmp.winners), R.parse_tmpfiles, refs, problems, keep)
    sysu = R.overlay_dir(fs, R.SYSUSERS_DIRS, ".conf", problems)
    parse_each(fs, list(sysu.winners), R.parse_sysusers, refs, problems, keep)
    parse_each(fs, optional_file(fs, "/etc/logrotate.conf"), R.parse_logrotate, refs, problems, keep)
    parse_each(fs, dir_files(fs, "/etc/logrotate.d", problems), R.parse_logrotate, refs, problems, keep)
    refs += _dbus_policy_references(fs, problems)
    # udev rules (OWNER=/GROUP=), /etc > /run > /usr/lib precedence by file name
    udev = R.overlay_dir(fs, R.UDEV_DIRS, ".rules", problems)
    parse_each(fs, list(udev.winners), R.parse_udev_rules, refs, problems)
    for d in R.POLKIT_DIRS:
        parse_each(fs, dir_files(fs, d, problems, ".rules"), lambda t, p: R.parse_polkit(t, p, known), refs, problems)
    for d in R.PKLA_DIRS:
        parse_each(
            fs, R.files_recursive(fs, d, ".pkla", problems), lambda t, p: R.parse_polkit(t, p, known), refs, problems
        )
    refs += _ssh_key_references(fs, accounts, problems)
    refs += _socket_references(units)
    return refs


def _read_cron(
    fs: RootFS, known: frozenset[str], refs: list[Reference], problems: list[Problem], keep: dict[RelPath, str] | None
) -> None:
    """/etc/crontab, /etc/cron.d, and the users' crontabs in the spool (the file name is the owner)."""
    parse_each(fs, optional_file(fs, "/etc/crontab"), lambda t, p: R.parse_crontab(t, p, known), refs, problems, keep)
    parse_each(
        fs, dir_files(fs, "/etc/cron.d", problems), lambda t, p: R.parse_crontab(t, p, known), refs, problems, keep
    )
    for spool in ("/var/spool/cron/crontabs", "/var/spool/cron"):
        for spool_file in dir_files(fs, spool, problems):
            owner = spool_file.rsplit("/", 1)[-1]
            text = read_text(fs, spool_file, problems)
            if text is not None:
                found, probs = R.parse_crontab(text, spool_file, known, owner=owner)
                refs += found
                problems += probs


def _dbus_policy_references(fs: RootFS, problems: list[Problem]) -> list[Reference]:
    """The users and groups the D-Bus system policies name (read as bytes: the XML reader decodes)."""
    refs: list[Reference] = []
    for d in R.DBUS_DIRS:
        for p in dir_files(fs, d, problems, ".conf"):
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
            text = read_text(fs, p, problems)
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
