"""The unit-file reader: systemd.syntax(7), not configparser.

What this reader does that configparser cannot (tests/collect/test_unitfile_vs_configparser.py
shows each one):
- repeated keys are kept in order (ExecStart= twice is a list, not a DuplicateOptionError or
  "last wins"), and an empty assignment is kept so that it can reset the list;
- repeated sections ([Service] twice) are merged, not an error;
- a trailing backslash continues a line (joined with a space), and comment lines inside a
  continuation are skipped; a line that starts with whitespace is NOT a continuation;
- "#" or ";" start a comment only as the first non-blank character of a line;
- keys keep their case, and "%" is a specifier, never interpolation;
- every directive keeps its file and line.
"""

from __future__ import annotations

import re

from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.findings import Problem
from dynmigrate.model.units import Directive, UnitFile
from dynmigrate.model.unitsyntax import ends_with_unescaped_backslash

LONG_LINE_MAX = 1024 * 1024  # systemd's LONG_LINE_MAX
COMMENTS = "#;"
UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


def parse_unit_text(text: str, path: RelPath) -> tuple[UnitFile, list[Problem]]:
    """Parse one unit file or drop-in. Bad lines become problems; nothing raises."""
    problems: list[Problem] = []
    directives: list[Directive] = []
    sections: list[str] = []
    if "\x00" in text:
        problems.append(Problem(Location(path, 0), "binary content (NUL byte): file ignored"))
        return UnitFile(path, (), ()), problems
    if text.startswith("\ufeff"):
        text = text[1:]
    section: str | None = None
    undecodable = not text.isascii() and UNDECODABLE.search(text) is not None
    # a continued line is kept as pieces and joined once (joining as it grows was quadratic)
    pending: list[str] | None = None
    pending_size = 0
    pending_line = 0
    physical = text.split("\n")
    if physical and physical[-1] == "":
        physical.pop()
    for lineno, raw in enumerate(physical, 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if len(line) > LONG_LINE_MAX:
            problems.append(Problem(Location(path, lineno), "line longer than 1 MiB: ignored"))
            pending = None
            continue
        if pending is not None:
            if line.lstrip(" \t")[:1] in tuple(COMMENTS):
                continue  # comments inside a continuation are skipped
            start = pending_line
        else:
            start = lineno
        continued = ends_with_unescaped_backslash(line)
        if pending is not None:
            pending_size += len(line)
            if pending_size > LONG_LINE_MAX:
                if continued:
                    continue  # the rest of an overlong line: dropped with it
                problems.append(Problem(Location(path, start), "continued line longer than 1 MiB: ignored"))
                pending = None
                continue
            pending.append(line[:-1] + " " if continued else line)
            if continued:
                continue
            line = "".join(pending)
        elif continued:
            pending = [line[:-1] + " "]
            pending_size = len(line)
            pending_line = start
            continue
        pending = None
        stripped = line.strip()
        if not stripped or stripped[0] in COMMENTS:
            continue
        loc = Location(path, start)
        if undecodable and UNDECODABLE.search(stripped):
            problems.append(Problem(loc, "line is not valid UTF-8: ignored"))
            continue
        if stripped.startswith(".include"):
            problems.append(Problem(loc, ".include is not supported since systemd 246: ignored"))
            continue
        if stripped.startswith("["):
            if not stripped.endswith("]") or len(stripped) < 3:
                problems.append(Problem(loc, f"invalid section header {stripped!r}"))
                section = None
                continue
            section = stripped[1:-1]
            if section not in sections:
                sections.append(section)
            continue
        if section is None:
            problems.append(Problem(loc, "assignment outside of any section: ignored"))
            continue
        key, eq, value = stripped.partition("=")
        if not eq:
            problems.append(Problem(loc, f"missing '=' in {_short(stripped)}: ignored"))
            continue
        key = key.strip()
        if not key or key.split() != [key]:  # whitespace inside the key (str.isspace's)
            problems.append(Problem(loc, f"invalid key {_short(key)}: ignored"))
            continue
        value = value.strip()
        directives.append(Directive(section, key, value, loc, value))
    if pending is not None and pending_size > LONG_LINE_MAX:
        problems.append(Problem(Location(path, pending_line), "continued line longer than 1 MiB: ignored"))
    elif pending is not None:
        # systemd applies a dangling continuation at end of file as a last line
        stripped = "".join(pending).strip()
        loc = Location(path, pending_line)
        if stripped and stripped[0] not in COMMENTS and section is not None and "=" in stripped:
            key, _, value = stripped.partition("=")
            directives.append(Directive(section, key.strip(), value.strip(), loc, value.strip()))
    return UnitFile(path, tuple(directives), tuple(sections)), problems


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
