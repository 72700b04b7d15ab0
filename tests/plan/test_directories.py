"""A managed directory never swallows a shared tree: systemd re-owns the whole tree to the dynamic
user at every start (facts F2.5), so only a path the account owns entirely may become one."""

from __future__ import annotations

from pathlib import Path

from dynmigrate.render.planfolder.documents import mode_changes
from plan.test_planner import dropin, plan_for

SERVICE = "[Service]\nUser=foo\nExecStart=/usr/bin/foo\n"
SHARED_TREE = {
    "var/lib/shared/x-sessions/s1": "session",
    "var/lib/shared/other/data": "someone else's",
    "var/lib/shared/root-owned.db": "root's",
    "var/cache/shared/x/c1": "cache",
    "var/cache/shared/index": "root's",
}
SHARED_OWNERS = (
    "/var/lib/shared/x-sessions\t120\t120\t0700\n/var/lib/shared/x-sessions/s1\t120\t120\t0600\n"
    "/var/lib/shared/other\t121\t121\t0755\n/var/lib/shared/other/data\t121\t121\t0644\n"
    "/var/cache/shared/x\t120\t120\t0755\n/var/cache/shared/x/c1\t120\t120\t0644\n"
)


def manual_texts(tmp_path: Path, unit: str, manifest: str = SHARED_OWNERS) -> tuple[list[str], list[str]]:
    plan = plan_for(tmp_path, {**SHARED_TREE, "etc/systemd/system/foo.service": unit}, manifest)
    return dropin(plan), [m.text for m in plan.accounts[0].manual_steps]


def test_read_write_path_of_its_own_inside_a_shared_tree_is_a_nested_state_directory(tmp_path: Path) -> None:
    # x-sessions is foo's alone; its parent holds other owners' things: only x-sessions moves to
    # /var/lib/private/shared/x-sessions and is re-owned, the parent and its other entries stay
    lines, manual = manual_texts(tmp_path, SERVICE + "ReadWritePaths=-/var/lib/shared/x-sessions\n")
    assert [line for line in lines if line.startswith(("StateDirectory", "ReadWritePaths"))] == [
        "StateDirectory=shared/x-sessions",
        "StateDirectoryMode=0700",
        "ReadWritePaths=",
    ]
    assert not [m for m in manual if "not planned" in m or "stays writable" in m], manual


def test_a_nested_state_directory_is_reported_where_systemd_moves_it(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {**SHARED_TREE, "etc/systemd/system/foo.service": SERVICE + "ReadWritePaths=-/var/lib/shared/x-sessions\n"},
        SHARED_OWNERS,
    )
    rows = [r for r in mode_changes(plan.accounts[0]) if "`/var/lib/shared/x-sessions`" in r]
    assert len(rows) == 1
    assert "moved to /var/lib/private/shared/x-sessions (parent 0700 root)" in rows[0]


def test_read_write_path_holding_other_owners_files_inside_a_shared_tree_is_not_a_state_directory(
    tmp_path: Path,
) -> None:
    owners = SHARED_OWNERS + "/var/lib/shared/x-sessions/s2\t121\t121\t0600\n"
    plan = plan_for(
        tmp_path,
        {
            **SHARED_TREE,
            "var/lib/shared/x-sessions/s2": "someone else's session",
            "etc/systemd/system/foo.service": SERVICE + "ReadWritePaths=-/var/lib/shared/x-sessions\n",
        },
        owners,
    )
    manual = [m.text for m in plan.accounts[0].manual_steps]
    assert not [line for line in dropin(plan) if line.startswith("StateDirectory=")]
    assert [m for m in manual if m.startswith("StateDirectory=shared is not planned")] == [
        "StateDirectory=shared is not planned (ReadWritePaths=/var/lib/shared/x-sessions at "
        "/etc/systemd/system/foo.service:4): /var/lib/shared is owned by 0:0, not by foo alone, and holds "
        "files of other owners (121:121 /var/lib/shared/other, 121:121 /var/lib/shared/x-sessions/s2); systemd "
        "would re-own the whole tree to the dynamic user at every start. Keep the path writable by hand "
        "(ReadWritePaths= and its owner), or move the service's files into a directory of their own"
    ]


