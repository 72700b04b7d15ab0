"""A rehearsal's result cited in a plan's REPORT.md (`dynmigrate plan --rehearsal FILE`). Pure."""

from __future__ import annotations

import json
from collections.abc import Sequence

from dynmigrate.model.common import escape
from dynmigrate.rehearse.model import REHEARSAL_SCHEMA_VERSION, AccountResult, Rehearsal, from_json_data

MAX_BYTES = 16 * 2**20


class RehearsalFileError(Exception):
    """The file is not a rehearsal this version reads; the message names the file and the problem."""


def load_rehearsal(path: str) -> Rehearsal:
    """A rehearsal as `dynmigrate rehearse --format json` wrote it."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise RehearsalFileError(f"{path}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise RehearsalFileError(f"{path}: larger than {MAX_BYTES // 2**20} MiB, not a rehearsal")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RehearsalFileError(f"{path}: not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise RehearsalFileError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("schema_version") != REHEARSAL_SCHEMA_VERSION:
        raise RehearsalFileError(
            f"{path}: not a rehearsal of schema version {REHEARSAL_SCHEMA_VERSION} "
            "(write one with dynmigrate rehearse --format json)"
        )
    try:
        return from_json_data(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise RehearsalFileError(f"{path}: a rehearsal with a missing or wrong field ({exc})") from None


def _first_error(a: AccountResult) -> str:
    f = a.facts
    for step in (*f.setup, *f.stages, *f.rollbacks):
        if not step.ok:
            return f"{step.name}: {step.error or f'exit {step.exit_code}'}"
    return f.journal_error or "none"


def _md(text: str) -> str:
    return escape(text).replace("|", "\\|")


def rehearsal_lines(r: Rehearsal, accounts: Sequence[str], source: str) -> list[str]:
    """The REPORT.md section: what the rehearsal saw for each account of this plan."""
    e = r.environment
    systemd = f"systemd {e.systemd_version}" if e.systemd_version else "systemd (version unknown)"
    out = [
        "## Rehearsal",
        "",
        f"From `{_md(source)}`: a rehearsal of `{_md(e.root)}` ({_md(e.mode)}; {_md(e.os_release)}, {systemd}), "
        f"finished {_md(r.date or 'at an unrecorded date')}.",
    ]
    if r.error:
        out.append(f"The rehearsal could not finish: {_md(r.error)}")
    out += [
        "",
        "| Account | Outcome | Dynamic UID | Probe | First error | Rollback |",
        "|---|---|---|---|---|---|",
    ]
    seen = {a.facts.account: a for a in r.accounts}
    for name in accounts:
        a = seen.get(name)
        if a is None:
            out.append(f"| {_md(name)} | not rehearsed | - | - | - | - |")
            continue
        uid = "-" if a.dynamic_uid is None else str(a.dynamic_uid)
        out.append(
            f"| {_md(name)} | {a.outcome.value}: {_md(a.why)} | {uid} | {_md(a.probe_answer)} | "
            f"{_md(_first_error(a))} | {_md(a.rollback)} |"
        )
    out.append("")
    out.append(
        "A rehearsal shows what happened on a copy at that date; a change to the host since then "
        "(packages, configuration, data) can change the outcome."
    )
    out.append("")
    return out
