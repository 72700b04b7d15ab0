"""dynmigrate rehearse (the engine is dynmigrate.rehearse)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from dynmigrate.cli.base import Exit, check_output_file, common_options, fail, guarded, parse_probes, write_out
from dynmigrate.model.common import escape
from dynmigrate.render.registry import FORMAT_HELP, FORMATS


@click.command()
@click.argument("root")
@click.option("--account", "accounts", multiple=True, help="Rehearse this account (repeatable).")
@click.option("--unit", "units", multiple=True, help="Rehearse the accounts this unit runs as (repeatable).")
@click.option("--all-convertible", is_flag=True, help="Rehearse every account whose verdict is convertible.")
@click.option("--force", is_flag=True, help="Also rehearse blocked accounts (their outcome stays REFUSED).")
@click.option("--before-stage2", default="", metavar="CMD", help="Run CMD inside the copy before stage 2.")
@click.option(
    "--setup",
    "setup",
    multiple=True,
    metavar="CMD",
    help="Boot the copy first and run CMD in it before the scan (repeatable; images need --trusted-image).",
)
@click.option(
    "--trusted-image",
    is_flag=True,
    help="ROOT is an image you built yourself: boot it without user namespacing, overlay as for /.",
)
@click.option(
    "--full-copy",
    is_flag=True,
    help="Lay the overlay without redirect_dir/metacopy (for kernels without them): copy what is renamed.",
)
@click.option("--keep", is_flag=True, help="Leave the booted copy running; print how to enter and remove it.")
@click.option("--probe", "probes", multiple=True, metavar="UNIT=COMMAND", help="Health probe (repeatable).")
@click.option("--policy", metavar="FILE", help="Site policy file ([probes] used).")
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS["rehearse"]), default="table", show_default=True, help=FORMAT_HELP
)
@click.option("-o", "--output", metavar="FILE", help="Write the report to a file.")
@common_options
@guarded
def rehearse(fmt: str, output: str | None, color: str, quiet: bool, verbose: int, **request: Any) -> None:
    """Run the whole migration on a throwaway overlay copy of ROOT, roll it back, report what happened.

    ROOT is never written. Needs root, overlayfs and systemd-nspawn.
    """
    from dynmigrate.rehearse.launch import CannotRehearse
    from dynmigrate.rehearse.launch import rehearse as run
    from dynmigrate.rehearse.model import Outcome
    from dynmigrate.rehearse.render import REHEARSAL_FORMATS

    r = request  # root, accounts, units, all_convertible, force, before_stage2, setup, trusted_image,
    # full_copy, keep, probes, policy: the options of the rehearsal, as the launcher takes them
    chosen = bool(r["units"] or r["accounts"] or r["all_convertible"])
    _check_arguments(r["root"], r["policy"], output, chosen, bool(r["setup"]), r["trusted_image"], r["full_copy"])
    try:
        result = run({**r, "probes": parse_probes(r["probes"])})
    except CannotRehearse as exc:
        fail(Exit.USAGE if exc.usage else Exit.INPUT, escape(str(exc)))
        return
    write_out(REHEARSAL_FORMATS[fmt](result), output)
    outcomes = {a.outcome for a in result.accounts}
    if outcomes & {Outcome.FAIL, Outcome.BROKEN_BEFORE}:
        sys.exit(int(Exit.FINDINGS))
    if Outcome.REFUSED in outcomes:
        sys.exit(int(Exit.REFUSED))


def _check_arguments(
    root: str,
    policy: str | None,
    output: str | None,
    chosen: bool,
    setup: bool,
    trusted_image: bool,
    full_copy: bool = False,
) -> None:
    """Refuse what cannot be rehearsed before anything is mounted."""
    from dynmigrate.rehearse.launch import inside
    from dynmigrate.rehearse.request import SETUP_NEEDS_TRUST, SETUP_NO_FULL_COPY

    if not Path(root).is_dir():
        fail(Exit.INPUT, f"ROOT {escape(root)} is not a directory")
    if policy is not None and Path(policy).is_dir():
        fail(Exit.INPUT, f"--policy {escape(policy)} is a directory, not a file")
    check_output_file(output)
    if not chosen:
        fail(Exit.USAGE, "choose what to rehearse: --unit UNIT, --account NAME or --all-convertible")
    if setup and not trusted_image and os.path.realpath(root) != "/":
        fail(Exit.USAGE, SETUP_NEEDS_TRUST)
    if setup and full_copy:
        fail(Exit.USAGE, SETUP_NO_FULL_COPY)
    if output and inside(output, root):
        fail(Exit.USAGE, f"-o {escape(output)} is inside ROOT, which a rehearsal never writes")
