"""--format sarif: SARIF 2.1.0 that code-scanning services accept; one result per finding.

What GitHub's code scanning needs, besides the OASIS schema (tests/schemas/): a physical
location on every result (the evidence's own file, root-relative, against originalUriBaseIds.ROOT,
and a region with startLine), partialFingerprints that survive line moves, and rules with
fullDescription, help (markdown) and helpUri. A finding with no file (a rule that crashed, DM000)
is not a result about the host: it becomes a tool execution notification. Suppressed findings
stay in the log with a `suppressions` entry, as SARIF intends, so they are never silently dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from dynmigrate import __version__
from dynmigrate.engine.catalogue import CRASH_FIX, RuleDoc
from dynmigrate.engine.suppress import fingerprint
from dynmigrate.model.common import Effect, Severity, escape, mask_secrets
from dynmigrate.model.findings import Finding
from dynmigrate.model.report import Report

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
# Where rule documentation is published; `dynmigrate rules DMnnn` prints the same text offline.
DOCS_BASE = "https://dynmigrate.invalid/rules/"
FINGERPRINT_KEY = "dynmigrateFinding/v1"
LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
WHY = {
    "ignore": "silenced with --ignore",
    "select": "not among the rules chosen with --select",
    "policy": "silenced by [ignore] in the site policy",
    "baseline": "known finding recorded in the baseline",
}


def _uri(path: str) -> str:
    """A root-relative path as a URI reference (raw bytes kept through surrogateescape)."""
    return quote(path.lstrip("/").encode("utf-8", "surrogateescape"), safe="/@+,=")


def _root_bases(root: str) -> dict[str, Any]:
    root = re.sub("/{2,}", "/", root)  # ROOT as typed (a//root/): one slash between names in a URI
    if root.startswith("/"):
        uri = "file://" + quote(root.rstrip("/").encode("utf-8", "surrogateescape"), safe="/") + "/"
        return {"ROOT": {"uri": uri, "description": {"text": "the scanned root"}}}
    # a relative ROOT (a sample in a checkout) is relative to where the scan ran
    return {
        "ROOT": {
            "uri": _uri(root).rstrip("/") + "/",
            "uriBaseId": "SRCROOT",
            "description": {"text": "the scanned root, relative to the directory the scan ran in"},
        },
        "SRCROOT": {"description": {"text": "the directory the scan ran in"}},
    }


def _section(readme: str, heading: str) -> str:
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    return " ".join(m.group(1).split()) if m else ""


def _rule(rule: RuleDoc) -> dict[str, Any]:
    m = rule.meta
    readme = rule.readme
    return {
        "id": m.id,
        "name": m.name,
        "shortDescription": {"text": m.summary},
        "fullDescription": {"text": _section(readme, "What it detects") or m.summary},
        "help": {"text": f"Fix: {m.fix} (dynmigrate rules {m.id} has the whole documentation.)", "markdown": readme},
        "helpUri": f"{DOCS_BASE}{rule.folder}/README.md",
        "defaultConfiguration": {"level": LEVEL[m.severity] if m.effect is not Effect.INFORMS else "note"},
        "properties": {"effect": m.effect.value, "tags": list(m.tags), "facts": list(m.facts)},
    }


def _message(f: Finding, fixes: Mapping[str, str]) -> str:
    return f"{f.subject + ': ' if f.subject else ''}{f.message}; fix: {fixes.get(f.rule, CRASH_FIX)}"


def _result(f: Finding, index: dict[str, int], why: str | None, fixes: Mapping[str, str]) -> dict[str, Any]:
    assert f.location is not None
    region = {"startLine": f.location.line or 1}  # a finding about a whole file points at its start
    result: dict[str, Any] = {
        "ruleId": f.rule,
        "level": LEVEL[f.severity] if f.effect is not Effect.INFORMS else "note",
        "message": {"text": _message(f, fixes)},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": _uri(f.location.file), "uriBaseId": "ROOT"},
                    "region": region,
                }
            }
        ],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint(f)},
        "properties": {"account": f.subject, "effect": f.effect.value, "wholeFile": not f.location.line},
    }
    if f.rule in index:
        result["ruleIndex"] = index[f.rule]
    if why is not None:
        result["suppressions"] = [{"kind": "external", "status": "accepted", "justification": WHY[why]}]
    return result


def _notification(f: Finding, fixes: Mapping[str, str]) -> dict[str, Any]:
    return {
        "descriptor": {"id": f.rule},
        "level": LEVEL[f.severity],
        "message": {"text": _message(f, fixes)},
    }


def render_sarif(report: Report, catalogue: Sequence[RuleDoc]) -> str:
    """The SARIF log of REPORT; CATALOGUE (rule_docs of the loaded rules) is passed in, never read here."""
    fixes: dict[str, str] = {r.meta.id: r.meta.fix for r in catalogue}
    index: dict[str, int] = {r.meta.id: i for i, r in enumerate(catalogue)}
    findings: list[tuple[Finding, str | None]] = [(f, None) for a in report.accounts for f in a.findings]
    findings += [(f, None) for f in report.host_findings]
    findings += [(s.finding, s.why) for s in report.suppressed]
    located = [(f, why) for f, why in findings if f.location is not None]
    unlocated = [f for f, _ in findings if f.location is None]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "dynmigrate",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": DOCS_BASE,
                "rules": [_rule(r) for r in catalogue],  # our own text: multi-line markdown, not escaped
            }
        },
        "columnKind": "unicodeCodePoints",
        # everything below comes from the scanned root: escaped to one printable line per value
        **escape(
            mask_secrets(
                {
                    "originalUriBaseIds": _root_bases(report.root),
                    "results": [
                        _result(f, index, why, fixes) for f, why in sorted(located, key=lambda p: p[0].sort_key())
                    ],
                    "invocations": [
                        {
                            "executionSuccessful": True,
                            "toolExecutionNotifications": [
                                _notification(f, fixes) for f in sorted(unlocated, key=Finding.sort_key)
                            ],
                        }
                    ],
                }
            )
        ),
    }
    data = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
