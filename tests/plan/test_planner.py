"""Planner decisions on small roots: each test shows one decision and its reason."""

from __future__ import annotations

from pathlib import Path

from dynmigrate.app import analyse
from dynmigrate.collect.rootfs import OwnershipManifest
from dynmigrate.collect.snapshot import collect
from dynmigrate.model.plan import ExecMode, MigrationPlan, Refusal, RefusalKind
from dynmigrate.plan.planner import PlanOptions, Selection, make_plan
from dynmigrate.render.planfolder.script import account_data
from treebuilder import Tree, build

BASE: Tree = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nfoo:x:120:120:Foo:/nonexistent:/usr/sbin/nologin\n",
    "etc/group": "root:x:0:\nfoo:x:120:\nssl-cert:x:112:foo\n",
}


def plan_for(tmp_path: Path, tree: Tree, manifest: str = "", **opts: bool) -> MigrationPlan:
    root = build(tmp_path / "root", {**BASE, **tree})
    snap = collect(str(root), manifest=OwnershipManifest.parse(manifest) if manifest else None)
    result = analyse(snap)
    return make_plan(result.queries, result.report, Selection(accounts=("foo",)), PlanOptions(**opts))  # type: ignore[arg-type]


def dropin(plan: MigrationPlan) -> list[str]:
    text = plan.accounts[0].units[0].dropin_text
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_runtime_socket_keeps_its_directory_across_restarts(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {"etc/systemd/system/foo.service": "[Service]\nUser=foo\nExecStart=/usr/bin/foo\n"},
        "/run\t0\t0\t0755\td\n/run/foo\t120\t120\t0755\td\n/run/foo/foo.sock\t120\t120\t0660\ts\n",
    )
    assert dropin(plan) == [
        "[Service]",
        "DynamicUser=yes",
        "User=foo",
        "SupplementaryGroups=ssl-cert",
        "RuntimeDirectory=foo",
        "RuntimeDirectoryPreserve=restart",
    ]
    decisions = plan.accounts[0].units[0].decisions
    assert any(
        d.startswith("RuntimeDirectoryPreserve=restart: clients connect to sockets in /run/foo") for d in decisions
    )


def test_root_start_daemon_keeps_its_switch_with_bang(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {
            "etc/systemd/system/foo.service": (
                "[Service]\nExecStartPre=/bin/mkdir -p /run/foo\nExecStartPre=/bin/chown foo /run/foo\n"
                "ExecStart=/usr/sbin/food -u foo\nExecReload=/bin/kill -HUP $MAINPID\nPIDFile=/run/foo/foo.pid\n"
            ),
        },
    )
    unit = plan.accounts[0].units[0]
    assert unit.exec_mode is ExecMode.BANG
    assert dropin(plan) == [
        "[Service]",
        "DynamicUser=yes",
        "User=foo",
        "SupplementaryGroups=ssl-cert",
        "RuntimeDirectory=foo",
        "ExecStartPre=",
        "ExecStart=",
        "ExecStart=!/usr/sbin/food -u foo",
        "ExecReload=",
        "ExecReload=!/bin/kill -HUP $MAINPID",
    ]


def test_root_start_daemon_gets_its_conventional_runtime_directory(tmp_path: Path) -> None:
    # sslh's --pidfile /var/run/sslh/sslh.pid and bird's /run/bird live in an EnvironmentFile= and a
    # helper script the scan does not read; /run is read-only for a '!' command under DynamicUser=
    plan = plan_for(
        tmp_path,
        {
            "etc/systemd/system/foo.service": (
                "[Service]\nEnvironmentFile=/etc/default/foo\nExecStart=/usr/sbin/food -u foo $DAEMON_OPTS\n"
            ),
        },
    )
    unit = plan.accounts[0].units[0]
    assert unit.exec_mode is ExecMode.BANG
    assert "RuntimeDirectory=foo" in dropin(plan)
    assert any(d.startswith("RuntimeDirectory=foo: the daemon starts as root") for d in unit.decisions)


