"""The rule catalogue: structure, generated index, and every good/bad case."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, Golden
from dynmigrate.app import ScanResult, analyse
from dynmigrate.collect.rootfs import OwnershipManifest
from dynmigrate.collect.snapshot import collect
from dynmigrate.engine.catalogue import load_catalogue, validate_catalogue
from dynmigrate.engine.index import render_index

RULES = load_catalogue()


def test_catalogue_is_valid() -> None:
    assert validate_catalogue() == []


def test_rule_ids_are_grouped_by_hundreds() -> None:
    groups = {"0": "internal", "1": "accounts", "2": "units", "3": "files", "4": "references", "5": "environment"}
    for rule in RULES:
        assert rule.meta.id[2] in groups, rule.meta.id


def test_generated_index_is_current(golden: Golden) -> None:
    golden.check(REPO / "rules" / "README.md", render_index(RULES))


def _cases() -> list[tuple[str, str, Path]]:
    out: list[tuple[str, str, Path]] = []
    for rule in RULES:
        for kind in ("good", "bad"):
            base = rule.directory / kind
            if base.is_dir():
                out += [(rule.meta.id, kind, case) for case in sorted(base.iterdir()) if case.is_dir()]
    return out


@cache
def case_result(case: Path) -> ScanResult:
    manifest_path = case / "ownership.tsv"
    policy = case / "dynmigrate.ini"
    snap = collect(
        str(case / "root"),
        manifest=OwnershipManifest.load(manifest_path) if manifest_path.exists() else None,
        policy_file=str(policy) if policy.exists() else None,
    )
    return analyse(snap)


def case_findings(rule_id: str, case: Path) -> list[dict[str, Any]]:
    result = case_result(case)
    return [
        {
            "rule": f.rule,
            "subject": f.subject,
            "effect": f.effect.value,
            "file": f.location.file if f.location else None,
            "line": f.location.line if f.location else None,
            "message": f.message,
        }
        for f in result.findings
        if f.rule == rule_id
    ]


def case_verdicts(case: Path) -> dict[str, str]:
    """The verdict of every account with a unit or a finding: what the effects add up to."""
    report = case_result(case).report
    return {a.name: f"{a.verdict.value}: {a.reason}" for a in report.accounts if a.units or a.findings}


@pytest.mark.parametrize(("rule_id", "kind", "case"), _cases(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_rule_case(rule_id: str, kind: str, case: Path, golden: Golden) -> None:
    got = case_findings(rule_id, case)
    text = json.dumps({"findings": got, "verdicts": case_verdicts(case)}, indent=2, sort_keys=True) + "\n"
    golden.check(case / "expected.json", text)
    if kind == "good":
        assert got == [], f"{rule_id} must not fire on good case {case.name}"
    else:
        assert got, f"{rule_id} must fire on bad case {case.name}"
