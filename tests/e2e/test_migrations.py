"""End-to-end: real Debian packages migrated on a real booted systemd, and rolled back.

Scenarios (issue "Proof on a real systemd"): the stages on redis-server and memcached with the
promised state after each one; the rollback of every stage in reverse; interruptions of stage 2;
drift after package upgrades and its repair; a blocked service; a live scan against an offline one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dynmigrate.app import run_scan
from dynmigrate.cli.main import main
from e2e.dm import (
    DYN_MAX,
    DYN_MIN,
    PY,
    confirms,
    files_owned_by,
    install_dynmigrate,
    main_uid,
    manifest,
    memcached_version,
    migrate,
    nobody_access,
    passwd,
    plan_into,
    redis_get,
    rollback,
    unit_uids,
    verify,
    widened,
)
from e2e.harness import Container, ContainerFactory

ACCOUNTS = ("redis", "memcache")
DATA = ("/var/lib/redis", "/var/log/redis", "/etc/redis")


def dynamic(uid: int) -> bool:
    return DYN_MIN <= uid <= DYN_MAX


def prepared(make_container: ContainerFactory) -> Container:
    c = make_container(prepare=install_dynmigrate)
    c.run(["redis-cli", "set", "dm:key", "written-before-migration"])
    c.run(["redis-cli", "save"])
    return c


def test_stages_then_rollback_of_every_stage(make_container: ContainerFactory) -> None:
    c = prepared(make_container)
    before_pw = passwd(c)
    before_manifest = manifest(c, *DATA)
    before_access = nobody_access(c)
    plan = plan_into(c, ACCOUNTS)

    migrate(c, "stage0")
    assert c.run(["getent", "passwd", "redis"]).stdout.startswith(f"redis:x:{before_pw['redis'][2]}:")
    assert "libnss_systemd.so.2" in c.run(["bash", "-c", "ldconfig -p"]).stdout

    migrate(c, "stage1")
    # the static account still wins: same UIDs, but state moved into private/
    assert main_uid(c, "redis-server") == int(before_pw["redis"][2])
    memcached_uids = unit_uids(c, "memcached")
    assert int(before_pw["memcache"][2]) in memcached_uids, c.run(
        ["systemctl", "status", "memcached"], check=False
    ).stdout
    assert c.run(["readlink", "/var/lib/redis"]).stdout.strip() == "private/redis"
    assert c.run(["test", "-d", "/var/lib/private/redis"]).returncode == 0
    assert redis_get(c, "dm:key") == "written-before-migration"

    refused = migrate(c, "stage2", check=False)
    assert refused.returncode != 0
    assert "stage 2 refused until every acknowledgement and manual step is confirmed" in refused.stderr
    migrate(c, *confirms(plan), "stage2")
    pw = passwd(c)
    assert "redis" not in pw
    assert "memcache" not in pw
    redis_uid = main_uid(c, "redis-server")
    assert dynamic(redis_uid)
    assert any(dynamic(u) for u in unit_uids(c, "memcached"))
    assert redis_get(c, "dm:key") == "written-before-migration"
    assert memcached_version(c).startswith("VERSION")
    assert c.run(["getent", "passwd", "redis"]).stdout.split(":")[2] == str(redis_uid)  # nss-systemd

    migrate(c, "stage3")
    for name in ACCOUNTS:
        uid, gid = int(before_pw[name][2]), int(before_pw[name][3])
        assert files_owned_by(c, uid, gid) == []
    ledger = c.read_text("/var/lib/dynmigrate/retired-ids")
    assert f"{before_pw['redis'][2]}\t{before_pw['redis'][3]}\tredis\t" in ledger
    assert widened(before_access, nobody_access(c)) == []

    result = verify(c)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "drift" not in result.stdout

    # roll everything back, in reverse
    rollback(c, "stage3")
    assert "redis" not in c.read_text("/var/lib/dynmigrate/retired-ids")
    rollback(c, "stage2")
    pw = passwd(c)
    for name in ACCOUNTS:
        assert pw[name] == before_pw[name]
    assert main_uid(c, "redis-server") == int(before_pw["redis"][2])
    rollback(c, "stage1")
    rollback(c, "stage0")
    assert c.run(["readlink", "/var/lib/redis"], check=False).stdout == ""
    assert manifest(c, *DATA) == before_manifest
    assert redis_get(c, "dm:key") == "written-before-migration"
    assert memcached_version(c).startswith("VERSION")
    assert c.run(["systemctl", "is-active", "redis-server", "memcached"]).returncode == 0
    assert c.run(["cat", "/var/lib/dpkg/statoverride"]).stdout.count("redis redis 640 /etc/redis/redis.conf") == 1
    dropin = "/etc/systemd/system/redis-server.service.d/50-dynmigrate.conf"
    assert c.run(["test", "-e", dropin], check=False).returncode != 0
    assert widened(before_access, nobody_access(c)) == []


@pytest.mark.parametrize("stage", ["stage1", "stage2", "stage3"])
def test_each_stage_rolls_back_on_its_own(make_container: ContainerFactory, stage: str) -> None:
    """Rollback straight after each stage (not only after the whole migration)."""
    c = prepared(make_container)
    before_pw = passwd(c)
    before_manifest = manifest(c, *DATA)
    plan = plan_into(c, ("redis",))
    order = ["stage0", "stage1", "stage2", "stage3"]
    for s in order[: order.index(stage) + 1]:
        migrate(c, *(confirms(plan) if s == "stage2" else []), s)
    for s in reversed(order[: order.index(stage) + 1]):
        rollback(c, s)
    assert passwd(c)["redis"] == before_pw["redis"]
    assert manifest(c, *DATA) == before_manifest
    assert main_uid(c, "redis-server") == int(before_pw["redis"][2])
    assert redis_get(c, "dm:key") == "written-before-migration"


@pytest.mark.parametrize("point", ["stage2-after-backup", "stage2-after-userdel", "stage2-before-start"])
@pytest.mark.parametrize("recovery", ["rerun", "rollback"])
def test_stage2_interrupted(make_container: ContainerFactory, point: str, recovery: str) -> None:
    c = prepared(make_container)
    before_pw = passwd(c)
    before_manifest = manifest(c, *DATA)
    plan = plan_into(c, ("redis",))
    migrate(c, "stage0")
    migrate(c, "stage1")
    crashed = c.run(
        ["/root/plan/migrate.sh", *confirms(plan), "stage2"],
        check=False,
        env={"DYNMIGRATE_SETTLE": "2", "DYNMIGRATE_CRASH_AT": point},
        timeout=300,
    )
    assert crashed.returncode != 0
    assert f"crash point {point} reached" in crashed.stderr
    assert c.run(["test", "-e", "/var/lib/dynmigrate/accounts/redis/stage2.done"], check=False).returncode != 0
    if recovery == "rerun":
        migrate(c, *confirms(plan), "stage2")
        assert "redis" not in passwd(c)
        assert dynamic(main_uid(c, "redis-server"))
    else:
        rollback(c, "stage2")
        rollback(c, "stage1")
        assert passwd(c)["redis"] == before_pw["redis"]
        assert manifest(c, *DATA) == before_manifest
        assert main_uid(c, "redis-server") == int(before_pw["redis"][2])
    assert redis_get(c, "dm:key") == "written-before-migration"


def _migrated_redis(make_container: ContainerFactory) -> tuple[Container, Path]:
    c = prepared(make_container)
    before_access = nobody_access(c)
    plan = plan_into(c, ("redis",))
    for s in ("stage0", "stage1"):
        migrate(c, s)
    migrate(c, *confirms(plan), "stage2")
    migrate(c, "stage3")
    assert verify(c).returncode == 0
    assert widened(before_access, nobody_access(c)) == []
    return c, plan


def test_package_upgrade_while_running_keeps_the_dynamic_user(make_container: ContainerFactory) -> None:
    c, _ = _migrated_redis(make_container)
    out = c.run(
        ["apt-get", "install", "--reinstall", "-y", "--no-download", "redis-tools", "redis-server"],
        env={"DEBIAN_FRONTEND": "noninteractive"},
        timeout=600,
    )
    assert "Setting up redis-server" in out.stdout
    assert "redis" not in passwd(c)
    assert dynamic(main_uid(c, "redis-server"))
    assert redis_get(c, "dm:key") == "written-before-migration"
    result = verify(c)
    assert result.returncode == 0, result.stdout


def test_package_upgrade_while_stopped_is_repaired_by_the_apt_hook(make_container: ContainerFactory) -> None:
    c, _ = _migrated_redis(make_container)
    c.run(["systemctl", "stop", "redis-server"])
    out = c.run(
        ["apt-get", "install", "--reinstall", "-y", "--no-download", "redis-tools", "redis-server"],
        env={"DEBIAN_FRONTEND": "noninteractive"},
        timeout=600,
    )
    # the postinst recreated the account (nothing resolved the name while redis was stopped) ...
    assert "drift: a static redis" in out.stdout + out.stderr
    # ... and the DPkg::Post-Invoke hook undid it
    assert "repaired: redis runs under a dynamic UID again" in out.stdout + out.stderr
    assert "redis" not in passwd(c)
    assert dynamic(main_uid(c, "redis-server"))
    assert redis_get(c, "dm:key") == "written-before-migration"
    assert verify(c).returncode == 0


def test_drift_without_apt_is_reported_and_repaired(make_container: ContainerFactory) -> None:
    c, _ = _migrated_redis(make_container)
    c.run(["systemctl", "stop", "redis-server"])
    version = c.run(["dpkg-query", "-W", "-f=${Version}", "redis-tools"]).stdout
    c.run(["/var/lib/dpkg/info/redis-tools.postinst", "configure", version])
    c.run(["systemctl", "start", "redis-server"])
    assert "redis" in passwd(c)
    report = verify(c)
    assert report.returncode == 1
    assert "FAIL redis: no static account: a static redis is back" in report.stdout
    assert "drift found" in report.stdout
    repaired = verify(c, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "redis" not in passwd(c)
    assert dynamic(main_uid(c, "redis-server"))
    assert redis_get(c, "dm:key") == "written-before-migration"


def test_dpkg_works_with_the_migrated_service_stopped(make_container: ContainerFactory) -> None:
    c, _ = _migrated_redis(make_container)
    c.run(["systemctl", "stop", "redis-server"])
    deb = c.run(["bash", "-c", "ls /var/cache/apt/archives/libnss-systemd_*.deb"]).stdout.strip()
    ok = c.run(["dpkg", "-i", deb], check=False)
    assert ok.returncode == 0, ok.stderr
    # control: the statoverride the migration removed would break every dpkg run
    c.run(["bash", "-c", "echo 'redis redis 640 /etc/redis/redis.conf' >> /var/lib/dpkg/statoverride"])
    broken = c.run(["dpkg", "-i", deb], check=False)
    assert broken.returncode != 0
    assert "unknown system user 'redis'" in broken.stderr or "unknown system user" in broken.stderr


def test_blocked_service_is_refused_without_force(e2e_root: Path, tmp_path: Path) -> None:
    result = run_scan(str(e2e_root))
    avahi = result.report.account("avahi")
    assert avahi is not None
    assert avahi.verdict.value == "blocked"
    blockers = {f.rule for f in avahi.findings if f.effect.value == "blocks"}
    assert blockers == {"DM205", "DM403"}
    res = CliRunner().invoke(
        main, ["plan", str(e2e_root), "--account", "avahi", "-o", str(tmp_path / "p"), "--no-security", "--no-progress"]
    )
    assert res.exit_code == 4
    assert "not planned: avahi: blocked: DM205" in res.stderr
    forced = CliRunner().invoke(
        main,
        [
            "plan",
            str(e2e_root),
            "--account",
            "avahi",
            "--force",
            "-o",
            str(tmp_path / "f"),
            "--no-security",
            "--no-progress",
        ],
    )
    assert forced.exit_code == 0, forced.stderr
    assert "--force overrides blocker of avahi: DM403" in forced.stderr


def test_units_without_user_are_linked(e2e_root: Path) -> None:
    """memcache -> memcached.service and www-data -> nginx.service, though neither unit has User=."""
    result = run_scan(str(e2e_root))
    for unit in ("memcached.service", "nginx.service"):
        u = result.snapshot.unit(unit)
        assert u is not None
        assert u.value("Service", "User") is None
    memcache = result.report.account("memcache")
    www = result.report.account("www-data")
    assert memcache is not None
    assert www is not None
    assert ("memcached.service", "daemon-config", "likely", "/etc/memcached.conf:30") in {
        (lk.unit, lk.how, lk.confidence, lk.source) for lk in memcache.links
    }
    assert ("nginx.service", "daemon-config", "likely") in {(lk.unit, lk.how, lk.confidence) for lk in www.links}
    # the plan handles everything (DM110 acknowledged, DM201 informs): the plan applied unmodified works
    assert memcache.verdict.value == "convertible", memcache.reason
    assert www.verdict.value == "blocked"
    assert "DM106" in {f.rule for f in www.findings}
    redis = result.report.account("redis")
    assert redis is not None
    assert redis.verdict.value == "convertible", redis.reason
    assert any(f.rule == "DM302" and "/etc/redis/redis.conf is 0640" in f.message for f in redis.findings)


def test_live_scan_agrees_with_offline_scan(make_container: ContainerFactory, e2e_root: Path) -> None:
    c = make_container(prepare=install_dynmigrate)
    live = json.loads(c.run(["bash", "-c", f"{PY} scan / --format json --no-progress"], timeout=300).stdout)
    offline = run_scan(str(e2e_root)).report
    assert {a["name"]: a["verdict"] for a in live["accounts"]} == {a.name: a.verdict.value for a in offline.accounts}


def test_dynmigrate_runs_on_debian_python(make_container: ContainerFactory) -> None:
    """The tool itself runs on a plain Debian host (each suite) with the distribution's click, rich, networkx."""
    c = make_container(prepare=install_dynmigrate)
    assert c.run(["bash", "-c", f"{PY} --version"]).stdout.startswith("dynmigrate, version ")
    rules = c.run(["bash", "-c", f"{PY} rules --format json"]).stdout
    assert {r["id"] for r in json.loads(rules)} >= {"DM101", "DM205", "DM403"}


