"""dynmigrate rehearse: what it refuses before it mounts anything."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynmigrate.cli.main import main


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["rehearse", *args])
    return result.exit_code, result.output


def test_nothing_selected_is_a_usage_error(tmp_path: Path) -> None:
    assert invoke(str(tmp_path)) == (
        2,
        "dynmigrate: choose what to rehearse: --unit UNIT, --account NAME or --all-convertible\n",
    )


def test_the_report_is_never_written_inside_root(tmp_path: Path) -> None:
    code, out = invoke(str(tmp_path), "--account", "redis", "-o", str(tmp_path / "etc/report.txt"))
    assert (code, out) == (
        2,
        f"dynmigrate: -o {tmp_path}/etc/report.txt is inside ROOT, which a rehearsal never writes\n",
    )


def test_root_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert invoke(str(tmp_path), "--account", "redis") == (
        3,
        "dynmigrate: rehearse needs root (it mounts an overlay and boots the copy with systemd-nspawn)\n",
    )


def test_a_root_without_systemd_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name, path=None: f"/usr/bin/{name}")
    assert invoke(str(tmp_path), "--account", "redis") == (
        3,
        f"dynmigrate: ROOT {tmp_path} has no systemd to boot (no /sbin/init, no /lib/systemd/systemd)\n",
    )


def test_missing_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None if name == "systemd-nspawn" else name)
    assert invoke(str(tmp_path), "--account", "redis") == (
        3,
        "dynmigrate: rehearse needs systemd-nspawn (apt-get install systemd-container util-linux)\n",
    )


def test_inside_root() -> None:
    from dynmigrate.rehearse.launch import inside

    assert [inside(p, "/srv/img") for p in ("/srv/img", "/srv/img/etc/x", "/srv/image2/x", "/root/r.txt")] == [
        True,
        True,
        False,
        False,
    ]
    assert inside("/root/report.txt", "/") is False  # rehearsing the host: the report is the operator's


def test_setup_on_an_untrusted_image_is_refused(tmp_path: Path) -> None:
    code, out = invoke(str(tmp_path), "--account", "redis", "--setup", "redis-cli set k v")
    assert (code, out) == (
        2,
        "dynmigrate: --setup on an image needs --trusted-image: an untrusted image boots in a user "
        "namespace that shifts the owner of every file of the copy, so a scan after the setup would see "
        "shifted owners; say --trusted-image when you built ROOT yourself (it then boots without user "
        "namespacing)\n",
    )


def test_setup_with_the_full_copy_is_refused(tmp_path: Path) -> None:
    code, out = invoke(str(tmp_path), "--trusted-image", "--full-copy", "--account", "redis", "--setup", "true")
    assert (code, out) == (
        2,
        "dynmigrate: --setup cannot be combined with --full-copy: the directories to copy are known only "
        "from the scan after the setup, when the copy already runs on its layers\n",
    )
