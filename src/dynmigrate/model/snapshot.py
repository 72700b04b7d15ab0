"""The Snapshot: everything collect read from ROOT, as plain values."""

from __future__ import annotations

from dataclasses import dataclass

from dynmigrate.model.accounts import AccountData
from dynmigrate.model.common import RelPath
from dynmigrate.model.files import NestedRoot, OwnedTree, PathInfo
from dynmigrate.model.findings import Problem
from dynmigrate.model.references import BusActivation, NssOverride, Package, Reference, StatOverride
from dynmigrate.model.units import Unit


@dataclass(frozen=True, slots=True)
class PathFact:
    """A path some unit or account points at, as it is on disk under ROOT."""

    path: RelPath
    info: PathInfo | None  # lstat; None if missing
    resolved: RelPath  # after following symlinks inside ROOT
    target: PathInfo | None  # stat of the resolved path
    entries: int = 0  # for directories: how many entries (capped at 1000)
    foreign_fs: bool = False  # on another filesystem than its parent (mount point)
    dot_entries: tuple[str, ...] = ()  # for directories: hidden entries (.config, .ssh, ...), up to 10

    @property
    def exists(self) -> bool:
        return self.target is not None


@dataclass(frozen=True, slots=True)
class HostInfo:
    os_id: str
    os_version: str
    pretty_name: str
    systemd_version: int | None
    systemd_version_source: str
    hostname: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    """The site policy file (dynmigrate.ini): what never to touch, what not to walk."""

    never_accounts: tuple[str, ...] = ()
    never_units: tuple[str, ...] = ()
    skip_paths: tuple[str, ...] = ()
    probes: tuple[tuple[str, str], ...] = ()  # unit -> health probe command
    source: str = ""
    # [ignore]: account or unit -> rule ids its reports leave out (counted, never dropped; verdicts unchanged)
    ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class RetiredId:
    """An entry of the retired-UID ledger that earlier migrations wrote on this root."""

    uid: int
    gid: int
    name: str
    unit: str
    date: str


@dataclass(frozen=True, slots=True, order=True)
class SecretHint:
    """A file that looks like it holds a secret. Only the keyword and line are kept, never the value."""

    path: RelPath
    line: int
    keyword: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    root_label: str  # ROOT as the user wrote it (never resolved: reports stay machine-neutral)
    accounts: AccountData
    units: tuple[Unit, ...]
    unit_texts: tuple[tuple[RelPath, str], ...]
    search_path: tuple[str, ...]
    references: tuple[Reference, ...]
    statoverrides: tuple[StatOverride, ...]
    packages: tuple[Package, ...]
    trees: tuple[OwnedTree, ...]
    etc_entries: tuple[PathInfo, ...]
    mountpoints: tuple[RelPath, ...]
    walked_entries: int
    paths: tuple[PathFact, ...]
    host: HostInfo
    policy: Policy
    retired: tuple[RetiredId, ...]
    problems: tuple[Problem, ...]
    secrets: tuple[SecretHint, ...] = ()
    acl_paths: tuple[RelPath, ...] = ()  # service-owned paths under /etc that carry a POSIX ACL
    config_texts: tuple[tuple[RelPath, str], ...] = ()  # sysusers.d, tmpfiles.d, logrotate files (for overrides)
    nested_roots: tuple[NestedRoot, ...] = ()  # other systems' trees the walk did not enter
    bus_activations: tuple[BusActivation, ...] = ()  # D-Bus system service files (activation by bus name)
    nss_overrides: tuple[NssOverride, ...] = ()  # nsswitch.conf files units use instead of /etc's

    def config_text(self, path: str) -> str:
        for p, text in self.config_texts:
            if p == path:
                return text
        return ""

    def unit(self, name: str) -> Unit | None:
        for u in self.units:
            if u.name == name or name in u.aliases:
                return u
        return None

    def path(self, path: str) -> PathFact | None:
        for p in self.paths:
            if p.path == path:
                return p
        return None

    def secret_hints(self, path: str) -> tuple[SecretHint, ...]:
        return tuple(h for h in self.secrets if h.path == path)

    def unit_text(self, path: str) -> str | None:
        for p, text in self.unit_texts:
            if p == path:
                return text
        return None