def test_unprivileged_unit_gets_no_runtime_directory_by_convention(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, {"etc/systemd/system/foo.service": "[Service]\nUser=foo\nExecStart=/usr/bin/foo\n"})
    assert not any(line.startswith("RuntimeDirectory=") for line in dropin(plan))


def test_permissions_start_only_becomes_plus_prefixes(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {
            "etc/systemd/system/foo.service": (
                "[Service]\nUser=foo\nPermissionsStartOnly=true\nExecStartPre=/usr/bin/foo --check\n"
                "ExecStart=/usr/bin/foo\nReadWritePaths=/var/lib/foo /srv/foo\n"
            ),
        },
    )
    assert dropin(plan) == [
        "[Service]",
        "DynamicUser=yes",
        "User=foo",
        "SupplementaryGroups=ssl-cert",
        "StateDirectory=foo",
        "ReadWritePaths=",
        "ReadWritePaths=/srv/foo",
        "ExecStartPre=",
        "ExecStartPre=+/usr/bin/foo --check",
        "PermissionsStartOnly=no",
    ]
    assert any("ReadWritePaths=/srv/foo stays writable" in m.text for m in plan.accounts[0].manual_steps)


def test_never_units_in_policy_make_the_account_never_migrated(tmp_path: Path) -> None:
    root = build(
        tmp_path / "root",
        {
            **BASE,
            "etc/systemd/system/foo.service": "[Service]\nUser=foo\nExecStart=/usr/bin/foo\n",
            "etc/dynmigrate.ini": "[never]\nunits = foo.service\n",
        },
    )
    result = analyse(collect(str(root)))
    foo = result.report.account("foo")
    assert foo is not None
    assert foo.verdict.value == "never-migrated"
    assert foo.reason == "site policy /etc/dynmigrate.ini says never touch foo.service"
    plan = make_plan(result.queries, result.report, Selection(accounts=("foo",)), PlanOptions())
    assert plan.accounts == ()
    why = "never-migrated: site policy /etc/dynmigrate.ini says never touch foo.service"
    assert plan.refused == (Refusal("foo", RefusalKind.NOT_PLANNABLE, why),)


def test_program_inside_a_managed_directory_gets_exec_paths(tmp_path: Path) -> None:
    """systemd 257 mounts an id-mapped managed directory noexec: a unit that runs a program from
    its own state directory gets ExecPaths= for it (and the plan then needs systemd 247)."""
    plan = plan_for(
        tmp_path,
        {
            "etc/systemd/system/foo.service": (
                "[Service]\nUser=foo\nStateDirectory=foo\nExecStartPre=/var/lib/foo/bin/prepare\n"
                "ExecStart=/var/lib/foo/bin/food --data /var/lib/foo\nExecReload=/usr/bin/foo-reload\n"
            ),
        },
    )
    assert dropin(plan) == [
        "[Service]",
        "DynamicUser=yes",
        "User=foo",
        "SupplementaryGroups=ssl-cert",
        "ExecPaths=/var/lib/foo",
    ]
    assert "ExecPaths=/var/lib/foo: ExecStartPre runs /var/lib/foo/bin/prepare from it, and systemd 257 mounts an " in (
        " ".join(plan.accounts[0].units[0].decisions)
    )
    assert "A_MIN_SYSTEMD=247" in account_data(plan.accounts[0])


def test_programs_outside_managed_directories_get_no_exec_paths(tmp_path: Path) -> None:
    plan = plan_for(
        tmp_path,
        {
            "etc/systemd/system/foo.service": (
                "[Service]\nUser=foo\nStateDirectory=foo\nExecStart=/usr/bin/foo /var/lib/foo\n"
            )
        },
    )
    assert not any(line.startswith("ExecPaths=") for line in dropin(plan))
    assert "A_MIN_SYSTEMD=235" in account_data(plan.accounts[0])


