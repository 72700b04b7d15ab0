"""systemd unit syntax that every stage needs, with no disk access: Exec*= command lines,
Environment= expansion and writing unit files (systemd.syntax(7), systemd.service(5))."""

from __future__ import annotations

import re

from dynmigrate.model.shellwords import split_words
from dynmigrate.model.units import Unit

EXEC_PREFIX = re.compile(r"^[@\-:+!|]+")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def unit_environment(unit: Unit) -> dict[str, str]:
    """Environment= assignments of a unit (EnvironmentFile= is not read: it may hold secrets)."""
    env: dict[str, str] = {}
    for d in unit.values("Service", "Environment"):
        try:
            words = split_words(d.value)
        except ValueError:
            words = d.value.split()
        for w in words:
            k, sep, v = w.partition("=")
            if sep and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
                env[k] = v
    return env


def expand_env(value: str, env: dict[str, str]) -> str:
    """systemd's $VAR / ${VAR} substitution in Exec lines, for the variables the unit sets."""
    if "$" not in value or not env:
        return value
    return ENV_REF.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), value)


def exec_argv(value: str) -> list[str]:
    """The argv of an Exec*= value, without systemd's prefixes (@-:+!|)."""
    stripped = EXEC_PREFIX.sub("", value.strip())
    try:
        argv = split_words(stripped)
    except ValueError:
        argv = stripped.split()
    return argv


def exec_prefix(value: str) -> str:
    m = EXEC_PREFIX.match(value.strip())
    return m.group(0) if m else ""


def ends_with_unescaped_backslash(line: str) -> bool:
    if not line.endswith("\\"):
        return False  # most lines: no copy of the line to count backslashes
    n = len(line) - len(line.rstrip("\\"))
    return n % 2 == 1


def render_unit(sections: list[tuple[str, list[tuple[str, str]]]], header: str = "") -> str:
    """Write a unit file or drop-in. parse_unit_text(render_unit(x)) gives x back.

    Values must not contain newlines (a value that needs several lines is several directives).
    """
    out: list[str] = []
    if header:
        out.extend(f"# {line}" if line else "#" for line in header.split("\n"))
        out.append("")
    for i, (name, items) in enumerate(sections):
        if i:
            out.append("")
        out.append(f"[{name}]")
        for key, value in items:
            if "\n" in value or "\n" in key:
                raise ValueError(f"{key}: newline in a unit value")
            if value.endswith("\\") and ends_with_unescaped_backslash(value):
                raise ValueError(f"{key}: value ends in a backslash")
            out.append(f"{key}={value}")
    return "\n".join(out) + "\n"
