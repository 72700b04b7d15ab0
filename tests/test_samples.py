"""Goldens of every output format over the bundled samples: scan, explain, graph and whole plan folders.

Review a golden diff like code: `pytest tests/test_samples.py --update-goldens`, then `git diff`.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import GOLDENS, REPO, Golden, plan_sample, require_tool, scan_sample
from dynmigrate.app import ScanResult
from dynmigrate.cli.consoles import make_console
from dynmigrate.cli.main import main
from dynmigrate.engine.catalogue import load_catalogue, rule_docs
from dynmigrate.graph.export import export_dot, export_json
from dynmigrate.output.write import MARKER
from dynmigrate.render.explain import explain_account, explain_unit
from dynmigrate.render.registry import TEXT_FORMATS
from dynmigrate.render.table import render_table
from robustness.test_hostile_root import build_hostile
from shellcheck_util import fragments_check, generated_parts, shellcheck_generated, start_fragments_check

SAMPLES = sorted(p.name for p in (REPO / "samples").iterdir() if (p / "root").is_dir())
# What each sample's plan golden plans (accounts, --force for a blocked one where it shows something)
# and the exit code `plan` must give for it: 0 when every account is planned, 4 when one is refused.
PLANS: dict[tuple[str, str], tuple[list[str], bool, int]] = {
    # postgres is blocked (DM116: admins log in as it): forced, so that its plan stays covered
    ("debian-web", "plan"): (["shortlink", "redis", "memcache", "postgres"], True, 0),
    # a base account that must stay: no migration (refused, exit 4), but options under new dynamic names
    ("debian-web", "plan-www-data"): (["www-data"], False, 4),
    ("units-maze", "plan"): (["webhook", "haproxy", "prometheus", "syncthing", "restic", "mosquitto"], False, 0),
    ("leftovers", "plan"): (["zabbix"], True, 0),
    ("private-configs", "plan"): (["Debian-snmp", "_chrony", "knot", "ledger", "nslcd"], False, 0),
}
SUFFIX = {"json": "json", "markdown": "md", "sarif": "sarif"}


def scan(name: str) -> ScanResult:
    return scan_sample(name)


@pytest.mark.parametrize("name", SAMPLES)
def test_scan_formats(name: str, in_repo: Path, golden: Golden) -> None:
    result = scan(name)
    base = GOLDENS / "samples" / name
    buf = io.StringIO()
    render_table(result.report, make_console(buf, "never"), show_all=True)
    golden.check(base / "scan.txt", buf.getvalue())
    for fmt, render in TEXT_FORMATS.items():
        golden.check(base / f"scan.{SUFFIX[fmt]}", render(result.report, rule_docs(load_catalogue())))
    golden.check(base / "graph.json", export_json(result.graph))
    golden.check(base / "graph.dot", export_dot(result.graph))
    explained: list[str] = []
    for acc in result.report.accounts:
        if acc.units or acc.verdict.value == "orphan":
            explained += [f"$ dynmigrate explain {acc.name}", *explain_account(acc), ""]
    for unit in sorted({u for a in result.report.accounts for u in a.units}):
        lines = explain_unit(result.queries, unit)
        assert lines is not None
        explained += [f"$ dynmigrate explain {unit}", *lines, ""]
    golden.check(base / "explain.txt", "\n".join(explained))


@pytest.fixture(scope="module", autouse=True)
def _fragments_shellcheck(request: pytest.FixtureRequest) -> Iterator[None]:
    """shellcheck over the script fragments, on another core while this module's plans are made
    (test_script_fragments_pass_shellcheck, last in this module, reads its result)."""
    wanted = any(i.name == "test_script_fragments_pass_shellcheck" for i in request.session.items)
    if not wanted or shutil.which("shellcheck") is None:
        yield
        return
    start_fragments_check()
    yield
    fragments_check()  # waited for: no process outlives the module


def make_plan_folder(name: str, label: str, golden: Golden, tmp_path: Path) -> Path:
    """Plan the sample as PLANS says, check the whole folder against its goldens, return the folder."""
    accounts, force, code = PLANS[name, label]
    out = tmp_path / "plan"
    args = [
        "plan",
        f"samples/{name}/root",
        "--ownership",
        f"samples/{name}/ownership.tsv",
        "-o",
        str(out),
        "--no-security",
        "--no-progress",
    ]
    for a in accounts:
        args += ["--account", a]
    if force:
        args.append("--force")
    res = CliRunner().invoke(main, args)
    assert res.exit_code == code, res.output + res.stderr
    files = sorted(p for p in out.rglob("*") if p.is_file())
    listing = "".join(f"{p.relative_to(out)} {oct(p.stat().st_mode & 0o777)}\n" for p in files)
    base = GOLDENS / "samples" / name / label
    if golden.update and base.exists():
        shutil.rmtree(base)  # files a plan no longer writes must not linger as goldens
    golden.check(base / "FILES", listing)
    marker = out / MARKER  # lists every other file with its sha256: checked here, not kept as a golden
    listed = {
        rel: digest
        for digest, _, rel in (line.partition("  ") for line in marker.read_text().splitlines())
        if not digest.startswith("#")
    }
    assert listed == {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p != marker}
    for p in files:
        if p != marker:
            golden.check(base / p.relative_to(out), p.read_text(encoding="utf-8", errors="surrogateescape"))
    golden.check(GOLDENS / "samples" / name / f"{label}.stderr", res.stderr)
    data = json.loads((out / "plan.json").read_text())
    planned = {a["account"] for a in data["accounts"]}
    refused = {r["account"] for r in data["refused"]}
    assert planned | refused == set(accounts)
    assert not planned & refused
    assert bool(refused) == (code == 4)
    return out


@pytest.mark.parametrize(("name", "label"), sorted(PLANS))
def test_plan_folder_goldens_and_generated_shell(
    name: str, label: str, in_repo: Path, golden: Golden, tmp_path: Path
) -> None:
    """The quick tier's test_plan_folder: the goldens, the fragments byte for byte in each script,
    and shellcheck over what dynmigrate generated around them."""
    out = make_plan_folder(name, label, golden, tmp_path)
    parts = generated_parts(out)  # fails when a script does not hold the fragments byte for byte
    assert set(parts) == {"migrate.sh", "rollback.sh", "dynmigrate.sh", "dynmigrate-repair"}
    require_tool("shellcheck")  # last: without it (outside CI) the rest above has still been checked
    sc = shellcheck_generated(out, tmp_path / "generated")
    assert sc.returncode == 0, sc.stdout


@pytest.mark.e2e  # the slow tier: shellcheck over the whole scripts takes about 6 s a plan
@pytest.mark.parametrize(("name", "label"), sorted(PLANS))
def test_plan_folder(name: str, label: str, in_repo: Path, golden: Golden, tmp_path: Path) -> None:
    out = make_plan_folder(name, label, golden, tmp_path)
    require_tool("shellcheck")  # last: without it (outside CI) the rest above has still been checked
    sc = subprocess.run(
        ["shellcheck", "-x", "migrate.sh", "rollback.sh", "files/dynmigrate-repair"],
        capture_output=True,
        text=True,
        check=False,
        cwd=out,
    )
    assert sc.returncode == 0, sc.stdout


@pytest.mark.e2e  # the slow tier: shellcheck over the whole scripts takes about 6 s
def test_hostile_plan_scripts_pass_shellcheck(tmp_path: Path) -> None:
    """The whole scripts of the hostile root's plan (tests/robustness/test_hostile_root.py, whose
    quick test shellchecks what was generated around the fragments), as they run: shellcheck -x."""
    root, _ = build_hostile(tmp_path)
    try:
        out = tmp_path / "plan"
        args = ["plan", str(root), "--account", "evil", "--force", "-o", str(out), "--no-security", "--no-progress"]
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output + res.stderr
    finally:
        (root / "var/lib/evil/locked").chmod(0o755)
        subprocess.run(["rm", "-rf", "--", str(root)], check=False)  # 10,000 nested directories: rm, not rmtree
    require_tool("shellcheck")
    scripts = ["migrate.sh", "rollback.sh", "files/dynmigrate-repair"]
    sc = subprocess.run(["shellcheck", "-x", *scripts], capture_output=True, text=True, check=False, cwd=out)
    assert sc.returncode == 0, sc.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_report_shows_security_exposure_before_and_after(in_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    res = plan_sample("debian-web", ["shortlink"], out)
    assert res.exit_code == 0, res.stderr
    report = (out / "REPORT.md").read_text()
    m = re.search(
        r"`systemd-analyze security --offline=yes` exposure: before ([0-9.]+) \w+, after ([0-9.]+) \w+", report
    )
    assert m is not None, report
    before, after = float(m.group(1)), float(m.group(2))
    # DynamicUser implies RemoveIPC, PrivateTmp, ProtectSystem=strict, ...: never worse (facts F7.3)
    assert after <= before


def test_script_fragments_pass_shellcheck() -> None:
    """lib.sh, stages.sh and repair.sh, as .ci/run lints them (that every plan's scripts hold them
    byte for byte is checked by test_plan_folder_goldens_and_generated_shell)."""
    require_tool("shellcheck")
    rc, out = fragments_check()
    assert rc == 0, out
