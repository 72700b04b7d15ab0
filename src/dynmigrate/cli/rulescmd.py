"""dynmigrate rules [RULE]: the catalogue, and one rule's documentation."""

from __future__ import annotations

import click

from dynmigrate.cli.base import Exit, common_options, fail, guarded
from dynmigrate.model.common import escape
from dynmigrate.render.registry import FORMAT_HELP, FORMATS


@click.command("rules")
@click.argument("rule_id", metavar="[RULE]", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(FORMATS["rules"]), default="text", show_default=True, help=FORMAT_HELP
)
@common_options
@guarded
def rules_cmd(rule_id: str | None, fmt: str, color: str, quiet: bool, verbose: int) -> None:
    """List the rule catalogue, or print one rule's documentation (dynmigrate rules DM110)."""
    from dynmigrate.engine.catalogue import find_rule, load_catalogue
    from dynmigrate.render.ruledoc import rule_document, rule_json, rule_list, rules_json

    rules = load_catalogue()
    if rule_id is None:
        if fmt == "json":
            click.echo(rules_json(rules))
        else:
            click.echo("\n".join(rule_list(rules)))
        return
    rule = find_rule(rule_id)
    if rule is None:
        fail(Exit.USAGE, f"no rule {escape(rule_id)} (dynmigrate rules lists them)")
        return
    if fmt == "json":
        click.echo(rule_json(rule))
    else:
        click.echo(rule_document(rule), nl=False)
