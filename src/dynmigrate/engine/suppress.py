"""Suppressions the way linters do them: --ignore, --select, [ignore] in the site policy, a baseline.

A suppression changes reports only. `suppress` moves findings from the accounts and the host
into `Report.suppressed` (so every format can count them), and never touches a verdict, a
reason or anything `plan` reads: a suppressed blocking finding still blocks the plan.

A baseline records today's findings. A finding matches a baseline entry by rule, account, file
and message; the line decides only between entries that are otherwise equal, so an edit that
moves a line up or down does not turn a known finding into a new one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from dynmigrate.model.findings import Finding
from dynmigrate.model.report import Report, Suppressed

BASELINE_VERSION = 1


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the file and, where it can, the entry."""


@dataclass(frozen=True, slots=True, order=True)
class BaselineEntry:
    rule: str
    account: str
    file: str
    line: int
    message: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.rule, self.account, self.file, self.message)


def entry_of(f: Finding) -> BaselineEntry:
    loc = f.location
    return BaselineEntry(f.rule, f.subject, str(loc.file) if loc else "", loc.line if loc else 0, f.message)


def fingerprint(f: Finding) -> str:
    """Stable across runs and line moves: rule, account, file and message (SARIF partialFingerprints)."""
    e = entry_of(f)
    return hashlib.sha256("\0".join(e.key).encode("utf-8", "surrogateescape")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Suppressions:
    ignore: frozenset[str] = frozenset()
    select: frozenset[str] = frozenset()  # empty: every rule
    policy: tuple[tuple[str, tuple[str, ...]], ...] = ()  # [ignore]: account or unit -> rule ids
    baseline: tuple[BaselineEntry, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ignore or self.select or self.policy or self.baseline)


def _policy_match(f: Finding, account_units: Sequence[str], policy: Sequence[tuple[str, tuple[str, ...]]]) -> bool:
    for name, rules in policy:
        if f.rule not in rules:
            continue
        if name == f.subject:
            return True
        # a unit: the finding is about it, or about an account that only this unit runs as
        if name in f.related or (not f.related and list(account_units) == [name]):
            return True
    return False


def suppress(report: Report, s: Suppressions) -> Report:
    if not s:
        return report
    remaining = Counter(e.key for e in s.baseline)
    exact = Counter((*e.key, e.line) for e in s.baseline)
    every = [f for a in report.accounts for f in a.findings] + list(report.host_findings)
    # exact matches first, so that a moved line only takes an entry nobody matches exactly
    baselined: set[int] = set()
    for i, f in enumerate(every):
        e = entry_of(f)
        if exact[(*e.key, e.line)] > 0:
            exact[(*e.key, e.line)] -= 1
            remaining[e.key] -= 1
            baselined.add(i)
    for i, f in enumerate(every):
        if i not in baselined and remaining[entry_of(f).key] > 0:
            remaining[entry_of(f).key] -= 1
            baselined.add(i)
    units = {a.name: a.units for a in report.accounts}
    why: dict[int, str] = {}
    for i, f in enumerate(every):
        if s.select and f.rule not in s.select:
            why[i] = "select"
        elif f.rule in s.ignore:
            why[i] = "ignore"
        elif _policy_match(f, units.get(f.subject, ()), s.policy):
            why[i] = "policy"
        elif i in baselined:
            why[i] = "baseline"
    suppressed = [Suppressed(every[i], w) for i, w in sorted(why.items())]
    gone = {s.finding for s in suppressed}  # findings are unique (the runner dedups them)
    accounts = tuple(replace(a, findings=tuple(f for f in a.findings if f not in gone)) for a in report.accounts)
    host = tuple(f for f in report.host_findings if f not in gone)
    return replace(report, accounts=accounts, host_findings=host, suppressed=(*report.suppressed, *suppressed))


def suppressed_counts(report: Report) -> dict[str, int]:
    return dict(sorted(Counter(s.why for s in report.suppressed).items()))


# -- baseline files -------------------------------------------------------------------------


def baseline_text(findings: Iterable[Finding]) -> str:
    entries = sorted(entry_of(f) for f in findings)
    data = {
        "baseline_version": BASELINE_VERSION,
        "tool": "dynmigrate",
        "findings": [
            {"rule": e.rule, "account": e.account, "file": e.file, "line": e.line, "message": e.message}
            for e in entries
        ],
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def parse_baseline(text: str, source: str) -> tuple[BaselineEntry, ...]:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{source}:{exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(data, dict) or data.get("baseline_version") != BASELINE_VERSION:
        raise BaselineError(f"{source}: not a dynmigrate baseline (baseline_version {BASELINE_VERSION} expected)")
    items = data.get("findings")
    if not isinstance(items, list):
        raise BaselineError(f"{source}: 'findings' must be a list")
    out: list[BaselineEntry] = []
    for n, item in enumerate(items):
        try:
            out.append(
                BaselineEntry(
                    str(item["rule"]), str(item["account"]), str(item["file"]), int(item["line"]), str(item["message"])
                )
            )
        except (KeyError, TypeError, ValueError):
            raise BaselineError(f"{source}: findings[{n}] needs rule, account, file, line and message") from None
    return tuple(out)
