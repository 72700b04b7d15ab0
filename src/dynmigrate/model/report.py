"""The scan's result: one verdict per static system account, with all its evidence."""

from __future__ import annotations

from dataclasses import dataclass

from dynmigrate.model.accounts import NssConfig, SystemRange
from dynmigrate.model.common import Verdict
from dynmigrate.model.files import OwnedTree
from dynmigrate.model.findings import Finding
from dynmigrate.model.references import Reference
from dynmigrate.model.snapshot import HostInfo

SCHEMA_VERSION = 1
CONFIDENCE_ORDER = {"certain": 0, "likely": 1, "possible": 2}


@dataclass(frozen=True, slots=True, order=True)
class Link:
    """A unit runs as an account, and how we know it."""

    unit: str
    how: str
    confidence: str
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

    def account(self, name: str) -> AccountVerdict | None:
        for a in self.accounts:
            if a.name == name:
                return a
        return None
