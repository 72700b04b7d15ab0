"""Output formats by name; the CLI's --format choices come from here."""

from __future__ import annotations

from collections.abc import Callable

from dynmigrate.model.report import Report
from dynmigrate.render.jsonout import render_json
from dynmigrate.render.markdown import render_markdown
from dynmigrate.render.sarif import render_sarif

# Text formats render to a string. "table" is special: it draws on a rich Console.
TEXT_FORMATS: dict[str, Callable[[Report], str]] = {
    "json": render_json,
    "markdown": render_markdown,
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
