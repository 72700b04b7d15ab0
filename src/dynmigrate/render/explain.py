"""dynmigrate explain: the whole evidence for one account or one unit, as text."""

from __future__ import annotations

from dynmigrate.app import ScanResult
from dynmigrate.model.common import mask_secrets
from dynmigrate.model.report import AccountVerdict
from dynmigrate.model.units import DIRECTORY_KEYS, EXEC_KEYS
from dynmigrate.render.common import safe


def explain_account(result: ScanResult, a: AccountVerdict) -> list[str]:
    out = [
        f"Account {safe(a.name)}: UID {a.uid}, group {safe(a.group)} ({a.gid}), "
        f"shell {safe(a.shell)}, home {safe(a.home)}"
    ]
    out.append(f"Verdict: {a.verdict.value} ({safe(a.reason)})")
    out.append("")
    out.append("Units that run as it:")
    if not a.links:
        out.append(
            "  none (checked User=, exec arguments, wrapper scripts, daemon configs, packages, directory owners)"
        )
    for lk in a.links:
        out.append(f"  {safe(lk.unit)}  via {lk.how} [{lk.confidence}] at {safe(lk.source)}: {safe(lk.detail)}")
    out.append("")
    out.append("Paths it owns:")
    if not a.trees:
        out.append("  none")
    for t in a.trees:
        flags = f" [{', '.join(t.top.flags)}]" if t.top.flags else ""
        out.append(
            f"  {safe(t.top.path)}  {t.top.kind.value} {t.top.uid}:{t.top.gid} {t.top.mode_str()}{flags}, "
            f"{t.files} files, {t.dirs} dirs, {t.others} other, {t.bytes} bytes"
        )
        for ex in t.examples:
            out.append(f"      e.g. {safe(ex)}")
        for sp in t.special:
            out.append(f"      special: {safe(sp.path)} ({', '.join(sp.flags)})")
    out.append("")
    out.append("References outside unit files:")
    refs = [r for r in a.references if not r.unit]
    if not refs:
        out.append("  none")
    for r in refs:
        out.append(
            f"  {r.kind.value} {r.action.value} ({r.target.value} {safe(r.name)}) "
            f"at {safe(str(r.location))}: {safe(r.detail)}"
        )
    out.append("")
    out.append("Findings:")
    if not a.findings:
        out.append("  none")
    for f in a.findings:
        where = f" at {safe(str(f.location))}" if f.location else ""
        out.append(f"  {f.rule} [{f.effect.value}] {safe(f.message)}{where}")
    return [mask_secrets(line) for line in out]


def explain_unit(result: ScanResult, name: str) -> list[str] | None:
    unit = result.snapshot.unit(name)
    if unit is None:
        return None
    q = result.queries
    out = [f"Unit {safe(unit.name)}: {unit.state.value}"]
    if unit.aliases:
        out.append(f"Aliases: {', '.join(unit.aliases)}")
    if unit.template:
        out.append(f"Instance of {unit.template}")
    out.append(f"Fragment: {safe(unit.fragment or '-')} (found at {safe(unit.found_at or '-')})")
    for dropin in unit.dropins:
        out.append(f"Drop-in: {safe(dropin)}")
    if unit.source_path:
        out.append(f"SourcePath: {safe(unit.source_path)}")
    pkg = q.package_of(unit.name)
    if pkg:
        out.append(f"Package: {pkg}")
    out.append(f"Enabled: {'yes' if unit.enabled else 'no'}")
    out.append("")
    out.append("Identity and directories (every assignment in order; an empty one resets a list):")
    keys = (
        "User",
        "Group",
        "DynamicUser",
        "SupplementaryGroups",
        *DIRECTORY_KEYS,
        "ReadWritePaths",
        "WorkingDirectory",
        "PIDFile",
        "Type",
        "BusName",
        *EXEC_KEYS,
    )
    for key in keys:
        for d in unit.assignments("Service", key):
            out.append(f"  {key}={safe(d.value)}  ({safe(str(d.location))})")
    out.append("")
    accounts = q.accounts_of(unit.name)
    out.append("Runs as:")
    if not accounts:
        out.append("  no static account found")
    for acc in accounts:
        for lk in q.units_of(acc):
            if lk.unit == unit.name:
                out.append(f"  {safe(acc)} via {lk.how} [{lk.confidence}] at {safe(lk.source)}: {safe(lk.detail)}")
    return [mask_secrets(line) for line in out]
