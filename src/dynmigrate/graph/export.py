"""Deterministic exports of the graph: JSON (node-link) and Graphviz DOT."""

from __future__ import annotations

import json
from typing import Any

from dynmigrate.graph.build import Graph
from dynmigrate.model.common import escape, mask_secrets


def _attrs(data: dict[str, Any]) -> dict[str, Any]:
    return {k: data[k] for k in sorted(data)}


def graph_data(g: Graph) -> dict[str, Any]:
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
    return dict(escape(mask_secrets({"schema_version": 1, "nodes": nodes, "edges": edges})))


def export_json(g: Graph) -> str:
    return json.dumps(graph_data(g), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


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
    data = graph_data(g)
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
