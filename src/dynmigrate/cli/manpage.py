"""dynmigrate.1 generated from the click commands: `python -m dynmigrate.cli.manpage > man/dynmigrate.1`.

A small generator of our own (no dependency): the page lists every command with its usage, its
help text and every option, so it cannot drift from the code (a test compares it with man/).
"""

from __future__ import annotations

import sys

import click

from dynmigrate import __version__
from dynmigrate.cli.base import Exit
from dynmigrate.cli.main import main

EXIT_MEANING = {
    Exit.OK: "success (a scan that found blocked accounts still succeeded, unless --fail-on)",
    Exit.FINDINGS: "scan --fail-on reached; verify found drift",
    Exit.USAGE: "usage error: bad option, unknown account, unit or rule, nothing selected",
    Exit.INPUT: "input cannot be read: ROOT is not a directory, a manifest, report or baseline is broken, "
    "an output cannot be written",
    Exit.REFUSED: "plan: a selected account is blocked and --force was not given",
    Exit.INTERNAL: "internal error (a bug): one line on stderr, never a traceback",
}


def roff(text: str) -> str:
    """Escape text for roff: backslashes, hyphens in words that look like options, leading dots."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in out.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.strip().split("\n\n") if p.strip()]


def _command(name: str, cmd: click.Command) -> list[str]:
    parent = main.make_context("dynmigrate", [name], resilient_parsing=True)  # the group's settings (-h)
    ctx = click.Context(cmd, info_name=name, parent=parent)
    usage = " ".join(["dynmigrate", name, *cmd.collect_usage_pieces(ctx)])
    out = [f".SS {roff('dynmigrate ' + name)}", f".B {roff(usage)}", ".PP"]
    for para in _paragraphs(cmd.help or ""):
        out += [roff(para), ".PP"]
    for param in cmd.get_params(ctx):
        if not isinstance(param, click.Option) or param.hidden:
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        out += [".TP", f".B {roff(names)}", roff(" ".join(help_text.split())) or "\\&"]
    return out


def render_manpage() -> str:
    out = [
        f'.TH DYNMIGRATE 1 "" "dynmigrate {__version__}" "User Commands"',
        ".SH NAME",
        "dynmigrate \\- move services from static system accounts to systemd DynamicUser=yes, safely",
        ".SH SYNOPSIS",
        ".B dynmigrate",
        "\\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIROOT\\fR] ...",
        ".SH DESCRIPTION",
    ]
    for para in _paragraphs(main.help or ""):
        out += [roff(para), ".PP"]
    out += [
        roff(
            "Every command takes ROOT (the directory to read: / on a live host, a mounted image, or a sample) "
            "as its first argument, and --color, -q/--quiet and -v/--verbose."
        ),
        ".SH COMMANDS",
    ]
    for name in sorted(main.commands):
        out += _command(name, main.commands[name])
    out += [".SH EXIT STATUS"]
    for code, meaning in EXIT_MEANING.items():
        out += [".TP", f".B {int(code)}", roff(meaning)]
    out += [
        ".SH ENVIRONMENT",
        ".TP",
        ".B NO_COLOR",
        roff("When set, no colour is drawn, whatever --color says."),
        ".SH FILES",
        ".TP",
        ".I /etc/dynmigrate.ini",
        roff("Site policy inside ROOT: [never], [walk], [ignore] (health probes only from --policy)."),
        ".SH SHELL COMPLETION",
        roff('bash: eval "$(_DYNMIGRATE_COMPLETE=bash_source dynmigrate)"; zsh: zsh_source; fish: fish_source.'),
        ".SH SEE ALSO",
        "\\fBsystemd.exec\\fR(5), \\fBsystemd-analyze\\fR(1), \\fBsystemd-sysusers\\fR(8)",
    ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_manpage())
