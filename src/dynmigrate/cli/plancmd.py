"""dynmigrate plan and dynmigrate verify."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

from dynmigrate.cli.main import Exit, fail, guarded, main, root_options, scan_root
from dynmigrate.model.common import escape


def _probes(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        unit, sep, cmd = v.partition("=")
        if not sep or not unit or not cmd:
            fail(Exit.USAGE, f"--probe takes UNIT=COMMAND, not {escape(v)}")
        out[unit] = cmd
    return out


@main.command()
@root_options
@click.option("--unit", "units", multiple=True, help="Plan the accounts this unit runs as (repeatable).")
@click.option("--account", "accounts", multiple=True, help="Plan this account (repeatable).")
@click.option("--all-convertible", is_flag=True, help="Plan every account whose verdict is convertible.")
@click.option(
    "-o",
    "--output",
    "outdir",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Plan folder to write (must not exist, or be empty).",
)
@click.option("--replace", is_flag=True, help="Replace an existing plan folder.")
@click.option("--force", is_flag=True, help="Also plan blocked accounts (prints every blocker).")
@click.option(
    "--probe",
    "probes",
    multiple=True,
    metavar="UNIT=COMMAND",
    help="Health probe run after each restart, besides systemctl is-active (repeatable).",
)
@click.option("--no-builtin-probes", is_flag=True, help="Do not use the built-in probes for common daemons.")
@click.option(
    "--security/--no-security",
    default=True,
    show_default=True,
    help="Show systemd-analyze security exposure before/after (when systemd-analyze is installed).",
)
@guarded
def plan(
    root: str,
    ownership: str | None,
    policy: str | None,
    cross_filesystems: bool,
    color: str,
    no_progress: bool,
    units: tuple[str, ...],
    accounts: tuple[str, ...],
    all_convertible: bool,
    outdir: str,
    replace: bool,
    force: bool,
    probes: tuple[str, ...],
    no_builtin_probes: bool,
    security: bool,
) -> None:
    """Write drop-ins, rewritten units, diffs, staged scripts with rollback and a review report."""
    from dynmigrate.plan.planner import PlanOptions, Selection, SelectionError, make_plan
    from dynmigrate.plan.write import PlanWriteError, write_plan

    if not (units or accounts or all_convertible):
        fail(Exit.USAGE, "choose what to plan: --unit UNIT, --account NAME or --all-convertible")
    result = scan_root(root, ownership, policy, cross_filesystems, color, no_progress)
    try:
        plan_ = make_plan(
            result,
            Selection(units, accounts, all_convertible),
            PlanOptions(force=force, probes=_probes(probes), builtin_probes=not no_builtin_probes),
        )
    except SelectionError as exc:
        fail(Exit.USAGE, str(exc))
        return
    for name, why in plan_.refused:
        click.echo(f"dynmigrate: not planned: {escape(name)}: {escape(why)}", err=True)
    if force:
        for a in plan_.accounts:
            if a.forced:
                for f in a.findings:
                    if f.effect.value == "blocks":
                        click.echo(
                            f"dynmigrate: --force overrides blocker of {escape(a.account)}: "
                            f"{f.rule} {escape(f.message)}",
                            err=True,
                        )
    if not plan_.accounts and not plan_.alternatives:
        fail(
            Exit.REFUSED if any(w.startswith("blocked") for _, w in plan_.refused) else Exit.USAGE,
            "nothing could be planned",
        )
    out = Path(outdir)
    if replace and out.exists():
        shutil.rmtree(out)
    try:
        written = write_plan(result, plan_, out, security=security)
    except PlanWriteError as exc:
        fail(Exit.INPUT, str(exc))
        return
    if plan_.accounts:
        click.echo(f"wrote {len(written)} files to {escape(str(out))}: review REPORT.md, then run migrate.sh stage0")
    else:
        click.echo(f"wrote {len(written)} files to {escape(str(out))}: nothing to migrate; REPORT.md lists the options")
    if any(w.startswith("blocked") for _, w in plan_.refused):
        sys.exit(int(Exit.REFUSED))


@main.command()
@click.option(
    "--root",
    default="/",
    show_default=True,
    type=click.Path(file_okay=False, path_type=str),
    help="The live root (service checks run only when this is /).",
)
@click.option("--account", "accounts", multiple=True, help="Only these migrated accounts.")
@click.option("--repair", is_flag=True, help="Run dynmigrate-repair for drift, then verify again.")
@click.option("--no-walk", is_flag=True, help="Skip the walk for files of the old UID.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@guarded
def verify(root: str, accounts: tuple[str, ...], repair: bool, no_walk: bool, fmt: str) -> None:
    """Check migrated accounts on a live host; report drift (exit 1)."""
    from dynmigrate.plan.verify import records, verify_host
    from dynmigrate.plan.verify import repair as run_repair

    if not records(Path(root)):
        fail(Exit.INPUT, f"no migrated accounts recorded under {escape(root)}/var/lib/dynmigrate/migrated")
    checks = verify_host(root, accounts, walk=not no_walk)
    if repair and not all(c.ok for c in checks):
        proc = run_repair(root)
        sys.stderr.write(proc.stderr)
        checks = verify_host(root, accounts, walk=not no_walk)
    if fmt == "json":
        click.echo(
            json.dumps(
                [{"account": c.account, "check": c.check, "ok": c.ok, "detail": c.detail} for c in checks], indent=2
            )
        )
    else:
        for c in checks:
            click.echo(f"{'ok  ' if c.ok else 'FAIL'} {escape(c.account)}: {escape(c.check)}: {escape(c.detail)}")
        bad = [c for c in checks if not c.ok]
        click.echo(f"{len(checks) - len(bad)}/{len(checks)} checks passed" + (": drift found" if bad else ""))
    if not all(c.ok for c in checks):
        sys.exit(int(Exit.FINDINGS))
