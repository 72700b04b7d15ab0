"""dynmigrate explain and dynmigrate graph: questions about one scan, fresh or saved.

Both read plain data: a fresh scan is turned into exactly what `scan --format json` writes, a
saved report (`--from-report scan.json`) is read back, and the same code answers from either.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from dynmigrate.cli.base import (
    Exit,
    ScanConfig,
    check_output_file,
    fail,
    guarded,
    packed_scan_options,
    scan_config,
    write_out,
)
from dynmigrate.model.common import escape
from dynmigrate.render.registry import FORMAT_HELP, FORMATS

FROM_REPORT_HELP = "Answer from a saved `scan --format json` report instead of reading ROOT again."


def load_report(path: str) -> dict[str, Any]:
    """A saved JSON scan report; one that cannot be used is an input error naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(Exit.INPUT, f"cannot read {escape(path)}: {exc.strerror}")
        raise AssertionError("unreachable") from None
    except UnicodeDecodeError:
        fail(Exit.INPUT, f"{escape(path)}: not UTF-8, not a dynmigrate JSON report")
        raise AssertionError("unreachable") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(Exit.INPUT, f"{escape(path)}:{exc.lineno}: not JSON ({exc.msg}); save one with scan --format json")
        raise AssertionError("unreachable") from None
    if not isinstance(data, dict) or data.get("schema_version") != 1 or "accounts" not in data:
        fail(Exit.INPUT, f"{escape(path)}: not a dynmigrate scan report (scan --format json, schema_version 1)")
    if not isinstance(data.get("evidence"), dict) or not {"units", "graph"} <= set(data["evidence"]):
        fail(Exit.INPUT, f"{escape(path)}: the report has no evidence section; save it again with this version")
    return dict(data)


def _finding_order(f: dict[str, Any]) -> tuple[str, str, int, str]:
    """Finding.sort_key of a finding's plain data (subject aside): rule, file, line, message."""
    m = re.fullmatch(r"(.*):(\d+)", str(f.get("location") or ""), re.S)
    file, line = (m.group(1), int(m.group(2))) if m else (str(f.get("location") or ""), 0)
    return (str(f["rule"]), file, line, str(f["message"]))


def with_suppressed(data: dict[str, Any]) -> dict[str, Any]:
    """The saved report's accounts with their suppressed findings back in place: a suppression
    changes the scan's report only, and explain shows an account's whole evidence, as a fresh scan
    does (never a finding silently dropped)."""
    back: dict[str, list[dict[str, Any]]] = {}
    for s in data.get("suppressed", []):
        finding = {k: v for k, v in s.items() if k not in ("subject", "why")}
        back.setdefault(s["subject"], []).append(finding)
    accounts = [
        {**a, "findings": sorted([*a["findings"], *back[a["name"]]], key=_finding_order)} if a["name"] in back else a
        for a in data["accounts"]
    ]
    return {**data, "accounts": accounts}


def report_of(config: ScanConfig) -> dict[str, Any]:
    """A fresh scan as the plain data `scan --format json` writes (and --from-report reads)."""
    from dynmigrate.render.common import report_data

    data = report_data(scan_config(config).report)
    return dict(json.loads(json.dumps(data)))  # the same types a saved report comes back with


def _positional(root: str | None, name: str | None, from_report: str | None) -> tuple[str | None, str]:
    """explain's positional arguments: ROOT NAME, or NAME alone with --from-report."""
    if from_report:
        if root is not None and name is not None:
            fail(Exit.USAGE, "with --from-report, give NAME only (the report was made from its own ROOT)")
        return None, str(root if name is None else name)
    if root is None or name is None:
        fail(Exit.USAGE, "give ROOT and NAME (or --from-report FILE and NAME)")
    return root, str(name)


@click.command()
@click.argument("root", metavar="ROOT", required=False)
@click.argument("name", metavar="NAME", required=False)
@packed_scan_options
@click.option("--from-report", type=click.Path(dir_okay=False, path_type=str), help=FROM_REPORT_HELP)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS["explain"]), default="text", show_default=True, help=FORMAT_HELP
)
@guarded
def explain(
    root: str | None,
    name: str | None,
    options: ScanConfig,
    from_report: str | None,
    fmt: str,
) -> None:
    """Print one account's or unit's whole evidence (ROOT NAME, or --from-report FILE NAME)."""
    from dynmigrate.render.explain import account_lines, find_unit, unit_lines

    root_, wanted = _positional(root, name, from_report)
    if from_report:
        data = with_suppressed(load_report(from_report))
    else:
        assert root_ is not None
        data = report_of(options.at(root_))
    acc = next((a for a in data["accounts"] if a["name"] == wanted), None)
    if acc is not None:
        if fmt == "json":
            click.echo(json.dumps(acc, indent=2, sort_keys=True, ensure_ascii=False))
        else:
            click.echo("\n".join(account_lines(acc)))
        return
    unit = find_unit(data["evidence"]["units"], wanted)
    if unit is None:
        where = escape(from_report) if from_report else escape(str(root_))
        fail(Exit.USAGE, f"no static system account or unit named {escape(wanted)} in {where}")
        return
    if fmt == "json":
        click.echo(json.dumps(unit, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        click.echo("\n".join(unit_lines(unit)))


@click.command()
@click.argument("root", metavar="[ROOT]", required=False)
@packed_scan_options
@click.option("--from-report", type=click.Path(dir_okay=False, path_type=str), help=FROM_REPORT_HELP)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS["graph"]), default="json", show_default=True, help=FORMAT_HELP
)
@click.option("-o", "--output", metavar="FILE", help="Write the graph to a file.")
@click.option("--account", "accounts", multiple=True, help="Only this account's neighbourhood (repeatable).")
@click.option("--unit", "units", multiple=True, help="Only this unit's neighbourhood (repeatable).")
@click.option(
    "--depth",
    type=click.IntRange(0, 10),
    default=1,
    show_default=True,
    help="With --account/--unit: how many edges away from them a node may be.",
)
@guarded
def graph(
    root: str | None,
    options: ScanConfig,
    from_report: str | None,
    fmt: str,
    output: str | None,
    accounts: tuple[str, ...],
    units: tuple[str, ...],
    depth: int,
) -> None:
    """Export the ownership graph (accounts, groups, units, paths, references), sorted."""
    from dynmigrate.graph.export import NeighbourhoodError, dot_text, json_text, neighbourhood

    check_output_file(output)
    if from_report and root:
        fail(Exit.USAGE, "give ROOT or --from-report FILE, not both")
    if from_report:
        data = load_report(from_report)["evidence"]["graph"]
    elif root:
        data = report_of(options.at(root))["evidence"]["graph"]
    else:
        fail(Exit.USAGE, "give ROOT (or --from-report FILE)")
        return
    if accounts or units:
        try:
            data = neighbourhood(data, accounts=accounts, units=units, depth=depth)
        except NeighbourhoodError as exc:
            fail(Exit.USAGE, str(exc))
    write_out(dot_text(data) if fmt == "dot" else json_text(data), output)
