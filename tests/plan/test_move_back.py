"""Rollback moves a managed directory back out of private/; a nested one (StateDirectory=foo/bar)
leaves no empty private/foo behind, and a parent that holds anything else stays."""

from __future__ import annotations

from pathlib import Path

from plan.scriptlib import Sandbox, q


def _moved(tmp_path: Path, extra: str = "") -> tuple[Sandbox, Path, Path]:
    base = tmp_path / "lib"
    (base / "private/foo/bar").mkdir(parents=True)
    (base / "private/foo/bar/data").write_text("kept", encoding="utf-8")
    (base / "foo").mkdir()
    (base / "foo/bar").symlink_to("../private/foo/bar")
    if extra:
        (base / "private/foo" / extra).mkdir()
    return Sandbox(tmp_path / "sb"), base, base / "foo/bar"


def test_a_nested_directory_moves_back_and_its_empty_private_parent_goes(tmp_path: Path) -> None:
    sb, base, public = _moved(tmp_path)
    proc = sb.run(f"MB={q(base)} MN=foo/bar DRY_RUN=0\nmove_back_one {q(public)}\n")
    assert proc.returncode == 0, proc.stderr
    assert not public.is_symlink()
    assert (public / "data").read_text(encoding="utf-8") == "kept"
    assert sorted(p.name for p in (base / "private").iterdir()) == []


def test_a_private_parent_holding_anything_else_stays(tmp_path: Path) -> None:
    sb, base, public = _moved(tmp_path, extra="baz")
    proc = sb.run(f"MB={q(base)} MN=foo/bar DRY_RUN=0\nmove_back_one {q(public)}\n")
    assert proc.returncode == 0, proc.stderr
    assert (base / "private/foo/baz").is_dir()
    assert (public / "data").exists()