def test_scripts_fail_closed(make_container: ContainerFactory) -> None:
    """A missing backup, an unexpected owner, or a process of the old UID outside the unit stops
    the stage with a clear message, and nothing is deleted."""
    c = prepared(make_container)
    uid = passwd(c)["redis"][2]
    plan = plan_into(c, ("redis",))
    # unexpected owner: the account no longer has the UID the plan was made for
    c.run(["systemctl", "stop", "redis-server"])
    c.run(["usermod", "-u", "150", "redis"])
    res = migrate(c, "stage0", check=False)
    assert res.returncode != 0
    assert f"unexpected owner: redis has UID 150, the plan was made for UID {uid}" in res.stderr
    c.run(["usermod", "-u", uid, "redis"])
    c.run(["bash", "-c", "chown -R redis:redis /var/lib/redis /etc/redis && systemctl start redis-server"])
    migrate(c, "stage0")
    # missing backup
    c.run(["mv", "/var/lib/dynmigrate/accounts/redis/backup.done", "/var/lib/dynmigrate/accounts/redis/x"])
    res = migrate(c, "stage1", check=False)
    assert res.returncode != 0
    assert "the backup is missing: run stage0 first" in res.stderr
    c.run(["mv", "/var/lib/dynmigrate/accounts/redis/x", "/var/lib/dynmigrate/accounts/redis/backup.done"])
    migrate(c, "stage1")
    # a process of the old UID outside the unit
    c.run(["systemd-run", "--unit=stray", "--uid=redis", "sleep", "600"])
    res = migrate(c, *confirms(plan), "stage2", check=False)
    assert res.returncode != 0
    assert f"processes still run as UID {uid} outside the units" in res.stderr
    assert "stop those processes first" in res.stderr
    assert passwd(c)["redis"][2] == uid  # not deleted
    assert c.run(["systemctl", "is-active", "redis-server"]).stdout.strip() == "active"  # not left stopped
    c.run(["systemctl", "stop", "stray"])
    migrate(c, *confirms(plan), "stage2")
    assert "redis" not in passwd(c)
    assert redis_get(c, "dm:key") == "written-before-migration"


