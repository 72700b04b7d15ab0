"""Counters that the robustness tests print at the end of the run (pytest_terminal_summary)."""

from __future__ import annotations

from collections import Counter

COUNTS: Counter[str] = Counter()


def count(name: str, n: int = 1) -> None:
    COUNTS[name] += n
