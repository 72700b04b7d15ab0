"""--format sarif: SARIF 2.1.0 for code-scanning dashboards; one result per finding."""

from __future__ import annotations

import json
from typing import Any

from dynmigrate import __version__
from dynmigrate.engine.catalogue import load_catalogue
from dynmigrate.model.common import Effect, Severity, escape, mask_secrets
from dynmigrate.model.findings import Finding
from dynmigrate.model.report import Report

LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _result(f: Finding) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": f.rule,
        "level": LEVEL[f.severity] if f.effect is not Effect.INFORMS else "note",
        "message": {"text": f"{f.subject + ': ' if f.subject else ''}{f.message}"},
        "properties": {"account": f.subject, "effect": f.effect.value},
    }
    if f.location is not None:
        region = {"startLine": f.location.line} if f.location.line else None
        phys: dict[str, Any] = {"artifactLocation": {"uri": f.location.file.lstrip("/"), "uriBaseId": "ROOT"}}
        if region:
            phys["region"] = region
        result["locations"] = [{"physicalLocation": phys}]
    return result


def render_sarif(report: Report) -> str:
    rules = [
        {
            "id": r.meta.id,
            "name": r.meta.name,
            "shortDescription": {"text": r.meta.summary},
            "properties": {"effect": r.meta.effect.value, "tags": list(r.meta.tags)},
        }
        for r in load_catalogue()
    ]
    findings = [f for a in report.accounts for f in a.findings] + list(report.host_findings)
    data = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "dynmigrate", "version": __version__, "rules": rules}},
                "originalUriBaseIds": {"ROOT": {"description": {"text": "the scanned root"}}},
                "results": [_result(f) for f in findings],
            }
        ],
    }
    return json.dumps(escape(mask_secrets(data)), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
