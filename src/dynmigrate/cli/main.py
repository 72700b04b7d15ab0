"""The dynmigrate command line: the group and its commands.

Each command lives in its own module and imports only cli.base (and cli.consoles); this module
imports them and adds them to the group, so there is no import cycle (a contract in
pyproject.toml keeps it so). Adding a command is one module and one line here.
"""

from __future__ import annotations

import click

from dynmigrate import __version__
from dynmigrate.cli.plancmd import plan, verify
from dynmigrate.cli.rehearsecmd import rehearse
from dynmigrate.cli.reviewcmd import explain, graph
from dynmigrate.cli.rulescmd import rules_cmd
from dynmigrate.cli.scancmd import scan


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dynmigrate")
def main() -> None:
    """Move services from static system accounts to systemd DynamicUser=yes, safely.

    Scanning is read-only: nothing under ROOT is ever written.
    """


for _command in (scan, explain, graph, rules_cmd, plan, verify, rehearse):
    main.add_command(_command)
