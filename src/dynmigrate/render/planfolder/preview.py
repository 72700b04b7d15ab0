"""`dynmigrate plan --dry-run`: the drop-ins and the effective-unit diffs a plan would write, as text.

Pure: nothing is written. The text holds values from the scanned root, so every control
character but newline and tab is shown escaped: a hostile unit file cannot drive the terminal.
"""

from __future__ import annotations

from dynmigrate.model.common import escape
from dynmigrate.model.plan import MigrationPlan
from dynmigrate.render.planfolder.script import dropin_file


def printable(text: str) -> str:
    """Escape what a terminal would interpret; keep lines, tabs and backslashes as they are."""
    lines = text.split("\n")
    out = []
    for line in lines:
        parts = line.split("\t")
        out.append("\t".join("".join(ch if ch == "\\" else escape(ch) for ch in p) for p in parts))
    return "\n".join(out)


def _block(title: str, text: str) -> list[str]:
    body = printable(text)
    return [f"=== {title}", body if body.endswith("\n") else body + "\n"]


def render_preview(plan: MigrationPlan) -> str:
    out: list[str] = [f"# dynmigrate plan --dry-run for {escape(plan.root)}: nothing was written\n"]
    for a in plan.accounts:
        out.append(f"## {escape(a.account)} (UID {a.uid}): {a.verdict.value}\n")
        for u in a.units:
            out += _block(f"{dropin_file(u)} -> {u.dropin_path}", u.dropin_text)
            out += _block(f"units/{u.unit}/effective.diff", u.diff or "(no change)\n")
    for alt in plan.alternatives:
        out.append(f"## {escape(alt.account)}: option, {escape(alt.unit)} as {escape(alt.new_name)}\n")
        out += _block(f"alternatives/{alt.unit}/50-dynmigrate.conf", alt.dropin_text)
    for r in plan.refused:
        out.append(f"## not planned: {escape(r.account)}: {escape(r.why)}\n")
    return "\n".join(out)
