"""Load units the way systemd does: search path, drop-ins, masks, aliases, templates.

Facts sheet section 6 is the specification: F6.5 (search path and its precedence), F6.6
(drop-ins, prefix drop-ins, type-level drop-ins, template drop-ins), F6.7 (masks), F6.8
(aliases), F6.9 (templates), F6.10 (specifiers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.collect.unitfile import parse_unit_text
from dynmigrate.model.common import Location, RelPath, UnitName
from dynmigrate.model.files import FileKind
from dynmigrate.model.findings import Problem
from dynmigrate.model.units import Directive, LoadState, Unit, UnitFile

SEARCH_PATH: tuple[str, ...] = (
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
    "/run/systemd/generator.late",
)
GENERATOR_DIRS = frozenset({"/run/systemd/generator.early", "/run/systemd/generator", "/run/systemd/generator.late"})
SYSV_GENERATOR_DIR = "/run/systemd/generator.late"  # where systemd-sysv-generator writes
UNIT_TYPES = (
    "service",
    "socket",
    "target",
    "timer",
    "path",
    "mount",
    "automount",
    "swap",
    "slice",
    "scope",
    "device",
)
UNIT_NAME_RE = re.compile(r"^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.(" + "|".join(UNIT_TYPES) + r")$")
UNIT_FILE_LIMIT = 8 * 1024 * 1024
DROPIN_LIMIT = 4 * 1024 * 1024
SYSV_DIR = "/etc/init.d"
SYSV_START_LEVELS = (2, 3, 4, 5)
SYSV_START_LINK = re.compile(r"^S[0-9]{2}(.+)$")
SYSV_SKIP = frozenset({"README", "skeleton", "rc", "rcS", ".depend.boot", ".depend.start", ".depend.stop"})


def is_unit_name(name: str) -> bool:
    return bool(UNIT_NAME_RE.match(name)) and len(name) <= 255


def unescape(text: str) -> str:
    """systemd-escape --unescape: "-" is "/", "\\xNN" a byte."""
    out = bytearray()
    i = 0
    raw = text.encode("utf-8", "surrogateescape")
    while i < len(raw):
        c = raw[i]
        if c == ord("-"):
            out += b"/"
            i += 1
        elif raw[i : i + 2] == b"\\x" and i + 4 <= len(raw):
            try:
                out.append(int(raw[i + 2 : i + 4].decode("ascii"), 16))
                i += 4
            except ValueError:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return out.decode("utf-8", "surrogateescape")


def specifier_table(name: str) -> dict[str, str]:
    stem, _, _utype = name.rpartition(".")
    prefix, at, instance = stem.partition("@")
    last = prefix.rsplit("-", 1)[-1] if "-" in prefix else prefix
    unesc_inst = unescape(instance) if at else ""
    return {
        "n": name,
        "N": stem,
        "p": prefix,
        "P": unescape(prefix),
        "i": instance,
        "I": unesc_inst,
        "j": last,
        "J": unescape(last),
        "f": "/" + (unesc_inst if at and instance else unescape(prefix)).lstrip("/"),
        "S": "/var/lib",
        "C": "/var/cache",
        "L": "/var/log",
        "E": "/etc",
        "t": "/run",
        "T": "/tmp",
        "V": "/var/tmp",
        "d": f"/run/credentials/{name}",
        # %u %U %g %G %h %s describe the service manager (root for PID 1), not User= (F6.10)
        "u": "root",
        "U": "0",
        "g": "root",
        "G": "0",
        "h": "/root",
        "s": "/bin/sh",
        "%": "%",
    }


def expand_specifiers(value: str, table: dict[str, str]) -> str:
    """Expand the specifiers we know; unknown ones (host name, machine id, ...) stay as written."""
    if "%" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "%" and i + 1 < len(value):
            spec = value[i + 1]
            if spec in table:
                out.append(table[spec])
            else:
                out.append(value[i : i + 2])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@dataclass(slots=True)
class _Entry:
    name: str
    path: RelPath  # where the name was found
    dir: str


@dataclass(slots=True)
class _Index:
    """Everything found in the search path, before units are assembled."""

    entries: dict[str, _Entry] = field(default_factory=dict)  # highest-priority entry per name
    dropin_dirs: dict[str, list[tuple[int, RelPath]]] = field(default_factory=dict)
    wants: dict[str, set[str]] = field(default_factory=dict)  # unit name -> who wants it
    dirs: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UnitsResult:
    units: tuple[Unit, ...]
    files: tuple[UnitFile, ...]
    texts: tuple[tuple[RelPath, str], ...]  # raw text of every file read (for systemctl cat)
    problems: tuple[Problem, ...]
    search_path: tuple[str, ...]


class UnitLoader:
    def __init__(self, fs: RootFS) -> None:
        self.fs = fs
        self.problems: list[Problem] = []
        self.files: dict[RelPath, UnitFile] = {}
        self.texts: dict[RelPath, str] = {}
        self.index = _Index()
        # per load: a drop-in directory is listed once, and a drop-in path checked once, however
        # many units share it (type-level "service.d", prefix "foo-.service.d", templates)
        self._listings: dict[RelPath, list[str]] = {}
        self._checked: dict[RelPath, RelPath | None] = {}
        self._classified: dict[RelPath, tuple[str, RelPath | None, str | None]] = {}

    def _problem(self, path: str, message: str, line: int = 0) -> None:
        self.problems.append(Problem(Location(RelPath(path), line), message))

    # -- indexing -----------------------------------------------------------------------

    def build_index(self) -> None:
        seen_real: set[str] = set()
        for prio, directory in enumerate(SEARCH_PATH):
            try:
                real = self.fs.resolve(directory)
            except RootError as exc:
                self._problem(directory, exc.reason)
                continue
            if real in seen_real or not self.fs.is_dir(real):
                continue
            seen_real.add(real)
            self.index.dirs.append((prio, directory))
            try:
                names = self.fs.listdir(directory)
            except RootError as exc:
                self._problem(directory, exc.reason)
                continue
            for name in names:
                path = RelPath(f"{directory}/{name}")
                if name.endswith(".d") and (is_unit_name(name[:-2]) or name[:-2] in UNIT_TYPES):
                    self.index.dropin_dirs.setdefault(name[:-2], []).append((prio, path))
                    continue
                if name.endswith((".wants", ".requires", ".upholds")):
                    owner = name.rsplit(".", 1)[0]
                    try:
                        for dep in self.fs.listdir(path):
                            if is_unit_name(dep):
                                self.index.wants.setdefault(dep, set()).add(owner)
                    except RootError as exc:
                        self._problem(path, exc.reason)
                    continue
                if not is_unit_name(name):
                    continue
                if name not in self.index.entries:
                    self.index.entries[name] = _Entry(name, path, directory)

    def _classify(self, entry: _Entry) -> tuple[str, RelPath | None, str | None]:
        """("masked"|"alias"|"file"|"missing"|"error", resolved path, alias target name), once per entry."""
        known = self._classified.get(entry.path)
        if known is None:
            known = self._classified[entry.path] = self._classify_once(entry)
        return known

    def _classify_once(self, entry: _Entry) -> tuple[str, RelPath | None, str | None]:
        try:
            info = self.fs.lstat(entry.path)
        except RootError as exc:
            self._problem(entry.path, exc.reason)
            return "error", None, None
        if info is None:
            return "missing", None, None
        if info.kind is FileKind.SYMLINK:
            if info.link_target == "/dev/null":
                return "masked", entry.path, None
            try:
                real = self.fs.resolve(entry.path)
            except RootError as exc:
                self._problem(entry.path, exc.reason)
                return "error", None, None
            if real == "/dev/null":
                return "masked", entry.path, None
            target_name = real.rsplit("/", 1)[-1]
            target_info = self.fs.lstat(real)
            if target_info is None:
                self._problem(entry.path, f"dangling symlink to {info.link_target}")
                return "missing", None, None
            if target_name != entry.name and is_unit_name(target_name):
                return "alias", real, target_name
            return "file", real, None
        if info.kind is FileKind.FILE:
            if info.size == 0:
                return "masked", entry.path, None
            return "file", entry.path, None
        if info.kind is FileKind.CHAR and entry.path == "/dev/null":
            return "masked", entry.path, None
        self._problem(entry.path, f"unit path is a {info.kind.value}, not a file: ignored")
        return "error", None, None

    # -- reading ------------------------------------------------------------------------

    def _read_file(self, path: RelPath, limit: int) -> UnitFile | None:
        if path in self.files:
            return self.files[path]
        try:
            text = self.fs.read_text(path, limit)
        except RootError as exc:
            self._problem(path, exc.reason)
            return None
        unit_file, problems = parse_unit_text(text, path)
        self.problems.extend(problems)
        self.files[path] = unit_file
        self.texts[path] = text
        return unit_file

    def _dropin_names(self, name: str, aliases: list[str]) -> list[str]:
        """Drop-in directory stems for a unit, most specific first (F6.6)."""
        stem, _, utype = name.rpartition(".")
        names: list[str] = [name, *aliases]
        prefix, at, _inst = stem.partition("@")
        if at:
            names.append(f"{prefix}@.{utype}")
        # prefix drop-ins: "foo-bar-baz.service" -> "foo-bar-.service", "foo-.service"
        base = prefix
        parts = base.split("-")
        for i in range(len(parts) - 1, 0, -1):
            names.append("-".join(parts[:i]) + f"-.{utype}")
        names.append(utype)
        return list(dict.fromkeys(names))

    def _listing(self, dpath: RelPath) -> list[str]:
        names = self._listings.get(dpath)
        if names is None:
            try:
                names = self.fs.listdir(dpath)
            except RootError as exc:
                self._problem(dpath, exc.reason)
                names = []
            self._listings[dpath] = names
        return names

    def _check_dropin(self, path: RelPath) -> RelPath | None:
        """The resolved path to read for a drop-in, or None when it adds nothing (masked, empty)."""
        if path in self._checked:
            return self._checked[path]
        real: RelPath | None = None
        try:
            info, resolved = self.fs.lstat_and_resolve(path)
        except RootError as exc:
            self._problem(path, exc.reason)
            info = None
        if info is not None and not (
            resolved == "/dev/null" or (info.kind is FileKind.SYMLINK and info.link_target == "/dev/null")
        ):
            # a masked drop-in hides the same-named lower one and adds nothing
            target = info if resolved == path else self.fs.lstat(resolved)
            if target is not None and target.kind is not FileKind.FILE:
                self._problem(path, f"drop-in is a {target.kind.value}: ignored")
            elif target is not None and target.size > 0:
                real = resolved
        self._checked[path] = real
        return real

    def _dropins(self, name: str, aliases: list[str]) -> list[tuple[RelPath, RelPath]]:
        """(path, resolved path) of every drop-in that applies, by file name."""
        stems = self._dropin_names(name, aliases)
        chosen: dict[str, tuple[tuple[int, int], RelPath]] = {}
        for specificity, stem in enumerate(stems):
            for prio, dpath in self.index.dropin_dirs.get(stem, []):
                for fname in self._listing(dpath):
                    if not fname.endswith(".conf"):
                        continue
                    rank = (prio, specificity)
                    current = chosen.get(fname)
                    if current is None or rank < current[0]:
                        chosen[fname] = (rank, RelPath(f"{dpath}/{fname}"))
        out: list[tuple[RelPath, RelPath]] = []
        for fname in sorted(chosen):
            path = chosen[fname][1]
            real = self._check_dropin(path)
            if real is not None:
                out.append((path, real))
        return out

    def _load_state(self, fragment_entry: _Entry | None) -> tuple[LoadState, RelPath | None, RelPath | None]:
        """The load state of a unit found at fragment_entry, its fragment and what masks it."""
        if fragment_entry is None:
            return LoadState.NOT_FOUND, None, None
        kind, real, _ = self._classify(fragment_entry)
        if kind == "masked":
            return LoadState.MASKED, None, real
        if kind in ("missing", "error"):
            return LoadState.NOT_FOUND, None, None
        return LoadState.LOADED, real, None

    def _read_directives(
        self, name: str, aliases: list[str], fragment: RelPath
    ) -> tuple[bool, list[Directive], list[RelPath]]:
        """The directives of a loaded unit's fragment and drop-ins, each located where it was read
        (a drop-in reached through a link at the link's path); False when the fragment is unreadable."""
        directives: list[Directive] = []
        unit_file = self._read_file(fragment, UNIT_FILE_LIMIT)
        if unit_file is not None:
            directives.extend(unit_file.directives)
        found = self._dropins(name, aliases)
        for dpath, real in found:
            dfile = self._read_file(real, DROPIN_LIMIT)
            if dfile is not None and real != dpath and real in self.texts:
                self.texts[dpath] = self.texts[real]
            if dfile is not None and real == dpath:
                directives.extend(dfile.directives)  # already located at dpath
            elif dfile is not None:
                directives.extend(
                    Directive(d.section, d.key, d.value, Location(dpath, d.location.line), d.raw)
                    for d in dfile.directives
                )
        return unit_file is not None, directives, [dpath for dpath, _ in found]

    def _assemble(
        self,
        name: str,
        fragment_entry: _Entry | None,
        aliases: list[str],
        template: str | None = None,
    ) -> Unit:
        found_at = fragment_entry.path if fragment_entry else None
        state, fragment, masked_by = self._load_state(fragment_entry)
        directives: list[Directive] = []
        dropins: list[RelPath] = []
        if state is LoadState.LOADED and fragment is not None:
            readable, directives, dropins = self._read_directives(name, aliases, fragment)
            if not readable:
                state = LoadState.BAD
        # the specifier table only for units that use one (building it unescapes the name)
        table = specifier_table(name) if any("%" in d.raw for d in directives) else {}
        expanded = tuple(
            d
            if d.value == d.raw and "%" not in d.raw
            else Directive(d.section, d.key, expand_specifiers(d.raw, table), d.location, d.raw)
            for d in directives
        )
        generated = fragment_entry is not None and fragment_entry.dir in GENERATOR_DIRS
        source = ""
        for d in expanded:
            if d.section == "Unit" and d.key == "SourcePath":
                source = d.value
        enabled_names = [name, *aliases]
        enabled = any(n in self.index.wants for n in enabled_names)
        return Unit(
            name=UnitName(name),
            state=state,
            fragment=fragment,
            found_at=found_at,
            dropins=tuple(dropins),
            directives=expanded,
            aliases=tuple(UnitName(a) for a in sorted(aliases)),
            template=UnitName(template) if template else None,
            enabled=enabled,
            generated=generated,
            source_path=source,
            masked_by=masked_by,
        )

    def load(self) -> UnitsResult:
        self.build_index()
        aliases: dict[str, list[str]] = {}
        canonical: dict[str, _Entry] = {}
        alias_of: dict[str, str] = {}
        for name, entry in sorted(self.index.entries.items()):
            kind, _real, target = self._classify(entry)
            if kind == "alias" and target is not None:
                alias_of[name] = target
            else:
                canonical[name] = entry
        for alias, target in alias_of.items():
            root_target = target
            hops = 0
            while root_target in alias_of and hops < 10:
                root_target = alias_of[root_target]
                hops += 1
            if root_target in canonical:
                aliases.setdefault(root_target, []).append(alias)
            else:
                # alias to a file outside the index (e.g. systemctl link): load as its own unit
                canonical[alias] = self.index.entries[alias]
        units: list[Unit] = []
        for name, entry in sorted(canonical.items()):
            units.append(self._assemble(name, entry, aliases.get(name, [])))
        # instances of templates that something wants (enabled instances)
        known = set(canonical) | set(alias_of)
        for wanted in sorted(self.index.wants):
            stem, _, utype = wanted.rpartition(".")
            prefix, at, inst = stem.partition("@")
            if not at or not inst or wanted in known:
                continue
            template = f"{prefix}@.{utype}"
            tentry = canonical.get(template)
            if tentry is None:
                continue
            units.append(self._assemble(wanted, tentry, [], template=template))
        if not self._sysv_generator_ran():
            units.extend(self._sysv_units({u.name for u in units} | set(alias_of)))
        return UnitsResult(
            units=tuple(sorted(units, key=lambda u: u.name)),
            files=tuple(self.files[p] for p in sorted(self.files)),
            texts=tuple(sorted(self.texts.items())),
            problems=tuple(self.problems),
            search_path=tuple(d for _, d in self.index.dirs),
        )

    def _sysv_generator_ran(self) -> bool:
        """/run/systemd/generator.late is a real directory (systemd makes it before it runs the
        generators); a link there, or only one of the other generator directories, is not proof."""
        try:
            info = self.fs.lstat(RelPath(SYSV_GENERATOR_DIR))
        except RootError:
            return False
        return info is not None and info.kind is FileKind.DIR

    def _sysv_units(self, native: set[str]) -> list[Unit]:
        """SysV scripts without a native unit: systemd-sysv-generator would make units of them.

        Offline no generator has run (no /run/systemd/generator.late), so we synthesise what it would
        create (the unit name and SourcePath=) so that rules can see them (F4.14). Where that
        directory is a real one (a booted system, a rehearsal's copy of one) the generators have
        run: their units are in the index already (systemd-sysv-generator's in generator.late), and
        a script they left out is not a unit of that system (nor is any script under a systemd
        that has no SysV support).
        """
        out: list[Unit] = []
        try:
            names = self.fs.listdir(SYSV_DIR) if self.fs.is_dir(SYSV_DIR) else []
        except RootError as exc:
            self._problem(SYSV_DIR, exc.reason)
            return out
        started = self._sysv_started() if names else set()
        for script in names:
            if script in SYSV_SKIP or script.startswith(".") or not is_unit_name(f"{script}.service"):
                continue
            name = f"{script}.service"
            if name in native:
                continue
            path = RelPath(f"{SYSV_DIR}/{script}")
            try:
                info = self.fs.stat(path)
            except RootError:
                continue
            if info is None or info.kind is not FileKind.FILE or not info.mode & 0o111:
                continue
            loc = Location(path, 0)
            out.append(
                Unit(
                    name=UnitName(name),
                    state=LoadState.LOADED,
                    fragment=None,
                    found_at=path,
                    dropins=(),
                    directives=(Directive("Unit", "SourcePath", path, loc, path),),
                    generated=True,
                    source_path=path,
                    enabled=script in started,
                )
            )
        return out

    def _sysv_started(self) -> set[str]:
        """Scripts with a start link (S<NN>NAME) in /etc/rc2.d to /etc/rc5.d: those the generator
        makes wanted by the multi-user and graphical targets; the others only start by hand."""
        started: set[str] = set()
        for level in SYSV_START_LEVELS:
            rc = f"/etc/rc{level}.d"
            try:
                links = self.fs.listdir(rc) if self.fs.is_dir(rc) else []
            except RootError as exc:
                self._problem(rc, exc.reason)
                continue
            started.update(m.group(1) for name in links if (m := SYSV_START_LINK.match(name)))
        return started


def load_units(fs: RootFS) -> UnitsResult:
    return UnitLoader(fs).load()