@pytest.mark.parametrize("point", ["undo1-dropins-removed", "undo1-moved-back"])
def test_rollback_of_stage1_interrupted_then_rerun(make_container: ContainerFactory, point: str) -> None:
    c = prepared(make_container)
    before_pw = passwd(c)
    before_manifest = manifest(c, *DATA)
    plan_into(c, ("redis",))
    migrate(c, "stage0")
    migrate(c, "stage1")
    crashed = c.run(
        ["/root/plan/rollback.sh", "stage1"],
        check=False,
        env={"DYNMIGRATE_SETTLE": "2", "DYNMIGRATE_CRASH_AT": point},
        timeout=300,
    )
    assert f"crash point {point} reached" in crashed.stderr
    rollback(c, "stage1")
    rollback(c, "stage0")
    assert c.run(["test", "-d", "/var/lib/redis"]).returncode == 0
    assert c.run(["readlink", "/var/lib/redis"], check=False).stdout == ""
    assert passwd(c)["redis"] == before_pw["redis"]
    assert manifest(c, *DATA) == before_manifest
    assert redis_get(c, "dm:key") == "written-before-migration"


@pytest.mark.parametrize("point", ["stage1-installed", "stage3-found", "undo2-recreated"])
def test_interrupted_at_the_other_crash_points_then_rolled_back(make_container: ContainerFactory, point: str) -> None:
    """The crash points no other test stops at (issue 10, item 13: every rollback succeeds from any
    partial state): stage 1 with its drop-ins installed and the units stopped, stage 3 after its
    search, and the rollback of stage 2 with the account recreated, then rolled back again. The
    rollbacks down to stage 0 give back the account, its files and the service as they were."""
    c = prepared(make_container)
    before_pw = passwd(c)
    before_manifest = manifest(c, *DATA)
    plan = plan_into(c, ("redis",))
    crash = {"DYNMIGRATE_SETTLE": "2", "DYNMIGRATE_CRASH_AT": point}
    migrate(c, "stage0")
    if point == "stage1-installed":
        crashed = c.run(["/root/plan/migrate.sh", "stage1"], check=False, env=crash, timeout=300)
        undo = ["stage1", "stage0"]
    else:
        migrate(c, "stage1")
        migrate(c, *confirms(plan), "stage2")
        script, stage = ("migrate.sh", "stage3") if point == "stage3-found" else ("rollback.sh", "stage2")
        crashed = c.run([f"/root/plan/{script}", stage], check=False, env=crash, timeout=300)
        undo = ["stage3", "stage2", "stage1", "stage0"] if stage == "stage3" else ["stage2", "stage1", "stage0"]
    assert f"crash point {point} reached" in crashed.stderr
    for stage in undo:
        rollback(c, stage)
    assert passwd(c)["redis"] == before_pw["redis"]
    assert manifest(c, *DATA) == before_manifest
    assert main_uid(c, "redis-server") == int(before_pw["redis"][2])
    assert redis_get(c, "dm:key") == "written-before-migration"


