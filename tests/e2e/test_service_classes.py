"""End-to-end: service classes that broke plans in the field, on both suites.

Units that ship disabled and run anyway (started by hand, by a socket), template instances, units
meant to stay stopped, units skipped by their start conditions: each stage stops, starts and checks
what runs, and leaves stopped what was stopped, through the migration and every rollback.
"""

from __future__ import annotations

import os
from pathlib import Path

from e2e.dm import (
    DYN_MAX,
    DYN_MIN,
    confirms,
    install_dynmigrate,
    main_uid,
    memcached_version,
    migrate,
    passwd,
    plan_into,
    redis_get,
    rollback,
    unit_uids,
    verify,
)
from e2e.harness import Container, ContainerFactory

ORDER = ("stage0", "stage1", "stage2", "stage3")
MEMCACHED_SOCKET = """[Unit]
Description=memcached, started on demand

[Socket]
ListenStream=127.0.0.1:11299

[Install]
WantedBy=sockets.target
"""


def dynamic(uid: int) -> bool:
    return DYN_MIN <= uid <= DYN_MAX


def _disable(root: Path, *links: str) -> None:
    for link in links:
        (root / "etc/systemd/system" / link).unlink()


def _disabled_units(root: Path) -> None:
    """Before boot: redis-server ships disabled (no wants link, no alias), memcached.service too,
    and memcached.socket (enabled) starts it on the first connection."""
    install_dynmigrate(root)
    _disable(root, "multi-user.target.wants/redis-server.service", "redis.service")
    _disable(root, "multi-user.target.wants/memcached.service")
    (root / "etc/systemd/system/memcached.socket").write_text(MEMCACHED_SOCKET, encoding="utf-8")
    wants = root / "etc/systemd/system/sockets.target.wants"
    wants.mkdir(exist_ok=True)
    (wants / "memcached.socket").symlink_to("/etc/systemd/system/memcached.socket")
    # a second redis, an instance of the vendor's template, on its own port and files
    conf = (root / "etc/redis/redis.conf").read_text(encoding="utf-8")
    changes = {
        "port ": "port 6380\n",
        "pidfile ": "pidfile /run/redis-dm/redis-server.pid\n",
        "logfile ": "logfile /var/log/redis/redis-server-dm.log\n",
        "dbfilename ": "dbfilename dump-dm.rdb\n",
    }
    lines = conf.splitlines(keepends=True)
    for prefix, line in changes.items():
        lines = [line if ln.startswith(prefix) else ln for ln in lines]
    inst = root / "etc/redis/redis-dm.conf"
    inst.write_text("".join(lines), encoding="utf-8")
    src = (root / "etc/redis/redis.conf").stat()
    os.chown(inst, src.st_uid, src.st_gid)
    inst.chmod(0o640)


def _states(c: Container, *units: str) -> list[str]:
    return c.run(["systemctl", "is-active", *units], check=False).stdout.split()


def _dynamic_user(c: Container, unit: str) -> str:
    return c.run(["systemctl", "show", "-p", "DynamicUser", "--value", unit]).stdout.strip()


