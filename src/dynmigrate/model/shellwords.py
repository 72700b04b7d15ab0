"""Split a command line into words like shlex.split(text) (POSIX mode, no comments), in linear time.

shlex builds every token one character at a time (`token += char`), which is quadratic in the
length of a token: a one-megabyte unit line took hours. This splitter gives the same words from
whole runs matched by possessive patterns, so its cost is one pass over the text.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""(?P<blank>[ \t\r\n]++)
      | (?P<plain>[^ \t\r\n'"\\]++)
      | '(?P<single>[^']*+)'
      | "(?P<double>(?:[^"\\]++|\\.)*+)"
      | \\(?P<escaped>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_DOUBLE_ESCAPE = re.compile(r'\\([\\"])')


def split_words(text: str) -> list[str]:
    """The words of text as shlex.split(text) gives them; ValueError on an unclosed quote or escape."""
    words: list[str] = []
    pieces: list[str] | None = None
    pos = 0
    end = len(text)
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError("No closing quotation" if text[pos] in "'\"" else "No escaped character")
        pos = m.end()
        kind = m.lastgroup
        if kind == "blank":
            if pieces is not None:
                words.append("".join(pieces))
                pieces = None
            continue
        if pieces is None:
            pieces = []
        if kind == "double":
            # inside double quotes a backslash escapes only '"' and itself (shlex's POSIX rule)
            pieces.append(_DOUBLE_ESCAPE.sub(r"\1", m.group("double")))
        else:
            pieces.append(m.group(kind or "plain"))
    if pieces is not None:
        words.append("".join(pieces))
    return words
