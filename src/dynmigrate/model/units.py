"""Unit files as systemd reads them: directives with their file and line, merged per unit."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dynmigrate.model.common import Location, RelPath, UnitName

EXEC_KEYS = (
    "ExecCondition",
    "ExecStartPre",
    "ExecStart",
    "ExecStartPost",
    "ExecReload",
    "ExecStop",
    "ExecStopPost",
)
DIRECTORY_KEYS = (
    "RuntimeDirectory",
    "StateDirectory",
    "CacheDirectory",
    "LogsDirectory",
    "ConfigurationDirectory",
)
DIRECTORY_BASES = {
    "RuntimeDirectory": "/run",
    "StateDirectory": "/var/lib",
    "CacheDirectory": "/var/cache",
    "LogsDirectory": "/var/log",
    "ConfigurationDirectory": "/etc",
}


@dataclass(frozen=True, slots=True, order=True)
class Directive:
    section: str
    key: str
    value: str  # specifiers expanded for the unit it belongs to
    location: Location
    raw: str = ""  # the value as written, before specifier expansion

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


@dataclass(frozen=True, slots=True)
class UnitFile:
    """One file as read: directives in file order, and the sections it declared."""

    path: RelPath
    directives: tuple[Directive, ...]
    sections: tuple[str, ...]


class LoadState(StrEnum):
    LOADED = "loaded"
    MASKED = "masked"
    NOT_FOUND = "not-found"
    BAD = "bad-setting"


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit as systemd would load it: fragment plus drop-ins, in systemd's order."""

    name: UnitName
    state: LoadState
    fragment: RelPath | None  # the file that was read (after following symlinks in ROOT)
    found_at: RelPath | None  # where in the search path the name was found
    dropins: tuple[RelPath, ...]
    directives: tuple[Directive, ...]  # fragment first, then drop-ins, specifiers expanded
    aliases: tuple[UnitName, ...] = ()
    template: UnitName | None = None  # for instances: the template they come from
    enabled: bool = False
    generated: bool = False  # came from a generator directory (SysV, fstab, ...)
    source_path: str = ""  # SourcePath=, e.g. /etc/init.d/foo for SysV units
    masked_by: RelPath | None = None

    @property
    def type(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def prefix(self) -> str:
        stem = self.name.rsplit(".", 1)[0]
        return stem.split("@", 1)[0]

    @property
    def instance(self) -> str | None:
        stem = self.name.rsplit(".", 1)[0]
        if "@" not in stem:
            return None
        return stem.split("@", 1)[1]

    @property
    def from_init_script(self) -> bool:
        """Generated from a SysV init script (or another generator's source): there is no unit file
        a drop-in could go next to."""
        return bool(self.source_path) and (self.generated or self.source_path.startswith("/etc/init.d/"))

    @property
    def may_change_uid(self) -> bool:
        """CAP_SETUID stays in the unit's capability bounding set, so a process it starts as root can
        switch to another account by itself (systemd's User= needs no capability of the process).
        Assignments are merged as systemd does: lists are ORed, a "~" list removes, "" empties."""
        allowed: set[str] | None = None  # None: every capability but `removed`
        removed: set[str] = set()
        for d in self.assignments("Service", "CapabilityBoundingSet"):
            text = d.value.strip()
            if not text:
                allowed, removed = set(), set()
            elif text.startswith("~"):
                names = set(text[1:].split())
                if allowed is None:
                    removed |= names
                else:
                    allowed -= names
            elif allowed is None and not removed:
                allowed = set(text.split())
            elif allowed is None:
                removed -= set(text.split())
            else:
                allowed |= set(text.split())
        return "CAP_SETUID" not in removed if allowed is None else "CAP_SETUID" in allowed

    @property
    def is_template(self) -> bool:
        return self.instance == ""

    def assignments(self, section: str, key: str) -> tuple[Directive, ...]:
        """All assignments of a key in order, including empty ones."""
        return tuple(d for d in self.directives if d.section == section and d.key == key)

    def values(self, section: str, key: str) -> tuple[Directive, ...]:
        """Effective list: an empty assignment resets everything before it."""
        out: list[Directive] = []
        for d in self.assignments(section, key):
            if d.value.strip() == "":
                out = []
            else:
                out.append(d)
        return tuple(out)

    def value(self, section: str, key: str) -> Directive | None:
        """Effective single value: the last assignment wins; an empty one unsets."""
        found = self.assignments(section, key)
        if not found or found[-1].value.strip() == "":
            return None
        return found[-1]

    def words(self, section: str, key: str) -> tuple[tuple[str, Directive], ...]:
        """Whitespace-separated items of a list setting, each with its directive."""
        return tuple((w, d) for d in self.values(section, key) for w in d.value.split())

    def flag(self, section: str, key: str) -> bool:
        d = self.value(section, key)
        return d is not None and parse_bool(d.value) is True


def parse_bool(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("1", "yes", "y", "true", "t", "on"):
        return True
    if v in ("0", "no", "n", "false", "f", "off"):
        return False
    return None