def test_planted_symlink_is_never_chowned(make_container: ContainerFactory) -> None:
    """A compromised service replaces its config with a symlink to /etc/shadow between stages 1
    and 2: stage 2 refuses to chown/chmod through it, and the service is started again."""
    c = prepared(make_container)
    uid = passwd(c)["redis"][2]
    plan = plan_into(c, ("redis",))
    migrate(c, "stage0")
    migrate(c, "stage1")
    shadow_before = c.run(["stat", "-c", "%U:%G %a", "/etc/shadow"]).stdout
    c.run(["bash", "-c", "mv /etc/redis/redis.conf /etc/redis/real.conf && ln -s /etc/shadow /etc/redis/redis.conf"])
    res = migrate(c, *confirms(plan), "stage2", check=False)
    assert res.returncode != 0
    assert "/etc/redis/redis.conf is a symlink or resolves elsewhere now" in res.stderr
    assert c.run(["stat", "-c", "%U:%G %a", "/etc/shadow"]).stdout == shadow_before
    assert passwd(c)["redis"][2] == uid
    assert "starting them again" in res.stderr
    assert c.run(["systemctl", "is-active", "redis-server"], check=False).stdout.strip() in ("active", "activating")


def _redis_logs_to_journal(root: Path) -> None:
    """Before boot: redis logs to stdout and /var/log/redis is gone, so the plan's LogsDirectory=
    is a directory systemd creates itself at stage 1."""
    install_dynmigrate(root)
    conf = root / "etc/redis/redis.conf"
    lines = conf.read_text().splitlines(keepends=True)
    conf.write_text("".join('logfile ""\n' if ln.startswith("logfile ") else ln for ln in lines))
    shutil.rmtree(root / "var/log/redis")


