"""Build small roots in a temporary directory for tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Link:
    target: str


@dataclass(frozen=True)
class Dir:
    pass


Tree = dict[str, "str | bytes | Link | Dir"]

PASSWD = "root:x:0:0:root:/root:/bin/bash\nfoo:x:120:120:Foo:/nonexistent:/usr/sbin/nologin\n"
GROUP = "root:x:0:\nfoo:x:120:\n"


def build(root: Path, tree: Tree) -> Path:
    for rel, content in sorted(tree.items()):
        path = root / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Link):
            os.symlink(content.target, path)
        elif isinstance(content, Dir):
            path.mkdir(exist_ok=True)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root
