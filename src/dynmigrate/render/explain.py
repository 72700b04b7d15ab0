"""dynmigrate explain: the whole evidence for one account or one unit, as text."""

from __future__ import annotations

from dynmigrate.app import ScanResult
from dynmigrate.model.common import escape, mask_secrets
from dynmigrate.model.report import AccountVerdict
from dynmigrate.model.units import DIRECTORY_KEYS, EXEC_KEYS


def explain_account(result: ScanResult, a: AccountVerdict) -> list[str]:
    out = [
        f"Account {escape(a.name)}: UID {a.uid}, group {escape(a.group)} ({a.gid}), "
        f"shell {escape(a.shell)}, home {escape(a.home)}"
    ]
    out.append(f"Verdict: {a.verdict.value} ({escape(a.reason)})")
    out.append("")
    out.append("Units that run as it:")
    if not a.links:
        out.append(
            "  none (checked User=, exec arguments, wrapper scripts, daemon configs, packages, directory owners)"
        )
    for lk in a.links:
        out.append(f"  {escape(lk.unit)}  via {lk.how} [{lk.confidence}] at {escape(lk.source)}: {escape(lk.detail)}")
    out.append("")
    out.append("Paths it owns:")
    if not a.trees:
        out.append("  none")
    for t in a.trees:
        flags = f" [{', '.join(t.top.flags)}]" if t.top.flags else ""
        out.append(
            f"  {escape(t.top.path)}  {t.top.kind.value} {t.top.uid}:{t.top.gid} {t.top.mode_str()}{flags}, "
            f"{t.files} files, {t.dirs} dirs, {t.others} other, {t.bytes} bytes"
        )
        for ex in t.examples:
            out.append(f"      e.g. {escape(ex)}")
        for sp in t.special:
            out.append(f"      special: {escape(sp.path)} ({', '.join(sp.flags)})")
    out.append("")
    out.append("References outside unit files:")
    refs = [r for r in a.references if not r.unit]
    if not refs:
        out.append("  none")
    for r in refs:
        out.append(
            f"  {r.kind.value} {r.action.value} ({r.target.value} {escape(r.name)}) "
            f"at {escape(str(r.location))}: {escape(r.detail)}"
        )
    out.append("")
    out.append("Findings:")
    if not a.findings:
        out.append("  none")
    for f in a.findings:
        where = f" at {escape(str(f.location))}" if f.location else ""
        out.append(f"  {f.rule} [{f.effect.value}] {escape(f.message)}{where}")
    return [mask_secrets(line) for line in out]


def explain_unit(result: ScanResult, name: str) -> list[str] | None:
    unit = result.snapshot.unit(name)
    if unit is None:
        return None
    q = result.queries
    out = [f"Unit {escape(unit.name)}: {unit.state.value}"]
    if unit.aliases:
        out.append(f"Aliases: {', '.join(unit.aliases)}")
    if unit.template:
        out.append(f"Instance of {unit.template}")
    out.append(f"Fragment: {escape(unit.fragment or '-')} (found at {escape(unit.found_at or '-')})")
    for dropin in unit.dropins:
        out.append(f"Drop-in: {escape(dropin)}")
    if unit.source_path:
        out.append(f"SourcePath: {escape(unit.source_path)}")
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
            out.append(f"  {key}={escape(d.value)}  ({escape(str(d.location))})")
    out.append("")
    accounts = q.accounts_of(unit.name)
    out.append("Runs as:")
    if not accounts:
        out.append("  no static account found")
    for acc in accounts:
        for lk in q.units_of(acc):
            if lk.unit == unit.name:
                out.append(
                    f"  {escape(acc)} via {lk.how} [{lk.confidence}] at {escape(lk.source)}: {escape(lk.detail)}"
                )
    return [mask_secrets(line) for line in out]
