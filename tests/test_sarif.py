"""SARIF that code scanning accepts: the OASIS 2.1.0 schema, and GitHub's requirements for uploads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema
import pytest
from click.testing import CliRunner

from conftest import REPO, scan_sample
from dynmigrate.app import run_scan
from dynmigrate.cli.main import main
from dynmigrate.engine.catalogue import load_catalogue, rule_docs
from dynmigrate.render.sarif import render_sarif

SCHEMA = json.loads((REPO / "tests/schemas/sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
SAMPLES = sorted(p.name for p in (REPO / "samples").iterdir() if (p / "root").is_dir())


def validate(log: dict[str, Any]) -> None:
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []


def test_the_schema_rejects_what_code_scanning_rejects() -> None:
    """The shipped schema is the real one: it catches a broken log (so the checks below can fail)."""
    validator = jsonschema.Draft4Validator(SCHEMA)
    assert not validator.is_valid({"version": "2.1.0", "runs": [{"results": []}]})  # no tool
    bad_region = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "x"}},
                "results": [
                    {
                        "message": {"text": "m"},
                        "locations": [
                            {"physicalLocation": {"artifactLocation": {"uri": "a"}, "region": {"startLine": 0}}}
                        ],
                    }
                ],
            }
        ],
    }
    assert not validator.is_valid(bad_region)


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_sarif_is_valid_and_complete(name: str, in_repo: Path) -> None:
    result = scan_sample(name)
    log = json.loads(render_sarif(result.report, rule_docs(load_catalogue())))
    validate(log)
    run = log["runs"][0]
    assert run["originalUriBaseIds"]["ROOT"]["uri"] == f"samples/{name}/root/"
    findings = sorted(result.findings, key=lambda f: f.sort_key())
    assert all(f.location is not None for f in findings)  # every finding of the samples has its evidence file
    results = run["results"]
    assert [(r["ruleId"], r["properties"]["account"]) for r in results] == [(f.rule, f.subject) for f in findings]
    for r, f in zip(results, findings, strict=True):
        assert f.location is not None
        phys = r["locations"][0]["physicalLocation"]
        assert phys["artifactLocation"]["uriBaseId"] == "ROOT"
        assert unquote(phys["artifactLocation"]["uri"]) == f.location.file.lstrip("/")
        assert phys["region"] == {"startLine": f.location.line or 1}
        assert r["properties"]["wholeFile"] is (f.location.line == 0)
        assert len(r["partialFingerprints"]["dynmigrateFinding/v1"]) == 32
        assert r["message"]["text"].endswith(
            "; fix: " + next(x.meta.fix for x in load_catalogue() if x.meta.id == f.rule)
        )
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == f.rule
    fingerprints = [r["partialFingerprints"]["dynmigrateFinding/v1"] for r in results]
    assert len(set(fingerprints)) == len(fingerprints)
    for rule in run["tool"]["driver"]["rules"]:
        assert rule["fullDescription"]["text"]
        assert rule["help"]["markdown"].startswith(f"# {rule['id']} {rule['name']}\n")
        assert rule["helpUri"].startswith("https://")
    assert run["invocations"] == [{"executionSuccessful": True, "toolExecutionNotifications": []}]


def test_absolute_root_is_a_file_uri_and_suppressed_findings_stay_marked(tmp_path: Path, in_repo: Path) -> None:
    root = (REPO / "samples/debian-web/root").resolve()
    args = ["scan", str(root), "--ownership", "samples/debian-web/ownership.tsv", "--format", "sarif"]
    result = CliRunner().invoke(main, [*args, "--ignore", "DM110"])
    assert result.exit_code == 0
    log = json.loads(result.stdout)
    validate(log)
    run = log["runs"][0]
    assert run["originalUriBaseIds"]["ROOT"]["uri"] == root.as_uri() + "/"
    marked = [r for r in run["results"] if "suppressions" in r]
    assert marked
    assert {r["ruleId"] for r in marked} == {"DM110"}
    assert all(
        r["suppressions"] == [{"kind": "external", "status": "accepted", "justification": "silenced with --ignore"}]
        for r in marked
    )
    assert not [r for r in run["results"] if r["ruleId"] == "DM110" and "suppressions" not in r]


def test_fingerprints_do_not_move_with_lines(in_repo: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "root"
    shutil.copytree("samples/debian-web/root", root, symlinks=True)

    def prints() -> dict[tuple[str, str], tuple[str, int]]:
        report = run_scan(str(root), ownership="samples/debian-web/ownership.tsv").report
        log = json.loads(render_sarif(report, rule_docs(load_catalogue())))
        return {
            (r["ruleId"], r["partialFingerprints"]["dynmigrateFinding/v1"]): (
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                r["locations"][0]["physicalLocation"]["region"]["startLine"],
            )
            for r in log["runs"][0]["results"]
        }

    before = prints()
    cron = root / "etc/cron.d/pg-backup"
    cron.write_text("# one\n# two\n" + cron.read_text(encoding="utf-8"), encoding="utf-8")
    after = prints()
    assert set(after) == set(before)
    moved = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert moved == dict.fromkeys(moved, (("etc/cron.d/pg-backup", 6), ("etc/cron.d/pg-backup", 8)))
    assert len(moved) == 1


def test_root_typed_with_doubled_slashes_is_one_uri(in_repo: Path) -> None:
    args = ["scan", "samples//debian-web/root/", "--ownership", "samples/debian-web/ownership.tsv", "--format", "sarif"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runs"][0]["originalUriBaseIds"]["ROOT"]["uri"] == "samples/debian-web/root/"
    absolute = str((REPO / "samples/debian-web/root").resolve())
    result = CliRunner().invoke(main, ["scan", "/" + absolute + "//", "--format", "sarif"])
    uri = json.loads(result.stdout)["runs"][0]["originalUriBaseIds"]["ROOT"]["uri"]
    assert uri == Path(absolute).as_uri() + "/"
