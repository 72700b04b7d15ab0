"""`systemd-analyze security --offline=yes` on each planned unit, before and after its drop-in.

The overall exposure (0.0 tight .. 10.0 exposed) and, per check, what changed: systemd's own
description of the check before and after, and its exposure (facts F7.1-F7.3). The comparison is a
pure function of the tool's JSON (`--json=short`, systemd >= 250) and of its overall line; only
`measure` runs the tool, in a throwaway root holding the unit, its drop-ins and the plan's drop-in.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dynmigrate.model.plan import MigrationPlan
from dynmigrate.model.security import CheckChange, Exposure, Security
from dynmigrate.model.snapshot import Snapshot

OVERALL = re.compile(r"Overall exposure level for \S+: ([0-9.]+ \S+)")


def _exposure(check: Mapping[str, Any]) -> float:
    value = check.get("exposure")
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0


def compare(
    unit: str,
    before: Sequence[Mapping[str, Any]],
    after: Sequence[Mapping[str, Any]],
    overall_before: str,
    overall_after: str,
) -> Exposure:
    """The checks whose exposure went down (improved) or up (worse), most exposure first."""
    old = {str(c.get("name")): c for c in before}
    improved: list[CheckChange] = []
    worse: list[CheckChange] = []
    for c in after:
        name = str(c.get("name"))
        prev = old.get(name)
        if prev is None:
            continue
        a, b = _exposure(prev), _exposure(c)
        if a == b:
            continue
        change = CheckChange(name, str(prev.get("description", "")), str(c.get("description", "")), a, b)
        (improved if b < a else worse).append(change)
    key = lambda ch: (-abs(ch.exposure_before - ch.exposure_after), ch.name)  # noqa: E731
    return Exposure(
        unit, overall_before, overall_after, tuple(sorted(improved, key=key)), tuple(sorted(worse, key=key))
    )


def overall(text: str) -> str | None:
    m = OVERALL.search(text)
    return None if m is None else re.sub(r"\x1b\[[0-9;]*m", "", m.group(1))


def _analyze(tool: str, root: str, unit: str, *extra: str) -> str | None:
    try:
        proc = subprocess.run(
            [tool, "security", "--offline=yes", f"--root={root}", "--no-pager", *extra, "--", unit],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout + proc.stderr if not extra else proc.stdout


def measure(snapshot: Snapshot, plan: MigrationPlan) -> Security:
    """Run systemd-analyze security on every planned unit, without and with the plan's drop-in."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return Security({}, "systemd-analyze is not installed where the plan was made: exposure not measured")
    scores: dict[str, Exposure] = {}
    missed: list[str] = []
    for a in plan.accounts:
        for u in a.units:
            unit = snapshot.unit(u.unit)
            if "@." in u.unit or unit is None or unit.fragment is None:
                missed.append(u.unit)
                continue
            sides: list[tuple[str, list[dict[str, Any]]]] = []
            for with_dropin in (False, True):
                with tempfile.TemporaryDirectory(prefix="dynmigrate-sec-") as tmp:
                    sysdir = Path(tmp, "etc/systemd/system")
                    ddir = sysdir / f"{u.unit}.d"
                    ddir.mkdir(parents=True)
                    text = snapshot.unit_text(unit.fragment) or ""
                    (sysdir / u.unit).write_text(text, encoding="utf-8", errors="surrogateescape")
                    for p in unit.dropins:
                        dropin = snapshot.unit_text(p) or ""
                        (ddir / p.rsplit("/", 1)[-1]).write_text(dropin, encoding="utf-8", errors="surrogateescape")
                    if with_dropin:
                        (ddir / u.dropin_name).write_text(u.dropin_text, encoding="utf-8", errors="surrogateescape")
                    table = _analyze(tool, tmp, u.unit)
                    checks = _analyze(tool, tmp, u.unit, "--json=short")
                score = overall(table or "")
                try:
                    data = json.loads(checks or "")
                except ValueError:
                    data = None
                if score is None or not isinstance(data, list):
                    break
                sides.append((score, [c for c in data if isinstance(c, dict)]))
            if len(sides) == 2:
                scores[u.unit] = compare(u.unit, sides[0][1], sides[1][1], sides[0][0], sides[1][0])
            else:
                missed.append(u.unit)
    note = ""
    if missed:
        note = (
            "systemd-analyze security could not score "
            + ", ".join(sorted(missed))
            + " (a template, or a systemd older than 250 without --json): exposure not measured"
        )
    return Security(scores, note)


NOT_MEASURED = Security({}, "plan made with --no-security: exposure not measured")
