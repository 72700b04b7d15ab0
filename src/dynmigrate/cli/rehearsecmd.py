"""dynmigrate rehearse (the engine is dynmigrate.rehearse)."""

from __future__ import annotations

import sys

import click

from dynmigrate.cli.main import Exit, fail, guarded, main, write_out
from dynmigrate.render.common import safe


@main.command()
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option("--account", "accounts", multiple=True, help="Rehearse this account (repeatable).")
@click.option("--unit", "units", multiple=True, help="Rehearse the accounts this unit runs as (repeatable).")
@click.option("--all-convertible", is_flag=True, help="Rehearse every account whose verdict is convertible.")
@click.option("--force", is_flag=True, help="Also rehearse blocked accounts (their outcome stays REFUSED).")
@click.option("--before-stage2", default="", metavar="CMD", help="Run CMD inside the copy before stage 2.")
@click.option("--keep", is_flag=True, help="Leave the booted copy running; print how to enter and remove it.")
@click.option("--probe", "probes", multiple=True, metavar="UNIT=COMMAND", help="Health probe (repeatable).")
@click.option("--policy", type=click.Path(dir_okay=False, path_type=str), help="Site policy file ([probes] used).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), help="Write the report to a file.")
@guarded
def rehearse(
    root: str,
    accounts: tuple[str, ...],
    units: tuple[str, ...],
    all_convertible: bool,
    force: bool,
    before_stage2: str,
    keep: bool,
    probes: tuple[str, ...],
    policy: str | None,
    fmt: str,
    output: str | None,
) -> None:
    """Run the whole migration on a throwaway overlay copy of ROOT, roll it back, report what happened.

    ROOT is never written. Needs root, overlayfs and systemd-nspawn.
    """
    from dynmigrate.cli.plancmd import _probes
    from dynmigrate.rehearse.launch import CannotRehearse, inside
    from dynmigrate.rehearse.launch import rehearse as run
    from dynmigrate.rehearse.model import Outcome
    from dynmigrate.rehearse.render import REHEARSAL_FORMATS

    if not (units or accounts or all_convertible):
        fail(Exit.USAGE, "choose what to rehearse: --unit UNIT, --account NAME or --all-convertible")
    if output and inside(output, root):
        fail(Exit.USAGE, f"-o {safe(output)} is inside ROOT, which a rehearsal never writes")
    try:
        result = run(
            {
                "root": root,
                "accounts": accounts,
                "units": units,
                "all_convertible": all_convertible,
                "force": force,
                "before_stage2": before_stage2,
                "keep": keep,
                "probes": _probes(probes),
                "policy": policy,
            }
        )
    except CannotRehearse as exc:
        fail(Exit.USAGE if exc.usage else Exit.INPUT, safe(str(exc)))
        return
    write_out(REHEARSAL_FORMATS[fmt](result), output)
    outcomes = {a.outcome for a in result.accounts}
    if outcomes & {Outcome.FAIL, Outcome.BROKEN_BEFORE}:
        sys.exit(int(Exit.FINDINGS))
    if Outcome.REFUSED in outcomes:
        sys.exit(int(Exit.REFUSED))