def owner(c: Container, path: str) -> tuple[int, int]:
    uid, gid = c.run(["stat", "-L", "-c", "%u %g", "--", path]).stdout.split()
    return int(uid), int(gid)


def test_directory_systemd_creates_is_reowned_by_the_rollbacks(make_container: ContainerFactory, suite: str) -> None:
    """systemd 257 id-maps a private directory it creates: 65534:65534 on disk, the service's UID
    inside (252 chowns it). The service writes there; every rollback leaves the tree to the static
    account, or the static service could not open its log file again."""
    c = make_container(prepare=_redis_logs_to_journal)
    c.run(["redis-cli", "set", "dm:key", "written-before-migration"])
    c.run(["redis-cli", "save"])
    pw = passwd(c)["redis"]
    static = (int(pw[2]), int(pw[3]))
    plan = plan_into(c, ("redis",))
    assert "LogsDirectory=redis" in (plan / "units/redis-server.service/50-dynmigrate.conf").read_text()
    migrate(c, "stage0")
    migrate(c, "stage1")
    assert c.run(["readlink", "/var/log/redis"]).stdout.strip() == "private/redis"
    created = owner(c, "/var/log/private/redis")
    assert created == ((65534, 65534) if suite == "trixie" else static)
    # the service logs into the new directory from now on
    c.run(["sed", "-i", 's|^logfile ""|logfile /var/log/redis/redis-server.log|', "/etc/redis/redis.conf"])
    c.run(["systemctl", "restart", "redis-server"])
    assert redis_get(c, "dm:key") == "written-before-migration"
    assert owner(c, "/var/log/redis/redis-server.log") == created

    migrate(c, *confirms(plan), "stage2")
    migrate(c, "stage3")
    redis_uid = main_uid(c, "redis-server")
    assert dynamic(redis_uid)
    log_owner = owner(c, "/var/log/redis/redis-server.log")
    assert log_owner == ((65534, 65534) if suite == "trixie" else (redis_uid, redis_uid))
    result = verify(c)
    assert result.returncode == 0, result.stdout + result.stderr

    rollback(c, "stage3")
    rollback(c, "stage2")  # its health check needs the static redis to open its log file
    assert main_uid(c, "redis-server") == static[0]
    tree = c.run(["find", "/var/log/redis/", "-printf", "%U:%G %p\\n"]).stdout.splitlines()
    mine = f"{static[0]}:{static[1]}"
    assert tree == [f"{mine} /var/log/redis/", f"{mine} /var/log/redis/redis-server.log"]
    rollback(c, "stage1")  # moves the directory out of /var/log/private (0700) for the static unit
    rollback(c, "stage0")
    assert main_uid(c, "redis-server") == static[0]
    assert c.run(["readlink", "/var/log/redis"], check=False).stdout == ""
    assert owner(c, "/var/log/redis") == static
    assert owner(c, "/var/log/redis/redis-server.log") == static
    assert redis_get(c, "dm:key") == "written-before-migration"


