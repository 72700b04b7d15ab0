"""`dynmigrate rules`: the catalogue from the tool, one rule's README, its fix and how to silence it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import GOLDENS, Golden
from dynmigrate.cli.main import main
from dynmigrate.engine.catalogue import load_catalogue

RULES = load_catalogue()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_rules_lists_the_catalogue(golden: Golden) -> None:
    code, out, _ = run("rules")
    assert code == 0
    golden.check(GOLDENS / "cli" / "rules.txt", out)
    assert [line.split()[0] for line in out.splitlines()] == [r.meta.id for r in RULES]


def test_rules_json_carries_every_fix() -> None:
    code, out, _ = run("rules", "--format", "json")
    assert code == 0
    assert {r["id"]: r["fix"] for r in json.loads(out)} == {r.meta.id: r.meta.fix for r in RULES}


def test_rule_document(golden: Golden) -> None:
    code, out, _ = run("rules", "DM110")
    assert code == 0
    golden.check(GOLDENS / "cli" / "rules-DM110.md", out)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.meta.id)
def test_every_rule_prints_its_readme_fix_and_silencing(rule: object) -> None:
    from dynmigrate.engine.catalogue import Rule

    assert isinstance(rule, Rule)
    code, out, _ = run("rules", rule.meta.id.lower())  # ids are case-insensitive
    assert code == 0
    readme = (rule.directory / "README.md").read_text(encoding="utf-8").rstrip("\n")
    assert out.startswith(readme + "\n\n## One-line fix\n\n" + rule.meta.fix + "\n\n## How to silence\n")
    assert f"--ignore {rule.meta.id}" in out
    # the folder name works too
    assert run("rules", rule.directory.name)[1] == out


def test_unknown_rule_is_a_usage_error() -> None:
    code, out, err = run("rules", "DM999")
    assert (code, out) == (2, "")
    assert err == "dynmigrate: no rule DM999 (dynmigrate rules lists them)\n"


def test_a_rule_without_fix_fails_the_catalogue_check_but_still_loads(tmp_path: Path) -> None:
    from dynmigrate.engine.catalogue import load_catalogue as load
    from dynmigrate.engine.catalogue import validate_catalogue

    source = next(r.directory for r in RULES if r.meta.id == "DM103")
    copy = tmp_path / "rules" / source.name
    shutil.copytree(source, copy)
    text = (copy / "rule.py").read_text(encoding="utf-8")
    (copy / "rule.py").write_text(
        "\n".join(line for line in text.split("\n") if not line.startswith("FIX = ")), encoding="utf-8"
    )
    (rule,) = load(tmp_path / "rules")
    assert rule.meta.fix == "See dynmigrate rules DM103."
    assert validate_catalogue(tmp_path / "rules") == [
        "DM103-login-shell: rule.py needs FIX, one line of at most 100 characters"
    ]


@pytest.mark.parametrize("sample", ["debian-web", "leftovers"])
def test_the_table_gives_the_fix_of_every_rule_it_names(sample: str, in_repo: Path) -> None:
    """The table summarises (each account's main reason, host findings by rule): every rule it names,
    an acknowledgement in a reason or a host finding too, gets its one-line fix below it."""
    code, out, _ = run("scan", f"samples/{sample}/root", "--ownership", f"samples/{sample}/ownership.tsv", "--all")
    assert code == 0
    table, _, notes = out.partition("\n  DM")
    named = set(re.findall(r"\bDM\d{3}\b", table)) | set(re.findall(r"\b(DM\d{3}) x\d+", notes))
    assert named
    for rule in named:
        assert f"  {rule} fix: {next(r.meta.fix for r in RULES if r.meta.id == rule)}\n" in out, rule
