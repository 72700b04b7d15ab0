"""Run the catalogue over a snapshot: every rule a pure function; a crash becomes DM000."""

from __future__ import annotations

from collections.abc import Sequence

from dynmigrate.engine.api import RuleContext
from dynmigrate.engine.catalogue import Rule
from dynmigrate.model.common import EFFECT_RANK, Effect, RuleId, Severity
from dynmigrate.model.findings import Finding
from dynmigrate.model.snapshot import Snapshot

HOST = ""  # subject of findings about the host rather than one account


def run_rules(ctx: RuleContext, rules: Sequence[Rule]) -> list[Finding]:
    findings: list[Finding] = []
    for rule in rules:
        meta = rule.meta
        try:
            hits = list(rule.check(ctx))
        except Exception as exc:  # a rule bug must not hide the other rules' findings
            findings.append(
                Finding(
                    HOST,
                    RuleId("DM000"),
                    Severity.ERROR,
                    Effect.INFORMS,
                    f"rule {meta.id} {meta.name} crashed: {type(exc).__name__}: {exc}",
                )
            )
            continue
        for hit in hits:
            # a hit may weaken its rule's effect (evidence that matters less), never strengthen it
            effect = meta.effect
            if hit.effect is not None and EFFECT_RANK[hit.effect] > EFFECT_RANK[meta.effect]:
                effect = hit.effect
            findings.append(
                Finding(hit.subject, meta.id, meta.severity, effect, hit.message, hit.location, hit.related)
            )
    return sorted(set(findings), key=Finding.sort_key)


def findings_for(findings: Sequence[Finding], subject: str) -> list[Finding]:
    return [f for f in findings if f.subject == subject]


__all__ = ["HOST", "Snapshot", "findings_for", "run_rules"]
