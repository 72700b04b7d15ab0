"""The unit reader on bad input: problems with file and line, never an exception."""

from __future__ import annotations

from dynmigrate.collect.unitfile import parse_unit_text
from dynmigrate.model.common import RelPath
from dynmigrate.model.unitsyntax import render_unit

P = RelPath("/u.service")


def messages(text: str) -> list[tuple[int, str]]:
    _, problems = parse_unit_text(text, P)
    return [(p.location.line, p.message) for p in problems]


def test_bad_lines_become_problems_with_lines() -> None:
    text = "User=early\n[Service\n[Service]\nno equals here\n =x\n.include /x\nGood=1\n"
    assert messages(text) == [
        (1, "assignment outside of any section: ignored"),
        (2, "invalid section header '[Service'"),
        (4, "missing '=' in 'no equals here': ignored"),
        (5, "invalid key '': ignored"),
        (6, ".include is not supported since systemd 246: ignored"),
    ]
    unit, _ = parse_unit_text(text, P)
    assert [(d.key, d.value) for d in unit.directives] == [("Good", "1")]


def test_binary_file_is_refused() -> None:
    unit, problems = parse_unit_text("[Service]\nUser=a\x00b\n", P)
    assert unit.directives == ()
    assert [p.message for p in problems] == ["binary content (NUL byte): file ignored"]


def test_invalid_utf8_line_is_skipped() -> None:
    text = b"[Service]\nUser=\xff\xfe\nGroup=g\n".decode("utf-8", "surrogateescape")
    unit, problems = parse_unit_text(text, P)
    assert [(p.location.line, p.message) for p in problems] == [(2, "line is not valid UTF-8: ignored")]
    assert [d.key for d in unit.directives] == ["Group"]


def test_crlf_and_bom() -> None:
    unit, problems = parse_unit_text("\ufeff[Service]\r\nUser=a\r\n", P)
    assert problems == []
    assert [(d.key, d.value) for d in unit.directives] == [("User", "a")]


def test_escaped_backslash_at_end_is_not_a_continuation() -> None:
    unit, _ = parse_unit_text("[Service]\nExecStart=/bin/echo a\\\\\nUser=u\n", P)
    assert [(d.key, d.value) for d in unit.directives] == [("ExecStart", "/bin/echo a\\\\"), ("User", "u")]


def test_writer_round_trips() -> None:
    sections = [("Unit", [("Description", "x y")]), ("Service", [("ExecStart", ""), ("ExecStart", "/bin/true %i")])]
    text = render_unit(sections, header="generated")
    unit, problems = parse_unit_text(text, P)
    assert problems == []
    assert [(d.section, d.key, d.value) for d in unit.directives] == [
        ("Unit", "Description", "x y"),
        ("Service", "ExecStart", ""),
        ("Service", "ExecStart", "/bin/true %i"),
    ]
