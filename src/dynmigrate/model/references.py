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
class StatOverride:
    user: str
    group: str
    mode: int
    path: RelPath
    location: Location


@dataclass(frozen=True, slots=True, order=True)
class Package:
    """An installed dpkg package, with what dynmigrate needs from it."""

    name: str
    depends: tuple[str, ...]
    files: tuple[RelPath, ...]  # only unit files, sysusers.d, tmpfiles.d, init scripts, configs
    scripts: tuple[RelPath, ...]  # maintainer scripts present in /var/lib/dpkg/info
    version: str = ""
