"""Locations, names and the small closed sets used everywhere."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NewType, overload

# Root-relative POSIX path, always starting with "/" ("/etc/passwd"). Raw bytes that are not
# UTF-8 are kept losslessly with the surrogateescape error handler.
RelPath = NewType("RelPath", str)
UserName = NewType("UserName", str)
GroupName = NewType("GroupName", str)
UnitName = NewType("UnitName", str)
RuleId = NewType("RuleId", str)


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """Where a fact came from: a file under ROOT and, when it is line-based, a line number."""

    file: RelPath
    line: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Effect(StrEnum):
    """What a finding does to its account's verdict.

    BLOCKS: it cannot work under DynamicUser, for the reason the finding proves (verdict blocked).
    NEEDS_MANUAL: a person must change something the plan cannot; the plan says exactly what
    (verdict needs-manual-steps). ACKNOWLEDGE: the plan handles it itself, and stage 2 asks the
    operator to acknowledge it with --confirm (the verdict stays convertible). INFORMS: evidence only."""

    BLOCKS = "blocks"
    NEEDS_MANUAL = "needs-manual-step"
    ACKNOWLEDGE = "acknowledge"
    INFORMS = "informs"


class Confidence(StrEnum):
    """How sure a link between a unit and an account is, best first."""

    CERTAIN = "certain"
    LIKELY = "likely"
    POSSIBLE = "possible"


# rank of a confidence, best first (0); keyed by value so that a plain string from a saved report ranks too
CONFIDENCE_ORDER: dict[str, int] = {c.value: i for i, c in enumerate(Confidence)}


# Strongest first: the worst effect of an account's findings decides its verdict.
EFFECT_RANK = {Effect.BLOCKS: 0, Effect.NEEDS_MANUAL: 1, Effect.ACKNOWLEDGE: 2, Effect.INFORMS: 3}


class Verdict(StrEnum):
    CONVERTIBLE = "convertible"
    NEEDS_MANUAL = "needs-manual-steps"
    BLOCKED = "blocked"
    NOT_SERVICE = "not-a-service-account"
    ORPHAN = "orphan"
    NEVER = "never-migrated"


# Characters that change what a terminal shows or where text seems to go: C0 controls, DEL, C1
# controls (0x9b is a one-byte CSI), bidi embeddings, overrides, isolates and marks, zero-width
# characters and the Unicode line/paragraph separators.
_INVISIBLE = frozenset(
    [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x061C, *range(0x200B, 0x2010), *range(0x2028, 0x202F)]
).union(range(0x2060, 0x206A), [0xFEFF])
_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


@overload
def escape(value: str, *, lines: bool = False) -> str: ...
@overload
def escape(value: dict[Any, Any], *, lines: bool = False) -> dict[str, Any]: ...
@overload
def escape(value: list[Any] | tuple[Any, ...], *, lines: bool = False) -> list[Any]: ...
@overload
def escape(value: object, *, lines: bool = False) -> object: ...
def escape(value: object, *, lines: bool = False) -> object:
    """Untrusted text made inert and visible: every invisible or terminal-controlling character as
    \\xHH or \\uHHHH, a raw (surrogate-escaped) byte as \\xHH, a backslash doubled. `lines` is for
    whole files (effective units, diffs): newlines, tabs and backslashes stay, so that they read as
    the files they copy. Dicts, lists and tuples are escaped
    throughout (keys too), other values are returned as they are."""
    if isinstance(value, dict):
        return {escape(str(k)): escape(v, lines=lines) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape(v, lines=lines) for v in value]
    if not isinstance(value, str):
        return value
    if value.isascii() and value.isprintable() and (lines or "\\" not in value):
        return value  # printable ASCII holds no invisible character: only a backslash needs work
    return (_TO_ESCAPE_IN_LINES if lines else _TO_ESCAPE).sub(_escaped, value)


def _escaped(m: re.Match[str]) -> str:
    ch = m.group(0)
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape'd raw byte
        return f"\\x{code - 0xDC00:02x}"
    if ch == "\\":
        return "\\\\"
    return _SHORT.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


# One pass of a compiled pattern instead of a Python loop per character: most text needs nothing.
_SURROGATES = "\udc80-\udcff"
_TO_ESCAPE = re.compile(f"[\\\\{_SURROGATES}{''.join(re.escape(chr(c)) for c in sorted(_INVISIBLE))}]")
_TO_ESCAPE_IN_LINES = re.compile(
    f"[{_SURROGATES}{''.join(re.escape(chr(c)) for c in sorted(_INVISIBLE - {0x0A, 0x09}))}]"
)


# Names that hold secrets: a part of the name (split at _ . -) ending in one of these words
# (DB_PASSWORD, PGPASSWORD, API_TOKEN, MY_SECRET, SSH_KEY, DB_PASS, --api-token, --password).
_SECRET_WORD = r"(?:password|passwd|pass|pwd|token|secret|key)"
_SECRET_ASSIGNMENT = re.compile(
    r"(?<![A-Za-z0-9_.-])(-{0,2}[A-Za-z0-9_.-]*?" + _SECRET_WORD + r")=(\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'\n]+)",
    re.IGNORECASE,
)
_SECRET_OPTION = re.compile(
    r"(?<![A-Za-z0-9_.-])(--?[A-Za-z0-9-]*?" + _SECRET_WORD + r")([ \t]+)([^\s\"'-][^\s\"']*)", re.IGNORECASE
)
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+):([^/\s@]+)@")
_SET_CREDENTIAL = re.compile(r"(SetCredential(?:Encrypted)?=[^:\s]*):(.*)")  # ID:VALUE (LoadCredential= is ID:PATH)
MASK = "<masked>"
# Every pattern above needs one of these: text without any is returned as it is, without four passes.
_MAYBE_SECRET = re.compile(_SECRET_WORD + r"|://|SetCredential", re.IGNORECASE)


_SECRET_HINTS = ("pass", "pwd", "token", "secret", "key", "://", "setcredential")
_SECRET_HINT_IN_LOWER = re.compile("|".join(map(re.escape, _SECRET_HINTS)))  # no IGNORECASE: faster


def _may_hold_secret(text: str) -> bool:
    """_MAYBE_SECRET.search for ASCII text (most of a report) as a case-sensitive search of its
    lower(), which is exactly ASCII case folding there. Other text keeps _MAYBE_SECRET, whose
    IGNORECASE also folds non-ASCII look-alikes (U+017F for s, U+212A for k)."""
    if text.isascii():
        return _SECRET_HINT_IN_LOWER.search(text.lower()) is not None
    return _MAYBE_SECRET.search(text) is not None


@overload
def mask_secrets(text: str) -> str: ...
@overload
def mask_secrets(text: dict[Any, Any]) -> dict[Any, Any]: ...
@overload
def mask_secrets(text: object) -> object: ...
def mask_secrets(text: object) -> object:
    """TEXT with the values of secret-looking assignments, options and URL passwords replaced by
    <masked>: the key and the place stay, the value goes (Environment=DB_PASSWORD=..., --password=...,
    --api-token ..., PGPASSWORD=... in a cron line, SetCredential=ID:..., https://user:...@host).
    Dicts, lists and tuples are masked throughout."""
    if isinstance(text, dict):
        return {k: mask_secrets(v) for k, v in text.items()}
    if isinstance(text, list | tuple):
        return [mask_secrets(v) for v in text]
    if not isinstance(text, str) or not _may_hold_secret(text):
        return text
    text = _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _SECRET_OPTION.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _SET_CREDENTIAL.sub(lambda m: f"{m.group(1)}:{MASK}", text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)


def _plain(text: str) -> bool:
    """True when escape(mask_secrets(text)) is text itself: escape's fast case (printable ASCII
    without a backslash) and mask_secrets' (no secret hint)."""
    return text.isascii() and text.isprintable() and "\\" not in text and not _may_hold_secret(text)


def inert(value: object) -> Any:
    """escape(mask_secrets(value)) in one pass over a report's data (a million-entry tree makes
    hundreds of thousands of strings): secret values masked, then every string and key escaped.
    A plain str (not a subclass such as a StrEnum, which stays what it is) that needs neither is
    returned at once (_plain)."""
    if type(value) is str and _plain(value):
        return value
    if isinstance(value, str):
        return escape(mask_secrets(value))
    if isinstance(value, dict):
        return {k if type(k) is str and _plain(k) else escape(str(k)): inert(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [inert(v) for v in value]
    return value
