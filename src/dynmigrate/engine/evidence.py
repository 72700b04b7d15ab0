"""The evidence a saved report carries so that explain and graph can answer without a new scan.

Plain data (what `--format json` writes under "evidence"): every unit's identity and directory
settings with their file:line, the accounts it runs as, and the graph in node-link form.
"""

from __future__ import annotations

from typing import Any

from dynmigrate.graph.build import Graph
from dynmigrate.graph.export import raw_graph_data
from dynmigrate.graph.queries import Queries
from dynmigrate.model.snapshot import Snapshot
from dynmigrate.model.units import DIRECTORY_KEYS, EXEC_KEYS

EXPLAINED_KEYS = (
    "User",
    "Group",
    "DynamicUser",
    "SupplementaryGroups",
    *DIRECTORY_KEYS,
    "ReadWritePaths",
    "WorkingDirectory",
    "PIDFile",
    "Type",
    "BusName",
    *EXEC_KEYS,
)


def unit_evidence(snap: Snapshot, q: Queries, name: str) -> dict[str, Any] | None:
    unit = snap.unit(name)
    if unit is None:
        return None
    assignments = [
        {"key": key, "value": d.value, "location": str(d.location)}
        for key in EXPLAINED_KEYS
        for d in unit.assignments("Service", key)
    ]
    runs_as = [
        {"account": acc, "how": lk.how, "confidence": lk.confidence, "source": lk.source, "detail": lk.detail}
        for acc in q.accounts_of(unit.name)
        for lk in q.units_of(acc)
        if lk.unit == unit.name
    ]
    return {
        "name": unit.name,
        "state": unit.state.value,
        "aliases": list(unit.aliases),
        "template": unit.template or "",
        "fragment": unit.fragment or "",
        "found_at": unit.found_at or "",
        "dropins": list(unit.dropins),
        "source_path": unit.source_path or "",
        "package": q.package_of(unit.name) or "",
        "enabled": unit.enabled,
        "assignments": assignments,
        "runs_as": runs_as,
    }


def make_evidence(snap: Snapshot, q: Queries, graph: Graph) -> dict[str, Any]:
    units = {}
    for unit in snap.units:
        data = unit_evidence(snap, q, unit.name)
        if data is not None:
            units[unit.name] = data
    return {"units": units, "graph": raw_graph_data(graph)}
