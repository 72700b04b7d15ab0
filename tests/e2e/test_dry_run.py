"""End-to-end: `migrate.sh --dry-run STAGE` and `rollback.sh --dry-run STAGE` change nothing on a
booted systemd, at every point of a migration and of its rollback.

Before each real stage (and each real rollback), the dry run of that same stage runs first, and a
snapshot of the host taken around it must not differ: type, owner, mode, size and mtime of every
entry under /etc, /var/lib, /var/log and /run/systemd/system (logs aside: sizes and mtimes of
files under /var/log, which the running services write), the content of every file under /etc and
of dpkg's statoverride list, the accounts as NSS sees them, and the units' main PIDs and restart
counters (a dry run restarts nothing). Like every e2e migration, the test ends with nobody's read
access compared with what it was before the plan (tests/e2e/conftest.py). The printed commands are
the ones the real stage then runs (checked on the commands each stage is known for); their exact
text for a sample plan is a golden in tests/plan/test_dry_run_script.py.
"""

from __future__ import annotations

import difflib

from e2e.dm import confirms, install_dynmigrate, migrate, passwd, plan_into, rollback
from e2e.harness import Container, ContainerFactory

ACCOUNTS = ("redis", "memcache")
UNITS = ("redis-server.service", "memcached.service")
SNAPSHOT = r"""
set -euo pipefail
find /etc /var/lib /run/systemd/system -xdev -printf '%y %U %G %m %s %T@ %p\n' 2>/dev/null | sort
find /var/log -xdev -printf '%y %U %G %m %p\n' | sort
find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum
sha256sum /var/lib/dpkg/statoverride
getent passwd | sort; getent group | sort
for u in redis-server.service memcached.service; do
	systemctl show -p MainPID -p NRestarts -p ActiveState -p InvocationID -- "$u"
done
"""


def snapshot(c: Container) -> list[str]:
    lines: list[str] = c.run(["bash", "-c", SNAPSHOT], timeout=300).stdout.splitlines()
    return lines


def dry(c: Container, script: str, *args: str) -> str:
    """Run SCRIPT --dry-run ARGS; fail with the host's differences if anything changed."""
    before = snapshot(c)
    res = c.run([f"/root/plan/{script}", "--dry-run", *args], check=False, timeout=300)
    after = snapshot(c)
    changed = "\n".join(difflib.unified_diff(before, after, "before", "after", lineterm="", n=0))
    assert changed == "", f"{script} --dry-run {' '.join(args)} changed the host:\n{changed}"
    assert res.returncode == 0, res.stderr
    assert "(dry run: nothing changed)" in res.stderr
    out: str = res.stdout
    return out


def in_order(out: str, *expected: str) -> None:
    """Lines starting with each expected command are printed, in this order."""
    lines = out.splitlines()
    at = -1
    for want in expected:
        found = [i for i, line in enumerate(lines) if i > at and line.startswith(want)]
        assert found, f"{want!r} not printed after line {at}:\n{out}"
        at = found[0]


def test_dry_run_of_every_stage_and_rollback_changes_nothing(make_container: ContainerFactory) -> None:
    c = make_container(prepare=install_dynmigrate)
    plan = plan_into(c, ACCOUNTS)
    uid = passwd(c)["redis"][2]
    acct = "/var/lib/dynmigrate/accounts/redis"
    dropin = "/etc/systemd/system/redis-server.service.d/50-dynmigrate.conf"

    out = dry(c, "migrate.sh", "stage0")
    in_order(
        out,
        "+ install -d -m 0700 -- /var/lib/dynmigrate /var/lib/dynmigrate/accounts",
        f"+ install -d -m 0700 -- {acct}",
        f"+ awk -F: -v n=redis \\$1\\ ==\\ n /etc/passwd > {acct}/passwd",
        f"+ write_manifest {acct}/manifest",
        f"+ date -u +%Y-%m-%dT%H:%M:%SZ > {acct}/stage0.done",
    )
    migrate(c, "stage0")

    out = dry(c, "migrate.sh", "stage1")
    in_order(
        out,
        "+ systemctl stop -- redis-server.service",
        f"+ install -D -m 0644 -- /root/plan/units/redis-server.service/50-dynmigrate.conf {dropin}",
        "+ systemctl daemon-reload",
        "+ systemctl start -- redis-server.service",
        f"+ check: check_units {uid}",
    )
    migrate(c, "stage1")

    out = dry(c, "migrate.sh", *confirms(plan), "stage2")
    in_order(
        out,
        "+ systemctl stop -- redis-server.service",
        "+ set_attrs owner=0:0 mode=0",
        "+ dpkg-statoverride --remove /etc/redis",
        "+ userdel -- redis",
        "+ install -D -m 0755 -- /root/plan/files/dynmigrate-repair /usr/local/sbin/dynmigrate-repair",
        "+ systemctl start -- redis-server.service",
        "+ check: check_units dynamic",
    )
    migrate(c, *confirms(plan), "stage2")

    out = dry(c, "migrate.sh", "stage3")
    in_order(
        out,
        f"+ find_leftovers > {acct}/stage3.manifest.tmp",
        "+ systemctl stop -- redis-server.service",
        "+ touch /var/lib/dynmigrate/retired-ids",
        "+ check: check_units dynamic",
    )
    migrate(c, "stage3")

    for stage, expected in (
        (
            "stage3",
            # no leftover was found in this root: only the ledger line and the marker go
            (
                "+ mv -f -- /var/lib/dynmigrate/retired-ids.tmp /var/lib/dynmigrate/retired-ids",
                f"+ rm -f -- {acct}/stage3.done",
            ),
        ),
        (
            "stage2",
            ("+ rm -f -- /var/lib/dynmigrate/migrated/redis.env", "+ useradd -r -M -u " + uid, "+ check: check_units"),
        ),
        ("stage1", (f"+ rm -f -- {dropin}", "+ systemctl daemon-reload", "+ check: check_units " + uid)),
        ("stage0", (f"+ rm -f -- {acct}/stage0.done", "+ mv -T -- " + acct)),
    ):
        out = dry(c, "rollback.sh", stage)
        in_order(out, "+ install -d -m 0700 -- /var/lib/dynmigrate", *expected)
        rollback(c, stage)