@pytest.mark.suites("trixie")
def test_rollback_of_stage1_reowns_an_id_mapped_directory(make_container: ContainerFactory) -> None:
    """Rolled back straight after stage 1 on systemd 257: the directory systemd created id-mapped
    goes to the static account, so redis (still static) writes its log there again."""
    c = make_container(prepare=_redis_logs_to_journal)
    pw = passwd(c)["redis"]
    plan_into(c, ("redis",))
    migrate(c, "stage0")
    migrate(c, "stage1")
    assert owner(c, "/var/log/private/redis") == (65534, 65534)
    c.run(["sed", "-i", 's|^logfile ""|logfile /var/log/redis/redis-server.log|', "/etc/redis/redis.conf"])
    c.run(["systemctl", "restart", "redis-server"])
    assert owner(c, "/var/log/redis/redis-server.log") == (65534, 65534)
    rollback(c, "stage1")  # restarts the static redis, which must open its log file
    assert c.run(["readlink", "/var/log/redis"], check=False).stdout == ""
    assert owner(c, "/var/log/redis") == owner(c, "/var/log/redis/redis-server.log") == (int(pw[2]), int(pw[3]))
    assert c.run(["redis-cli", "ping"]).stdout.strip() == "PONG"


DMEXEC_UNIT = """[Unit]
Description=runs a program kept in its state directory

[Service]
User=dmexec
ExecStart=/var/lib/dmexec/run
ReadWritePaths=/var/lib/dmexec

[Install]
WantedBy=multi-user.target
"""
DMEXEC_RUN = """#!/bin/sh
id -u > /var/lib/dmexec/data/uid
exec sleep infinity
"""


def test_program_in_its_state_directory_still_runs(make_container: ContainerFactory) -> None:
    """A state directory the account owns entirely, with the unit's program in it: systemd 257
    mounts managed directories noexec under DynamicUser; the plan's ExecPaths= lets the program
    run under the dynamic UID, and the rollbacks give the tree its owners back. (A root-owned
    directory with the program in it never becomes a managed directory: systemd would hand the
    program to the service, so the plan makes that a manual step.)"""
    c = make_container(prepare=install_dynmigrate)
    c.run(["useradd", "--system", "--shell", "/usr/sbin/nologin", "dmexec"])
    c.run(["install", "-d", "-o", "dmexec", "-g", "dmexec", "-m", "0755", "/var/lib/dmexec"])
    c.run(["install", "-d", "-o", "dmexec", "-g", "dmexec", "-m", "0750", "/var/lib/dmexec/data"])
    c.run(["sh", "-c", "cat > /var/lib/dmexec/run && chmod 0755 /var/lib/dmexec/run"], input=DMEXEC_RUN)
    c.run(["chown", "dmexec:dmexec", "/var/lib/dmexec/run"])
    c.run(["sh", "-c", "cat > /etc/systemd/system/dmexec.service"], input=DMEXEC_UNIT)
    c.run(["systemctl", "enable", "--now", "dmexec.service"])
    uid = passwd(c)["dmexec"][2]
    # the shell creates the file (>) before `id -u` writes it: wait for the content, not the file
    assert c.wait_for(["grep", "-x", uid, "/var/lib/dmexec/data/uid"]).returncode == 0
    before = manifest(c, "/var/lib/dmexec")
    plan = plan_into(c, ("dmexec",))
    dropin = (plan / "units/dmexec.service/50-dynmigrate.conf").read_text()
    assert "StateDirectory=dmexec" in dropin
    assert "ExecPaths=/var/lib/dmexec" in dropin

    migrate(c, "stage0")
    migrate(c, "stage1")
    migrate(c, *confirms(plan), "stage2")
    dyn = main_uid(c, "dmexec")
    assert dynamic(dyn)
    assert c.wait_for(["grep", "-x", str(dyn), "/var/lib/dmexec/data/uid"]).returncode == 0
    migrate(c, "stage3")
    for s in ("stage3", "stage2", "stage1", "stage0"):
        rollback(c, s)
    assert main_uid(c, "dmexec") == int(uid)
    assert c.wait_for(["grep", "-x", uid, "/var/lib/dmexec/data/uid"]).returncode == 0
    assert manifest(c, "/var/lib/dmexec") == before


