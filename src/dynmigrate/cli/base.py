"""What every command of the command line shares: exit codes, errors, the shared options and the
frozen run configuration they build, and running the scan."""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

import click

from dynmigrate.app import ScanResult, run_scan
from dynmigrate.cli.consoles import StderrEvents, make_console
from dynmigrate.collect.rootfs import InputError, RootError
from dynmigrate.model.common import Verdict, escape

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


def common_options(func: F) -> F:
    """--color, -q/--quiet and -v/--verbose: every command takes them."""
    options = [
        click.option(
            "--color",
            type=click.Choice(["auto", "always", "never"]),
            default="auto",
            show_default=True,
            help="Colour on the terminal (NO_COLOR in the environment wins).",
        ),
        click.option("-q", "--quiet", is_flag=True, help="Only the report and errors: no progress, no notes."),
        click.option(
            "-v", "--verbose", count=True, help="Say what is being read and how long it took, on stderr (repeatable)."
        ),
    ]
    for opt in reversed(options):
        func = opt(func)
    return func


def scan_options(func: F) -> F:
    """What reading a root takes (after ROOT): the ownership manifest, the policy, the walk."""
    options = [
        click.option(
            "--ownership",
            metavar="FILE",
            help="Ownership manifest (PATH UID GID MODE) for trees stored without owners, such as samples/.",
        ),
        click.option(
            "--policy",
            metavar="FILE",
            help="Site policy file (default: ROOT/etc/dynmigrate.ini if present).",
        ),
        click.option(
            "--cross-filesystems",
            is_flag=True,
            help="Walk into other filesystems below ROOT (pseudo filesystems are always skipped).",
        ),
        click.option("--no-progress", is_flag=True, help="Never draw progress on stderr."),
    ]
    for opt in reversed(options):
        func = opt(func)
    return common_options(func)


def packed_scan_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The scan options and the common ones, given to the command as one frozen ScanConfig (its
    `options` parameter) whose root is still empty: for a command whose ROOT is optional or not
    its first argument (explain, graph), which completes it with `options.at(root)`."""

    @functools.wraps(func)
    def packed(
        *args: Any,
        ownership: str | None,
        policy: str | None,
        cross_filesystems: bool,
        no_progress: bool,
        color: str,
        quiet: bool,
        verbose: int,
        **kwargs: Any,
    ) -> Any:
        options = ScanConfig("", ownership, policy, cross_filesystems, color, no_progress, quiet, verbose)
        return func(*args, options=options, **kwargs)

    return scan_options(packed)


def root_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """ROOT as the first positional argument, then the scan options and the common ones, given to
    the command as one frozen ScanConfig (its `config` parameter)."""

    @functools.wraps(func)
    def with_root(*args: Any, root: str, options: ScanConfig, **kwargs: Any) -> Any:
        return func(*args, config=options.at(root), **kwargs)

    # no click.Path checks: click reports them as usage errors (2), and these are input errors (3)
    return click.argument("root")(packed_scan_options(with_root))


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """Everything a command needs to read ROOT, parsed from its options."""

    root: str
    ownership: str | None = None
    policy: str | None = None
    cross_filesystems: bool = False
    color: str = "auto"
    no_progress: bool = False
    quiet: bool = False
    verbose: int = 0

    def at(self, root: str) -> ScanConfig:
        """The same options for reading ROOT."""
        return dataclasses.replace(self, root=root)


def note(config: ScanConfig, message: str) -> None:
    """An informational line on stderr, unless --quiet."""
    if not config.quiet:
        click.echo(f"dynmigrate: {message}", err=True)


def scan_root(
    root: str,
    ownership: str | None,
    policy: str | None,
    cross_filesystems: bool,
    color: str,
    no_progress: bool,
    *,
    progress: bool = True,
    quiet: bool = False,
    verbose: int = 0,
) -> ScanResult:
    if not Path(root).is_dir():
        fail(Exit.INPUT, f"ROOT {escape(root)} is not a directory")
    for option, value in (("--ownership", ownership), ("--policy", policy)):
        if value is not None and Path(value).is_dir():
            fail(Exit.INPUT, f"{option} {escape(value)} is a directory, not a file")
    err = make_console(sys.stderr, color)
    started = time.monotonic()
    try:
        with StderrEvents(err, enabled=progress and not no_progress and not quiet, verbose=verbose) as events:
            result = run_scan(
                root, ownership=ownership, policy=policy, cross_filesystems=cross_filesystems, events=events
            )
    except (RootError, InputError) as exc:
        fail(Exit.INPUT, escape(str(exc)))
        raise AssertionError("unreachable") from None
    except (OSError, ValueError) as exc:
        fail(Exit.INPUT, f"cannot read input: {exc}")
        raise AssertionError("unreachable") from None
    if verbose and not quiet:
        findings = len(result.findings)
        click.echo(
            f"dynmigrate: read {escape(root)} in {time.monotonic() - started:.1f}s: {result.report.walked_entries} "
            f"entries, {result.report.unit_count} units, {len(result.report.accounts)} accounts, {findings} findings",
            err=True,
        )
    return result


def scan_config(config: ScanConfig) -> ScanResult:
    c = config
    return scan_root(
        c.root,
        c.ownership,
        c.policy,
        c.cross_filesystems,
        c.color,
        c.no_progress,
        quiet=c.quiet,
        verbose=c.verbose,
    )


def check_output_file(output: str | None) -> None:
    """An output file that cannot be written is an input error (3), found before any work."""
    if output and Path(output).is_dir():
        fail(Exit.INPUT, f"-o {escape(output)} is a directory, not a file")


def write_out(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            fail(Exit.INPUT, f"cannot write {escape(output)}: {exc.strerror}")
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


def parse_probes(values: tuple[str, ...]) -> dict[str, str]:
    """--probe UNIT=COMMAND values (plan, rehearse), by unit."""
    out: dict[str, str] = {}
    for v in values:
        unit, sep, cmd = v.partition("=")
        if not sep or not unit or not cmd:
            fail(Exit.USAGE, f"--probe takes UNIT=COMMAND, not {escape(v)}")
        out[unit] = cmd
    return out
