"""Two consoles: stdout for the report, stderr for progress and warnings."""

from __future__ import annotations

import os
import sys
from typing import IO

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn

from dynmigrate.model.common import escape

PIPE_WIDTH = 140  # tables written to a file or pipe are not squeezed into 80 columns


def make_console(file: IO[str], color: str) -> Console:
    no_color = bool(os.environ.get("NO_COLOR"))
    tty = hasattr(file, "isatty") and file.isatty()
    width = None if tty else PIPE_WIDTH
    if color == "never" or no_color:
        return Console(file=file, no_color=True, highlight=False, color_system=None, width=width)
    if color == "always":
        return Console(file=file, force_terminal=True, highlight=False, width=width)
    return Console(file=file, highlight=False, width=width)


class StderrEvents:
    """Progress for collect, drawn on stderr only when stderr is a terminal."""

    def __init__(self, console: Console, enabled: bool, verbose: int = 0) -> None:
        self.console = console
        self.enabled = enabled and console.is_terminal and sys.stderr.isatty()
        self.verbose = verbose  # -v: one line per stage on stderr, terminal or not
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> StderrEvents:
        if self.enabled:
            self.progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), console=self.console, transient=True
            )
            self.progress.start()
            self.task = self.progress.add_task("reading ROOT")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def stage(self, name: str) -> None:
        if self.verbose:
            print(f"dynmigrate: reading {escape(name)}", file=sys.stderr, flush=True)
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=f"reading {name}")

    def walk_progress(self, entries: int, current: str) -> None:
        if self.progress is not None and self.task is not None:
            shown = escape(current)
            if len(shown) > 60:
                shown = "..." + shown[-57:]
            self.progress.update(self.task, description=f"walking: {entries} entries, {shown}")
