"""A migration plan: pure data. Rendering it gives drop-ins, scripts and review documents."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from dynmigrate.model.common import RelPath, Verdict
from dynmigrate.model.files import OwnedTree
from dynmigrate.model.findings import Finding
from dynmigrate.model.references import Reference, StatOverride
from dynmigrate.model.report import Link

PLAN_SCHEMA_VERSION = 1
MIN_SYSTEMD = 235  # StateDirectory= and friends, the '!' prefix
DROPIN_NAME = "50-dynmigrate.conf"
LATE_DROPIN_NAME = "zz-dynmigrate.conf"


def dropin_name(existing: Iterable[str]) -> str:
    """The file name of the plan's drop-in for a unit whose drop-ins have these file names.

    systemd applies a unit's drop-ins in the order of their file names, whatever directory they
    are in, and a later assignment wins (an empty one resets a list). The plan's drop-in is made
    from the unit with every drop-in applied, so it must be applied last: 50-dynmigrate.conf, or
    zz-dynmigrate.conf when a drop-in sorts after that (systemctl edit's override.conf does). A
    drop-in that sorts after both keeps the name zz-dynmigrate.conf, and the planner reports what
    it undoes (the name is never built from a name found under ROOT).
    """
    others = [n for n in existing if n not in (DROPIN_NAME, LATE_DROPIN_NAME)]
    return DROPIN_NAME if all(n < DROPIN_NAME for n in others) else LATE_DROPIN_NAME


class ExecMode(StrEnum):
    """How the migrated process gets its identity."""

    USER = "user"  # the unit had User=: systemd switches to the dynamic user
    BANG = "keep-daemon-switch"  # root-start daemon: '!' prefix, the daemon setuids itself by name


@dataclass(frozen=True, slots=True, order=True)
class ManagedDir:
    key: str  # StateDirectory, CacheDirectory, LogsDirectory, RuntimeDirectory, ConfigurationDirectory
    name: str  # relative name, e.g. "redis"
    path: RelPath  # /var/lib/redis
    mode: int | None  # mode to keep (written as *DirectoryMode=) or None for systemd's 0755
    exists: bool
    declared: bool  # the unit already declares it
    why: str
    before: str = ""  # "UID:GID MODE" on disk at plan time, when it exists


@dataclass(frozen=True, slots=True)
class UnitPlan:
    unit: str
    fragment: RelPath
    dropin_path: RelPath  # /etc/systemd/system/UNIT.d/50-dynmigrate.conf (see dropin_name)
    dropin_text: str
    before: str  # the effective unit as `systemctl cat` shows it
    after: str
    diff: str
    exec_mode: ExecMode
    directories: tuple[ManagedDir, ...]
    decisions: tuple[str, ...]  # every choice the planner made, with its reason
    probe: str  # health probe command ("" = only systemctl checks)
    probe_source: str  # "user", "policy", "built-in", or ""
    enabled: bool
    pidfile: str
    instances: tuple[str, ...] = ()  # enabled instances, when the unit is a template
    # configuration files the daemon rewrites as its state, copied into its state directory at
    # stage 1 (the file, its copy), for each enabled instance of a template
    state_configs: tuple[tuple[RelPath, RelPath], ...] = ()

    @property
    def is_template(self) -> bool:
        return "@." in self.unit

    @property
    def dropin_name(self) -> str:
        return self.dropin_path.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True, order=True)
class FileFix:
    """Re-own a file the account owned (config) so that the service can still read it."""

    path: RelPath
    uid: int
    gid: int
    mode: int
    new_uid: int
    new_gid: int
    new_mode: int
    reason: str


@dataclass(frozen=True, slots=True, order=True)
class Credential:
    """A file passed with LoadCredential= and bound back over its original path: systemd reads it as
    root, so it stays unreadable to other users on disk.

    `directory` marks a directory other users could not enter whose every entry is such a file: the
    unit sees an empty read-only tmpfs there (TemporaryFileSystem=) with the files bound into it."""

    unit: str
    name: str
    path: RelPath
    reason: str
    directory: bool = False


@dataclass(frozen=True, slots=True, order=True)
class OverrideFile:
    """A file the plan writes into /etc to override a vendor one (sysusers, tmpfiles, logrotate)."""

    target: RelPath  # where it goes, e.g. /etc/sysusers.d/redis.conf
    kind: str  # sysusers-mask, sysusers-override, tmpfiles-override, logrotate-override
    content: str | None  # None means a symlink to /dev/null
    replaces: RelPath | None  # the vendor file it overrides
    reason: str
    original_sha256: str = ""  # when the target exists at plan time: its content then (stage 2 refuses a change)


@dataclass(frozen=True, slots=True, order=True)
class StatOverridePin:
    """A root-owned statoverride registered so that package scripts skip their chown."""

    path: RelPath
    mode: int
    reason: str


@dataclass(frozen=True, slots=True, order=True)
class ManualStep:
    """Something stage 2 waits for: in `manual_steps` a change a person must make (the text says
    exactly what), in `acknowledgements` something the plan does itself that the operator confirms
    having read. Stage 2 refuses until every id of both is given with --confirm."""

    id: str  # e.g. "DM103-postgres"; stage 2 refuses until each is confirmed
    rule: str
    text: str


@dataclass(frozen=True, slots=True, order=True)
class Leftover:
    """A path owned by the old UID/GID outside the managed directories (stage 3 re-owns it)."""

    path: RelPath
    uid: int
    gid: int
    entries: int


@dataclass(frozen=True, slots=True)
class AccountPlan:
    account: str
    uid: int
    gid: int  # the primary GID (the rollback's useradd -g)
    group: str  # the group named like the account (else the primary group): backed up, deleted if delete_group
    group_gid: int  # its GID: stage 3 re-owns what a deleted group owned, the ledger records it
    home: str
    shell: str
    gecos: str
    delete_group: bool
    group_note: str
    verdict: Verdict
    forced: bool
    findings: tuple[Finding, ...]
    units: tuple[UnitPlan, ...]
    file_fixes: tuple[FileFix, ...]
    credentials: tuple[Credential, ...]
    overrides: tuple[OverrideFile, ...]
    statoverrides: tuple[StatOverride, ...]  # removed in stage 2, restored by rollback
    pins: tuple[StatOverridePin, ...]
    supplementary_groups: tuple[str, ...]
    leftovers: tuple[Leftover, ...]
    manual_steps: tuple[ManualStep, ...]  # a person must change something the plan cannot
    risks: tuple[str, ...]
    recreated_by: tuple[str, ...]  # package scripts that would recreate the account
    manifest_paths: tuple[RelPath, ...]  # every path whose ownership stage 0 records
    suggested: tuple[tuple[str, str], ...] = ()  # unit files offered to the operator, not installed
    # the scan's evidence for the verdict (shown for every account, convertible ones too)
    reason: str = ""
    links: tuple[Link, ...] = ()  # units that run as the account, and how that is known
    trees: tuple[OwnedTree, ...] = ()  # paths it owns
    references: tuple[Reference, ...] = ()  # places outside unit files that name it
    acknowledgements: tuple[ManualStep, ...] = ()  # the plan handles it; the operator confirms it in stage 2
    # what the scripts act on, decided here: directories stage 1 moves under private/ (state, cache,
    # logs; not a name with a specifier), runtime directories it empties, and the oldest systemd
    # the drop-ins work on (stage 0 refuses an older one)
    moved_dirs: tuple[RelPath, ...] = ()
    runtime_dirs: tuple[RelPath, ...] = ()
    min_systemd: int = MIN_SYSTEMD

    @property
    def confirm_ids(self) -> tuple[str, ...]:
        """Every id stage 2 requires with --confirm: acknowledgements, then manual steps."""
        return tuple(m.id for m in (*self.acknowledgements, *self.manual_steps))

    @property
    def run_units(self) -> tuple[tuple[str, str], ...]:
        """(unit, probe) restarted and health-checked: enabled units and enabled template instances."""
        out: list[tuple[str, str]] = []
        for u in self.units:
            if u.is_template:
                out += [(i, u.probe) for i in u.instances]
            elif u.enabled:
                out.append((u.unit, u.probe))
        return tuple(out)


@dataclass(frozen=True, slots=True, order=True)
class Alternative:
    """For an account that must stay (base-passwd, shared): run a unit under a new dynamic name."""

    account: str
    unit: str
    new_name: str
    dropin_text: str
    steps: tuple[str, ...]


class RefusalKind(StrEnum):
    """Why a selected account was not planned; the CLI's exit code follows from it (4 for BLOCKED)."""

    NOT_PLANNABLE = "not-plannable"  # its verdict is neither convertible, manual nor blocked
    BLOCKED = "blocked"  # a blocker stands and --force was not given
    NO_UNIT_FILE = "no-unit-file"  # no unit file a drop-in could go next to


@dataclass(frozen=True, slots=True)
class Refusal:
    """A selected account the plan leaves out, the kind of reason and the reason in words."""

    account: str
    kind: RefusalKind
    why: str


@dataclass(frozen=True, slots=True)
class MigrationPlan:
    root: str
    host: str
    systemd_version: int | None
    nss_action: str  # "none", "enable" (add systemd to nsswitch), "install" (libnss-systemd)
    accounts: tuple[AccountPlan, ...]
    refused: tuple[Refusal, ...]  # selected but not planned
    schema_version: int = PLAN_SCHEMA_VERSION
    alternatives: tuple[Alternative, ...] = ()
    skip_trees: tuple[RelPath, ...] = ()  # other systems' trees (DM308): stage 3 does not search them