def test_commands_sharing_tmp_keep_one_private_tmp(tmp_path: Path) -> None:
    """systemd 257's disconnected /tmp is not shared between ExecStartPre= and ExecStart=:
    a unit whose other commands use /tmp gets PrivateTmp=yes, as DynamicUser= implied before."""
    plan = plan_for(
        tmp_path,
        {
            "etc/systemd/system/foo.service": (
                "[Service]\nUser=foo\nExecStartPre=/bin/sh -c 'food --dump-config > /tmp/foo.conf'\n"
                "ExecStart=/usr/bin/food -c /tmp/foo.conf\n"
            ),
        },
    )
    assert dropin(plan) == [
        "[Service]",
        "DynamicUser=yes",
        "User=foo",
        "SupplementaryGroups=ssl-cert",
        "PrivateTmp=yes",
    ]
    assert any(
        d.startswith("PrivateTmp=yes: ExecStartPre uses /tmp or /var/tmp (/etc/systemd/system/foo.service:3)")
        for d in plan.accounts[0].units[0].decisions
    )


def test_private_tmp_set_by_the_unit_or_unused_is_left_alone(tmp_path: Path) -> None:
    for i, unit in enumerate(
        (
            "[Service]\nUser=foo\nPrivateTmp=no\nExecStartPre=/usr/bin/prep /var/tmp/foo\nExecStart=/usr/bin/food\n",
            "[Service]\nUser=foo\nExecStartPre=/usr/bin/foo-prep /var/tmpfoo\nExecStart=/usr/bin/food /tmp/x\n",
        )
    ):
        plan = plan_for(tmp_path / str(i), {"etc/systemd/system/foo.service": unit})
        assert not any(line.startswith("PrivateTmp=") for line in dropin(plan)), unit


HOME_PASSWD = "root:x:0:0:root:/root:/bin/bash\nfoo:x:120:120:Foo:/var/lib/foo:/usr/sbin/nologin\n"
HOME_MANIFEST = "/var/lib\t0\t0\t0755\td\n/var/lib/foo\t120\t120\t0750\td\n/var/lib/foo/settings\t120\t120\t0640\tf\n"


def test_home_in_a_state_directory_stays_the_daemons_home(tmp_path: Path) -> None:
    """A dynamic user's home is /: a daemon that reads $HOME keeps its old home, now a managed directory."""
    unit = "[Service]\nUser=foo\nExecStart=/usr/bin/foo\n"
    plan = plan_for(
        tmp_path,
        {"etc/passwd": HOME_PASSWD, "etc/systemd/system/foo.service": unit, "var/lib/foo/settings": "x"},
        HOME_MANIFEST,
    )
    assert dropin(plan) == [
        "[Service]",
        "DynamicUser=yes",
        "User=foo",
        "SupplementaryGroups=ssl-cert",
        "StateDirectory=foo",
        "StateDirectoryMode=0750",
        "Environment=HOME=/var/lib/foo",
    ]
    decisions = plan.accounts[0].units[0].decisions
    assert any(
        d.startswith("Environment=HOME=/var/lib/foo: the account's home is a managed directory") for d in decisions
    )


def test_home_set_by_the_unit_or_outside_managed_directories_is_left_alone(tmp_path: Path) -> None:
    own = "[Service]\nUser=foo\nEnvironment=HOME=/srv/foo\nExecStart=/usr/bin/foo\n"
    plan = plan_for(
        tmp_path,
        {"etc/passwd": HOME_PASSWD, "etc/systemd/system/foo.service": own, "var/lib/foo/settings": "x"},
        HOME_MANIFEST,
    )
    assert not any(line.startswith("Environment=") for line in dropin(plan))
    elsewhere = "[Service]\nUser=foo\nExecStart=/usr/bin/foo\n"
    plan = plan_for(
        tmp_path / "b", {"etc/systemd/system/foo.service": elsewhere, "var/lib/foo/settings": "x"}, HOME_MANIFEST
    )
    assert not any(line.startswith("Environment=") for line in dropin(plan))


