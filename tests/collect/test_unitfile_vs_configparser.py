"""What the unit reader must do that configparser alone cannot (systemd.syntax(7), facts F6.1-F6.4).

Each test feeds the same text to configparser and to our reader and shows the difference.
configparser stays the right tool for dynmigrate's own dynmigrate.ini (test_policy.py).
"""

from __future__ import annotations

import configparser

import pytest

from dynmigrate.collect.unitfile import parse_unit_text
from dynmigrate.model.common import RelPath, UnitName
from dynmigrate.model.units import LoadState, Unit

P = RelPath("/etc/systemd/system/x.service")


def unit_of(text: str) -> Unit:
    f, problems = parse_unit_text(text, P)
    assert problems == []
    return Unit(UnitName("x.service"), LoadState.LOADED, P, P, (), f.directives)


def test_repeated_keys_are_a_list_not_an_error() -> None:
    text = "[Service]\nExecStartPre=/bin/a\nExecStartPre=/bin/b\n"
    with pytest.raises(configparser.DuplicateOptionError):
        configparser.ConfigParser().read_string(text)
    loose = configparser.ConfigParser(strict=False)
    loose.read_string(text)
    assert loose["Service"]["ExecStartPre"] == "/bin/b"  # the first command is lost
    assert [d.value for d in unit_of(text).values("Service", "ExecStartPre")] == ["/bin/a", "/bin/b"]


def test_empty_assignment_resets_the_list() -> None:
    text = "[Service]\nReadWritePaths=/a\nReadWritePaths=\nReadWritePaths=/b\n"
    unit = unit_of(text)
    assert [d.value for d in unit.values("Service", "ReadWritePaths")] == ["/b"]
    assert len(unit.assignments("Service", "ReadWritePaths")) == 3


def test_repeated_sections_are_merged() -> None:
    text = "[Service]\nUser=a\n[Unit]\nDescription=x\n[Service]\nGroup=b\n"
    with pytest.raises(configparser.DuplicateSectionError):
        configparser.ConfigParser().read_string(text)
    unit = unit_of(text)
    assert unit.value("Service", "User") is not None
    assert unit.value("Service", "Group") is not None


def test_backslash_continuation_joins_with_a_space_and_skips_comments() -> None:
    text = "[Service]\nExecStart=/usr/bin/foo \\\n# a comment inside\n  --bar \\\n  --baz\nUser=foo\n"
    cp = configparser.ConfigParser(strict=False)
    cp.read_string(text)
    # configparser keeps the backslashes and newlines (it only knows indentation continuation)
    assert cp["Service"]["ExecStart"] == "/usr/bin/foo \\\n--bar \\\n--baz"
    unit = unit_of(text)
    d = unit.value("Service", "ExecStart")
    assert d is not None
    assert d.value == "/usr/bin/foo    --bar    --baz"
    assert d.location.line == 2
    user = unit.value("Service", "User")
    assert user is not None
    assert user.location.line == 6


def test_indented_line_is_not_a_continuation() -> None:
    text = "[Service]\nExecStart=/usr/bin/foo\n  User=foo\n"
    cp = configparser.ConfigParser()
    cp.read_string(text)
    assert "user" not in cp["Service"]  # configparser folded it into ExecStart
    assert cp["Service"]["ExecStart"] == "/usr/bin/foo\nUser=foo"
    unit = unit_of(text)
    user = unit.value("Service", "User")
    assert user is not None
    assert user.value == "foo"


def test_hash_after_a_value_is_part_of_the_value() -> None:
    text = "[Service]\nEnvironment=A=1 # not a comment\n; a comment\n  # an indented comment\n"
    cp = configparser.ConfigParser(inline_comment_prefixes=("#",))
    cp.read_string(text)
    assert cp["Service"]["Environment"] == "A=1"
    unit = unit_of(text)
    assert [d.value for d in unit.values("Service", "Environment")] == ["A=1 # not a comment"]


def test_keys_keep_their_case_and_percent_is_no_interpolation() -> None:
    text = "[Service]\nUser=%i\nUMask=0077\n"
    cp = configparser.ConfigParser()
    cp.read_string(text)
    assert list(cp["Service"]) == ["user", "umask"]  # lower-cased
    with pytest.raises(configparser.InterpolationSyntaxError):
        cp["Service"]["User"]
    unit = unit_of(text)
    assert [d.key for d in unit.directives] == ["User", "UMask"]


def test_every_directive_has_file_and_line() -> None:
    text = "\n# c\n[Unit]\nDescription=d\n\n[Service]\nUser=u\n"
    unit = unit_of(text)
    assert [(d.key, str(d.location)) for d in unit.directives] == [
        ("Description", f"{P}:4"),
        ("User", f"{P}:7"),
    ]
