"""Helpers every renderer shares: plain-data views of the report (untrusted text goes through
model.common.escape, secret values through model.common.mask_secrets)."""

from __future__ import annotations

from typing import Any

from dynmigrate import __version__
from dynmigrate.engine.catalogue import fix_of
from dynmigrate.model.common import Location, Verdict, inert
from dynmigrate.model.files import OwnedTree, PathInfo
from dynmigrate.model.findings import Finding
from dynmigrate.model.references import Reference
from dynmigrate.model.report import AccountVerdict, Link, Report

VERDICT_ORDER = (
    Verdict.CONVERTIBLE,
    Verdict.NEEDS_MANUAL,
    Verdict.BLOCKED,
    Verdict.NOT_SERVICE,
    Verdict.ORPHAN,
    Verdict.NEVER,
)


def loc(location: Location | None) -> str | None:
    return None if location is None else str(location)


def finding_data(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "severity": f.severity.value,
        "effect": f.effect.value,
        "message": f.message,
        "fix": fix_of(f.rule),
        "location": loc(f.location),
        "related": list(f.related),
    }


def link_data(lk: Link) -> dict[str, Any]:
    return {"unit": lk.unit, "how": lk.how, "confidence": lk.confidence, "source": lk.source, "detail": lk.detail}


def info_data(p: PathInfo) -> dict[str, Any]:
    return {
        "path": p.path,
        "kind": p.kind.value,
        "uid": p.uid,
        "gid": p.gid,
        "mode": p.mode_str(),
        "flags": list(p.flags),
    }


def tree_data(t: OwnedTree) -> dict[str, Any]:
    return {
        **info_data(t.top),
        "files": t.files,
        "dirs": t.dirs,
        "others": t.others,
        "bytes": t.bytes,
        "examples": list(t.examples),
        "special": [info_data(s) for s in t.special],
        "special_truncated": t.truncated_special,
    }


def ref_data(r: Reference) -> dict[str, Any]:
    return {
        "kind": r.kind.value,
        "action": r.action.value,
        "target": r.target.value,
        "name": r.name,
        "location": str(r.location),
        "detail": r.detail,
        "unit": r.unit,
    }


def account_data(a: AccountVerdict) -> dict[str, Any]:
    return {
        "name": a.name,
        "uid": a.uid,
        "gid": a.gid,
        "group": a.group,
        "shell": a.shell,
        "home": a.home,
        "verdict": a.verdict.value,
        "reason": a.reason,
        "units": list(a.units),
        "links": [link_data(lk) for lk in a.links],
        "owned": [tree_data(t) for t in a.trees],
        "references": [ref_data(r) for r in a.references],
        "findings": [finding_data(f) for f in a.findings],
    }


def summary(report: Report) -> dict[str, int]:
    counts = {v.value: 0 for v in VERDICT_ORDER}
    for a in report.accounts:
        counts[a.verdict.value] += 1
    return counts


def suppressed_line(report: Report) -> str:
    """How many findings a report leaves out, and by what: "5 (baseline 3, ignore 2)"."""
    by: dict[str, int] = {}
    for s in report.suppressed:
        by[s.why] = by.get(s.why, 0) + 1
    return f"{len(report.suppressed)} ({', '.join(f'{k} {n}' for k, n in sorted(by.items()))})"


def report_data(report: Report) -> dict[str, Any]:
    host = report.host
    data = {
        "schema_version": report.schema_version,
        "tool": {"name": "dynmigrate", "version": __version__},
        "root": report.root,
        "host": {
            "os": {"id": host.os_id, "version": host.os_version, "pretty_name": host.pretty_name},
            "systemd_version": host.systemd_version,
            "systemd_version_source": host.systemd_version_source,
            "system_range": {
                "uid_max": report.system_range.uid_max,
                "gid_max": report.system_range.gid_max,
                "sources": list(report.system_range.sources),
            },
            "nss": {
                "passwd": list(report.nss.passwd_sources),
                "group": list(report.nss.group_sources),
                "libnss_systemd": report.nss.library,
                "resolves_dynamic_users": report.nss.resolves_dynamic_users,
            },
        },
        "summary": summary(report),
        "accounts": [account_data(a) for a in report.accounts],
        "host_findings": [finding_data(f) for f in report.host_findings],
        "stats": {"walked_entries": report.walked_entries, "units": report.unit_count},
        "suppressed": [
            {**finding_data(s.finding), "subject": s.finding.subject, "why": s.why} for s in report.suppressed
        ],
        "evidence": dict(report.evidence),
    }
    return dict(inert(data))
