"""Small files under ROOT for the readers of collect: what cannot be read becomes a problem."""

from __future__ import annotations

from collections.abc import Callable

from dynmigrate.collect import references as R
from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.files import FileKind
from dynmigrate.model.findings import Problem
from dynmigrate.model.references import Reference


def read_text(fs: RootFS, path: str, problems: list[Problem], limit: int = R.CONFIG_LIMIT) -> str | None:
    """The text of a file under ROOT, or None with a problem when it cannot be read."""
    try:
        return fs.read_text(path, limit)
    except RootError as exc:
        problems.append(Problem(Location(RelPath(path)), exc.reason))
        return None


def parse_each(
    fs: RootFS,
    paths: list[RelPath],
    parse: Callable[[str, RelPath], tuple[list[Reference], list[Problem]]],
    refs: list[Reference],
    problems: list[Problem],
    keep: dict[RelPath, str] | None = None,
) -> None:
    """Parse each of paths that can be read into refs and problems; keep receives the texts."""
    for p in paths:
        text = read_text(fs, p, problems)
        if text is None:
            continue
        if keep is not None:
            keep[p] = text
        found, probs = parse(text, p)
        refs += found
        problems += probs


def small_file(fs: RootFS, path: str) -> bool:
    """Whether path is a regular file within the configuration size limit (False when missing or
    when its path cannot be followed)."""
    try:
        info = fs.stat(path)
    except RootError:
        return False
    return info is not None and info.kind is FileKind.FILE and info.size <= R.CONFIG_LIMIT


def optional_text(fs: RootFS, path: str, problems: list[Problem]) -> str | None:
    """A small text file that may be absent: None when missing, not a regular file, too big or binary."""
    if not small_file(fs, path):
        return None
    text = read_text(fs, path, problems)
    return text if text is not None and "\x00" not in text else None


def optional_file(fs: RootFS, path: str) -> list[RelPath]:
    """[path] when it exists or cannot be looked at (its reader reports why), else []."""
    try:
        info = fs.stat(path)
    except RootError:
        return [RelPath(path)]  # let the reader report the loop
    return [RelPath(path)] if info is not None else []


def dir_files(fs: RootFS, directory: str, problems: list[Problem], suffix: str = "") -> list[RelPath]:
    """The regular files of a directory whose names end with suffix, less hidden files and the
    leftovers of dpkg and ucf; an entry that is neither a file nor a directory is a problem."""
    out: list[RelPath] = []
    try:
        names = list(fs.files_in(directory, suffix))
    except RootError as exc:
        problems.append(Problem(Location(RelPath(directory)), exc.reason))
        return out
    for p in names:
        name = p.rsplit("/", 1)[-1]
        if name.startswith(".") or name.endswith(("~", ".dpkg-old", ".dpkg-dist", ".dpkg-new", ".ucf-dist")):
            continue
        try:
            info = fs.stat(p)
        except RootError as exc:
            problems.append(Problem(Location(p), exc.reason))
            continue
        if info is not None and info.kind is FileKind.FILE:
            out.append(p)
        elif info is not None and info.kind is not FileKind.DIR:
            problems.append(Problem(Location(p), f"{info.kind.value} where a file was expected: not read"))
    return out
