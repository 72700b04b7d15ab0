"""RootFS remembers the directories it resolved (by path, with their inode) for one scan.

A directory that changes after it was remembered must never lead a read or a listing out of
ROOT: every open goes through a directory fd that is checked against the remembered inode, and a
mismatch makes the reader forget what it knew and resolve again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dynmigrate.collect.rootfs import RootError, RootFS


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    (root / "etc/app/conf.d").mkdir(parents=True)
    (root / "etc/app/conf.d/main.conf").write_text("inside\n", encoding="utf-8")
    outside = tmp_path / "outside"
    (outside / "app/conf.d").mkdir(parents=True)
    (outside / "app/conf.d/main.conf").write_text("secret\n", encoding="utf-8")
    (outside / "app/conf.d/only-outside.conf").write_text("secret\n", encoding="utf-8")
    return root, outside


def test_resolve_stats_a_known_directory_once(trees: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = trees
    fs = RootFS(root)
    seen: list[str] = []
    real_lstat = os.lstat

    def counting(path: str) -> os.stat_result:
        seen.append(path)
        return real_lstat(path)

    monkeypatch.setattr(os, "lstat", counting)
    assert fs.resolve("/etc/app/conf.d/main.conf") == "/etc/app/conf.d/main.conf"
    first = list(seen)
    seen.clear()
    assert fs.resolve("/etc/app/conf.d/main.conf") == "/etc/app/conf.d/main.conf"
    assert first == [f"{root}/etc", f"{root}/etc/app", f"{root}/etc/app/conf.d", f"{root}/etc/app/conf.d/main.conf"]
    assert seen == [f"{root}/etc/app/conf.d/main.conf"]


def test_top_directory_swapped_for_a_symlink_out_of_root(trees: tuple[Path, Path]) -> None:
    """/etc becomes a symlink to a host directory after the reader resolved below it: the kernel
    would follow it on a plain open of ROOT/etc/app/conf.d/main.conf (O_NOFOLLOW guards only the
    last component); the inode check notices, and the new symlink resolves inside ROOT."""
    root, outside = trees
    fs = RootFS(root)
    assert fs.read_text("/etc/app/conf.d/main.conf") == "inside\n"
    assert fs.listdir("/etc/app/conf.d") == ["main.conf"]
    (root / "etc").rename(root / "etc.old")
    (root / "etc").symlink_to(outside.parent)  # ROOT/etc/app/... now means HOST/outside/app/... to the kernel
    (outside.parent / "app").symlink_to(outside / "app")
    with pytest.raises(RootError) as exc:
        fs.read_text("/etc/app/conf.d/main.conf")
    assert exc.value.reason == "no such file"
    with pytest.raises(RootError) as exc:
        fs.listdir("/etc/app/conf.d")
    assert exc.value.reason == "no such directory"


def test_directory_swapped_for_a_symlink_inside_root(trees: tuple[Path, Path]) -> None:
    """The scanned system's own view after the change: the symlink resolves inside ROOT."""
    root, _ = trees
    (root / "srv/app/conf.d").mkdir(parents=True)
    (root / "srv/app/conf.d/main.conf").write_text("moved\n", encoding="utf-8")
    (root / "srv/app/conf.d/new.conf").write_text("new\n", encoding="utf-8")
    fs = RootFS(root)
    assert fs.read_text("/etc/app/conf.d/main.conf") == "inside\n"
    (root / "etc/app").rename(root / "etc/app.old")
    (root / "etc/app").symlink_to("/srv/app")
    assert fs.read_text("/etc/app/conf.d/main.conf") == "moved\n"
    assert fs.listdir("/etc/app/conf.d") == ["main.conf", "new.conf"]


def test_directory_replaced_by_another_directory(trees: tuple[Path, Path]) -> None:
    root, _ = trees
    fs = RootFS(root)
    assert fs.listdir("/etc/app/conf.d") == ["main.conf"]
    (root / "etc/app/conf.d").rename(root / "etc/app/conf.d.old")
    (root / "etc/app/conf.d").mkdir()
    (root / "etc/app/conf.d/other.conf").write_text("other\n", encoding="utf-8")
    assert fs.listdir("/etc/app/conf.d") == ["other.conf"]
    assert fs.read_text("/etc/app/conf.d/other.conf") == "other\n"
    with pytest.raises(RootError) as exc:
        fs.read_text("/etc/app/conf.d/main.conf")
    assert exc.value.reason == "no such file"


def test_directory_removed(trees: tuple[Path, Path]) -> None:
    root, _ = trees
    fs = RootFS(root)
    assert fs.listdir("/etc/app/conf.d") == ["main.conf"]
    (root / "etc/app/conf.d/main.conf").unlink()
    (root / "etc/app/conf.d").rmdir()
    with pytest.raises(RootError) as exc:
        fs.listdir("/etc/app/conf.d")
    assert exc.value.reason == "no such directory"


def test_known_directory_paths_resolve_as_before(trees: tuple[Path, Path]) -> None:
    """The shortcut for a path whose directory is known gives what the component walk gives."""
    root, _ = trees
    (root / "etc/app/link").symlink_to("conf.d")
    fs = RootFS(root)
    fs.resolve("/etc/app/conf.d/main.conf")
    expected = {
        "etc": ("/etc", "/etc"),
        "app": ("/app", "/app"),
        "/etc": ("/etc", "/etc"),
        "/etc/app/link": ("/etc/app/conf.d", "/etc/app/link"),
        "/etc/app/link/main.conf": ("/etc/app/conf.d/main.conf", "/etc/app/conf.d/main.conf"),
        "/etc/app/missing/x": ("/etc/app/missing/x", "/etc/app/missing/x"),
        "/etc/./app": ("/etc/app", "/etc/app"),
        "/etc/app/conf.d/../link": ("/etc/app/conf.d", "/etc/app/link"),
    }
    got = {p: (fs.resolve(p), fs.resolve(p, follow_last=False)) for p in expected}
    assert got == expected
