"""`dynmigrate rules`: the catalogue as a list, and one rule's README with how to silence it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dynmigrate.engine.catalogue import Rule


def rule_data(rule: Rule) -> dict[str, Any]:
    m = rule.meta
    return {
        "id": m.id,
        "name": m.name,
        "severity": m.severity.value,
        "effect": m.effect.value,
        "tags": list(m.tags),
        "summary": m.summary,
        "fix": m.fix,
        "facts": list(m.facts),
    }


def rule_list(rules: Sequence[Rule]) -> list[str]:
    return [f"{r.meta.id}  {r.meta.name:28} {r.meta.effect.value:18} {r.meta.summary}" for r in rules]


def silence_section(rule: Rule) -> list[str]:
    rid = rule.meta.id
    out = [
        "## How to silence",
        "",
        f"- For one run: `dynmigrate scan ROOT --ignore {rid}` (or `--select` only the rules you want).",
        "- For one account or unit, in the site policy (`dynmigrate.ini`):",
        "",
        "      [ignore]",
        f"      ACCOUNT = {rid}",
        f"      UNIT.service = {rid}",
        "",
        "- For the findings you already know: `dynmigrate scan ROOT --write-baseline FILE` once, then",
        "  `dynmigrate scan ROOT --baseline FILE` reports only new ones.",
        "",
        "Silenced findings are counted in the report's summary. Silencing changes reports only: a",
    ]
    if rule.meta.effect.value == "blocks":
        out.append("silenced finding of this rule still blocks `dynmigrate plan`.")
    else:
        out.append("silenced finding still counts for the verdict and for `dynmigrate plan`.")
    return out


def rule_document(rule: Rule) -> str:
    """The rule's README, its one-line fix and how to silence it."""
    readme = (rule.directory / "README.md").read_text(encoding="utf-8").rstrip("\n")
    head = [readme, "", "## One-line fix", "", rule.meta.fix, "", *silence_section(rule)]
    return "\n".join(head) + "\n"


def rules_json(rules: Sequence[Rule]) -> str:
    """`dynmigrate rules --format json`: the catalogue, a record per rule."""
    return json.dumps([rule_data(r) for r in rules], indent=2)


def rule_json(rule: Rule) -> str:
    """`dynmigrate rules RULE --format json`: its record and its whole document."""
    return json.dumps({**rule_data(rule), "readme": rule_document(rule)}, indent=2)
