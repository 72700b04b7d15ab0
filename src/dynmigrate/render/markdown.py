"""--format markdown: a review document, one section per service account."""

from __future__ import annotations

from dynmigrate.engine.catalogue import fix_of
from dynmigrate.model.common import Verdict, escape
from dynmigrate.model.report import AccountVerdict, Report
from dynmigrate.render.common import VERDICT_ORDER, summary, suppressed_line


def _cell(text: str) -> str:
    return escape(text).replace("|", "\\|")


def account_section(a: AccountVerdict, level: int = 2) -> list[str]:
    h = "#" * level
    out = [f"{h} {escape(a.name)} (UID {a.uid}): {a.verdict.value}", ""]
    out.append(f"- Reason: {_cell(a.reason)}")
    out.append(
        f"- Group: {escape(a.group)} (GID {a.gid}); shell {escape(a.shell) or '-'}; home {escape(a.home) or '-'}"
    )
    if a.units:
        out.append(f"- Units: {', '.join(escape(u) for u in a.units)}")
    out.append("")
    if a.links:
        out += ["| Unit | How | Confidence | Source | Detail |", "|---|---|---|---|---|"]
        out += [
            f"| {_cell(lk.unit)} | {_cell(lk.how)} | {lk.confidence} | {_cell(lk.source)} | {_cell(lk.detail)} |"
            for lk in a.links
        ]
        out.append("")
    if a.findings:
        out += ["| Rule | Effect | Message | Where | Fix |", "|---|---|---|---|---|"]
        out += [
            f"| {f.rule} | {f.effect.value} | {_cell(f.message)} | {_cell(str(f.location) if f.location else '-')} "
            f"| {_cell(fix_of(f.rule))} |"
            for f in a.findings
        ]
        out.append("")
    if a.trees:
        out.append("Owned paths:")
        out.append("")
        for t in a.trees:
            out.append(
                f"- `{escape(t.top.path)}` {t.top.kind.value} {t.top.uid}:{t.top.gid} {t.top.mode_str()}"
                f" ({t.entries} entries, {t.bytes} bytes)"
            )
        out.append("")
    return out


def render_markdown(report: Report) -> str:
    out = [f"# dynmigrate scan of `{escape(report.root)}`", ""]
    host = report.host
    out.append(f"- OS: {escape(host.pretty_name) or 'unknown'}")
    out.append(f"- systemd: {host.systemd_version or 'unknown'} ({escape(host.systemd_version_source)})")
    sources = "; ".join(escape(s) for s in report.system_range.sources)
    out.append(f"- System accounts: UID 1-{report.system_range.uid_max} ({sources})")
    out.append(f"- nss-systemd resolves dynamic users: {'yes' if report.nss.resolves_dynamic_users else 'no'}")
    out.append(f"- Walked {report.walked_entries} entries; {report.unit_count} units")
    if report.suppressed:
        out.append(f"- Suppressed findings (left out below, still counted for verdicts): {suppressed_line(report)}")
    out.append("")
    counts = summary(report)
    out += ["| Verdict | Accounts |", "|---|---|"]
    out += [f"| {v.value} | {counts[v.value]} |" for v in VERDICT_ORDER]
    out.append("")
    out += ["| Account | UID | Units | Verdict | Main reason |", "|---|---|---|---|---|"]
    for a in report.accounts:
        units = _cell(", ".join(a.units) or "-")
        out.append(f"| {_cell(a.name)} | {a.uid} | {units} | {a.verdict.value} | {_cell(a.reason)} |")
    out.append("")
    services = [a for a in report.accounts if a.verdict in (Verdict.CONVERTIBLE, Verdict.NEEDS_MANUAL, Verdict.BLOCKED)]
    for a in services:
        out += account_section(a)
    if report.host_findings:
        out += ["## Host findings", "", "| Rule | Message | Where | Fix |", "|---|---|---|---|"]
        out += [
            f"| {f.rule} | {_cell(f.message)} | {_cell(str(f.location) if f.location else '-')} "
            f"| {_cell(fix_of(f.rule))} |"
            for f in report.host_findings
        ]
        out.append("")
    return "\n".join(out)
