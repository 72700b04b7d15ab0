"""verify's search for files of the old UID: one fast walk for all accounts, other systems' trees
skipped (and said so), a planted os-release in an account's directory never hiding anything."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dynmigrate.collect.ownership import OwnershipData, walk_ownership
from dynmigrate.collect.rootfs import RootFS
from dynmigrate.model.checks import Check
from dynmigrate.model.findings import Problem
from dynmigrate.verify import host as verify
from dynmigrate.verify.host import verify_host

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="owners other than the tester's need root (CI is root)")


def record(root: Path, name: str, uid: int) -> None:
    rec = {
        "account": {
            "account": name,
            "uid": uid,
            "gid": uid,
            "group": name,
            "delete_group": True,
            "overrides": [],
            "units": [],
            "run_units": [],
        }
    }
    path = root / "var/lib/dynmigrate/migrated" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec), encoding="utf-8")


def owned_file(root: Path, rel: str, uid: int) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    os.chown(path, uid, uid)


def leftover_checks(checks: list[Check]) -> dict[str, Check]:
    return {c.account: c for c in checks if c.check == "no file of the old UID"}


def test_verify_skips_other_systems_trees_and_walks_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    os.chmod(tmp_path, 0o755)
    record(root, "foo", 120)
    record(root, "bar", 121)
    owned_file(root, "var/lib/machines/c1/var/lib/foo/db", 120)  # a container's own UID 120
    owned_file(root, "srv/chroot/etc/os-release", 0)
    owned_file(root, "srv/chroot/var/lib/foo/db", 120)
    owned_file(root, "var/tmp-like/x", 121)
    walks: list[int] = []

    def counting(fs: RootFS, **kwargs: object) -> tuple[OwnershipData, list[Problem]]:
        walks.append(1)
        return walk_ownership(fs)

    monkeypatch.setattr(verify, "walk_ownership", counting)
    got = leftover_checks(verify_host(str(root)))
    assert walks == [1]
    skipped = " (not searched: 2 other system tree(s), e.g. /srv/chroot, an operating system root (etc/os-release))"
    assert got == {
        "foo": Check("foo", "no file of the old UID", True, "none" + skipped),
        "bar": Check("bar", "no file of the old UID", False, "1 path(s), e.g. /var/tmp-like/x: run stage3" + skipped),
    }

    # an os-release that the account itself could plant hides nothing
    (root / "var/lib/app").mkdir(parents=True)
    os.chown(root / "var/lib/app", 120, 120)
    owned_file(root, "var/lib/app/planted/etc/os-release", 120)
    got = leftover_checks(verify_host(str(root), ["foo"]))
    assert got["foo"] == Check(
        "foo", "no file of the old UID", False, "2 path(s), e.g. /var/lib/app: run stage3" + skipped
    )