def test_a_directory_the_sandbox_keeps_read_only_inside_a_shared_tree_is_a_leftover(tmp_path: Path) -> None:
    # ProtectSystem=strict: foo never wrote /var/lib/shared/x-sessions; it stays readable, given to
    # root in stage 3, and needs no managed directory nor a manual step
    lines, manual = manual_texts(tmp_path, SERVICE + "ProtectSystem=strict\n")
    assert not [line for line in lines if line.startswith("StateDirectory")]
    assert not [m for m in manual if "StateDirectory" in m], manual


def test_mkdir_of_its_own_inside_a_shared_cache_is_a_nested_cache_directory(tmp_path: Path) -> None:
    lines, manual = manual_texts(tmp_path, SERVICE + "ExecStartPre=/bin/mkdir -p /var/cache/shared/x\n")
    assert [line for line in lines if line.startswith(("CacheDirectory", "ExecStartPre"))] == [
        "CacheDirectory=shared/x",
        "ExecStartPre=",
    ]
    assert not [m for m in manual if "not planned" in m], manual


def test_mkdir_inside_a_shared_cache_is_not_a_cache_directory(tmp_path: Path) -> None:
    lines, manual = manual_texts(tmp_path, SERVICE + "ExecStartPre=/bin/mkdir -p /var/cache/shared/y\n")
    assert not [line for line in lines if line.startswith("CacheDirectory=shared/y")]
    assert [m.split(":", 1)[0] for m in manual if m.startswith("CacheDirectory=shared is not planned")] == [
        "CacheDirectory=shared is not planned (ExecStartPre=mkdir ... /var/cache/shared/y at "
        "/etc/systemd/system/foo.service"
    ]
    assert any("/var/cache/shared is owned by 0:0, not by foo alone" in m for m in manual)


def test_tmpfiles_line_under_a_distribution_directory_is_not_a_state_directory(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {
            "etc/systemd/system/foo.service": SERVICE,
            "usr/lib/tmpfiles.d/foo.conf": "d /var/lib/dpkg/x 0755 foo foo -\n",
            "var/lib/dpkg/status": "",
        },
    )
    assert not [line for line in dropin(plan) if line.startswith("StateDirectory=")]
    manual = [m.text for m in plan.accounts[0].manual_steps]
    assert any(
        m.startswith("StateDirectory=dpkg is not planned (tmpfiles.d creates /var/lib/dpkg/x for foo")
        and "/var/lib/dpkg belongs to the system, not to foo" in m
        for m in manual
    ), manual


def test_a_directory_the_account_owns_entirely_is_still_managed(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {"etc/systemd/system/foo.service": SERVICE + "ReadWritePaths=/var/lib/foo\n", "var/lib/foo/db": "x"},
        "/var/lib/foo\t120\t120\t0750\n/var/lib/foo/db\t120\t120\t0640\n",
    )
    assert dropin(plan) == [
        "[Service]",
        "DynamicUser=yes",
        "User=foo",
        "SupplementaryGroups=ssl-cert",
        "StateDirectory=foo",
        "StateDirectoryMode=0750",
        "ReadWritePaths=",
    ]
    assert not [m for m in plan.accounts[0].manual_steps if "not planned" in m.text]


def test_a_pid_file_from_an_environment_variable_gets_its_runtime_directory(tmp_path: Path) -> None:
    unit = "[Service]\nEnvironment=PIDFILE=/var/run/food/food.pid LANG=C\nExecStart=/usr/sbin/food -u foo -p $PIDFILE\n"
    plan = plan_for(tmp_path, {"etc/systemd/system/foo.service": unit})
    assert "RuntimeDirectory=food" in dropin(plan)
    assert "RuntimeDirectory=food: Environment=PIDFILE=/var/run/food/food.pid at /etc/systemd/system/foo.service:2" in (
        plan.accounts[0].units[0].decisions
    )


def test_a_file_straight_in_run_from_a_variable_is_no_runtime_directory(tmp_path: Path) -> None:
    unit = "[Service]\nEnvironment=PIDFILE=/run/food.pid\nExecStart=/usr/sbin/food -u foo -p $PIDFILE\n"
    plan = plan_for(tmp_path, {"etc/systemd/system/foo.service": unit})
    # only the root daemon's conventional /run/foo, nothing named after the file
    assert [line for line in dropin(plan) if line.startswith("RuntimeDirectory=")] == ["RuntimeDirectory=foo"]