def test_a_forced_plan_names_the_generated_unit_it_cannot_put_a_drop_in_next_to() -> None:
    """A blocked account whose only unit comes from an init script is refused even with --force,
    and the refusal names the unit and its script (the blocker's own words, DM204)."""
    sample = Path(__file__).parents[2] / "samples" / "units-maze"
    snap = collect(str(sample / "root"), manifest=OwnershipManifest.load(sample / "ownership.tsv"))
    result = analyse(snap)
    plan = make_plan(result.queries, result.report, Selection(accounts=("gitdaemon",)), PlanOptions(force=True))
    assert plan.accounts == ()
    assert plan.refused == (
        Refusal(
            "gitdaemon",
            RefusalKind.NO_UNIT_FILE,
            "no unit file to put a drop-in next to: git-daemon.service is generated from /etc/init.d/git-daemon",
        ),
    )


def test_a_blocked_account_is_refused_as_blocked_and_its_units_get_alternatives() -> None:
    """The kind of a refusal is data (the CLI's exit code 4 follows from BLOCKED, not from words):
    www-data is a base-passwd account, so it is refused as blocked and each unit gets an option."""
    sample = Path(__file__).parents[2] / "samples" / "debian-web"
    snap = collect(str(sample / "root"), manifest=OwnershipManifest.load(sample / "ownership.tsv"))
    result = analyse(snap)
    plan = make_plan(result.queries, result.report, Selection(accounts=("www-data",)), PlanOptions())
    assert [(r.account, r.kind) for r in plan.refused] == [("www-data", RefusalKind.BLOCKED)]
    assert plan.refused[0].why.startswith("blocked: DM106 UID 33 is a base-passwd account")
    assert sorted(a.unit for a in plan.alternatives) == ["nginx.service", "php8.2-fpm.service"]


def test_a_config_the_daemon_rewrites_as_its_state_moves_into_the_state_directory(tmp_path: Path) -> None:
    """redis-sentinel exits when its config file is not writable and saves its state by renaming a
    new file over it: the plan gives /etc/foo to root, so the drop-in starts it with a copy in its
    state directory, which stage 1 makes (for each enabled instance of a template)."""
    unit = (
        "[Service]\nUser=foo\nExecStart=/usr/bin/redis-sentinel {conf} --supervised systemd --daemonize no\n"
        "ReadWritePaths=-/var/lib/foo\nReadWriteDirectories=-/etc/foo\n"
    )
    tree: Tree = {
        "etc/passwd": HOME_PASSWD,
        "etc/foo/sentinel.conf": "port 26379\n",
        "etc/foo/sentinel-a.conf": "port 26380\n",
        "etc/systemd/system/foo.service": unit.format(conf="/etc/foo/sentinel.conf"),
        "etc/systemd/system/foo-sentinel@.service": unit.format(conf="/etc/foo/sentinel-%i.conf"),
        "etc/systemd/system/multi-user.target.wants/foo-sentinel@a.service": "../foo-sentinel@.service",
        "var/lib/foo/x": "x",
    }
    manifest = HOME_MANIFEST + "/etc/foo\t120\t120\t2770\td\n/etc/foo/sentinel.conf\t120\t120\t0640\tf\n"
    plan = plan_for(tmp_path, tree, manifest)
    units = {u.unit: u for u in plan.accounts[0].units}
    assert "ExecStart=" in units["foo.service"].dropin_text.splitlines()
    assert (
        "ExecStart=/usr/bin/redis-sentinel /var/lib/foo/sentinel.conf --supervised systemd --daemonize no"
        in units["foo.service"].dropin_text.splitlines()
    )
    assert units["foo.service"].state_configs == (("/etc/foo/sentinel.conf", "/var/lib/foo/sentinel.conf"),)
    template = units["foo-sentinel@.service"]
    assert "ExecStart=/usr/bin/redis-sentinel /var/lib/foo/sentinel-%i.conf --supervised systemd --daemonize no" in (
        template.dropin_text.splitlines()
    )
    data = account_data(plan.accounts[0])
    # the enabled instance's file too, its %i filled in
    assert "A_CFG_SRC=(/etc/foo/sentinel-a.conf /etc/foo/sentinel.conf)" in data
    assert "A_CFG_DST=(/var/lib/foo/sentinel-a.conf /var/lib/foo/sentinel.conf)" in data


