"""Files under /etc owned by service accounts that hold secrets or carry ACLs."""

from __future__ import annotations

import os
import re

from dynmigrate.collect import references as R
from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.model.common import RelPath
from dynmigrate.model.files import FileKind, PathInfo
from dynmigrate.model.findings import Problem
from dynmigrate.model.snapshot import SecretHint

SECRET_NAME = re.compile(
    r"(\.key$|\.pem$|\.p12$|\.pfx$|\.keytab$|\.psk$|psk|secret|passw|token|credential|htpasswd|private|\.jks$)",
    re.I,
)
# KEY = VALUE, KEY: VALUE or KEY VALUE where KEY contains a secret word. The key is taken whole
# (possessive, never given back) and the word looked for inside it by a lookahead, so that a long
# key or a run of blanks is one pass; the old nested \s*(?:[=:]|\s)\s* was quadratic in blanks.
SECRET_LINE = re.compile(
    r"^\s*+(?:export\s++)?+"
    r"(?=[A-Za-z0-9_.-]*?(?:password|passwd|secret|token|api[_-]?key|requirepass|masterauth|"
    r"private[_-]?key|auth[_-]?key|access[_-]?key))"
    r"([A-Za-z0-9_.-]*+)(?:\s++\S|[=:]\s*+\S)",
    re.I,
)
PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")


ACL_XATTRS = ("system.posix_acl_access", "system.posix_acl_default")


def find_acls(fs: RootFS, entries: tuple[PathInfo, ...]) -> tuple[RelPath, ...]:
    """Which of the service-owned /etc entries carry a POSIX ACL (their mode bits do not tell who
    can read them). Read with getxattr on the entry itself, never following a link."""
    out: list[RelPath] = []
    for e in entries:
        if e.kind not in (FileKind.FILE, FileKind.DIR):
            continue
        try:
            names = os.listxattr(fs.host_path(e.path), follow_symlinks=False)
        except OSError:
            continue  # missing (a manifest-only entry), or a filesystem without xattrs
        if any(n in ACL_XATTRS for n in names):
            out.append(e.path)
    return tuple(sorted(out))


def find_secrets(fs: RootFS, entries: tuple[PathInfo, ...], problems: list[Problem]) -> list[SecretHint]:
    """Files under /etc owned by service accounts that look like secrets: by name or content.

    Only the keyword and the line number are kept; the value never leaves this function.
    """
    out: list[SecretHint] = []
    for info in entries:
        if info.kind is not FileKind.FILE or info.size > R.CONFIG_LIMIT:
            continue
        name = info.path.rsplit("/", 1)[-1]
        m = SECRET_NAME.search(name)
        if m:
            out.append(SecretHint(info.path, 0, f"file name ({m.group(1)})"))
        elif not info.mode & 0o044:
            # readable by its owner only: somebody meant it to be private; never make it world-readable
            out.append(SecretHint(info.path, 0, f"owner-only mode {info.mode_str()}"))
        try:
            text = fs.read_text(info.path, R.CONFIG_LIMIT)
        except RootError:
            continue
        if "\x00" in text:
            continue
        for lineno, line in enumerate(text.split("\n"), 1):
            if line.lstrip().startswith(("#", ";", "//")):
                continue
            if PEM_PRIVATE.search(line):
                out.append(SecretHint(info.path, lineno, "PEM private key"))
                break
            lm = SECRET_LINE.match(line)
            if lm:
                out.append(SecretHint(info.path, lineno, lm.group(1)[:40]))
    return out
