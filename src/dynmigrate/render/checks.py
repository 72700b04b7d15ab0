"""`dynmigrate verify` output: a line per check and the count (text), or a JSON list."""

from __future__ import annotations

import json
from collections.abc import Sequence

from dynmigrate.model.checks import Check
from dynmigrate.model.common import escape


def checks_json(checks: Sequence[Check]) -> str:
    return json.dumps(
        [{"account": c.account, "check": c.check, "ok": c.ok, "detail": c.detail} for c in checks], indent=2
    )


def checks_text(checks: Sequence[Check], quiet: bool) -> str:
    """One line per check (failures only when quiet), then the count."""
    lines = [
        f"{'ok  ' if c.ok else 'FAIL'} {escape(c.account)}: {escape(c.check)}: {escape(c.detail)}"
        for c in checks
        if not (c.ok and quiet)
    ]
    bad = [c for c in checks if not c.ok]
    lines.append(f"{len(checks) - len(bad)}/{len(checks)} checks passed" + (": drift found" if bad else ""))
    return "\n".join(lines)