def test_units_running_without_being_enabled(make_container: ContainerFactory) -> None:
    """redis-server started by hand, an instance of its template started by hand, memcached started
    by its socket: none is enabled, every one is restarted with the drop-in in stage 1, stopped
    before userdel, runs under the dynamic UID after stage 2, and as the static account again after
    the rollbacks; the socket keeps listening."""
    c = make_container(prepare=_disabled_units)
    c.run(["systemctl", "start", "redis-server", "redis-server@dm"])
    c.run(["redis-cli", "set", "dm:key", "written-before-migration"])
    c.run(["redis-cli", "save"])
    c.run(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/11299"])  # the socket starts memcached.service
    c.wait_for(["systemctl", "is-active", "--quiet", "memcached.service"])
    assert memcached_version(c).startswith("VERSION")
    pw = passwd(c)
    redis, memcache = int(pw["redis"][2]), int(pw["memcache"][2])
    units = ("redis-server.service", "redis-server@dm.service", "memcached.service")
    assert c.run(["systemctl", "is-enabled", *units], check=False).stdout.split() == ["disabled"] * 3
    plan = plan_into(c, ("memcache", "redis"))

    migrate(c, "stage0")
    record = c.read_text("/var/lib/dynmigrate/accounts/redis/units-at-start").splitlines()
    assert record == ["unit redis-server.service", "unit redis-server@dm.service"]
    assert c.read_text("/var/lib/dynmigrate/accounts/memcache/units-at-start").splitlines() == [
        "unit memcached.service",
        "trigger memcached.socket",
    ]
    migrate(c, "stage1")
    assert [_dynamic_user(c, u) for u in units] == ["yes", "yes", "yes"]
    assert main_uid(c, "redis-server") == main_uid(c, "redis-server@dm") == redis
    assert memcache in unit_uids(c, "memcached")
    assert c.run(["readlink", "/var/lib/redis"]).stdout.strip() == "private/redis"

    migrate(c, *confirms(plan), "stage2")
    pw = passwd(c)
    assert "redis" not in pw
    assert "memcache" not in pw
    assert dynamic(main_uid(c, "redis-server"))
    assert main_uid(c, "redis-server@dm") == main_uid(c, "redis-server")
    assert any(dynamic(u) for u in unit_uids(c, "memcached"))
    assert redis_get(c, "dm:key") == "written-before-migration"
    assert memcached_version(c).startswith("VERSION")
    assert _states(c, "memcached.socket") == ["active"]
    migrate(c, "stage3")

    for stage in reversed(ORDER):
        rollback(c, stage)
    assert _states(c, *units, "memcached.socket") == ["active"] * 4
    assert [_dynamic_user(c, u) for u in units] == ["no", "no", "no"]
    assert main_uid(c, "redis-server") == main_uid(c, "redis-server@dm") == redis
    assert memcache in unit_uids(c, "memcached")
    assert redis_get(c, "dm:key") == "written-before-migration"
    assert c.run(["readlink", "/var/lib/redis"], check=False).stdout == ""


def _stopped_units(root: Path) -> None:
    """Before boot: redis-server disabled (never started), memcached enabled but skipped at boot by
    a start condition that does not hold."""
    install_dynmigrate(root)
    _disable(root, "multi-user.target.wants/redis-server.service", "redis.service")
    dropins = root / "etc/systemd/system/memcached.service.d"
    dropins.mkdir()
    (dropins / "only-here.conf").write_text("[Unit]\nConditionPathExists=/etc/memcached.here\n", encoding="utf-8")


def test_units_meant_to_stay_stopped(make_container: ContainerFactory) -> None:
    """A disabled redis-server that does not run, and an enabled memcached that its
    ConditionPathExists= skips: no stage and no rollback starts either, no health check waits for
    them, and redis works when started by hand (dynamic after the migration, static after the
    rollback)."""
    c = make_container(prepare=_stopped_units)
    c.run(["systemctl", "start", "redis-server"])
    c.run(["redis-cli", "set", "dm:key", "written-before-migration"])
    c.run(["redis-cli", "save"])
    c.run(["systemctl", "stop", "redis-server"])
    units = ("redis-server.service", "memcached.service")
    assert _states(c, *units) == ["inactive", "inactive"]
    redis = int(passwd(c)["redis"][2])
    plan = plan_into(c, ("memcache", "redis"))

    for stage in ORDER:
        migrate(c, *(confirms(plan) if stage == "stage2" else []), stage)
        assert _states(c, *units) == ["inactive", "inactive"], stage
    assert "redis" not in passwd(c)
    result = verify(c)  # the skipped memcached is not drift
    assert result.returncode == 0, result.stdout + result.stderr
    assert "memcached.service active: skipped by its start conditions" in result.stdout
    c.run(["systemctl", "start", "redis-server"])
    assert dynamic(main_uid(c, "redis-server"))
    assert redis_get(c, "dm:key") == "written-before-migration"
    c.run(["systemctl", "stop", "redis-server"])

    for stage in reversed(ORDER):
        rollback(c, stage)
        assert _states(c, *units) == ["inactive", "inactive"], stage
    c.run(["systemctl", "start", "redis-server"])
    assert main_uid(c, "redis-server") == redis
    assert redis_get(c, "dm:key") == "written-before-migration"


def _preserved_runtime(root: Path) -> None:
    """Before boot: the admin keeps redis's runtime directory across restarts."""
    install_dynmigrate(root)
    dropins = root / "etc/systemd/system/redis-server.service.d"
    dropins.mkdir()
    (dropins / "preserve.conf").write_text("[Service]\nRuntimeDirectoryPreserve=restart\n", encoding="utf-8")


def _environment(c: Container, unit: str) -> str:
    """Environment= as systemd applies it to the unit's processes (redis rewrites its process title
    over its own environ, so /proc/PID/environ cannot tell)."""
    out: str = c.run(["systemctl", "show", "-p", "Environment", "--value", unit]).stdout.strip()
    return out


def test_preserved_runtime_directory_and_home(make_container: ContainerFactory) -> None:
    """RuntimeDirectoryPreserve=restart puts /run/redis under /run/private while DynamicUser= is on;
    at the last stop systemd removes the directory and leaves the link /run/redis dangling: the
    rollback of stage 1 removes that link, and the static redis creates its runtime directory again.
    The account's home (its state directory) stays the daemon's $HOME under DynamicUser=."""
    c = make_container(prepare=_preserved_runtime)
    c.run(["redis-cli", "set", "dm:key", "written-before-migration"])
    c.run(["redis-cli", "save"])
    redis = int(passwd(c)["redis"][2])
    assert "HOME=" not in _environment(c, "redis-server")  # systemd sets it from passwd: /var/lib/redis
    plan = plan_into(c, ("redis",))
    # the admin's preserve.conf sorts after 50-dynmigrate.conf: the plan's drop-in takes a name that
    # systemd applies after it (RuntimeDirectoryPreserve= still holds, as the checks below show)
    dropin = (plan / "units/redis-server.service/zz-dynmigrate.conf").read_text()
    assert "Environment=HOME=/var/lib/redis" in dropin
    migrate(c, "stage0")
    migrate(c, "stage1")
    assert c.run(["readlink", "/run/redis"]).stdout.strip() == "private/redis"
    migrate(c, *confirms(plan), "stage2")
    assert dynamic(main_uid(c, "redis-server"))
    assert _environment(c, "redis-server") == "HOME=/var/lib/redis"  # not the dynamic user's /
    migrate(c, "stage3")
    for stage in reversed(ORDER):
        rollback(c, stage)
    assert c.run(["readlink", "/run/redis"], check=False).stdout == ""
    assert c.run(["test", "-d", "/run/redis"]).returncode == 0
    assert c.run(["test", "-e", "/run/private/redis"], check=False).returncode != 0
    assert main_uid(c, "redis-server") == redis
    assert "HOME=" not in _environment(c, "redis-server")
    assert redis_get(c, "dm:key") == "written-before-migration"


DMRUN_UNIT = """[Unit]
Description=a root-start daemon that takes its PID file from a variable

[Service]
Environment=PIDFILE=/run/dmrun/dmrun.pid
ExecStart=/usr/local/sbin/dmrun -u dmrun

[Install]
WantedBy=multi-user.target
"""
DMRUN = """#!/bin/sh
# starts as root: makes its run directory, writes its PID file there, then drops to the user of -u
mkdir -p "${PIDFILE%/*}"
echo $$ > "$PIDFILE"
exec setpriv --reuid="$2" --regid="$2" --init-groups sleep infinity
"""


def _dmrun_settled(c: Container) -> int:
    """The UID of dmrun's main process once the script has dropped privileges (exec'd sleep): a
    Type=simple unit is "active" as soon as the script runs, before its setpriv, so the UID read
    right after a start can still be root's."""
    wait = (
        "for i in $(seq 200); do pid=$(systemctl show -p MainPID --value dmrun.service);"
        ' [ "$(cat /proc/$pid/comm 2>/dev/null)" = sleep ] && exit 0; sleep 0.05; done; exit 1'
    )
    assert c.run(["bash", "-c", wait], check=False).returncode == 0, "dmrun never reached its sleep"
    return main_uid(c, "dmrun")


def test_pid_file_from_an_environment_variable(make_container: ContainerFactory) -> None:
    """A root-start daemon writes its PID file where Environment= says, in a /run directory it makes
    itself: /run is read-only under DynamicUser even for root, so the plan gives the unit that
    directory as RuntimeDirectory=, and the daemon runs through every stage and rollback."""
    c = make_container(prepare=install_dynmigrate)
    c.run(["useradd", "--system", "--shell", "/usr/sbin/nologin", "dmrun"])
    c.run(["sh", "-c", "cat > /usr/local/sbin/dmrun && chmod 0755 /usr/local/sbin/dmrun"], input=DMRUN)
    c.run(["sh", "-c", "cat > /etc/systemd/system/dmrun.service"], input=DMRUN_UNIT)
    c.run(["systemctl", "enable", "--now", "dmrun.service"])
    uid = int(passwd(c)["dmrun"][2])
    assert _dmrun_settled(c) == uid
    plan = plan_into(c, ("dmrun",))
    dropin = (plan / "units/dmrun.service/50-dynmigrate.conf").read_text()
    assert "RuntimeDirectory=dmrun" in dropin
    for stage in ORDER:
        migrate(c, *(confirms(plan) if stage == "stage2" else []), stage)
    assert dynamic(_dmrun_settled(c))
    pid = c.run(["systemctl", "show", "-p", "MainPID", "--value", "dmrun"]).stdout.strip()
    assert c.read_text("/run/dmrun/dmrun.pid").strip() == pid
    for stage in reversed(ORDER):
        rollback(c, stage)
    assert _dmrun_settled(c) == uid
    pid = c.run(["systemctl", "show", "-p", "MainPID", "--value", "dmrun"]).stdout.strip()
    assert c.read_text("/run/dmrun/dmrun.pid").strip() == pid
