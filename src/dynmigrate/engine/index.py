"""rules/README.md is generated from the catalogue; a test fails when it is stale."""

from __future__ import annotations

import json
from collections.abc import Sequence

from dynmigrate.engine.catalogue import Rule

GROUPS = {
    "0": "Internal",
    "1": "Accounts",
    "2": "Units",
    "3": "Files and ownership",
    "4": "References outside systemd",
    "5": "Environment and versions",
}


def render_index(rules: Sequence[Rule]) -> str:
    out = [
        "# Rule catalogue",
        "",
        "Generated from `rules/*/rule.py` by `pytest --update-goldens` (tests/test_catalogue.py);",
        "do not edit by hand. Each rule's folder holds its README (what it detects, why it matters",
        "under DynamicUser, examples, how the plan handles it) and good/ and bad/ cases.",
        "",
        "What a verdict means: **convertible**: the plan, applied unmodified, works (stage 2 may ask to",
        "acknowledge what the plan does itself); **needs-manual-steps**: a person must change something",
        "the plan cannot, the plan says exactly what, and doing it as written works; **blocked**: it",
        "cannot work under DynamicUser, for the reason the finding proves; **orphan**: positive evidence",
        "that nothing uses the account (only maintainer scripts of packages no longer installed name it),",
        "otherwise an account no unit runs as is **not-a-service-account** and kept.",
        "",
        "Effects: **blocks** makes the verdict *blocked*; **needs-manual-step** makes it",
        "*needs-manual-steps* and is a manual step of the plan (its text and the rule's fix say what to",
        "do); **acknowledge** keeps it *convertible*: the plan handles it itself (statoverride pins,",
        "the upgrade guard, re-owned configuration, credentials, overrides) and stage 2 waits for its",
        "`--confirm` id; **informs** adds evidence only. The column shows a rule's strongest effect:",
        "some findings of a rule are weaker, by their evidence, and each case's `expected.json` records",
        "the effect of every finding and the verdicts they add up to; the rules whose cases show a",
        f"weaker finding: {', '.join(_weaker(rules)) or 'none'}. DM000 (a rule crashed) is raised by the",
        "runner, not by a rule folder.",
        "",
    ]
    for digit, title in GROUPS.items():
        group = [r for r in rules if r.meta.id[2] == digit]
        if not group:
            continue
        out += [f"## {title}", "", "| Rule | Effect | Summary | Facts |", "|---|---|---|---|"]
        for r in group:
            link = f"[{r.meta.id} {r.meta.name}]({r.directory.name}/README.md)"
            facts = ", ".join(r.meta.facts) or "-"
            out.append(f"| {link} | {r.meta.effect.value} | {r.meta.summary} | {facts} |")
        out.append("")
    return "\n".join(out)


def _weaker(rules: Sequence[Rule]) -> list[str]:
    """Rules with a case whose expected.json holds a finding of an effect other than the rule's."""
    out: list[str] = []
    for r in rules:
        for case in sorted(r.directory.glob("*/*/expected.json")):
            findings = json.loads(case.read_text(encoding="utf-8")).get("findings", [])
            if any(f.get("rule") == r.meta.id and f.get("effect") != r.meta.effect.value for f in findings):
                out.append(r.meta.id)
                break
    return out
