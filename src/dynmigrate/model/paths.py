"""Path arithmetic on root-relative POSIX paths ("/a/b"), shared by every stage. Purely lexical."""

from __future__ import annotations

from dynmigrate.model.common import RelPath


def rel(path: str) -> RelPath:
    """Normalise a path written inside the scanned system to a root-relative "/a/b" string.

    Purely lexical: "." and empty components vanish, ".." pops but never above the root.
    """
    parts: list[str] = []
    for comp in path.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:
                parts.pop()
            continue
        parts.append(comp)
    return RelPath("/" + "/".join(parts))


def parent_of(path: RelPath) -> RelPath:
    if path == "/":
        return path
    head = path.rsplit("/", 1)[0]
    return RelPath(head or "/")


def is_under(path: str, prefix: str) -> bool:
    """True if path equals prefix or lies below it (both root-relative)."""
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")
