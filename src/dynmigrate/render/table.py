"""--format table (the default on a terminal): a rich table and a short summary."""

from __future__ import annotations

import re

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dynmigrate.engine.catalogue import fix_of
from dynmigrate.model.common import Verdict, escape
from dynmigrate.model.report import AccountVerdict, Report
from dynmigrate.render.common import VERDICT_ORDER, summary, suppressed_line

STYLE = {
    Verdict.CONVERTIBLE: "green",
    Verdict.NEEDS_MANUAL: "yellow",
    Verdict.BLOCKED: "red",
    Verdict.NOT_SERVICE: "dim",
    Verdict.ORPHAN: "magenta",
    Verdict.NEVER: "dim",
}


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_table(report: Report, console: Console, *, show_all: bool = False) -> None:
    table = Table(title=f"dynmigrate scan of {escape(report.root)}", title_justify="left")
    table.add_column("Account", no_wrap=True)
    table.add_column("UID", justify="right")
    table.add_column("Units", max_width=40)
    table.add_column("Verdict", no_wrap=True)
    table.add_column("Main reason", ratio=1)
    rows: list[AccountVerdict] = list(report.accounts)
    hidden = 0
    if not show_all:
        keep = [a for a in rows if a.verdict not in (Verdict.NOT_SERVICE, Verdict.NEVER)]
        hidden = len(rows) - len(keep)
        rows = keep
    for a in rows:
        table.add_row(
            escape(a.name),
            str(a.uid),
            escape(", ".join(a.units) or "-"),
            Text(a.verdict.value, style=STYLE[a.verdict]),
            _short(escape(a.reason)),
        )
    console.print(table)
    # every rule the table names gets its one-line fix: a reason's rules and the host findings' rules
    named = {f.rule for a in rows for f in a.findings if re.search(rf"\b{f.rule}\b", a.reason)}
    shown_rules = sorted(named | {f.rule for f in report.host_findings})
    for rule in shown_rules:
        console.print(f"  {rule} fix: {fix_of(rule)}")
    counts = summary(report)
    parts = [f"{counts[v.value]} {v.value}" for v in VERDICT_ORDER if counts[v.value]]
    console.print(f"Accounts: {', '.join(parts) or 'none'}")
    if hidden:
        console.print(
            f"({hidden} accounts that are not service accounts or never migrated are not shown; --all shows them)"
        )
    nss = "yes" if report.nss.resolves_dynamic_users else "no (see DM501)"
    version = report.host.systemd_version or "unknown"
    console.print(
        f"systemd {version}; nss-systemd: {nss}; system UIDs 1-{report.system_range.uid_max}; "
        f"{report.walked_entries} entries walked, {report.unit_count} units"
    )
    if report.host_findings:
        by_rule: dict[str, int] = {}
        for f in report.host_findings:
            by_rule[f.rule] = by_rule.get(f.rule, 0) + 1
        console.print("Host findings: " + ", ".join(f"{r} x{n}" for r, n in sorted(by_rule.items())))
    if report.suppressed:
        console.print(f"Suppressed findings: {suppressed_line(report)}")
    console.print("Details: dynmigrate explain ROOT ACCOUNT; a rule: dynmigrate rules DMnnn")
