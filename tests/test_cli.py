"""The command line: exit codes (README "Exit codes"), formats, consoles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from dynmigrate.cli.main import main
from treebuilder import Tree, build

SCHEMA = Path(__file__).resolve().parent.parent / "src/dynmigrate/render/schemas/scan.schema.json"


def tiny_root(tmp_path: Path, *, blocked: bool = False) -> Path:
    root = tmp_path / "root"
    policy = '<busconfig><policy user="foo"><allow own="org.example.Foo"/></policy></busconfig>\n' if blocked else ""
    tree: Tree = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nfoo:x:120:120:Foo:/nonexistent:/usr/sbin/nologin\n",
        "etc/group": "root:x:0:\nfoo:x:120:\n",
        "etc/systemd/system/foo.service": "[Service]\nUser=foo\nExecStart=/usr/bin/foo\n",
    }
    if blocked:
        # the policy blocks because the service needs its bus name (BusName=)
        unit = "[Service]\nUser=foo\nBusName=org.example.Foo\nExecStart=/usr/bin/foo\n"
        tree["etc/systemd/system/foo.service"] = unit
        tree["usr/share/dbus-1/system.d/foo.conf"] = policy
    return build(root, tree)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_scan_json_matches_its_schema(tmp_path: Path) -> None:
    code, out, err = run("scan", str(tiny_root(tmp_path)), "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert [(a["name"], a["verdict"]) for a in data["accounts"]] == [("foo", "convertible")]


def test_exit_codes(tmp_path: Path) -> None:
    ok = tiny_root(tmp_path / "ok")
    blocked = tiny_root(tmp_path / "blocked", blocked=True)
    assert run("scan", str(ok))[0] == 0
    assert run("scan", str(blocked))[0] == 0
    assert run("scan", str(blocked), "--fail-on", "blocked")[0] == 1
    assert run("scan", str(ok), "--fail-on", "manual")[0] == 0
    assert run("scan", str(ok), "--format", "yaml")[0] == 2
    code, _, err = run("scan", str(tmp_path / "missing"))
    assert code == 3
    assert "is not a directory" in err
    code, _, err = run("explain", str(ok), "nosuchaccount")
    assert code == 2
    assert "no static system account or unit named nosuchaccount" in err
    bad_manifest = tmp_path / "bad.tsv"
    bad_manifest.write_text("/x\tnot-a-number\t0\t644\n")
    code, _, err = run("scan", str(ok), "--ownership", str(bad_manifest))
    assert code == 3
    assert "bad.tsv: line 1: uid must be a number" in err
    out_dir = tmp_path / "plan"
    code, _, err = run("plan", str(blocked), "--account", "foo", "-o", str(out_dir))
    assert code == 4
    assert "blocked: DM205" in err
    assert "DM403 D-Bus policy: may own org.example.Foo, and foo.service owns bus name" in err
    assert not out_dir.exists()
    code, _, _ = run("plan", str(ok), "--account", "foo", "-o", str(out_dir))
    assert code == 0
    assert (out_dir / "migrate.sh").exists()
    code, _, err = run("plan", str(ok), "-o", str(tmp_path / "x"))
    assert code == 2
    assert "choose what to plan" in err


def test_verify_without_records_is_an_input_error(tmp_path: Path) -> None:
    code, _, err = run("verify", "--root", str(tiny_root(tmp_path)))
    assert code == 3
    assert "no migrated accounts recorded" in err


MACHINE_FORMATS = ["json", "markdown", "sarif"]


@pytest.fixture(scope="module")
def console_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """`python -m dynmigrate scan` in a process of its own, so that whatever reaches the real stdout and
    stderr is seen: once per machine format with colour forced, and once as a table under NO_COLOR.
    The four processes run at the same time (each is mostly Python starting and importing)."""
    root = tiny_root(tmp_path_factory.mktemp("console"))
    scan = [sys.executable, "-m", "dynmigrate", "scan", str(root), "--color", "always"]
    forced = {**os.environ, "FORCE_COLOR": "1", "TERM": "xterm-256color"}
    runs = {fmt: ([*scan, "--format", fmt], forced) for fmt in MACHINE_FORMATS}
    runs["table"] = (scan, {**os.environ, "NO_COLOR": "1"})
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for name, (argv, env) in runs.items():
            procs[name] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        done = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return done
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("fmt", MACHINE_FORMATS)
def test_machine_formats_have_no_progress_or_colour(
    console_runs: dict[str, subprocess.CompletedProcess[str]], fmt: str
) -> None:
    proc = console_runs[fmt]
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stdout
    assert "walking" not in proc.stdout
    assert proc.stderr == ""


def test_table_respects_no_color(console_runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    proc = console_runs["table"]
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stdout
    assert "convertible" in proc.stdout


def test_sarif_is_valid_shape(tmp_path: Path) -> None:
    code, out, _ = run("scan", str(tiny_root(tmp_path, blocked=True)), "--format", "sarif")
    assert code == 0
    sarif = json.loads(out)
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"DM403"}
    dm403 = next(r for r in results if r["ruleId"] == "DM403")
    assert dm403["level"] == "error"
    assert dm403["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "usr/share/dbus-1/system.d/foo.conf"
