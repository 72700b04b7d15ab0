"""What other users (nobody) could newly read or enter after a rehearsed migration (access.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynmigrate.app import run_scan
from dynmigrate.plan.planner import PlanOptions, Selection, make_plan
from dynmigrate.rehearse import access
from dynmigrate.rehearse.classify import classify
from dynmigrate.rehearse.model import Outcome
from rehearse.facts import redis

BEFORE = {
    "/": "rx",
    "/etc": "rx",
    "/etc/redis": "",
    "/etc/redis/redis.conf": "",
    "/var": "rx",
    "/var/lib": "rx",
    "/var/lib/redis": "",
    "/var/lib/redis/dump.rdb": "",
    "/srv/other": "",
}


def test_parse_probe() -> None:
    out = "rx /\0-- /etc/redis\0r- /etc/redis/a file\nwith a newline\0-x /var/lib/x\0"
    assert access.parse_probe(out) == {
        "/": "rx",
        "/etc/redis": "",
        "/etc/redis/a file\nwith a newline": "r",
        "/var/lib/x": "x",
    }


def test_nothing_widened() -> None:
    # narrowed, gone (a path the probe did not list after) and new paths are no widening
    after = {**BEFORE, "/etc": "x", "/var/lib/private": "rx", "/var/lib/private/redis": "rx"}
    del after["/var/lib/redis/dump.rdb"]
    assert access.widened(BEFORE, after) == {}
    assert access.account_widened(["/etc/redis"], [("migration", {}), ("rollback", {})]) == ()


def test_a_widened_file() -> None:
    after = {**BEFORE, "/etc/redis/redis.conf": "r"}
    found = access.widened(BEFORE, after)
    assert found == {"/etc/redis/redis.conf": "r"}
    assert access.account_widened(["/etc/redis", "/var/lib/redis"], [("migration", found)]) == (
        "after the migration, other users can read /etc/redis/redis.conf",
    )
    # another account's plan does not touch it
    assert access.account_widened(["/var/lib/memcached"], [("migration", found)]) == ()


def test_a_widened_parent_directory() -> None:
    # the rollback left the state directory open: nobody can list it and reach what is inside
    after = {**BEFORE, "/var/lib/redis": "rx", "/var/lib/redis/dump.rdb": "r"}
    found = access.widened(BEFORE, after)
    assert access.account_widened(["/var/lib/redis"], [("migration", {}), ("rollback", found)]) == (
        "after the rollback, other users can read and enter /var/lib/redis",
        "after the rollback, other users can read /var/lib/redis/dump.rdb",
    )
    # a parent of a path the plan touches is the plan's too
    opened = access.widened(BEFORE, {**BEFORE, "/etc/redis": "x"})
    assert access.account_widened(["/etc/redis/redis.conf"], [("migration", opened)]) == (
        "after the migration, other users can enter /etc/redis",
    )


def test_a_long_list_is_cut() -> None:
    found = {f"/var/lib/redis/f{n:03}": "r" for n in range(60)}
    out = access.account_widened(["/var/lib/redis"], [("migration", found)])
    assert len(out) == access.MAX_REPORTED + 1
    assert out[-1] == "(and 10 more)"


def test_related_count() -> None:
    assert access.related_count(BEFORE, ["/var/lib/redis"]) == 5  # /, /var, /var/lib and the tree


def test_a_widened_path_fails_the_rehearsal() -> None:
    widened = ("after the migration, other users can read /etc/redis/redis.conf",)
    result = classify(redis(access_widened=widened))
    assert (result.outcome, result.why) == (
        Outcome.FAIL,
        "read access widened: after the migration, other users can read /etc/redis/redis.conf",
    )
    # it comes before a failed stage, and a plan with manual steps done is no MANUAL-OK either
    two = (*widened, "after the rollback, other users can enter /etc/redis")
    result = classify(redis(access_widened=two, manual_done=True, migrated=()))
    assert (result.outcome, result.why) == (
        Outcome.FAIL,
        "read access widened: after the migration, other users can read /etc/redis/redis.conf (1 more listed)",
    )
    forced = classify(redis(access_widened=widened, forced=True, verdict="blocked"))
    assert forced.outcome is Outcome.REFUSED
    assert forced.why.endswith("the forced plan failed: read access widened: " + widened[0])


def test_touched_paths_of_a_sample_plan(in_repo: Path) -> None:
    result = run_scan("samples/debian-web/root", ownership="samples/debian-web/ownership.tsv")
    plan = make_plan(result.queries, result.report, Selection(accounts=("redis", "memcache")), PlanOptions())
    paths = access.touched_paths(plan.accounts)
    # the ownership manifest, the re-owned configuration, the managed directories, the overrides
    # and the drop-ins
    for p in (
        "/etc/redis",
        "/etc/redis/redis.conf",
        "/var/lib/redis",
        "/var/log/redis",
        "/etc/tmpfiles.d/memcached.conf",
        "/etc/systemd/system/redis-server.service.d/50-dynmigrate.conf",
    ):
        assert p in paths
    assert paths == sorted(set(paths))
    assert all(p.startswith("/") and "%" not in p for p in paths)


# ------------------------------------------------------------------- the scripts, run as root here


def _reachable(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents))


@pytest.fixture
def tree() -> Iterator[Path]:
    """A folder nobody can reach (below the system's temporary folder, which is world-enterable)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv")
    top = Path(tempfile.mkdtemp(prefix="dm-access-"))
    try:
        top.chmod(0o755)
        if not _reachable(top):
            pytest.skip(f"nobody cannot reach {top.parent}")
        yield top
    finally:
        shutil.rmtree(top)


def _probe(listing: Path) -> dict[str, str]:
    proc = subprocess.run(["bash", "-c", access.PROBE_SCRIPT, "probe", str(listing)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return access.parse_probe(proc.stdout)


def test_the_scripts_as_nobody(tree: Path) -> None:
    state = tree / "var/lib/redis"
    state.mkdir(parents=True)
    state.chmod(0o750)
    (state / "dump.rdb").write_text("data")
    (state / "dump.rdb").chmod(0o644)  # readable, but below a directory nobody may not enter
    conf = tree / "etc/redis/redis.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("requirepass x")
    conf.chmod(0o640)
    (state / "link").symlink_to("/etc/shadow")
    listing = tree / "list"
    proc = subprocess.run(
        ["bash", "-c", access.LIST_SCRIPT, "list", str(listing), str(state), str(conf), str(tree / "missing")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert oct(listing.stat().st_mode & 0o777) == "0o600"
    before = _probe(listing)
    # every parent up to /, the trees, no symbolic link, nothing that does not exist
    assert set(before) == {str(p) for p in (*state.parents, state, state / "dump.rdb", *conf.parents, conf)}
    assert (before[str(state)], before[str(state / "dump.rdb")], before[str(conf)]) == ("", "", "")
    assert before["/"] == "rx"
    assert access.widened(before, _probe(listing)) == {}

    state.chmod(0o755)
    conf.chmod(0o644)
    assert access.widened(before, _probe(listing)) == {
        str(state): "rx",
        str(state / "dump.rdb"): "r",
        str(conf): "r",
    }
