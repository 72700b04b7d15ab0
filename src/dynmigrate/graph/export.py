"""Deterministic exports of the graph: JSON (node-link) and Graphviz DOT."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dynmigrate.graph.build import Graph
from dynmigrate.model.common import escape, inert


def _attrs(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in sorted(data)}


def graph_data(g: Graph) -> dict[str, Any]:
    """The graph as node-link data, masked and escaped (what `graph --format json` prints)."""
    return dict(inert(raw_graph_data(g)))


def raw_graph_data(g: Graph) -> dict[str, Any]:
    """The same data as found: for a report, whose rendering escapes the whole report once."""
    nodes = [{"id": n, **_attrs(dict(g.nodes[n]))} for n in sorted(g.nodes)]
    edges = sorted(
        ({"from": u, "to": v, **_attrs(dict(d))} for u, v, _k, d in g.edges(keys=True, data=True)),
        key=lambda e: (
            e["from"],
            e["to"],
            e.get("kind", ""),
            e.get("source", ""),
            e.get("how", ""),
            e.get("detail", ""),
        ),
    )
    return {"schema_version": 1, "nodes": nodes, "edges": edges}


def json_text(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_json(g: Graph) -> str:
    return json_text(graph_data(g))


class NeighbourhoodError(ValueError):
    pass


def neighbourhood(
    data: Mapping[str, Any], *, accounts: Sequence[str] = (), units: Sequence[str] = (), depth: int = 1
) -> dict[str, Any]:
    """The part of exported graph data within `depth` edges (either direction) of the named nodes."""
    ids = {n["id"] for n in data["nodes"]}
    seeds: set[str] = set()
    for name in accounts:
        if f"account:{escape(name)}" not in ids:
            raise NeighbourhoodError(f"no account {escape(name)} in the graph")
        seeds.add(f"account:{escape(name)}")
    for name in units:
        for candidate in (name, f"{name}.service"):
            if f"unit:{escape(candidate)}" in ids:
                seeds.add(f"unit:{escape(candidate)}")
                break
        else:
            raise NeighbourhoodError(f"no unit {escape(name)} in the graph")
    around: dict[str, set[str]] = {}
    for e in data["edges"]:
        around.setdefault(e["from"], set()).add(e["to"])
        around.setdefault(e["to"], set()).add(e["from"])
    keep, frontier = set(seeds), set(seeds)
    for _ in range(depth):
        frontier = {m for n in frontier for m in around.get(n, ())} - keep
        keep |= frontier
    return {
        **data,
        "nodes": [n for n in data["nodes"] if n["id"] in keep],
        "edges": [e for e in data["edges"] if e["from"] in keep and e["to"] in keep],
    }


def _q(text: Any) -> str:
    s = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'


SHAPES = {
    "account": "box",
    "group": "box3d",
    "unit": "component",
    "path": "folder",
    "reference": "note",
    "package": "tab",
    "uid": "octagon",
}


def export_dot(g: Graph) -> str:
    return dot_text(graph_data(g))


def dot_text(data: Mapping[str, Any]) -> str:
    out = ["digraph dynmigrate {", "  rankdir=LR;", '  node [fontname="monospace"];']
    for n in data["nodes"]:
        label = n.get("name", n["id"])
        shape = SHAPES.get(str(n.get("kind")), "ellipse")
        out.append(f"  {_q(n['id'])} [label={_q(label)}, shape={shape}];")
    for e in data["edges"]:
        label = e.get("kind", "")
        if e.get("how"):
            label += f" ({e['how']})"
        out.append(f"  {_q(e['from'])} -> {_q(e['to'])} [label={_q(label)}, tooltip={_q(e.get('source', ''))}];")
    out.append("}")
    return "\n".join(out) + "\n"
