"""A hostile root, built by the test: no crash, clear findings, nothing read outside ROOT,
nothing written under it, and generated scripts that execute none of the injected text."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from conftest import ci_mode, require_tool, scratch_dir
from dynmigrate.app import run_scan
from dynmigrate.cli.main import main
from dynmigrate.plan.planner import PlanOptions, Selection, make_plan
from dynmigrate.render.planfolder.script import data_section
from robustness_stats import count
from shellcheck_util import shellcheck_generated

IS_ROOT = os.geteuid() == 0
SENTINEL = "dynmigrate-pwned"
DEPTH = 10_000
OUTSIDE_SECRET = "OUTSIDE-ROOT-CANARY"


def _mkdeep(base: Path, depth: int) -> None:
    """depth nested directories, created with directory fds (the path is far beyond PATH_MAX)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)


def _write(root: Path, rel: str, text: str | bytes) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


CASES: dict[str, str] = {}


def case(name: str, what: str) -> None:
    CASES[name] = what


def build_hostile(tmp: Path) -> tuple[Path, Path]:
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "shadow").write_text(f"root:{OUTSIDE_SECRET}:1::::::\n")
    root = tmp / "root"
    pwned = tmp / SENTINEL
    _write(
        root,
        "etc/passwd",
        (
            "root:x:0:0:root:/root:/bin/bash\n"
            f"evil:x:150:150:$(touch {pwned}); `id` 'q\" \\:/var/lib/evil:/usr/sbin/nologin\n"
            "broken line without fields\n"
            "bad:x:notanumber:1::/:/bin/false\n"
        ),
    )
    case("broken-passwd", "a passwd line with 1 field and one with a non-numeric UID become DM001 findings")
    _write(root, "etc/group", "root:x:0:\nevil:x:150:\n")
    _write(
        root,
        "etc/systemd/system/evil.service",
        (
            "[Service]\n"
            f"User=evil\nStateDirectory=$(touch {pwned})\nStateDirectory=../../etc\n"
            f"ReadWritePaths=/var/lib/evil/`touch {pwned}` /var/lib/../../etc\n"
            f"ExecStartPre=/bin/chown evil /var/lib/evil/$(touch {pwned})\n"
            f"ExecStart=/usr/bin/evil --user=evil --out=/var/lib/evil/;touch {pwned}\n"
            f"PIDFile=/run/evil/$(touch {pwned}).pid\n"
        ),
    )
    case("shell-metacharacters", "unit values with $(...), backticks and ; reach the plan only as quoted data")
    _write(root, "etc/systemd/system/semi.service", "[Service]\nUser=a;b\nExecStart=/bin/true\n")
    case("user-with-semicolon", "User=a;b names no account: never planned, never executed")
    _write(root, "etc/systemd/system/bin.service", b"\x7fELF\x02\x01\x01\x00\x00\x00binary")
    case("binary-unit", "a binary unit file becomes a finding, not a crash")
    _write(root, "etc/systemd/system/utf.service", b"[Service]\nUser=\xff\xfeevil\nExecStart=/bin/\xc3(\n")
    case("non-utf8-unit", "invalid UTF-8 lines in a unit are reported with their line")
    os.symlink("loop2.service", root / "etc/systemd/system/loop1.service")
    os.symlink("loop1.service", root / "etc/systemd/system/loop2.service")
    case("symlink-loop", "units that are symlink loops become findings")
    os.symlink("/etc/shadow", root / "etc/shadow")  # absolute: resolves to ROOT/etc/shadow = itself
    case("self-loop", "an absolute symlink to itself (ROOT/etc/shadow -> /etc/shadow) is a loop inside ROOT")
    _write(root, "etc/sudoers.d/.keep", "")
    os.symlink(str(outside / "shadow"), root / "etc/sudoers.d/abs-out")
    os.symlink("../../../../../../../../../" + str(outside / "shadow").lstrip("/"), root / "etc/sudoers.d/rel-out")
    case("escape-symlinks", "absolute and ../-relative symlinks aimed outside ROOT resolve inside it")
    os.mkfifo(root / "etc/crontab")
    os.mkfifo(root / "etc/sudoers")
    case("fifo-config", "FIFOs where configs are expected are reported and never opened (a read would block)")
    if IS_ROOT:
        os.mknod(root / "etc/logrotate.conf", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        case("device-config", "a device node where a config is expected is never opened")
    with open(root / "etc/login.defs", "wb") as fh:
        fh.truncate(10 * 1024**3)
    case("sparse-config", "a 10 GiB sparse login.defs is refused by the size cap")
    lib = root / "var/lib/evil"
    lib.mkdir(parents=True)
    (lib / "new\nline").write_text("x")
    (lib / "sp ace 'quote\" $(x)").write_text("x")
    (lib / os.fsdecode(b"latin\xe9")).write_text("x")
    if IS_ROOT:  # owned by evil, so that explain lists them (git and pytest cannot give owners otherwise)
        for name in ("new\nline", "sp ace 'quote\" $(x)", os.fsdecode(b"latin\xe9")):
            os.chown(lib / name, 150, 150)
    case("hostile-file-names", "names with newlines, quotes, spaces and invalid UTF-8 are escaped in every output")
    os.symlink(".", lib / "dirloop")
    case("directory-loop", "a directory symlink loop is not followed by the walk")
    _mkdeep(lib, DEPTH)
    case("deep-nesting", f"{DEPTH} nested directories: the walk stops at its depth cap with a finding")
    locked = lib / "locked"
    locked.mkdir()
    (locked / "inside").write_text("x")
    locked.chmod(0)
    case("unreadable-directory", "an unreadable directory becomes a finding (checked as an unprivileged user)")
    _write(
        root,
        "usr/share/dbus-1/system.d/bomb.conf",
        (
            '<?xml version="1.0"?>\n<!DOCTYPE busconfig [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>\n'
            '<busconfig><policy user="evil">&b;</policy></busconfig>\n'
        ),
    )
    case("xml-entities", "a D-Bus policy with entity declarations is refused, not expanded")
    _write(root, "etc/dynmigrate.ini", f"[probes]\nevil.service = touch {pwned}\n")
    case("probe-in-image", "a health probe written inside the scanned image is ignored")
    return root, pwned


@pytest.fixture(scope="session")
def removals() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Removals that run while the next tests do: the session waits for them at its end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.wait()


@pytest.fixture(scope="module")
def hostile(removals: list[subprocess.Popen[bytes]]) -> Iterator[tuple[Path, Path]]:
    tmp = scratch_dir("dynmigrate-hostile-")
    try:
        root, pwned = build_hostile(tmp)
        yield root, pwned
    finally:  # also when building failed: scratch_dir's trees are not pytest's to clear
        with contextlib.suppress(OSError):
            (tmp / "root/var/lib/evil/locked").chmod(0o755)
        # rmtree recurses 10,000 levels: use rm. Its 10,000 rmdir take 1 to 20 s on a busy disk, so
        # it runs in the background
        removals.append(subprocess.Popen(["rm", "-rf", "--", str(tmp)]))


def snapshot_state(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath.count("/d") > 50:
            dirnames[:] = []  # the deep chain: its top levels are enough to see a write
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = ""
            if stat.S_ISREG(st.st_mode) and st.st_size < 1024 * 1024:
                with contextlib.suppress(PermissionError):
                    digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            out[p] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest)
    return out


def test_hostile_scan_plan_and_scripts(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    root, pwned = hostile
    before = snapshot_state(root)
    result = run_scan(str(root))
    messages = {(str(p.location), p.message) for p in result.snapshot.problems}
    expected = {
        ("/etc/passwd:3", "passwd line has 1 fields, expected 7"),
        ("/etc/passwd:4", "non-numeric UID or GID for 'bad'"),
        ("/etc/systemd/system/bin.service", "binary content (NUL byte): file ignored"),
        ("/etc/systemd/system/utf.service:2", "line is not valid UTF-8: ignored"),
        ("/etc/shadow", "too many levels of symbolic links"),
        ("/etc/crontab", "not a regular file (fifo), not opened"),
        ("/etc/sudoers", "not a regular file (fifo), not opened"),
        ("/etc/login.defs", f"file too large ({10 * 1024**3} bytes, limit 4194304)"),
        ("/usr/share/dbus-1/system.d/bomb.conf:2", "D-Bus policy refused: DTD with an internal subset refused"),
    }
    if IS_ROOT:
        expected.add(("/etc/logrotate.conf", "not a regular file (char-device), not opened"))
    assert expected <= messages, sorted(messages)
    assert any(loc.startswith("/var/lib/evil/d/d/") and "deeper than" in msg for loc, msg in messages)
    assert any(loc.startswith("/etc/systemd/system/loop") and "symbolic links" in msg for loc, msg in messages)
    assert not any(OUTSIDE_SECRET in m for _, m in messages)
    evil = result.report.account("evil")
    assert evil is not None
    # every output format renders the hostile names escaped, on one line each
    for fmt in ("table", "json", "markdown", "sarif"):
        res = CliRunner().invoke(main, ["scan", str(root), "--format", fmt, "--no-progress"])
        assert res.exit_code == 0, res.output
        assert OUTSIDE_SECRET not in res.stdout
        assert "new\nline" not in res.stdout
        count(f"hostile:format-{fmt}")
    explain = CliRunner().invoke(main, ["explain", str(root), "evil"])
    assert explain.exit_code == 0
    if IS_ROOT:  # the hostile names belong to evil (build_hostile chowns them): explain lists them escaped
        owns = explain.stdout.split("Paths it owns:\n", 1)[1].split("\n\n", 1)[0]
        assert owns == (
            "  /var/lib/evil/latin\\xe9  file 150:150 0644, 3 files, 0 dirs, 0 other, 3 bytes\n"
            "      e.g. /var/lib/evil/new\\nline\n"
            "      e.g. /var/lib/evil/sp ace 'quote\" $(x)"
        ), explain.stdout
    elif ci_mode():
        pytest.fail("the explain check needs root (chown to the hostile account), and CI is set", pytrace=False)
    # the plan carries the injected text only as quoted data
    plan = make_plan(result.queries, result.report, Selection(accounts=("evil",)), PlanOptions(force=True))
    assert [a.account for a in plan.accounts] == ["evil"]
    assert plan.accounts[0].units[0].probe == ""  # the probe from ROOT/etc/dynmigrate.ini is ignored
    out = tmp_path / "plan"
    res = CliRunner().invoke(main, ["plan", str(root), "--account", "evil", "--force", "-o", str(out), "--no-security"])
    assert res.exit_code == 0, res.output + res.stderr
    scripts = [out / "migrate.sh", out / "rollback.sh", out / "files/dynmigrate-repair"]
    assert (out / "lib/dynmigrate.sh").exists()
    # bash parses the data section exactly as written: evaluate it and read the values back
    data = data_section(plan, [])
    probe = (
        'die() { echo "DIE $*"; exit 99; }\n'
        + data
        + '\nload_account evil\nfor v in A_NAME A_GECOS A_HOME; do printf "%s=%s\\0" "$v" "${!v}"; done\n'
        'for a in A_MOVE A_RUNTIME A_MANIFEST A_DROPIN_UNITS; do n="$a[@]"; for x in "${!n}"; do '
        'printf "%s=%s\\0" "$a" "$x"; done; done\n'
    )
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", probe], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    values = [item.decode("utf-8", "surrogateescape").split("=", 1) for item in proc.stdout.split(b"\0") if item]
    acc = plan.accounts[0]
    want = [["A_NAME", "evil"], ["A_GECOS", acc.gecos], ["A_HOME", acc.home]]
    want += [
        ["A_MOVE", p]
        for p in sorted(
            {
                str(m.path)
                for u in acc.units
                for m in u.directories
                if m.key in ("StateDirectory", "CacheDirectory", "LogsDirectory") and "%" not in m.name
            }
        )
    ]
    assert values[:3] == want[:3]
    assert [v for v in values if v[0] == "A_MANIFEST"] == [["A_MANIFEST", str(p)] for p in acc.manifest_paths]
    assert not pwned.exists(), "injected text was executed"
    # the scan wrote nothing under ROOT
    assert snapshot_state(root) == before
    count("hostile:plan-data-section")
    count("hostile:read-only")
    for name in CASES:
        count(f"hostile:{name}")
    assert all(p.exists() for p in scripts)
    # the scripts hold the shell fragments byte for byte (test_samples.py shellchecks those once);
    # what dynmigrate generated around them is shellchecked here. The whole scripts, as they run
    # (shellcheck -x), are the slow tier's: test_samples.py::test_hostile_plan_scripts_pass_shellcheck
    require_tool("shellcheck")  # last: without it (outside CI) the rest above has still been checked
    sc = shellcheck_generated(out, tmp_path / "generated")
    assert sc.returncode == 0, sc.stdout


@pytest.mark.skipif(not IS_ROOT or not shutil.which("setpriv"), reason="needs root to drop to an unprivileged user")
def test_unreadable_directory_as_unprivileged_user(hostile: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = hostile
    # nobody must reach ROOT: pytest's tmp tree is 0700 root, so use a world-traversable folder
    base = Path(tempfile.mkdtemp(prefix="dynmigrate-unreadable-", dir="/tmp"))
    base.chmod(0o755)
    shadow_root = base / "ro"
    lib = shadow_root / "var/lib/evil/locked"
    lib.mkdir(parents=True)
    (lib / "inside").write_text("x")
    (shadow_root / "etc").mkdir()
    (shadow_root / "etc/passwd").write_text((root / "etc/passwd").read_text())
    (shadow_root / "etc/group").write_text("root:x:0:\n")
    lib.chmod(0)
    for p in (
        shadow_root,
        shadow_root / "var",
        shadow_root / "var/lib",
        shadow_root / "var/lib/evil",
        shadow_root / "etc",
    ):
        p.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "dynmigrate",
            "scan",
            str(shadow_root),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    lib.chmod(0o755)
    shutil.rmtree(base)
    assert proc.returncode == 0, proc.stderr
    assert '"/var/lib/evil/locked"' in proc.stdout
    assert "permission denied: not descended" in proc.stdout
    count("hostile:unreadable-directory-unprivileged")