def test_a_daemon_that_only_reads_its_config_keeps_its_command_line(tmp_path: Path) -> None:
    unit = "[Service]\nUser=foo\nExecStart=/usr/bin/redis-server /etc/foo/redis.conf\nReadWriteDirectories=-/etc/foo\n"
    plan = plan_for(tmp_path, {"etc/passwd": HOME_PASSWD, "etc/systemd/system/foo.service": unit}, HOME_MANIFEST)
    assert not any(line.startswith("ExecStart") for line in dropin(plan))
    assert plan.accounts[0].units[0].state_configs == ()


def test_own_group_that_is_not_the_primary_group_goes_with_the_user(tmp_path: Path) -> None:
    # influxdb on Debian 12: primary group nogroup, and a group influxdb that holds only the user.
    # A static group influxdb left behind makes the dynamic user fail (EILSEQ): stage 0 refused the
    # plan that kept it, while the scan said convertible.
    tree: Tree = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nfoo:x:120:65534::/var/lib/foo:/usr/sbin/nologin\n",
        "etc/group": "root:x:0:\nnogroup:x:65534:\nfoo:x:119:foo\n",
        "etc/systemd/system/foo.service": "[Service]\nUser=foo\nGroup=foo\nExecStart=/usr/bin/foo\n",
    }
    plan = plan_for(tmp_path, tree, "/srv\t0\t0\t0755\td\n/srv/foo.db\t0\t119\t0640\tf\n")
    acc = plan.accounts[0]
    assert (acc.delete_group, acc.group, acc.group_gid, acc.gid) == (True, "foo", 119, 65534)
    assert (
        acc.group_note == "group foo (GID 119) is deleted with the user; its primary group nogroup is shared and kept"
    )
    assert "A_GID=65534 A_GROUP=foo A_GROUP_GID=119 A_DELETE_GROUP=1" in account_data(acc)
    # the deleted group is not granted back, and Group= names the dynamic group
    assert dropin(plan) == ["[Service]", "DynamicUser=yes", "User=foo", "Group=foo"]
    # what the group owned is a leftover stage 3 gives to root
    assert [(str(lf.path), lf.gid) for lf in acc.leftovers] == [("/srv/foo.db", 119)]


def test_own_group_kept_for_others_is_what_blocks_the_account(tmp_path: Path) -> None:
    tree: Tree = {
        "etc/passwd": (
            "root:x:0:0:root:/root:/bin/bash\nbar:x:121:121::/nonexistent:/usr/sbin/nologin\n"
            "foo:x:120:65534::/var/lib/foo:/usr/sbin/nologin\n"
        ),
        "etc/group": "root:x:0:\nnogroup:x:65534:\nbar:x:121:\nfoo:x:119:foo,bar\n",
        "etc/systemd/system/foo.service": "[Service]\nUser=foo\nExecStart=/usr/bin/foo\n",
    }
    plan = plan_for(tmp_path, tree, force=True)
    acc = plan.accounts[0]
    assert (acc.delete_group, acc.forced) == (False, True)
    assert [m.id for m in acc.manual_steps] == ["DM108-foo"]
    assert acc.group_note == "group foo is kept: other users rely on it (bar)"


def test_setuid_file_of_the_account_goes_to_root_without_its_bit_in_stage_2(tmp_path: Path) -> None:
    # lldpd on Debian 12: lldpcli is setuid _lldpd (4750, group adm). Left to stage 3, after stage 2's
    # health check, it still switched to the old UID and could not reach the dynamic daemon's socket.
    plan = plan_for(
        tmp_path,
        {"etc/systemd/system/foo.service": "[Service]\nUser=foo\nExecStart=/usr/bin/foo\n"},
        "/usr\t0\t0\t0755\td\n/usr/sbin\t0\t0\t0755\td\n/usr/sbin/fooctl\t120\t4\t4750\tf\n",
    )
    acc = plan.accounts[0]
    fix = next(f for f in acc.file_fixes if f.path == "/usr/sbin/fooctl")
    assert (fix.new_uid, fix.new_gid, oct(fix.new_mode)) == (0, 0, "0o750")
    assert "/usr/sbin/fooctl" in account_data(acc).split("A_FIX_PATH=(")[1].split(")")[0]
    assert "/usr/sbin/fooctl" not in [str(lf.path) for lf in acc.leftovers]
    assert "/usr/sbin/fooctl" in [str(p) for p in acc.manifest_paths]  # the rollback restores owner and mode
    assert [m.id for m in acc.manual_steps if m.rule == "DM304"] == ["DM304-foo"]
    assert len([f for f in acc.file_fixes if f.path == "/usr/sbin/fooctl"]) == 1


