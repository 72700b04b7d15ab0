"""Rehearsal reports in every format: whole outputs against goldens, and a lossless JSON round trip."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from conftest import GOLDENS, Golden
from dynmigrate.rehearse.classify import classify
from dynmigrate.rehearse.model import Environment, Rehearsal, Step, UnitCheck, from_json_data, to_json_data
from dynmigrate.rehearse.render import REHEARSAL_FORMATS
from rehearse.facts import STAGES, redis

ENV = Environment(
    root="/srv/images/bookworm",
    mode="image",
    os_release="Debian GNU/Linux 12 (bookworm)",
    systemd_version=252,
    kernel="6.1.0-28-amd64",
    overlay_options="redirect_dir=off,metacopy=off",
    layers=("/",),
    private_users=True,
    idmap="not used by systemd 252 (they came in 257); this overlay can be id-mapped",
    notes=("copied into the upper layer first (...): /var/lib/redis",),
)


def sample() -> Rehearsal:
    memcached = UnitCheck("memcached.service", True, (65089,), "printf version | nc", True, "VERSION 1.6.18")
    memcache = replace(
        redis(),
        account="memcache",
        units=("memcached.service",),
        manual_steps=("DM110-memcache", "DM201-memcache"),
        confirmed=("DM110-memcache", "DM201-memcache"),
        setup=(Step("setup 1", True, 0, 1.5),),
        before=(replace(memcached, uids=(104,)),),
        migrated=(memcached,),
        restored=(replace(memcached, uids=(104,)),),
        static_uid=104,
    )
    broken = replace(
        redis(),
        account="lp|daemon",
        stages=(*STAGES[:1], Step("migrate.sh stage1", False, 1, 7.5, "Job for x.service failed\twith\x1b[31m")),
        migrated=(UnitCheck("x.service", False, (), "", None, ""),),
        rollbacks=(Step("rollback.sh stage1", True, 0, 1.0), Step("rollback.sh stage0", True, 0, 0.5)),
        journal_error="x.service: Failed to set up special execution directory in /var/lib: Invalid cross-device link",
        access_checked=0,
        access_error="the probe as nobody failed: setpriv: not found",
    )
    broker = UnitCheck("mosquitto.service", True, (65110,), "", None, "")
    mosquitto = replace(
        redis(),
        account="mosquitto",
        verdict="convertible",
        units=("mosquitto.service",),
        manual_steps=(),
        confirmed=(),
        before=(replace(broker, uids=(108,)),),
        migrated=(broker,),
        restored=(replace(broker, uids=(108,)),),
        static_uid=108,
        access_widened=(
            "after the migration, other users can read /etc/mosquitto/passwd",
            "after the rollback, other users can read and enter /var/lib/mosquitto",
        ),
    )
    avahi = replace(
        redis(),
        account="avahi",
        verdict="blocked",
        reason="DM205: avahi-daemon.service owns bus name org.freedesktop.Avahi",
        units=("avahi-daemon.service",),
        manual_steps=(),
        confirmed=(),
        static_uid=107,
        account_restored=None,
        manifest_restored=None,
        seconds=0.0,
        planned=False,
        access_checked=0,
        not_planned_why="blocked: DM205 avahi-daemon.service owns bus name org.freedesktop.Avahi",
        before=(),
        stages=(),
        migrated=(),
        rollbacks=(),
        restored=(),
    )
    return Rehearsal(
        environment=ENV,
        accounts=tuple(classify(f) for f in (avahi, broken, memcache, mosquitto, redis())),
        seconds=61.4,
        limits=("the copy has a private network without uplink",),
    )


TRUSTED = replace(
    ENV,
    mode="trusted image",
    overlay_options="redirect_dir=on,metacopy=on",
    private_users=False,
    notes=("ROOT was declared an image built by the caller (--trusted-image)",),
)


def test_trusted_image_environment(golden: Golden) -> None:
    golden.check(
        GOLDENS / "rehearse" / "rehearsal-trusted.txt",
        REHEARSAL_FORMATS["table"](replace(sample(), environment=TRUSTED)),
    )


@pytest.mark.parametrize("fmt", sorted(REHEARSAL_FORMATS))
def test_formats(fmt: str, golden: Golden) -> None:
    suffix = {"table": "txt", "json": "json", "markdown": "md"}[fmt]
    golden.check(GOLDENS / "rehearse" / f"rehearsal.{suffix}", REHEARSAL_FORMATS[fmt](sample()))


def test_json_round_trip() -> None:
    r = replace(sample(), kept=("kept: enter it with: nsenter -t 1234 -a",), error="")
    assert from_json_data(json.loads(json.dumps(to_json_data(r)))) == r


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_an_environment_note_is_escaped_once(fmt: str) -> None:
    """A note naming a file that holds an escape code: the code shows as \\x1b, its backslash never doubled."""
    r = replace(sample(), environment=replace(ENV, notes=("left out: /run/systemd/generator/a\x1b[31m|b",)))
    out = REHEARSAL_FORMATS[fmt](r)
    assert "a\\x1b[31m" in out
    assert "a\\\\x1b" not in out
