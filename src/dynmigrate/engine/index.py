"""rules/README.md is generated from the catalogue; a test fails when it is stale."""

from __future__ import annotations

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
        "Effects: **blocks** makes the verdict *blocked*; **needs-manual-step** makes it *needs manual",
        "steps*; **informs** adds evidence (the plan handles it) without changing the verdict.",
        "DM000 (a rule crashed) is raised by the runner, not by a rule folder.",
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