def _spamd_plan(tmp_path: Path, dropin: str) -> MigrationPlan:
    """spamd starts as root and drops privileges itself; an admin's drop-in (named DROPIN) resets
    ExecStart= to add --username."""
    unit = "[Service]\nExecStart=/usr/sbin/spamd --pidfile=/run/spamd/spamd.pid\n"
    override = "[Service]\nExecStart=\nExecStart=/usr/sbin/spamd --username=spamd --pidfile=/run/spamd/spamd.pid\n"
    root = build(
        tmp_path / "root",
        {
            "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nspamd:x:120:120::/nonexistent:/usr/sbin/nologin\n",
            "etc/group": "root:x:0:\nspamd:x:120:\n",
            "usr/lib/systemd/system/spamd.service": unit,
            f"etc/systemd/system/spamd.service.d/{dropin}": override,
        },
    )
    result = analyse(collect(str(root), manifest=OwnershipManifest.parse("")))
    return make_plan(result.queries, result.report, Selection(accounts=("spamd",)), PlanOptions())


def test_the_drop_in_sorts_after_systemctl_edits_override(tmp_path: Path) -> None:
    """systemctl edit's override.conf sorts after 50-dynmigrate.conf: the plan's drop-in, made from
    the unit with override.conf applied, is named so that systemd applies it last, and the command
    line it rewrote for a daemon that starts as root ('!') is the one that runs."""
    plan = _spamd_plan(tmp_path, "override.conf")
    acc = plan.accounts[0]
    (u,) = acc.units
    assert u.dropin_path == "/etc/systemd/system/spamd.service.d/zz-dynmigrate.conf"
    assert [m.text for m in acc.manual_steps if "sorts after" in m.text] == []
    execs = [line for line in u.after.splitlines() if line.startswith("ExecStart=")]
    assert execs[-2:] == ["ExecStart=", "ExecStart=!/usr/sbin/spamd --username=spamd --pidfile=/run/spamd/spamd.pid"]
    assert u.after.index("# /etc/systemd/system/spamd.service.d/override.conf") < u.after.index(
        "# /etc/systemd/system/spamd.service.d/zz-dynmigrate.conf"
    )
    assert "units/spamd.service/zz-dynmigrate.conf" in account_data(acc)
    assert "/etc/systemd/system/spamd.service.d/zz-dynmigrate.conf" in account_data(acc)


def test_a_drop_in_that_sorts_after_every_name_of_ours_is_a_manual_step(tmp_path: Path) -> None:
    """A drop-in whose name sorts after zz-dynmigrate.conf too: the plan never builds a name from one
    found under ROOT; it says which line would undo part of the migration."""
    plan = _spamd_plan(tmp_path, "zzz-local.conf")
    steps = [m.text for m in plan.accounts[0].manual_steps if "sorts after" in m.text]
    assert steps == [
        "/etc/systemd/system/spamd.service.d/zzz-local.conf:3 sorts after zz-dynmigrate.conf and sets "
        "ExecStart=/usr/sbin/spamd --username=spamd --pidfile=/run/spamd/spamd.pid again: it would undo part "
        "of the migration; rename it so that it sorts before zz-dynmigrate.conf (e.g. 40-zzz-local.conf: the "
        "plan's drop-in was made from the unit with it), or remove it"
    ]