SHADOW_STAT = ["stat", "-c", "%u:%g %a %i", "/etc/shadow"]


def test_stage3_rollback_does_not_chmod_through_a_planted_link(make_container: ContainerFactory) -> None:
    """A directory the account made 0777 before the migration; after stage 3 a file in it is
    replaced by a link to /etc/shadow: the rollback of stage 3 leaves /etc/shadow as it was."""
    c = prepared(make_container)
    c.run(["bash", "-c", "mkdir -m 0777 /srv/drop && echo x >/srv/drop/f && chmod 0666 /srv/drop/f"])
    c.run(["chown", "-R", "redis:redis", "/srv/drop"])
    c.run(["chmod", "0777", "/srv/drop"])
    ids = c.run(["stat", "-c", "%u:%g", "/srv/drop"]).stdout.strip()
    plan = plan_into(c, ("redis",))
    for s in ("stage0", "stage1"):
        migrate(c, s)
    migrate(c, *confirms(plan), "stage2")
    migrate(c, "stage3")
    assert c.run(["stat", "-c", "%u %a", "/srv/drop/f"]).stdout.split() == ["0", "666"]
    shadow_before = c.run(SHADOW_STAT).stdout
    c.run(["bash", "-c", "rm /srv/drop/f && ln -s /etc/shadow /srv/drop/f"])
    res = rollback(c, "stage3")
    assert c.run(SHADOW_STAT).stdout == shadow_before
    assert "/srv/drop/f is of type l now, recorded as type f: left as it is" in res.stderr
    assert c.run(["stat", "-c", "%u:%g %a", "/srv/drop"]).stdout.strip() == f"{ids} 777"


