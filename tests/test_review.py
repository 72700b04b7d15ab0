"""explain and graph answer from a saved report exactly as from a fresh scan; graph neighbourhoods."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import GOLDENS, Golden
from dynmigrate.cli.main import main

SAMPLES = ["debian-web", "units-maze", "leftovers"]
pytestmark = pytest.mark.usefixtures("shared_scans")  # each sample is scanned once here (conftest)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def sample(name: str) -> list[str]:
    return [f"samples/{name}/root", "--ownership", f"samples/{name}/ownership.tsv", "--no-progress"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, shared_scans: None) -> dict[str, Path]:
    import os

    from conftest import REPO

    old = Path.cwd()
    os.chdir(REPO)
    try:
        out: dict[str, Path] = {}
        for name in SAMPLES:
            path = tmp_path_factory.mktemp(name) / "scan.json"
            code, _, err = run("scan", *sample(name), "--format", "json", "-o", str(path))
            assert code == 0, err
            out[name] = path
        return out
    finally:
        os.chdir(old)


@pytest.mark.parametrize("name", SAMPLES)
def test_explain_from_report_equals_a_fresh_scan(name: str, saved: dict[str, Path], in_repo: Path) -> None:
    data = json.loads(saved[name].read_text(encoding="utf-8"))
    names = [a["name"] for a in data["accounts"] if a["units"] or a["verdict"] == "orphan"]
    names += sorted(data["evidence"]["units"])
    names.append(names[-1].removesuffix(".service"))  # NAME finds NAME.service
    assert len(names) >= 8
    # one fresh scan answers every name here; the CLI path (scan per call) is compared below
    from dynmigrate.cli.base import ScanConfig
    from dynmigrate.cli.reviewcmd import report_of
    from dynmigrate.render.explain import find_unit

    fresh = report_of(ScanConfig(f"samples/{name}/root", f"samples/{name}/ownership.tsv", no_progress=True))
    assert fresh == data
    for wanted in names[:3] + names[-3:]:
        for fmt in ("text", "json"):
            a = run("explain", *sample(name), wanted, "--format", fmt)
            b = run("explain", "--from-report", str(saved[name]), wanted, "--format", fmt)
            assert a == b
            assert a[0] == 0
            assert a[1]
    for wanted in names:
        acc = next((x for x in data["accounts"] if x["name"] == wanted), None)
        unit = find_unit(data["evidence"]["units"], wanted)
        assert acc is not None or unit is not None, wanted


def test_explain_goldens_come_from_the_saved_report(saved: dict[str, Path], in_repo: Path) -> None:
    """The explain goldens (written from a fresh scan in test_samples) are what --from-report prints."""
    for name in SAMPLES:
        golden = (GOLDENS / "samples" / name / "explain.txt").read_text(encoding="utf-8")
        blocks = golden.split("$ dynmigrate explain ")[1:]
        assert blocks
        for block in blocks:
            wanted, _, expected = block.partition("\n")
            code, out, err = run("explain", "--from-report", str(saved[name]), wanted)
            assert code == 0, err
            assert out == expected.rstrip("\n") + "\n"


@pytest.mark.parametrize("fmt", ["json", "dot"])
def test_graph_from_report_equals_a_fresh_scan(fmt: str, saved: dict[str, Path], in_repo: Path) -> None:
    for name in SAMPLES:
        fresh = run("graph", *sample(name), "--format", fmt)
        assert fresh[0] == 0
        assert run("graph", "--from-report", str(saved[name]), "--format", fmt) == fresh
        suffix = "json" if fmt == "json" else "dot"
        assert fresh[1] == (GOLDENS / "samples" / name / f"graph.{suffix}").read_text(encoding="utf-8")
        filtered = run("graph", *sample(name), "--format", fmt, "--account", "root", "--depth", "2")
        assert filtered == run(
            "graph", "--from-report", str(saved[name]), "--format", fmt, "--account", "root", "--depth", "2"
        )


def test_graph_neighbourhood(saved: dict[str, Path], in_repo: Path, golden: Golden) -> None:
    code, out, _ = run("graph", "--from-report", str(saved["debian-web"]), "--account", "redis", "--format", "dot")
    assert code == 0
    golden.check(GOLDENS / "samples" / "debian-web" / "graph-redis.dot", out)
    code, out, _ = run("graph", "--from-report", str(saved["debian-web"]), "--unit", "memcached")
    data = json.loads(out)
    full = json.loads(saved["debian-web"].read_text(encoding="utf-8"))["evidence"]["graph"]
    seed = "unit:memcached.service"
    near = (
        {seed}
        | {e["to"] for e in full["edges"] if e["from"] == seed}
        | {e["from"] for e in full["edges"] if e["to"] == seed}
    )
    assert {n["id"] for n in data["nodes"]} == near
    assert data["edges"] == [e for e in full["edges"] if e["from"] in near and e["to"] in near]
    assert 0 < len(data["edges"]) < len(full["edges"])
    code, out, _ = run("graph", "--from-report", str(saved["debian-web"]), "--unit", "memcached", "--depth", "0")
    assert [n["id"] for n in json.loads(out)["nodes"]] == [seed]


def test_review_usage_errors(saved: dict[str, Path], in_repo: Path, tmp_path: Path) -> None:
    code, _, err = run("graph", "--from-report", str(saved["debian-web"]), "--account", "nosuch")
    assert (code, err) == (2, "dynmigrate: no account nosuch in the graph\n")
    code, _, err = run("graph")
    assert (code, err) == (2, "dynmigrate: give ROOT (or --from-report FILE)\n")
    code, _, err = run("explain", "--from-report", str(saved["debian-web"]), "nosuch")
    assert code == 2
    assert err == f"dynmigrate: no static system account or unit named nosuch in {saved['debian-web']}\n"
    not_json = tmp_path / "scan.txt"
    not_json.write_text("dynmigrate scan of /\n", encoding="utf-8")
    code, _, err = run("explain", "--from-report", str(not_json), "redis")
    assert code == 3
    assert err.startswith(f"dynmigrate: {not_json}:1: not JSON")
    sarif = tmp_path / "scan.sarif"
    sarif.write_text(run("scan", *sample("leftovers"), "--format", "sarif")[1], encoding="utf-8")
    code, _, err = run("graph", "--from-report", str(sarif))
    assert (code, err) == (
        3,
        f"dynmigrate: {sarif}: not a dynmigrate scan report (scan --format json, schema_version 1)\n",
    )


def test_explain_from_a_report_with_suppressions_equals_a_fresh_scan(in_repo: Path, tmp_path: Path) -> None:
    """A report saved with --ignore, --select, [ignore] or a baseline holds the silenced findings under
    `suppressed`: explain --from-report still shows them, as a fresh explain does (never silently dropped)."""
    policy = tmp_path / "dynmigrate.ini"
    policy.write_text("[ignore]\nredis = DM110\nmemcached.service = DM201\n", encoding="utf-8")
    saved = tmp_path / "scan.json"
    args = ["--policy", str(policy), "--ignore", "DM408", "--format", "json", "-o", str(saved)]
    code, _, err = run("scan", *sample("debian-web"), *args)
    assert code == 0, err
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert {(s["subject"], s["rule"]) for s in data["suppressed"]} >= {("redis", "DM110"), ("memcache", "DM201")}
    for wanted in ("redis", "memcache", "postgres"):
        for fmt in ("text", "json"):
            fresh = run("explain", *sample("debian-web"), "--policy", str(policy), wanted, "--format", fmt)
            assert fresh[0] == 0
            assert run("explain", "--from-report", str(saved), wanted, "--format", fmt) == fresh
