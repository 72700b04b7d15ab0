"""dynmigrate verify runs no code from ROOT and reads ROOT only through the confined reader
(issue 10, item 1)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynmigrate.cli.main import main
from dynmigrate.collect.rootfs import RootFS
from dynmigrate.render.planfolder.script import render_repair
from dynmigrate.verify import host as V
from treebuilder import GROUP, Link, Tree, build

CANARY = "HOST-ONLY-CANARY"


def record(name: str = "foo", repair_sha256: str | None = None) -> dict[str, object]:
    account: dict[str, object] = {
        "account": name,
        "uid": 120,
        "gid": 120,
        "group": name,
        "delete_group": False,
        "overrides": [],
        "units": [],
        "run_units": ["foo.service"],
    }
    data: dict[str, object] = {"account": account}
    if repair_sha256 is not None:
        data["repair_sha256"] = repair_sha256
    return data


def image(tmp_path: Path, extra: Tree | None = None, *, repair_text: str | None = None) -> tuple[Path, Path]:
    """A crafted image: the account is back in passwd (drift), a record, and a repair script that
    would leave a mark outside the image if it ever ran."""
    mark = tmp_path / "pwned"
    tree: Tree = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nfoo:x:120:120::/nonexistent:/usr/sbin/nologin\n",
        "etc/group": GROUP,
        "var/lib/dynmigrate/migrated/foo.json": json.dumps(record()),
        "usr/local/sbin/dynmigrate-repair": repair_text or f"#!/bin/sh\nid > {mark}\n",
        **(extra or {}),
    }
    root = build(tmp_path / "img", tree)
    (root / "usr/local/sbin/dynmigrate-repair").chmod(0o755)
    return root, mark


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_repair_of_an_image_runs_nothing_from_it(tmp_path: Path) -> None:
    root, mark = image(tmp_path)
    code, out, err = run("verify", "--root", str(root), "--repair", "--no-walk")
    assert code == 2, out + err
    assert "--repair works only on the live root /" in err
    assert not mark.exists()


def test_repair_function_refuses_any_root_but_the_live_one(tmp_path: Path) -> None:
    root, mark = image(tmp_path)
    calls: list[Sequence[str]] = []

    def runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    with pytest.raises(V.RepairRefused):
        V.repair(str(root), runner)
    assert calls == []
    assert not mark.exists()


def test_verify_does_not_print_a_host_file_through_a_statoverride_link(tmp_path: Path) -> None:
    host_file = tmp_path / "host-secret"
    host_file.write_text(f"foo root 0644 /{CANARY}\n")
    root, _ = image(tmp_path, {"var/lib/dpkg/statoverride": Link(str(host_file))})
    code, out, err = run("verify", "--root", str(root), "--no-walk")
    assert CANARY not in out + err
    assert code == 1, err  # the account is back in the image's passwd: drift


def test_verify_does_not_read_a_host_passwd_through_a_link(tmp_path: Path) -> None:
    host_file = tmp_path / "host-passwd"
    host_file.write_text("foo:x:120:120::/:/bin/sh\n")
    root, _ = image(tmp_path, {"etc/passwd": Link(str(host_file))})
    code, out, err = run("verify", "--root", str(root), "--no-walk", "--format", "json")
    checks = {c["check"]: (c["ok"], c["detail"]) for c in json.loads(out)}
    assert checks["no static account"] == (True, "absent from /etc/passwd"), err
    assert code == 0, err


def test_verify_reads_records_through_the_confined_reader(tmp_path: Path) -> None:
    host_dir = tmp_path / "host-records"
    host_dir.mkdir()
    (host_dir / "bar.json").write_text(json.dumps(record("bar")))
    root, _ = image(tmp_path)
    (root / "var/lib/dynmigrate/migrated/foo.json").unlink()
    (root / "var/lib/dynmigrate/migrated").rmdir()
    (root / "var/lib/dynmigrate/migrated").symlink_to(host_dir)
    assert V.records(root) == []


def test_the_installed_repair_script_runs_only_when_its_hash_matches_the_plan(tmp_path: Path) -> None:
    own = render_repair()
    installed = own.replace("set -euo pipefail", "set -euo pipefail\necho installed")
    good = hashlib.sha256(installed.encode()).hexdigest()
    root, _ = image(tmp_path, {"var/lib/dynmigrate/migrated/foo.json": json.dumps(record(repair_sha256=good))})
    (root / "usr/local/sbin/dynmigrate-repair").write_text(installed)
    text, origin = V.repair_script(RootFS(root))
    assert (text, origin) == (installed, "/usr/local/sbin/dynmigrate-repair (sha256 as recorded in the plan)")

    (root / "usr/local/sbin/dynmigrate-repair").write_text(installed + "id\n")
    text, origin = V.repair_script(RootFS(root))
    assert text == own
    assert origin.startswith("dynmigrate's own repair code: /usr/local/sbin/dynmigrate-repair does not match")


def test_repair_script_of_old_records_is_the_tools_own(tmp_path: Path) -> None:
    root, _ = image(tmp_path)
    text, origin = V.repair_script(RootFS(root))
    assert text == render_repair()
    assert "no sha256 recorded" in origin
