"""The scan's result: one verdict per static system account, with all its evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynmigrate.model.accounts import NssConfig, SystemRange
from dynmigrate.model.common import CONFIDENCE_ORDER, Confidence, Verdict
from dynmigrate.model.files import OwnedTree
from dynmigrate.model.findings import Finding
from dynmigrate.model.references import Reference
from dynmigrate.model.snapshot import HostInfo

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True, order=True)
class Link:
    """A unit runs as an account, and how we know it."""

    unit: str
    how: str
    confidence: Confidence
    source: str
    detail: str

    @property
    def rank(self) -> int:
        return CONFIDENCE_ORDER.get(self.confidence, 9)


@dataclass(frozen=True, slots=True)
class AccountVerdict:
    name: str
    uid: int
    gid: int
    group: str
    shell: str
    home: str
    verdict: Verdict
    reason: str
    units: tuple[str, ...]
    links: tuple[Link, ...]
    trees: tuple[OwnedTree, ...]
    references: tuple[Reference, ...]
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A finding a report leaves out, and why (--ignore, --select, [ignore] in the policy, a baseline).

    Suppression changes reports only: verdicts and plans still count the finding.
    """

    finding: Finding
    why: str  # "ignore", "select", "policy", "baseline"


@dataclass(frozen=True, slots=True)
class Report:
    root: str
    host: HostInfo
    system_range: SystemRange
    nss: NssConfig
    accounts: tuple[AccountVerdict, ...]
    host_findings: tuple[Finding, ...]
    walked_entries: int
    unit_count: int
    schema_version: int = SCHEMA_VERSION
    suppressed: tuple[Suppressed, ...] = ()
    # what `explain` and `graph --from-report` need: unit evidence and the graph as plain data
    evidence: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def account(self, name: str) -> AccountVerdict | None:
        for a in self.accounts:
            if a.name == name:
                return a
        return None
