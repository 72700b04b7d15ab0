"""End-to-end: `dynmigrate rehearse /` on the machine running the tests, as an operator (or CI) runs it.

The machine has PostgreSQL installed with a cluster (Debian's postgresql-common: the account
postgres, /etc/postgresql/VERSION/CLUSTER, /var/lib/postgresql/VERSION/CLUSTER), and nothing
running. postgresql-common starts its clusters through a systemd generator, which wants
postgresql@VERSION-CLUSTER.service from /run/systemd/generator at boot: the unit exists only in a
booted system. The rehearsal boots a copy of this host, must see that unit, and must leave the host
as it was: no mount, no process, no temporary folder, not one changed entry of the cluster's trees,
/etc/passwd, /etc/group or /etc/systemd.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from e2e.harness import E2EUnavailable, check_prerequisites, ci_mode

ENV = {"DYNMIGRATE_SETTLE": "2", "DYNMIGRATE_START_TIMEOUT": "60"}
WATCHED = ("/etc/postgresql", "/var/lib/postgresql", "/etc/passwd", "/etc/group", "/etc/systemd")
TEMP_PARENTS = ("/run", "/tmp")
Entry = tuple[int, int, int, int, int, int, int]


def generated_clusters() -> list[str]:
    """The instances postgresql-common's generator makes at boot: a cluster whose start.conf says
    auto (or that has none) and whose server binaries are installed."""
    out = []
    for conf in sorted(Path("/etc/postgresql").glob("*/*/postgresql.conf")):
        cluster, version = conf.parent, conf.parent.parent.name
        start = cluster / "start.conf"
        words = [line.split("#")[0].strip() for line in start.read_text().splitlines()] if start.exists() else []
        if [w for w in words if w] in ([], ["auto"]) and os.access(
            f"/usr/lib/postgresql/{version}/bin/postgres", os.X_OK
        ):
            out.append(f"postgresql@{version}-{cluster.name}.service")
    return out


def host_manifest() -> dict[str, Entry]:
    """Type, owner, group, mode, size, mtime and ctime (ns) of every entry under WATCHED."""
    out: dict[str, Entry] = {}

    def add(path: str) -> None:
        st = os.lstat(path)
        mode = st.st_mode
        out[path] = (
            stat.S_IFMT(mode),
            st.st_uid,
            st.st_gid,
            stat.S_IMODE(mode),
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        )

    for top in WATCHED:
        if not os.path.lexists(top):
            continue
        add(top)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in (*dirnames, *filenames):
                add(os.path.join(dirpath, name))
    return out


def _proc(pid: int) -> tuple[int, int] | None:
    """(ppid, start time) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else (int(fields[1]), int(fields[19]))


def descendants(top: int) -> set[tuple[int, int]]:
    procs = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _proc(int(p))) is not None}
    found: set[tuple[int, int]] = set()
    todo = [top]
    while todo:
        parent = todo.pop()
        for pid, (ppid, start) in procs.items():
            if ppid == parent and (pid, start) not in found:
                found.add((pid, start))
                todo.append(pid)
    return found


def test_rehearsal_of_the_running_host_sees_the_generator_made_cluster(tmp_path: Path) -> None:
    try:
        check_prerequisites()
    except E2EUnavailable as exc:
        if ci_mode():
            pytest.fail(f"e2e tests cannot run, and CI is set, so this fails: {exc}", pytrace=False)
        pytest.skip(f"e2e unavailable: {exc}")
    clusters = generated_clusters()
    if not clusters:
        pytest.skip("this host has no PostgreSQL cluster (/etc/postgresql/*/*/postgresql.conf starting auto)")
    manifest_before = host_manifest()
    mounts_before = Path("/proc/self/mountinfo").read_text().splitlines()
    out = tmp_path / "rehearsal.json"
    tool = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dynmigrate",
            "rehearse",
            "/",
            "--account",
            "postgres",
            "--format",
            "json",
            "-o",
            str(out),
        ],
        env={**os.environ, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # every process the rehearsal started (the copy's included), seen while it ran
    seen: set[tuple[int, int]] = set()
    deadline = time.monotonic() + 600
    while tool.poll() is None and time.monotonic() < deadline:
        seen |= descendants(tool.pid)
        time.sleep(0.5)
    stdout, stderr = tool.communicate(timeout=60)
    data = json.loads(out.read_text())
    tmpdir = next(x.split()[-1] for x in stderr.splitlines() if x.startswith("rehearse: temporary folder"))
    [account] = data["accounts"]
    facts = account["facts"]
    # the instance exists only through the generator: the scan of the booted copy sees it
    assert set(clusters) <= set(facts["units"]), facts["units"]
    assert any(n.startswith("the copy was booted before it was scanned") for n in data["environment"]["notes"])
    # BROKEN-BEFORE (exit 1), before any stage: postgres's certain links are the pg_basebackup@,
    # pg_compresswal@, pg_dump@ and pg_receivewal@ templates (User=postgres), none of them
    # instantiated; the cluster's instance runs pg_ctlcluster as root, which switches to the owner
    # of the cluster's data directory at run time, so the instance is linked to postgres only by the
    # ownership of /run/postgresql and /var/lib/postgresql (possible) and gets no drop-in. The plan
    # then restarts and health-checks no unit, and the rehearsal says so instead of migrating.
    assert (tool.returncode, stdout) == (1, ""), stderr
    assert (account["outcome"], account["why"], account["rollback"]) == (
        "BROKEN-BEFORE",
        "no unit of it is meant to run (none enabled)",
        "not run",
    )
    assert (facts["planned"], facts["stages"], facts["rollbacks"], facts["before"]) == (True, [], [], [])
    assert "NORUN-postgres" in facts["confirmed"]
    # nothing of the rehearsal is left on the host
    time.sleep(1)
    assert {(pid, start) for pid, start in seen if (_proc(pid) or (0, -1))[1] == start} == set()
    # its temporary folder (other rehearsals may run at the same time: only this one's is checked)
    assert os.path.dirname(tmpdir) in TEMP_PARENTS
    assert not os.path.exists(tmpdir)
    # nothing new is mounted (a line gone would be someone else's unmount, not ours)
    assert sorted(set(Path("/proc/self/mountinfo").read_text().splitlines()) - set(mounts_before)) == []
    after = host_manifest()
    assert {
        p: (manifest_before.get(p), after.get(p))
        for p in {*manifest_before, *after}
        if manifest_before.get(p) != after.get(p)
    } == {}