RACER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b = (os.fsencode(p) for p in sys.argv[1:3])
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    libc.renameat2(-100, a, -100, b, 2)  # AT_FDCWD, RENAME_EXCHANGE; fails harmlessly while moved
"""


def test_rollback_of_stage1_races_a_renameat2_exchange(make_container: ContainerFactory) -> None:
    """While a process exchanges a recorded file and a link to /etc/shadow (renameat2), stage 1 is
    rolled back and done again many times: /etc/shadow never changes owner or mode."""
    c = prepared(make_container)
    spool = "/var/lib/redis/spool"
    c.run(["bash", "-c", f"mkdir -m 0777 {spool} && echo x >{spool}/f && chmod 0666 {spool}/f"])
    c.run(["chown", "-R", "redis:redis", spool])
    c.run(["chmod", "0777", spool])
    c.run(["ln", "-s", "/etc/shadow", f"{spool}/lnk"])
    plan_into(c, ("redis",))
    migrate(c, "stage0")
    shadow_before = c.run(SHADOW_STAT).stdout
    c.root.joinpath("root/racer.py").write_text(RACER, encoding="utf-8")
    c.run(["bash", "-c", f"nohup python3 /root/racer.py {spool}/f {spool}/lnk 1800 >/dev/null 2>&1 &"])
    rounds = 12
    try:
        for i in range(rounds):
            migrate(c, "stage1")
            rollback(c, "stage1")
            assert c.run(SHADOW_STAT).stdout == shadow_before, f"lost the race in round {i + 1}"
    finally:
        c.run(["pkill", "-f", "racer.py"], check=False)
    assert redis_get(c, "dm:key") == "written-before-migration"


@pytest.mark.parametrize("point", ["stage2-before-userdel", "stage2-after-userdel"])
def test_interrupted_stage2_then_apt_then_rollback(make_container: ContainerFactory, point: str) -> None:
    """Stage 2 dies, an apt run follows (its hook and the package scripts run), and the rollback
    still brings back the account exactly: no guard was active for an account that still existed."""
    c = prepared(make_container)
    before_pw = passwd(c)
    before_manifest = manifest(c, *DATA)
    plan = plan_into(c, ("redis",))
    migrate(c, "stage0")
    migrate(c, "stage1")
    crashed = c.run(
        ["/root/plan/migrate.sh", *confirms(plan), "stage2"],
        check=False,
        env={"DYNMIGRATE_SETTLE": "2", "DYNMIGRATE_CRASH_AT": point},
        timeout=300,
    )
    assert f"crash point {point} reached" in crashed.stderr
    assert c.run(["test", "-e", "/etc/apt/apt.conf.d/80dynmigrate-repair"], check=False).returncode != 0
    apt = c.run(
        ["apt-get", "install", "--reinstall", "-y", "--no-download", "redis-tools", "redis-server"],
        env={"DEBIAN_FRONTEND": "noninteractive"},
        timeout=600,
        check=False,
    )
    assert "drift" not in apt.stdout + apt.stderr
    rollback(c, "stage2")
    rollback(c, "stage1")
    assert passwd(c)["redis"] == before_pw["redis"]
    assert main_uid(c, "redis-server") == int(before_pw["redis"][2])
    assert manifest(c, *DATA) == before_manifest
    assert redis_get(c, "dm:key") == "written-before-migration"


def test_later_stages_recheck_the_unit_and_the_backup(make_container: ContainerFactory) -> None:
    """A unit changed after stage 0, and a backup emptied behind its done-marker, stop stages 1 and 2."""
    c = prepared(make_container)
    uid = passwd(c)["redis"][2]
    plan = plan_into(c, ("redis",))
    migrate(c, "stage0")
    override = "/etc/systemd/system/redis-server.service.d/override.conf"
    c.run(["mkdir", "-p", override.rsplit("/", 1)[0]])
    c.run(["bash", "-c", f"printf '[Service]\\nReadWritePaths=/etc\\n' >{override}"])
    c.run(["systemctl", "daemon-reload"])
    res = migrate(c, "stage1", check=False)
    assert res.returncode != 0
    assert "unit redis-server.service differs from the one the plan was made for" in res.stderr
    c.run(["rm", override])
    c.run(["systemctl", "daemon-reload"])
    migrate(c, "stage1")
    c.run(["rm", "/var/lib/dynmigrate/accounts/redis/passwd", "/var/lib/dynmigrate/accounts/redis/manifest"])
    res = migrate(c, *confirms(plan), "stage2", check=False)
    assert res.returncode != 0
    assert "the backup in /var/lib/dynmigrate/accounts/redis was changed or deleted since it was made" in res.stderr
    assert passwd(c)["redis"][2] == uid
    assert c.run(["systemctl", "is-active", "redis-server"]).stdout.strip() == "active"


def test_stage3_leaves_other_systems_trees_alone(make_container: ContainerFactory) -> None:
    """A machine image and a chroot whose own files carry redis's numbers are not re-owned; an
    os-release planted where anyone can write hides nothing (issue 10, item 12)."""
    c = prepared(make_container)
    pw = passwd(c)
    uid, gid = int(pw["redis"][2]), int(pw["redis"][3])
    setup = f"""set -e
mkdir -p /var/lib/machines/web/etc /var/lib/machines/web/var/lib/x /srv/chroot/etc /srv/chroot/data
echo ID=debian > /var/lib/machines/web/etc/os-release
echo ID=debian > /srv/chroot/etc/os-release
touch /var/lib/machines/web/var/lib/x/db /srv/chroot/data/db
chown {uid}:{gid} /var/lib/machines/web/var/lib/x/db /srv/chroot/data/db
mkdir -p /var/tmp/planted/etc /srv/left
echo ID=debian > /var/tmp/planted/etc/os-release
touch /var/tmp/planted/leftover /srv/left/file
chown -R {uid}:{gid} /var/tmp/planted /srv/left/file
"""
    c.run(["bash", "-c", setup])
    plan = plan_into(c, ACCOUNTS)
    assert json.loads((plan / "plan.json").read_text())["skip_trees"] == ["/srv/chroot", "/var/lib/machines"]
    migrate(c, "stage0")
    migrate(c, "stage1")
    migrate(c, *confirms(plan), "stage2")
    migrate(c, "stage3")
    assert files_owned_by(c, uid, gid) == ["/srv/chroot/data/db", "/var/lib/machines/web/var/lib/x/db"]
    owners = c.run(["stat", "-c", "%u:%g %n", "/var/tmp/planted/leftover", "/srv/left/file"]).stdout.split("\n")
    assert [line.split()[0] for line in owners if line] == ["0:0", "0:0"]
    result = verify(c)
    assert result.returncode == 0, result.stdout + result.stderr
    rollback(c, "stage3")
    assert c.run(["stat", "-c", "%u:%g", "/var/tmp/planted/leftover"]).stdout.strip() == f"{uid}:{gid}"
