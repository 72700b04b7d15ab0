"""The unit reader's fast paths give what the general code gives: the split into physical lines
where no line can be continued or be too long, `Key=value` without a call, and a file read in one
go where fstat's size says how long it is."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from dynmigrate.collect import unitfile
from dynmigrate.collect.rootfs import RootFS
from dynmigrate.model.common import RelPath

PATH = RelPath("/etc/systemd/system/x.service")
BITS = st.sampled_from(
    ["[Service]", "[", "]", "Key", "=", "value", " ", "\t", "\n", "\r", "\r\n", "\\", "#", ";", "é", "\udc80", "X-A b"]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(BITS, max_size=24).map("".join))
def test_lines_equal_the_logical_lines(text: str) -> None:
    assert list(unitfile._lines(text, PATH, [])) == list(unitfile._logical_lines(text, PATH, []))


@settings(max_examples=150, deadline=None)
@given(st.lists(BITS, max_size=24).map("".join))
@example("[Service]\nX-A b=1\nKey = v\n K=v\nA\tB=2\n=x\n")
def test_the_inline_assignment_equals_the_general_one(text: str) -> None:
    """Every directive parse_unit_text makes is the one _assignment makes of its line."""
    unit, _ = unitfile.parse_unit_text(text, PATH)
    lines = text.split("\n")
    for d in unit.directives:
        line = lines[d.location.line - 1].rstrip("\r").strip()
        if line.endswith("\\"):
            continue  # a continued line: joined before _assignment sees it
        assert unitfile._assignment(d.section, line, d.location) == d
    problems = [p for p in unitfile.parse_unit_text(text, PATH)[1] if "key" in p.message]
    for p in problems:
        line = lines[p.location.line - 1].rstrip("\r").strip()
        assert unitfile._assignment("Service", line, p.location) == p


def test_a_file_is_read_whole_whatever_its_size_says(tmp_path: Path) -> None:
    """One read where the size is right; a pseudo-file whose size says 0 is read to its end."""
    (tmp_path / "etc").mkdir()
    body = b"".join(b"line %d\n" % i for i in range(40_000))  # more than one 64 KiB chunk
    (tmp_path / "etc/big").write_bytes(body)
    (tmp_path / "etc/empty").write_bytes(b"")
    fs = RootFS(str(tmp_path))
    assert fs.read_bytes("/etc/big") == body
    assert fs.read_bytes("/etc/empty") == b""
    status = RootFS("/").read_bytes(f"/proc/{os.getpid()}/status")
    assert os.stat(f"/proc/{os.getpid()}/status").st_size == 0
    assert status.startswith(b"Name:")
    assert b"\nVmPeak:" in status
    assert status.endswith(b"\n")
