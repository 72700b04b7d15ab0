"""The dynmigrate command line."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

import click

from dynmigrate import __version__
from dynmigrate.app import ScanResult, run_scan
from dynmigrate.cli.consoles import StderrEvents, make_console
from dynmigrate.collect.rootfs import RootError
from dynmigrate.model.common import Verdict
from dynmigrate.render.common import account_data, safe
from dynmigrate.render.registry import SCAN_FORMATS, TEXT_FORMATS

F = TypeVar("F", bound=Callable[..., Any])


class Exit(IntEnum):
    """Exit codes (README: "Exit codes")."""

    OK = 0
    FINDINGS = 1  # scan: --fail-on threshold reached; verify: drift found
    USAGE = 2  # bad option or argument, unknown account or unit (click uses 2 too)
    INPUT = 3  # ROOT or an input file cannot be read at all
    REFUSED = 4  # plan: a selected service is blocked and --force was not given
    INTERNAL = 70  # a bug: reported without a traceback


FAIL_ON = {
    "blocked": {Verdict.BLOCKED},
    "manual": {Verdict.BLOCKED, Verdict.NEEDS_MANUAL},
    "never": set(),
}


def fail(code: Exit, message: str) -> None:
    click.echo(f"dynmigrate: {message}", err=True)
    sys.exit(int(code))


def root_options(func: F) -> F:
    options = [
        click.argument("root", type=click.Path(file_okay=False, path_type=str)),
        click.option(
            "--ownership",
            type=click.Path(dir_okay=False, path_type=str),
            help="Ownership manifest (PATH UID GID MODE) for trees stored without owners, such as samples/.",
        ),
        click.option(
            "--policy",
            type=click.Path(dir_okay=False, path_type=str),
            help="Site policy file (default: ROOT/etc/dynmigrate.ini if present).",
        ),
        click.option(
            "--cross-filesystems",
            is_flag=True,
            help="Walk into other filesystems below ROOT (pseudo filesystems are always skipped).",
        ),
        click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True),
        click.option("--no-progress", is_flag=True, help="Never draw progress on stderr."),
    ]
    for opt in reversed(options):
        func = opt(func)
    return func


def scan_root(
    root: str,
    ownership: str | None,
    policy: str | None,
    cross_filesystems: bool,
    color: str,
    no_progress: bool,
    *,
    progress: bool = True,
) -> ScanResult:
    if not Path(root).is_dir():
        fail(Exit.INPUT, f"ROOT {safe(root)} is not a directory")
    err = make_console(sys.stderr, color)
    try:
        with StderrEvents(err, enabled=progress and not no_progress) as events:
            return run_scan(
                root, ownership=ownership, policy=policy, cross_filesystems=cross_filesystems, events=events
            )
    except RootError as exc:
        fail(Exit.INPUT, str(exc))
    except (OSError, ValueError) as exc:
        fail(Exit.INPUT, f"cannot read input: {exc}")
    raise AssertionError("unreachable")


def write_out(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            fail(Exit.INPUT, f"cannot write {output}: {exc.strerror}")
    else:
        click.echo(text, nl=False)


def guarded(func: F) -> F:
    """Turn an unexpected exception into a one-line message and exit code 70: never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (SystemExit, click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            fail(Exit.INTERNAL, "interrupted")
        except Exception as exc:
            fail(Exit.INTERNAL, f"internal error ({type(exc).__name__}: {exc}); this is a bug, please report it")

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dynmigrate")
def main() -> None:
    """Move services from static system accounts to systemd DynamicUser=yes, safely.

    Scanning is read-only: nothing under ROOT is ever written.
    """


@main.command()
@root_options
@click.option("--format", "fmt", type=click.Choice(SCAN_FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), help="Write the report to a file.")
@click.option("--all", "show_all", is_flag=True, help="Table: also list accounts with no units, files or references.")
@click.option(
    "--fail-on",
    type=click.Choice(sorted(FAIL_ON)),
    default="never",
    show_default=True,
    help="Exit 1 if an account has this verdict or worse (blocked; manual = blocked or needs manual steps).",
)
@guarded
def scan(
    root: str,
    ownership: str | None,
    policy: str | None,
    cross_filesystems: bool,
    color: str,
    no_progress: bool,
    fmt: str,
    output: str | None,
    show_all: bool,
    fail_on: str,
) -> None:
    """Give every static system account under ROOT a verdict, with its evidence."""
    from dynmigrate.render.table import render_table

    result = scan_root(root, ownership, policy, cross_filesystems, color, no_progress)
    if fmt == "table":
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                render_table(result.report, make_console(fh, "never"), show_all=show_all)
        else:
            render_table(result.report, make_console(sys.stdout, color), show_all=show_all)
    else:
        write_out(TEXT_FORMATS[fmt](result.report), output)
    bad = FAIL_ON[fail_on]
    if any(a.verdict in bad for a in result.report.accounts):
        sys.exit(int(Exit.FINDINGS))


@main.command()
@root_options
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@guarded
def explain(
    root: str,
    ownership: str | None,
    policy: str | None,
    cross_filesystems: bool,
    color: str,
    no_progress: bool,
    name: str,
    fmt: str,
) -> None:
    """Print one account's or unit's whole evidence."""
    from dynmigrate.render.explain import explain_account, explain_unit

    result = scan_root(root, ownership, policy, cross_filesystems, color, no_progress)
    acc = result.report.account(name)
    if acc is not None:
        if fmt == "json":
            click.echo(json.dumps(account_data(acc), indent=2, sort_keys=True, ensure_ascii=False))
        else:
            click.echo("\n".join(explain_account(result, acc)))
        return
    lines = explain_unit(result, name)
    if lines is None and not name.endswith(".service"):
        lines = explain_unit(result, name + ".service")
    if lines is None:
        fail(Exit.USAGE, f"no static system account or unit named {safe(name)} under {safe(root)}")
        return
    if fmt == "json":
        click.echo(json.dumps({"unit": name, "lines": lines}, indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(lines))


@main.command()
@root_options
@click.option("--format", "fmt", type=click.Choice(["dot", "json"]), default="json", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str))
@guarded
def graph(
    root: str,
    ownership: str | None,
    policy: str | None,
    cross_filesystems: bool,
    color: str,
    no_progress: bool,
    fmt: str,
    output: str | None,
) -> None:
    """Export the ownership graph (accounts, groups, units, paths, references), sorted."""
    from dynmigrate.graph.export import export_dot, export_json

    result = scan_root(root, ownership, policy, cross_filesystems, color, no_progress)
    write_out(export_dot(result.graph) if fmt == "dot" else export_json(result.graph), output)


@main.command("rules")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@guarded
def rules_cmd(fmt: str) -> None:
    """List the rule catalogue."""
    from dynmigrate.engine.catalogue import load_catalogue

    rules = load_catalogue()
    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "id": r.meta.id,
                        "name": r.meta.name,
                        "severity": r.meta.severity.value,
                        "effect": r.meta.effect.value,
                        "tags": list(r.meta.tags),
                        "summary": r.meta.summary,
                        "facts": list(r.meta.facts),
                    }
                    for r in rules
                ],
                indent=2,
            )
        )
        return
    for r in rules:
        click.echo(f"{r.meta.id}  {r.meta.name:28} {r.meta.effect.value:18} {r.meta.summary}")


from dynmigrate.cli import plancmd  # noqa: E402,F401  (registers plan and verify)

# isort: split
from dynmigrate.cli import rehearsecmd  # noqa: E402,F401  (registers rehearse)
