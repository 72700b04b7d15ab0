"""dynmigrate scan: verdicts with evidence, in every format of the render registry; suppressions."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dynmigrate.cli.base import (
    FAIL_ON,
    Exit,
    ScanConfig,
    check_output_file,
    fail,
    guarded,
    note,
    root_options,
    scan_config,
    write_out,
)
from dynmigrate.cli.consoles import make_console
from dynmigrate.model.common import escape
from dynmigrate.render.registry import FORMAT_HELP, FORMATS, TEXT_FORMATS

if TYPE_CHECKING:
    from dynmigrate.engine.suppress import BaselineEntry
    from dynmigrate.model.report import Report


def rule_ids(values: tuple[str, ...], option: str) -> frozenset[str]:
    """Rule ids from repeatable, comma-separated options; an unknown id is a usage error."""
    from dynmigrate.engine.catalogue import load_catalogue

    known = {r.meta.id for r in load_catalogue()} | {"DM000"}
    ids = {w.upper() for v in values for w in re.split(r"[\s,]+", v) if w}
    unknown = sorted(ids - known)
    if unknown:
        fail(
            Exit.USAGE, f"{option}: unknown rule {', '.join(escape(u) for u in unknown)} (dynmigrate rules lists them)"
        )
    return frozenset(ids)


@click.command()
@root_options
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS["scan"]), default="table", show_default=True, help=FORMAT_HELP
)
@click.option("-o", "--output", metavar="FILE", help="Write the report to a file.")
@click.option("--all", "show_all", is_flag=True, help="Table: also list accounts with no units, files or references.")
@click.option(
    "--fail-on",
    type=click.Choice(sorted(FAIL_ON)),
    default="never",
    show_default=True,
    help="Exit 1 if an account has this verdict or worse (blocked; manual = blocked or needs manual steps).",
)
@click.option("--ignore", "ignore", multiple=True, metavar="RULE[,RULE]", help="Leave these rules out of the report.")
@click.option("--select", "select", multiple=True, metavar="RULE[,RULE]", help="Report only these rules.")
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, path_type=str),
    help="Leave out the findings recorded in this baseline: report only new ones.",
)
@click.option(
    "--write-baseline",
    type=click.Path(dir_okay=False, path_type=str),
    help="Record this run's findings (after --ignore/--select/[ignore]) as a baseline file.",
)
@guarded
def scan(
    config: ScanConfig,
    fmt: str,
    output: str | None,
    show_all: bool,
    fail_on: str,
    ignore: tuple[str, ...],
    select: tuple[str, ...],
    baseline: str | None,
    write_baseline: str | None,
) -> None:
    """Give every static system account under ROOT a verdict, with its evidence.

    Suppressions (--ignore, --select, [ignore] in the site policy, --baseline) change the report
    only: suppressed findings are counted in its summary, and verdicts and plans still count them.
    """
    from dynmigrate.engine.suppress import Suppressions, baseline_text, suppress

    check_output_file(output)
    ignored, selected = rule_ids(ignore, "--ignore"), rule_ids(select, "--select")
    entries = _read_baseline(baseline) if baseline else ()
    result = scan_config(config)
    rules_only = Suppressions(ignored, selected, result.snapshot.policy.ignores)
    report = suppress(result.report, rules_only)
    if write_baseline:
        current = [f for a in report.accounts for f in a.findings] + list(report.host_findings)
        write_out(baseline_text(current), write_baseline)
        note(config, f"wrote {len(current)} findings to the baseline {escape(write_baseline)}")
    if entries:
        report = suppress(report, Suppressions(baseline=entries))
    _write_report(report, fmt, output, show_all, config.color)
    bad = FAIL_ON[fail_on]
    if any(a.verdict in bad for a in report.accounts):
        sys.exit(int(Exit.FINDINGS))


def _read_baseline(baseline: str) -> tuple[BaselineEntry, ...]:
    from dynmigrate.engine.suppress import BaselineError, parse_baseline

    entries: tuple[BaselineEntry, ...] = ()
    try:
        entries = parse_baseline(Path(baseline).read_text(encoding="utf-8"), baseline)
    except OSError as exc:
        fail(Exit.INPUT, f"cannot read baseline {escape(baseline)}: {exc.strerror}")
    except (BaselineError, UnicodeDecodeError) as exc:
        fail(Exit.INPUT, f"baseline {escape(str(exc))}")
    return entries


def _write_report(report: Report, fmt: str, output: str | None, show_all: bool, color: str) -> None:
    """The report in FMT, to OUTPUT or stdout (the table through rich, coloured only on stdout)."""
    from dynmigrate.engine.catalogue import load_catalogue, rule_docs
    from dynmigrate.render.table import render_table

    if fmt != "table":
        write_out(TEXT_FORMATS[fmt](report, rule_docs(load_catalogue())), output)
    elif output:
        try:
            with open(output, "w", encoding="utf-8", errors="surrogateescape") as fh:
                render_table(report, make_console(fh, "never"), show_all=show_all)
        except OSError as exc:
            fail(Exit.INPUT, f"cannot write {escape(output)}: {exc.strerror}")
    else:
        render_table(report, make_console(sys.stdout, color), show_all=show_all)
