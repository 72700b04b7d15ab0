"""A rehearsal as text: table (terminal), json (machines, the truth corpus), markdown (reviews)."""

from __future__ import annotations

import json
from collections.abc import Callable

from dynmigrate import __version__
from dynmigrate.model.common import escape, inert
from dynmigrate.rehearse.model import AccountResult, Rehearsal, to_json_data


def _uid(a: AccountResult) -> str:
    return "-" if a.dynamic_uid is None else str(a.dynamic_uid)


def _journal(a: AccountResult) -> str:
    return a.facts.journal_error or "-"


def access_lines(a: AccountResult) -> list[str]:
    """What other users (nobody) could newly read or enter; nothing when no stage ran."""
    f = a.facts
    if not f.stages:
        return []
    if f.access_error or not f.access_checked:
        return [f"other users' access: not compared ({f.access_error or 'no path was tried'})"]
    if not f.access_widened:
        return [f"other users' access: nothing widened ({f.access_checked} paths tried as nobody)"]
    return ["other users' access WIDENED:", *(f"  {x}" for x in f.access_widened)]


def _rows(r: Rehearsal) -> list[tuple[str, ...]]:
    return [
        (
            escape(a.facts.account),
            a.outcome.value,
            a.facts.verdict,
            _uid(a),
            escape(a.probe_answer),
            escape(a.rollback),
            f"{a.facts.seconds:.0f} s" if a.facts.stages else "-",
        )
        for a in r.accounts
    ]


HEADERS = ("account", "outcome", "verdict", "dynamic UID", "probe", "rollback", "time")


def _trust(mode: str) -> str:
    return "the running host" if mode == "host" else "a trusted image, --trusted-image"


def _environment_lines(r: Rehearsal) -> list[str]:
    e = r.environment
    systemd = f"systemd {e.systemd_version}" if e.systemd_version else "systemd (version unknown)"
    lines = [
        f"root {escape(e.root)} ({e.mode}; {escape(e.os_release) or 'unknown OS'}, {systemd}, "
        f"kernel {escape(e.kernel)})",
        f"overlay {e.overlay_options}; layers: {', '.join(escape(x) for x in e.layers)}",
        "user namespace: --private-users=pick" if e.private_users else f"user namespace: none ({_trust(e.mode)})",
        f"id-mapped private directories: {escape(e.idmap)}",
    ]
    lines += [escape(n) for n in e.notes]
    return lines


def render_table(r: Rehearsal) -> str:
    rows = _rows(r)
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(HEADERS)]
    out = [f"dynmigrate {__version__} rehearsal ({r.seconds:.0f} s)"]
    out += [f"  {line}" for line in _environment_lines(r)]
    out.append("")
    if r.error:
        out.append(f"the rehearsal could not finish: {escape(r.error)}")
        out.append("")
    out.append("  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)).rstrip())
    for row in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    out.append("")
    for a in r.accounts:
        out.append(f"{escape(a.facts.account)}: {a.outcome.value}: {escape(a.why)}")
        for s in (*a.facts.setup, *a.facts.stages, *a.facts.rollbacks):
            state = "ok" if s.ok else f"FAILED (exit {s.exit_code}): {escape(s.error)}"
            out.append(f"  {s.name:<18} {s.seconds:6.1f} s  {state}")
        out.append(f"  first journal error: {escape(_journal(a))}")
        out += [f"  {escape(x)}" for x in access_lines(a)]
    if r.limits:
        out.append("")
        out.append("limits of this rehearsal:")
        out += [f"  - {escape(x)}" for x in r.limits]
    if r.kept:
        out.append("")
        out += [escape(x) for x in r.kept]
    return "\n".join(out) + "\n"


def render_json(r: Rehearsal) -> str:
    data = inert(to_json_data(r))
    data["tool"] = {"name": "dynmigrate", "version": __version__}
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _pipes(text: str) -> str:
    return text.replace("|", "\\|")


def _md(text: str) -> str:
    return _pipes(escape(text))


def render_markdown(r: Rehearsal) -> str:
    out = [f"# Rehearsal of the migration ({r.seconds:.0f} s)", ""]
    # the lines are escaped already: only the table's pipes are protected here (never a second escape)
    out += [f"- {_pipes(line)}" for line in _environment_lines(r)]
    out.append("")
    if r.error:
        out += [f"**The rehearsal could not finish:** {_md(r.error)}", ""]
    out.append("| " + " | ".join(HEADERS) + " |")
    out.append("|" + "---|" * len(HEADERS))
    for row in _rows(r):
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    out.append("")
    for a in r.accounts:
        out += [f"## {_md(a.facts.account)}: {a.outcome.value}", "", _md(a.why), ""]
        steps = (*a.facts.setup, *a.facts.stages, *a.facts.rollbacks)
        if steps:
            out += ["| step | seconds | result |", "|---|---|---|"]
            for s in steps:
                state = "ok" if s.ok else f"failed (exit {s.exit_code}): {_md(s.error)}"
                out.append(f"| {s.name} | {s.seconds:.1f} | {state} |")
            out.append("")
        out += [f"First journal error: `{_md(_journal(a))}`", ""]
        lines = access_lines(a)
        if lines:
            out += [_md(lines[0])] + [f"- {_md(x.strip())}" for x in lines[1:]] + [""]
    if r.limits:
        out += ["## Limits", ""] + [f"- {_md(x)}" for x in r.limits] + [""]
    if r.kept:
        out += ["## Kept", ""] + [f"    {escape(x)}" for x in r.kept] + [""]
    return "\n".join(out)


REHEARSAL_FORMATS: dict[str, Callable[[Rehearsal], str]] = {
    "table": render_table,
    "json": render_json,
    "markdown": render_markdown,
}