def test_dropin_name_sorts_after_the_units_drop_ins() -> None:
    from dynmigrate.model.plan import dropin_name

    assert dropin_name([]) == "50-dynmigrate.conf"
    assert dropin_name(["10-limits.conf", "49-x.conf"]) == "50-dynmigrate.conf"
    assert dropin_name(["10-limits.conf", "override.conf"]) == "zz-dynmigrate.conf"
    assert dropin_name(["50-dynmigrate.conf"]) == "50-dynmigrate.conf"  # ours, from an earlier plan
    assert dropin_name(["50-dynmigrate.conf.d"]) == "zz-dynmigrate.conf"
    assert dropin_name(["\u00e9t\u00e9.conf"]) == "zz-dynmigrate.conf"  # never a name from ROOT


def _pid_plan(tmp_path: Path, service: str, extra: dict[str, str] | None = None) -> MigrationPlan:
    root = build(
        tmp_path / "root",
        {
            "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nfoo:x:120:120::/nonexistent:/usr/sbin/nologin\n",
            "etc/group": "root:x:0:\nfoo:x:120:\n",
            "usr/lib/systemd/system/food.service": service,
            **(extra or {}),
        },
    )
    result = analyse(collect(str(root), manifest=OwnershipManifest.parse("")))
    return make_plan(result.queries, result.report, Selection(accounts=("foo",)), PlanOptions())


FOOD = (
    "[Service]\nType=simple\nUser=foo\nPIDFile=/run/food.pid\n"
    "ExecStart=/usr/sbin/food --pidfile=/var/run/food.pid --foreground\n"
    "ExecStop=/usr/bin/pkill -F /run/food.pid\n"
)


def test_a_pid_file_the_command_line_puts_in_run_moves_into_the_runtime_directory(tmp_path: Path) -> None:
    """A PID file written out on the unit's own command lines is the plan's to move: every command
    line and PIDFile= name /run/food/food.pid, RuntimeDirectory= creates it, and no manual step."""
    acc = _pid_plan(tmp_path, FOOD).accounts[0]
    (u,) = acc.units
    assert [m.text for m in acc.manual_steps if "PID file" in m.text or "straight in /run" in m.text] == []
    items = [line for line in u.dropin_text.splitlines() if line.startswith(("Exec", "PIDFile", "RuntimeDirectory="))]
    assert items == [
        "ExecStart=",
        "ExecStart=/usr/sbin/food --pidfile=/run/food/food.pid --foreground",
        "ExecStop=",
        "ExecStop=/usr/bin/pkill -F /run/food/food.pid",
        "RuntimeDirectory=food",
        "PIDFile=/run/food/food.pid",
    ]


def test_a_pid_file_from_a_variable_or_read_elsewhere_stays_a_manual_step(tmp_path: Path) -> None:
    """The plan moves only what it rewrites: a path from a variable is the admin's to change, and a
    file outside the unit that names the moved PID file (a logrotate script) is listed."""
    from_var = FOOD.replace("--pidfile=/var/run/food.pid", "--pidfile=$PIDF").replace(
        "[Service]\n", "[Service]\nEnvironment=PIDF=/run/food.pid\n"
    )
    acc = _pid_plan(tmp_path / "var", from_var).accounts[0]
    assert [m.text for m in acc.manual_steps if "straight in /run" in m.text] == [
        "food.service: ExecStart makes the daemon write /run/food.pid, straight in /run, which is read-only under "
        "DynamicUser: point it into RuntimeDirectory= (e.g. /run/food/)"
    ]
    rotate = {
        "etc/logrotate.d/food": "/var/log/food.log {\n postrotate\n  kill -HUP $(cat /run/food.pid)\n endscript\n}\n"
    }
    acc = _pid_plan(tmp_path / "rot", FOOD, rotate).accounts[0]
    assert [m.text for m in acc.manual_steps if "names the PID file" in m.text] == [
        "/etc/logrotate.d/food names the PID file /run/food.pid, which the daemon now writes as "
        "/run/food/food.pid: point it there"
    ]
