"""Places outside systemd unit files that name an account or group."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dynmigrate.model.common import Location, RelPath


class RefKind(StrEnum):
    CRON = "cron"
    SUDOERS = "sudoers"
    TMPFILES = "tmpfiles"
    SYSUSERS = "sysusers"
    LOGROTATE = "logrotate"
    DBUS = "dbus-policy"
    POLKIT = "polkit"
    SSH_KEYS = "ssh-authorized-keys"
    SOCKET = "socket-unit"
    PACKAGE_SCRIPT = "package-script"
    STATOVERRIDE = "dpkg-statoverride"
    DAEMON_CONFIG = "daemon-config"
    EXEC_ARGUMENT = "exec-argument"
    UDEV = "udev-rule"


class Target(StrEnum):
    USER = "user"
    GROUP = "group"


class Action(StrEnum):
    """What the reference does with the name."""

    RUNS_AS = "runs-as"  # a job or command runs as it (cron user column, logrotate su)
    GRANTS = "grants"  # sudo/polkit/dbus rights for it
    OWNS_NAME = "owns-bus-name"  # D-Bus own=
    OWNS_PATH = "owns-path"  # tmpfiles/logrotate create/statoverride give it a path
    CREATES = "creates-account"  # adduser/useradd/sysusers would (re)create it
    REMOVES = "removes-account"  # deluser/userdel in a package script (its purge)
    CHOWNS = "chowns"  # a package script chowns paths to it
    LOGIN = "login"  # ssh keys: someone logs in as it
    SOCKET = "socket-owner"  # SocketUser=/SocketGroup=
    SWITCHES_TO = "switches-to"  # a daemon argument or config setting names it as its user
    MENTIONS = "mentions"


@dataclass(frozen=True, slots=True, order=True)
class Reference:
    name: str  # the account or group name as written
    target: Target
    kind: RefKind
    action: Action
    location: Location
    detail: str = ""  # a short, secret-free description ("create 0640 redis adm")
    path: RelPath | None = None  # a path the reference is about, if any
    guarded: bool = False  # package scripts: the action is skipped when a statoverride exists
    unit: str = ""  # for links found through a unit (exec arguments, daemon config, socket)
    confidence: str = ""  # for links: certain, likely, possible
    package: str = ""  # for package scripts: the package whose script it is


@dataclass(frozen=True, slots=True, order=True)
class BusActivation:
    """A D-Bus system service file: the bus starts `unit` when someone calls `bus_name`."""

    bus_name: str
    unit: str  # SystemdService=, often an alias (dbus-org.freedesktop.X.service)
    location: Location


@dataclass(frozen=True, slots=True, order=True)
class NssOverride:
    """An nsswitch.conf a unit's daemon uses instead of /etc/nsswitch.conf: the one inside a root it
    runs in (RootDirectory=, or a directory it is told to chroot into), or one bound over
    /etc/nsswitch.conf. `passwd` is that file's sources for passwd ("files", ...)."""

    unit: str
    path: RelPath  # the nsswitch.conf under ROOT
    how: str  # "RootDirectory=/srv/x", "chroot directory /var/spool/x (exec argument)", "BindReadOnlyPaths=..."
    chroot: bool  # inside another root, where nss-systemd cannot reach systemd at all
    passwd: tuple[str, ...]
    location: Location  # the directive that makes the daemon use it


@dataclass(frozen=True, slots=True, order=True)
class StatOverride:
    user: str
    group: str
    mode: int
    path: RelPath
    location: Location


@dataclass(frozen=True, slots=True, order=True)
class Package:
    """A dpkg package (installed, or removed with its maintainer scripts still in
    /var/lib/dpkg/info), with what dynmigrate needs from it."""

    name: str
    depends: tuple[str, ...]
    files: tuple[RelPath, ...]  # only unit files, sysusers.d, tmpfiles.d, init scripts, configs
    scripts: tuple[RelPath, ...]  # maintainer scripts present in /var/lib/dpkg/info
    version: str = ""
    installed: bool = True  # dpkg status lists it as installed; False: only files in /var/lib/dpkg/info are left
