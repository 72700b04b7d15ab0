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
from collections.abc import Iterator

from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.findings import Problem
from dynmigrate.model.units import Directive, UnitFile
from dynmigrate.model.unitsyntax import ends_with_unescaped_backslash

LONG_LINE_MAX = 1024 * 1024  # systemd's LONG_LINE_MAX
COMMENTS = "#;"
UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, kept by surrogateescape


def parse_unit_text(text: str, path: RelPath) -> tuple[UnitFile, list[Problem]]:
    """Parse one unit file or drop-in. Bad lines become problems; nothing raises."""
    if "\x00" in text:
        return UnitFile(path, (), ()), [Problem(Location(path, 0), "binary content (NUL byte): file ignored")]
    if text.startswith("\ufeff"):
        text = text[1:]
    undecodable = not text.isascii() and UNDECODABLE.search(text) is not None
    problems: list[Problem] = []
    directives: list[Directive] = []
    sections: list[str] = []
    section: str | None = None
    for start, line, complete in _lines(text, path, problems):
        stripped = line.strip()
        first = stripped[:1]
        if not first or first in COMMENTS:
            continue
        if not complete:
            # systemd applies a dangling continuation at end of file as a last line
            if section is not None and "=" in stripped:
                key, _, value = stripped.partition("=")
                directives.append(Directive(section, key.strip(), value.strip(), Location(path, start), value.strip()))
        elif undecodable and UNDECODABLE.search(stripped):
            problems.append(Problem(Location(path, start), "line is not valid UTF-8: ignored"))
        elif first == "[":
            section = _section_header(stripped, Location(path, start), sections, problems)
        elif first == "." and stripped.startswith(".include"):
            problems.append(Problem(Location(path, start), ".include is not supported since systemd 246: ignored"))
        elif section is None:
            problems.append(Problem(Location(path, start), "assignment outside of any section: ignored"))
        else:
            key, eq, value = stripped.partition("=")
            if eq and key.isalnum():  # the common `Key=value`: what _assignment would make of it
                value = value.strip()
                directives.append(Directive(section, key, value, Location(path, start), value))
                continue
            read = _assignment(section, stripped, Location(path, start))
            if isinstance(read, Directive):
                directives.append(read)
            else:
                problems.append(read)
    return UnitFile(path, tuple(directives), tuple(sections)), problems


def _lines(text: str, path: RelPath, problems: list[Problem]) -> Iterator[tuple[int, str, bool]]:
    """The logical lines of text: its physical lines (without a trailing carriage return) when no
    line can be continued or too long, which is most files; else _logical_lines."""
    if len(text) > LONG_LINE_MAX or "\\\n" in text or "\\\r" in text or text.endswith("\\"):
        return _logical_lines(text, path, problems)
    physical = text.split("\n")
    if physical[-1] == "":
        physical.pop()
    return ((n, line[:-1] if line.endswith("\r") else line, True) for n, line in enumerate(physical, 1))


def _logical_lines(text: str, path: RelPath, problems: list[Problem]) -> Iterator[tuple[int, str, bool]]:
    """(first line number, text, complete) of each logical line: continued lines joined, comment
    lines inside a continuation skipped, overlong lines dropped as problems. complete is False for
    a continuation still open at the end of the file."""
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
        if pending is None:
            if ends_with_unescaped_backslash(line):
                pending, pending_size, pending_line = [line[:-1] + " "], len(line), lineno
            else:
                yield lineno, line, True
            continue
        if line.lstrip(" \t")[:1] in tuple(COMMENTS):
            continue  # comments inside a continuation are skipped
        continued = ends_with_unescaped_backslash(line)
        pending_size += len(line)
        if pending_size > LONG_LINE_MAX:
            if continued:
                continue  # the rest of an overlong line: dropped with it
            problems.append(Problem(Location(path, pending_line), "continued line longer than 1 MiB: ignored"))
            pending = None
            continue
        pending.append(line[:-1] + " " if continued else line)
        if not continued:
            yield pending_line, "".join(pending), True
            pending = None
    if pending is not None and pending_size > LONG_LINE_MAX:
        problems.append(Problem(Location(path, pending_line), "continued line longer than 1 MiB: ignored"))
    elif pending is not None:
        yield pending_line, "".join(pending), False


def _section_header(stripped: str, loc: Location, sections: list[str], problems: list[Problem]) -> str | None:
    """The section a `[Name]` line opens, added to sections when new; None for an invalid header
    (the assignments under it are ignored)."""
    if stripped[-1] != "]" or len(stripped) < 3:
        problems.append(Problem(loc, f"invalid section header {stripped!r}"))
        return None
    section = stripped[1:-1]
    if section not in sections:
        sections.append(section)
    return section


def _assignment(section: str, stripped: str, loc: Location) -> Directive | Problem:
    """A `Key=value` line of a section, or why it is ignored."""
    key, eq, value = stripped.partition("=")
    if not eq:
        return Problem(loc, f"missing '=' in {_short(stripped)}: ignored")
    key = key.strip()
    if not key or key.split() != [key]:  # whitespace inside the key (str.isspace's)
        return Problem(loc, f"invalid key {_short(key)}: ignored")
    value = value.strip()
    return Directive(section, key, value, loc, value)


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
