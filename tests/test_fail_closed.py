"""Bad input fails closed with the documented exit codes (README "Exit codes"), in the user's terms,
and `plan --replace` never deletes what is not a dynmigrate plan (issue 10, items 10 and 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynmigrate.cli.main import main
from treebuilder import GROUP, PASSWD, Tree, build

UNIT = "[Service]\nUser=foo\nExecStart=/usr/bin/foo\n"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def tiny_root(tmp_path: Path, extra: Tree | None = None) -> Path:
    tree: Tree = {"etc/passwd": PASSWD, "etc/group": GROUP, "etc/systemd/system/foo.service": UNIT}
    return build(tmp_path / "root", {**tree, **(extra or {})})


def plan(root: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return run("plan", str(root), "--account", "foo", "-o", str(out), "--no-progress", "--no-security", *extra)


def snapshot_tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# -- item 10: --replace replaces only a plan folder -----------------------------------------------


def test_replace_refuses_a_folder_with_a_users_files(tmp_path: Path) -> None:
    root = tiny_root(tmp_path)
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("my notes\n")
    code, _, err = plan(root, out, "--replace")
    assert code == 3, err
    assert "not a dynmigrate plan folder" in err
    assert snapshot_tree(out) == {"todo.txt": b"my notes\n"}


def test_replace_refuses_a_plan_with_an_added_file(tmp_path: Path) -> None:
    root = tiny_root(tmp_path)
    out = tmp_path / "plan"
    assert plan(root, out)[0] == 0
    (out / "units" / "review-notes.txt").write_text("approved by Kim\n")
    before = snapshot_tree(out)
    code, _, err = plan(root, out, "--replace")
    assert code == 3, err
    assert "units/review-notes.txt" in err
    assert snapshot_tree(out) == before


def test_replace_refuses_a_plan_with_an_edited_file(tmp_path: Path) -> None:
    root = tiny_root(tmp_path)
    out = tmp_path / "plan"
    assert plan(root, out)[0] == 0
    with (out / "REPORT.md").open("a") as fh:
        fh.write("\nReviewer: looks fine, but check the probe.\n")
    before = snapshot_tree(out)
    code, _, err = plan(root, out, "--replace")
    assert code == 3, err
    assert "REPORT.md changed since it was written" in err
    assert snapshot_tree(out) == before


def test_replace_replaces_an_untouched_plan(tmp_path: Path) -> None:
    root = tiny_root(tmp_path)
    out = tmp_path / "plan"
    assert plan(root, out)[0] == 0
    first = snapshot_tree(out)
    code, _, err = plan(root, out, "--replace")
    assert code == 0, err
    assert snapshot_tree(out).keys() == first.keys()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan", "root"]  # no temporary folder left


def test_without_replace_an_existing_plan_is_refused(tmp_path: Path) -> None:
    root = tiny_root(tmp_path)
    out = tmp_path / "plan"
    assert plan(root, out)[0] == 0
    code, _, err = plan(root, out)
    assert code == 3, err
    assert "--replace" in err


# -- item 11: fail closed with the documented exit codes -----------------------------------------


def test_missing_policy_file_is_an_input_error(tmp_path: Path) -> None:
    code, _, err = run("scan", str(tiny_root(tmp_path)), "--policy", str(tmp_path / "nope.ini"))
    assert code == 3, err
    assert "nope.ini" in err


def test_unparsable_policy_file_is_an_input_error(tmp_path: Path) -> None:
    policy = tmp_path / "site.ini"
    policy.write_text("[never]\naccounts = foo\nthis is not ini\n")
    code, _, err = run("scan", str(tiny_root(tmp_path)), "--policy", str(policy))
    assert code == 3, err
    assert "site.ini:3" in err


def test_unparsable_policy_inside_root_is_an_input_error(tmp_path: Path) -> None:
    root = tiny_root(tmp_path, {"etc/dynmigrate.ini": "[never\naccounts = foo\n"})
    code, _, err = run("scan", str(root))
    assert code == 3, err
    assert "/etc/dynmigrate.ini:1" in err


@pytest.mark.parametrize(
    "tree",
    [{}, {"etc/passwd": "this is not a passwd file\n\x01\x02\n"}, {"etc/passwd": ""}],
    ids=["empty directory", "garbage passwd", "empty passwd"],
)
def test_not_a_linux_root(tmp_path: Path, tree: Tree) -> None:
    root = build(tmp_path / "root", tree)
    root.mkdir(exist_ok=True)
    code, out, err = run("scan", str(root), "--fail-on", "blocked")
    assert code == 3, out + err
    assert f"{root} is not a readable Linux root" in err
    assert "/etc/passwd" in err


def test_file_as_root_is_an_input_error(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x\n")
    for args in (
        ["scan", str(f)],
        ["plan", str(f), "--account", "foo", "-o", str(tmp_path / "p")],
        ["verify", "--root", str(f)],
    ):
        code, _, err = run(*args)
        assert code == 3, (args, err)
        assert "is not a directory" in err


def test_directory_as_ownership_is_an_input_error(tmp_path: Path) -> None:
    code, _, err = run("scan", str(tiny_root(tmp_path)), "--ownership", str(tmp_path))
    assert code == 3, err
    assert "is a directory" in err


@pytest.mark.parametrize("command", ["scan", "graph"])
def test_directory_as_report_output_is_an_input_error(tmp_path: Path, command: str) -> None:
    code, _, err = run(command, str(tiny_root(tmp_path)), "-o", str(tmp_path))
    assert code == 3, err
    assert "is a directory" in err


def test_file_as_plan_output_is_an_input_error(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x\n")
    code, _, err = plan(tiny_root(tmp_path), f)
    assert code == 3, err
    assert "is not a directory" in err
    assert f.read_text() == "x\n"


def test_unwritable_plan_destination_is_an_input_error(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x\n")
    code, _, err = plan(tiny_root(tmp_path), f / "plan")
    assert code == 3, err
    assert "cannot write the plan" in err
    assert "this is a bug" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_plan_destination_is_an_input_error(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir(mode=0o555)
    code, _, err = plan(tiny_root(tmp_path), parent / "plan")
    assert code == 3, err
    assert "cannot write the plan" in err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/etc/passwd\tabc\t0\t644", "line 1: uid must be a number, got 'abc'"),
        ("/etc/passwd\t0\t-\t644", "line 1: gid must be a number, got '-'"),
        ("/etc/passwd\t0\t0\t9z", "line 1: mode must be octal, got '9z'"),
        ("/etc/passwd\t0\t0\t644\tq", "line 1: kind must be one of d s p c b, got 'q'"),
        ("/etc/passwd 0 0 644", "line 1: expected PATH UID GID MODE [KIND] separated by tabs"),
        ("etc/passwd\t0\t0\t644", "line 1: path must be absolute, got 'etc/passwd'"),
        ("/etc/nonexistent\t0\t0\t644", "line 1: /etc/nonexistent does not exist under ROOT"),
    ],
)
def test_ownership_manifest_errors_in_the_users_terms(tmp_path: Path, line: str, message: str) -> None:
    manifest = tmp_path / "ownership.tsv"
    manifest.write_text(line + "\n")
    code, _, err = run("scan", str(tiny_root(tmp_path)), "--ownership", str(manifest))
    assert code == 3, err
    assert f"ownership.tsv: {message}" in err
    assert "invalid literal" not in err
