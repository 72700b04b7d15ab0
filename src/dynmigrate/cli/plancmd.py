"""dynmigrate plan and dynmigrate verify."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from dynmigrate.cli.base import Exit, ScanConfig, common_options, fail, guarded, parse_probes, root_options, scan_config
from dynmigrate.model.common import escape
from dynmigrate.model.plan import RefusalKind
from dynmigrate.render.checks import checks_json, checks_text
from dynmigrate.render.registry import FORMAT_HELP, FORMATS

if TYPE_CHECKING:
    from dynmigrate.engine.result import ScanResult
    from dynmigrate.model.checks import Check
    from dynmigrate.model.plan import MigrationPlan
    from dynmigrate.plan.planner import PlanOptions, Selection
    from dynmigrate.rehearse.model import Rehearsal


@click.command()
@root_options
@click.option("--unit", "units", multiple=True, help="Plan the accounts this unit runs as (repeatable).")
@click.option("--account", "accounts", multiple=True, help="Plan this account (repeatable).")
@click.option("--all-convertible", is_flag=True, help="Plan every account whose verdict is convertible.")
@click.option(
    "-o",
    "--output",
    "outdir",
    metavar="DIR",
    help="Plan folder to write (must not exist, or be empty); required unless --dry-run.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the drop-ins and the diffs of the effective units to stdout; write nothing.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Replace an existing plan folder (only one dynmigrate wrote, holding nothing else, unchanged).",
)
@click.option("--force", is_flag=True, help="Also plan blocked accounts (prints every blocker).")
@click.option(
    "--probe",
    "probes",
    multiple=True,
    metavar="UNIT=COMMAND",
    help="Health probe run after each restart, besides systemctl is-active (repeatable).",
)
@click.option(
    "--rehearsal",
    metavar="FILE",
    help="Cite a rehearsal's result (dynmigrate rehearse --format json) in REPORT.md.",
)
@click.option("--no-builtin-probes", is_flag=True, help="Do not use the built-in probes for common daemons.")
@click.option(
    "--security/--no-security",
    default=True,
    show_default=True,
    help="Show systemd-analyze security exposure before/after and what improved, per unit (when "
    "systemd-analyze is installed).",
)
@guarded
def plan(
    config: ScanConfig,
    units: tuple[str, ...],
    accounts: tuple[str, ...],
    all_convertible: bool,
    outdir: str | None,
    dry_run: bool,
    replace: bool,
    force: bool,
    probes: tuple[str, ...],
    no_builtin_probes: bool,
    rehearsal: str | None,
    security: bool,
) -> None:
    """Write drop-ins, rewritten units, diffs, staged scripts with rollback and a review report.

    The folder's migrate.sh and rollback.sh run one STAGE (stage0 to stage3) as root; with
    --dry-run STAGE they print every command that stage would run, in order and with its values,
    and change nothing.
    """
    from dynmigrate.plan.planner import PlanOptions, Selection

    selection = Selection(units, accounts, all_convertible)
    output = _PlanOutput(outdir, dry_run, replace, security, rehearsal, config.quiet, config.verbose)
    cited_from = _check_before_scan(selection, output)
    result = scan_config(config)
    plan_ = _make_plan(
        result, selection, PlanOptions(force, parse_probes(probes), builtin_probes=not no_builtin_probes)
    )
    if dry_run:
        _print_preview(plan_)
    else:
        _write(result, plan_, output, cited_from)
    if _any_blocked(plan_):
        sys.exit(int(Exit.REFUSED))


@dataclass(frozen=True, slots=True)
class _PlanOutput:
    """Where plan writes (or only prints, with --dry-run) and what it says about it."""

    outdir: str | None  # -o DIR: none with --dry-run alone
    dry_run: bool
    replace: bool
    security: bool
    rehearsal: str | None  # the rehearsal file cited in REPORT.md
    quiet: bool
    verbose: int


def _check_before_scan(selection: Selection, output: _PlanOutput) -> Rehearsal | None:
    """Refuse what the options alone show is wrong, before the scan (a refusal then costs nothing);
    the rehearsal to cite, when one is given."""
    from dynmigrate.output.write import PlanWriteError, check_destination

    if not (selection.units or selection.accounts or selection.all_convertible):
        fail(Exit.USAGE, "choose what to plan: --unit UNIT, --account NAME or --all-convertible")
    if not output.outdir and not output.dry_run:
        fail(Exit.USAGE, "give the plan folder with -o DIR (or --dry-run to print the drop-ins and diffs)")
    if output.outdir:
        try:
            check_destination(Path(output.outdir), output.replace)
        except PlanWriteError as exc:
            fail(Exit.INPUT, escape(str(exc)))
    if output.rehearsal is None:
        return None
    from dynmigrate.rehearse.cite import RehearsalFileError, load_rehearsal

    try:
        return load_rehearsal(output.rehearsal)
    except RehearsalFileError as exc:
        fail(Exit.INPUT, escape(str(exc)))
        return None


def _make_plan(result: ScanResult, selection: Selection, options: PlanOptions) -> MigrationPlan:
    """The plan of the selected accounts; says on stderr what was not planned and what --force overrode."""
    from dynmigrate.plan.planner import SelectionError, make_plan

    try:
        plan_ = make_plan(result.queries, result.report, selection, options)
    except SelectionError as exc:
        fail(Exit.USAGE, str(exc))
        raise  # not reached: fail exits
    for r in plan_.refused:
        click.echo(f"dynmigrate: not planned: {escape(r.account)}: {escape(r.why)}", err=True)
    if options.force:
        for a in plan_.accounts:
            if a.forced:
                for f in a.findings:
                    if f.effect.value == "blocks":
                        what = f"{escape(a.account)}: {f.rule} {escape(f.message)}"
                        click.echo(f"dynmigrate: --force overrides blocker of {what}", err=True)
    if not plan_.accounts and not plan_.alternatives:
        fail(Exit.REFUSED if _any_blocked(plan_) else Exit.USAGE, "nothing could be planned")
    return plan_


def _any_blocked(plan_: MigrationPlan) -> bool:
    """A selected account was not planned because a blocker stands in the way (exit 4)."""
    return any(r.kind is RefusalKind.BLOCKED for r in plan_.refused)


def _print_preview(plan_: MigrationPlan) -> None:
    from dynmigrate.render.planfolder.preview import render_preview

    click.echo(render_preview(plan_), nl=False)


def _write(result: ScanResult, plan_: MigrationPlan, output: _PlanOutput, cited_from: Rehearsal | None) -> None:
    """Write the plan folder and say where it is and what to do next."""
    from dynmigrate.output.write import PlanWriteError, write_plan

    assert output.outdir is not None
    out = Path(output.outdir)
    try:
        cited: list[str] = []
        if cited_from is not None:
            from dynmigrate.rehearse.cite import rehearsal_lines

            cited = rehearsal_lines(cited_from, [a.account for a in plan_.accounts], str(output.rehearsal))
        written = write_plan(result.snapshot, plan_, out, security=output.security, replace=output.replace, cited=cited)
    except PlanWriteError as exc:
        fail(Exit.INPUT, escape(str(exc)))
        return
    if output.verbose and not output.quiet:
        for rel in written:
            click.echo(f"dynmigrate: wrote {escape(str(out / rel))}", err=True)
    if output.quiet:
        return
    if plan_.accounts:
        next_step = "review REPORT.md, then run migrate.sh stage0"
    else:
        next_step = "nothing to migrate; REPORT.md lists the options"
    click.echo(f"wrote {len(written)} files to {escape(str(out))}: {next_step}")


@click.command()
@click.argument("root", metavar="[ROOT]", required=False)
@click.option(
    "--root",
    "root_option",
    hidden=True,
    help="Deprecated: give ROOT as the argument.",
)
@click.option("--account", "accounts", multiple=True, help="Only these migrated accounts.")
@click.option("--repair", is_flag=True, help="Run dynmigrate-repair for drift, then verify again (live root only).")
@click.option("--no-walk", is_flag=True, help="Skip the walk for files of the old UID.")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS["verify"]), default="text", show_default=True, help=FORMAT_HELP
)
@common_options
@guarded
def verify(
    root: str | None,
    root_option: str | None,
    accounts: tuple[str, ...],
    repair: bool,
    no_walk: bool,
    fmt: str,
    color: str,
    quiet: bool,
    verbose: int,
) -> None:
    """Check migrated accounts on a live host (ROOT, default /); report drift (exit 1).

    Verify always looks at the live state: it takes no saved report. Service checks and --repair
    run only when ROOT is /.
    """
    root = _verify_root(root, root_option, quiet)
    if not Path(root).is_dir():
        fail(Exit.INPUT, f"ROOT {escape(root)} is not a directory")
    if repair and os.path.realpath(root) != "/":
        fail(Exit.USAGE, f"--repair works only on the live root /, not {escape(root)}: nothing under it is run")
    checks = _host_checks(root, accounts, walk=not no_walk)
    if repair and not all(c.ok for c in checks):
        checks = _repair_and_check_again(root, accounts, walk=not no_walk)
    click.echo(checks_json(checks) if fmt == "json" else checks_text(checks, quiet))
    if not all(c.ok for c in checks):
        sys.exit(int(Exit.FINDINGS))


def _verify_root(root: str | None, root_option: str | None, quiet: bool) -> str:
    """ROOT from the argument or the deprecated --root (not both, unless equal); / by default."""
    if root_option is not None:
        if root is not None and root != root_option:
            fail(Exit.USAGE, "give ROOT once: as the argument (--root is a deprecated alias)")
        if not quiet:
            click.echo("dynmigrate: --root is deprecated: give ROOT as the argument (dynmigrate verify ROOT)", err=True)
        root = root_option
    return root or "/"


def _host_checks(root: str, accounts: tuple[str, ...], *, walk: bool) -> list[Check]:
    """The checks of the migrated accounts recorded under root (exit 3 when none is, or root is unreadable)."""
    from dynmigrate.collect.rootfs import RootError
    from dynmigrate.verify.host import records, verify_host

    try:
        if not records(root):
            fail(Exit.INPUT, f"no migrated accounts recorded under {escape(root)}/var/lib/dynmigrate/migrated")
        return verify_host(root, accounts, walk=walk)
    except RootError as exc:
        fail(Exit.INPUT, escape(str(exc)))
        raise  # not reached: fail exits


def _repair_and_check_again(root: str, accounts: tuple[str, ...], *, walk: bool) -> list[Check]:
    """Run dynmigrate-repair on the live root, relay what it said, and check again."""
    from dynmigrate.verify.host import RepairRefused, verify_host
    from dynmigrate.verify.host import repair as run_repair

    try:
        proc, origin = run_repair(root)
    except RepairRefused as exc:
        fail(Exit.USAGE, escape(str(exc)))
        raise  # not reached: fail exits
    click.echo(f"dynmigrate: repair ran {escape(origin)}", err=True)
    for line in proc.stderr.splitlines():
        click.echo(escape(line), err=True)
    return verify_host(root, accounts, walk=walk)
