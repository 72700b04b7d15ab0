"""dynmigrate explain: the whole evidence for one account or one unit, as text.

Rendered from plain data (the account as `--format json` writes it, the unit evidence of
engine/evidence.py), so that a saved report (`--from-report`) explains exactly as a fresh scan.
The data is already escaped (model.common.escape); nothing here escapes again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dynmigrate.engine.evidence import unit_evidence
from dynmigrate.graph.queries import Queries
from dynmigrate.model.common import inert
from dynmigrate.model.report import AccountVerdict
from dynmigrate.render.common import account_data


def account_lines(a: Mapping[str, Any]) -> list[str]:
    out = [
        f"Account {a['name']}: UID {a['uid']}, group {a['group']} ({a['gid']}), shell {a['shell']}, home {a['home']}"
    ]
    out.append(f"Verdict: {a['verdict']} ({a['reason']})")
    out.append("")
    out.append("Units that run as it:")
    if not a["links"]:
        out.append(
            "  none (checked User=, exec arguments, wrapper scripts, daemon configs, packages, directory owners)"
        )
    for lk in a["links"]:
        out.append(f"  {lk['unit']}  via {lk['how']} [{lk['confidence']}] at {lk['source']}: {lk['detail']}")
    out.append("")
    out.append("Paths it owns:")
    if not a["owned"]:
        out.append("  none")
    for t in a["owned"]:
        flags = f" [{', '.join(t['flags'])}]" if t["flags"] else ""
        out.append(
            f"  {t['path']}  {t['kind']} {t['uid']}:{t['gid']} {t['mode']}{flags}, "
            f"{t['files']} files, {t['dirs']} dirs, {t['others']} other, {t['bytes']} bytes"
        )
        for ex in t["examples"]:
            out.append(f"      e.g. {ex}")
        for sp in t["special"]:
            out.append(f"      special: {sp['path']} ({', '.join(sp['flags'])})")
    out.append("")
    out.append("References outside unit files:")
    refs = [r for r in a["references"] if not r["unit"]]
    if not refs:
        out.append("  none")
    for r in refs:
        out.append(f"  {r['kind']} {r['action']} ({r['target']} {r['name']}) at {r['location']}: {r['detail']}")
    out.append("")
    out.append("Findings:")
    if not a["findings"]:
        out.append("  none")
    for f in a["findings"]:
        where = f" at {f['location']}" if f["location"] else ""
        out.append(f"  {f['rule']} [{f['effect']}] {f['message']}{where}")
        out.append(f"      fix: {f['fix']}")
    return out


def unit_lines(u: Mapping[str, Any]) -> list[str]:
    out = [f"Unit {u['name']}: {u['state']}"]
    if u["aliases"]:
        out.append(f"Aliases: {', '.join(u['aliases'])}")
    if u["template"]:
        out.append(f"Instance of {u['template']}")
    out.append(f"Fragment: {u['fragment'] or '-'} (found at {u['found_at'] or '-'})")
    for dropin in u["dropins"]:
        out.append(f"Drop-in: {dropin}")
    if u["source_path"]:
        out.append(f"SourcePath: {u['source_path']}")
    if u["package"]:
        out.append(f"Package: {u['package']}")
    out.append(f"Enabled: {'yes' if u['enabled'] else 'no'}")
    out.append("")
    out.append("Identity and directories (every assignment in order; an empty one resets a list):")
    for d in u["assignments"]:
        out.append(f"  {d['key']}={d['value']}  ({d['location']})")
    out.append("")
    out.append("Runs as:")
    if not u["runs_as"]:
        out.append("  no static account found")
    for r in u["runs_as"]:
        out.append(f"  {r['account']} via {r['how']} [{r['confidence']}] at {r['source']}: {r['detail']}")
    return out


def find_unit(units: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """A unit of the evidence by name or alias; NAME alone finds NAME.service."""
    for wanted in (name, name + ".service") if not name.endswith(".service") else (name,):
        for data in units.values():
            if data["name"] == wanted or wanted in data["aliases"]:
                return dict(data)
    return None


def explain_account(a: AccountVerdict) -> list[str]:
    return account_lines(inert(account_data(a)))


def explain_unit(q: Queries, name: str) -> list[str] | None:
    data = unit_evidence(q.snap, q, name)
    return None if data is None else unit_lines(inert(data))
