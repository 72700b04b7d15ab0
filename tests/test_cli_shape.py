"""One CLI shape: ROOT first, --color/-q/-v everywhere, --format from the registry, a current man page."""

from __future__ import annotations

import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from conftest import REPO, Golden
from dynmigrate.cli.main import main
from dynmigrate.cli.manpage import render_manpage
from dynmigrate.render.registry import FORMATS

COMMANDS = sorted(main.commands)


def options(cmd: click.Command) -> dict[str, click.Option]:
    return {name: p for p in cmd.params if isinstance(p, click.Option) for name in p.opts}


def test_commands_are_the_known_ones() -> None:
    assert set(COMMANDS) >= {"scan", "explain", "graph", "plan", "verify", "rules"}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_color_quiet_verbose(name: str) -> None:
    opts = options(main.commands[name])
    assert {"--color", "-q", "--quiet", "-v", "--verbose"} <= set(opts)
    color = opts["--color"].type
    assert isinstance(color, click.Choice)
    assert list(color.choices) == ["auto", "always", "never"]


@pytest.mark.parametrize("name", COMMANDS)
def test_format_choices_come_from_the_registry(name: str) -> None:
    fmt = options(main.commands[name]).get("--format")
    if fmt is None:
        assert name not in FORMATS
        return
    assert isinstance(fmt.type, click.Choice)
    assert tuple(fmt.type.choices) == FORMATS[name]


@pytest.mark.parametrize("name", COMMANDS)
def test_root_is_the_first_positional_argument(name: str) -> None:
    args = [p for p in main.commands[name].params if isinstance(p, click.Argument)]
    if name == "rules":
        assert [a.name for a in args] == ["rule_id"]
        return
    assert args[0].name == "root"


def test_verify_root_alias_is_deprecated(tmp_path: Path) -> None:
    runner = CliRunner()
    new = runner.invoke(main, ["verify", str(tmp_path)])
    old = runner.invoke(main, ["verify", "--root", str(tmp_path)])
    message = f"dynmigrate: no migrated accounts recorded under {tmp_path}/var/lib/dynmigrate/migrated\n"
    assert (new.exit_code, new.stderr) == (3, message)
    deprecation = "dynmigrate: --root is deprecated: give ROOT as the argument (dynmigrate verify ROOT)\n"
    assert (old.exit_code, old.stderr) == (3, deprecation + message)
    both = runner.invoke(main, ["verify", "/", "--root", str(tmp_path)])
    assert (both.exit_code, both.stderr) == (
        2,
        "dynmigrate: give ROOT once: as the argument (--root is a deprecated alias)\n",
    )
    assert "--root" not in runner.invoke(main, ["verify", "--help"]).stdout


def test_quiet_and_verbose(in_repo: Path, tmp_path: Path) -> None:
    args = [
        "plan",
        "samples/debian-web/root",
        "--ownership",
        "samples/debian-web/ownership.tsv",
        "--account",
        "shortlink",
    ]
    runner = CliRunner()
    quiet = runner.invoke(main, [*args, "-o", str(tmp_path / "a"), "-q", "--no-security"])
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    verbose = runner.invoke(main, [*args, "-o", str(tmp_path / "b"), "-v", "--no-security"])
    assert verbose.exit_code == 0
    lines = verbose.stderr.splitlines()
    assert "dynmigrate: reading accounts" in lines
    assert any(line.startswith("dynmigrate: read samples/debian-web/root in ") for line in lines)
    assert f"dynmigrate: wrote {tmp_path / 'b' / 'REPORT.md'}" in lines
    assert verbose.stdout.startswith(f"wrote {len([x for x in lines if x.startswith('dynmigrate: wrote ')])} files")


def test_man_page_is_current_and_installed(golden: Golden) -> None:
    golden.check(REPO / "man" / "dynmigrate.1", render_manpage())
    page = render_manpage()
    for name in COMMANDS:
        assert f".SS dynmigrate {name}\n" in page
        for opt in options(main.commands[name]):
            if not options(main.commands[name])[opt].hidden:
                assert opt.replace("-", "\\-") in page, (name, opt)
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["hatch"]["build"]["targets"][
        "wheel"
    ]
    assert wheel["shared-data"] == {"man/dynmigrate.1": "share/man/man1/dynmigrate.1"}


def test_shell_completion_is_documented_and_works() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert 'eval "$(_DYNMIGRATE_COMPLETE=bash_source dynmigrate)"' in readme
    result = CliRunner().invoke(main, [], env={"_DYNMIGRATE_COMPLETE": "bash_source"}, prog_name="dynmigrate")
    assert result.exit_code == 0
    assert "_dynmigrate_completion()" in result.stdout
