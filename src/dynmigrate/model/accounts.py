"""Accounts, groups and the host settings that classify them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from dynmigrate.model.common import GroupName, Location, RelPath, UserName

DYNAMIC_UID_MIN = 61184  # fixed when systemd is compiled (facts F1.2), never from login.defs
DYNAMIC_UID_MAX = 65519
NOBODY_NAMES = frozenset({"nobody", "nogroup", "nfsnobody"})
NOLOGIN_SHELLS = frozenset(
    {
        "",
        "/usr/sbin/nologin",
        "/sbin/nologin",
        "/bin/false",
        "/usr/bin/false",
        "/bin/sync",
        "/bin/true",
        "/usr/bin/true",
    }
)


class PasswordState(StrEnum):
    """All that is ever kept of a shadow entry: never the hash."""

    LOCKED = "locked"  # "!" or "*" prefix, or "!" alone
    EMPTY = "empty"  # no password at all: login without one
    SET = "set"  # a usable password hash
    UNKNOWN = "unknown"  # no shadow entry, or shadow unreadable


@dataclass(frozen=True, slots=True, order=True)
class Account:
    name: UserName
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str
    location: Location
    password: PasswordState = PasswordState.UNKNOWN

    @property
    def has_login_shell(self) -> bool:
        return self.shell not in NOLOGIN_SHELLS and not self.shell.endswith("/nologin")


@dataclass(frozen=True, slots=True, order=True)
class Group:
    name: GroupName
    gid: int
    members: tuple[UserName, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class SystemRange:
    """The top of the system account range, and where that number came from."""

    uid_max: int
    gid_max: int
    sources: tuple[str, ...]  # e.g. "/etc/login.defs:SYS_UID_MAX", or "distribution default"

    def is_system_uid(self, uid: int) -> bool:
        return 0 < uid <= self.uid_max


@dataclass(frozen=True, slots=True)
class NssConfig:
    """Whether the root resolves dynamic users by name (nss-systemd)."""

    passwd_sources: tuple[str, ...]
    group_sources: tuple[str, ...]
    location: Location | None  # the nsswitch.conf line of "passwd:"
    library: RelPath | None  # libnss_systemd.so.2 if present

    @property
    def in_nsswitch(self) -> bool:
        return "systemd" in self.passwd_sources and "systemd" in self.group_sources

    @property
    def resolves_dynamic_users(self) -> bool:
        return self.in_nsswitch and self.library is not None


@dataclass(frozen=True, slots=True)
class AccountData:
    accounts: tuple[Account, ...]
    groups: tuple[Group, ...]
    system_range: SystemRange
    nss: NssConfig
    # indexes, so that a lookup per account is not a scan of every account (70,000 accounts
    # took minutes); the first entry of a name or id wins, as in the files
    _by_name: dict[str, Account] = field(init=False, repr=False, compare=False)
    _by_uid: dict[int, Account] = field(init=False, repr=False, compare=False)
    _groups_by_name: dict[str, Group] = field(init=False, repr=False, compare=False)
    _groups_by_gid: dict[int, Group] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, Account] = {}
        by_uid: dict[int, Account] = {}
        for acc in self.accounts:
            by_name.setdefault(acc.name, acc)
            by_uid.setdefault(acc.uid, acc)
        groups_by_name: dict[str, Group] = {}
        groups_by_gid: dict[int, Group] = {}
        for grp in self.groups:
            groups_by_name.setdefault(grp.name, grp)
            groups_by_gid.setdefault(grp.gid, grp)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_uid", by_uid)
        object.__setattr__(self, "_groups_by_name", groups_by_name)
        object.__setattr__(self, "_groups_by_gid", groups_by_gid)

    def account(self, name: str) -> Account | None:
        return self._by_name.get(name)

    def group(self, name: str) -> Group | None:
        return self._groups_by_name.get(name)

    def group_by_gid(self, gid: int) -> Group | None:
        return self._groups_by_gid.get(gid)

    def account_by_uid(self, uid: int) -> Account | None:
        return self._by_uid.get(uid)
