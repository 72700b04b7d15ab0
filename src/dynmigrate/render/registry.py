"""Output formats by name; the CLI's --format choices come from here."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dynmigrate.engine.catalogue import RuleDoc
from dynmigrate.model.report import Report
from dynmigrate.render.jsonout import render_json
from dynmigrate.render.markdown import render_markdown
from dynmigrate.render.sarif import render_sarif

# A text format renders a report to a string, given the rule documentation (rule_docs of the loaded
# catalogue, read by the caller: rendering reads no file). "table" is special: it draws on a rich Console.
TextFormat = Callable[[Report, Sequence[RuleDoc]], str]


def _json(report: Report, _rules: Sequence[RuleDoc]) -> str:
    return render_json(report)


def _markdown(report: Report, _rules: Sequence[RuleDoc]) -> str:
    return render_markdown(report)


TEXT_FORMATS: dict[str, TextFormat] = {
    "json": _json,
    "markdown": _markdown,
    "sarif": render_sarif,
}
SCAN_FORMATS = ("table", *TEXT_FORMATS)

# Every command's --format choices, in one place (the first is not necessarily the default).
FORMATS: dict[str, tuple[str, ...]] = {
    "scan": SCAN_FORMATS,
    "explain": ("text", "json"),
    "graph": ("json", "dot"),
    "rules": ("text", "json"),
    "verify": ("text", "json"),
    "rehearse": ("table", "json", "markdown"),  # dynmigrate.rehearse.render.REHEARSAL_FORMATS
}
FORMAT_HELP = "Output format."
