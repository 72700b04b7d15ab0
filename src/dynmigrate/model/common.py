"""Locations, names and the small closed sets used everywhere."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import NewType

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
    """What a finding does to its account's verdict."""

    BLOCKS = "blocks"
    NEEDS_MANUAL = "needs-manual-step"
    INFORMS = "informs"


class Verdict(StrEnum):
    CONVERTIBLE = "convertible"
    NEEDS_MANUAL = "needs-manual-steps"
    BLOCKED = "blocked"
    NOT_SERVICE = "not-a-service-account"
    ORPHAN = "orphan"
    NEVER = "never-migrated"


def escape_path(path: str) -> str:
    """Printable form of a path that may hold newlines, control bytes or undecodable bytes."""
    out: list[str] = []
    for ch in path:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape'd raw byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{code:02x}"))
        else:
            out.append(ch)
    return "".join(out)


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


def mask_secrets(text: str) -> str:
    """TEXT with the values of secret-looking assignments, options and URL passwords replaced by
    <masked>: the key and the place stay, the value goes (Environment=DB_PASSWORD=..., --password=...,
    --api-token ..., PGPASSWORD=... in a cron line, SetCredential=ID:..., https://user:...@host)."""
    text = _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _SECRET_OPTION.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _SET_CREDENTIAL.sub(lambda m: f"{m.group(1)}:{MASK}", text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
