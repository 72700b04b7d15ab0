"""What one scan gives the later stages: the snapshot, its graph and queries, the findings, the report."""

from __future__ import annotations

from dataclasses import dataclass

from dynmigrate.graph.build import Graph
from dynmigrate.graph.queries import Queries
from dynmigrate.model.findings import Finding
from dynmigrate.model.report import Report
from dynmigrate.model.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class ScanResult:
    snapshot: Snapshot
    graph: Graph
    queries: Queries
    findings: tuple[Finding, ...]
    report: Report
