"""A scan writes nothing under ROOT and reads nothing outside it (issue: reading ROOT, read-only)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dynmigrate.app import run_scan
from dynmigrate.cli.main import main
from treebuilder import Link, build

SECRET = "TOP-SECRET-OUTSIDE-ROOT"


def hostile_root(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.conf").write_text(f"user = redis\npassword = {SECRET}\n")
    root = tmp_path / "root"
    build(
        root,
        {
            "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nredis:x:101:102::/var/lib/redis:/usr/sbin/nologin\n",
            "etc/group": "root:x:0:\nredis:x:102:\n",
            "etc/shadow": "root:$6$saltsalt$hashhashhash:19000:0:99999:7:::\nredis:!:19000::::::\n",
            "usr/lib/systemd/system/redis-server.service": (
                "[Service]\nExecStart=/usr/bin/redis-server /etc/redis/redis.conf\n"
            ),
            # absolute symlinks are resolved inside ROOT, relative ones cannot climb above it
            "etc/systemd/system/redis-server.service": Link("/usr/lib/systemd/system/redis-server.service"),
            "etc/redis/redis.conf": Link(str(outside / "secret.conf")),
            "etc/memcached.conf": Link("../../../../../../../../" + str(outside / "secret.conf").lstrip("/")),
            "etc/cron.d/x": Link("/etc/shadow"),
            "etc/sudoers.d/loop": Link("loop"),
            "var/lib/redis/dump.rdb": "REDIS0009",
        },
    )
    os.mkfifo(root / "etc/crontab")  # a FIFO where a config is expected: never opened, never blocks
    return root, outside


def state(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = os.lstat(p)
            digest = ""
            if p.is_file() and not p.is_symlink() and os.path.isfile(p):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p.relative_to(root))] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_size,
                st.st_mtime_ns,
                st.st_ctime_ns,
                digest,
            )
    return out


def test_scan_writes_nothing_under_root(tmp_path: Path) -> None:
    root, _ = hostile_root(tmp_path)
    before = state(root)
    run_scan(str(root))
    for fmt in ("table", "json", "markdown", "sarif"):  # the whole command, in this process
        res = CliRunner().invoke(main, ["scan", str(root), "--format", fmt], env={"NO_COLOR": "1"})
        assert res.exit_code == 0, res.output + res.stderr
    assert state(root) == before


_EVENTS: list[tuple[str, str]] = []
_RECORDING: list[bool] = [False]


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _RECORDING[0] and event in ("open", "os.listdir", "os.scandir") and args:
        target = args[0]
        if isinstance(target, str | bytes | os.PathLike):
            _EVENTS.append((event, os.fsdecode(target)))


def test_scan_never_reads_outside_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, outside = hostile_root(tmp_path)
    run_scan(str(root))  # warm up imports so that module loading is not recorded
    sys.addaudithook(_hook)
    _EVENTS.clear()
    _RECORDING[0] = True
    try:
        result = run_scan(str(root))
    finally:
        _RECORDING[0] = False
    real_root = os.path.realpath(root)
    assert _EVENTS, "the audit hook saw nothing: the test would prove nothing"
    outside_reads = [
        (ev, p)
        for ev, p in _EVENTS
        # absolute paths must be under ROOT; bare names are opened relative to a directory fd of the walk
        if (p.startswith("/") and not (p == real_root or p.startswith(real_root + "/")))
        or p.startswith("..")
        or ("/" in p and not p.startswith("/"))
    ]
    assert outside_reads == []
    assert not any(p.startswith(str(outside)) for _, p in _EVENTS)
    from dynmigrate.render.jsonout import render_json

    text = render_json(result.report)
    assert SECRET not in text
    assert "hashhash" not in text
    problems = {(str(p.location), p.message) for p in result.snapshot.problems}
    assert ("/etc/crontab", "not a regular file (fifo), not opened") in problems
    assert ("/etc/sudoers.d/loop", "too many levels of symbolic links") in problems
