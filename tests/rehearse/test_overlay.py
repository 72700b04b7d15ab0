"""Overlay layers and options (pure), and the worker's small readers of what it saw in the copy."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dynmigrate.rehearse import overlay
from dynmigrate.rehearse.overlay import escape_option, host_layers, overlay_data, parse_mountinfo
from dynmigrate.rehearse.worker import first_error, manifest_diff

MOUNTINFO = """\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid - proc proc rw
24 22 0:22 / /sys rw,nosuid - sysfs sysfs rw
25 22 0:5 / /dev rw,nosuid - devtmpfs udev rw
26 22 0:24 / /run rw,nosuid - tmpfs tmpfs rw
27 22 254:2 / /var rw,relatime - xfs /dev/vda2 rw
28 27 254:3 / /var/lib/postgres rw,relatime - ext4 /dev/vda3 rw
29 22 254:4 / /srv/with\\040space rw - btrfs /dev/vda4 rw
30 22 0:30 / /tmp rw - ext4 /dev/vda5 rw
31 22 0:31 / /boot/efi rw - vfat /dev/vda6 rw
32 26 0:40 / /run/dynmigrate-rehearse-x rw - tmpfs dynmigrate-rehearsal rw
33 22 0:41 / /home rw - nfs4 server:/home rw
34 22 0:42 / /home rw - ext4 /dev/vda7 rw
35 22 0:43 / /snap/core/1 ro - squashfs /dev/loop0 ro
"""


def test_host_layers_are_the_real_filesystems_parents_first() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert host_layers(mounts, skip=("/run/dynmigrate-rehearse-x",)) == [
        "/",
        "/home",
        "/var",
        "/boot/efi",
        "/srv/with space",
        "/var/lib/postgres",
    ]


def test_mountinfo_lines_without_a_separator_are_skipped() -> None:
    assert parse_mountinfo("garbage\n22 1 254:1 / / rw - ext4 /dev/vda1 rw\n")[0].point == "/"
    assert len(parse_mountinfo("garbage\n22 1 254:1 / / rw - ext4 /dev/vda1 rw\n")) == 1


@pytest.mark.parametrize(
    ("path", "escaped"),
    [("/srv/a,b", "/srv/a\\,b"), ("/srv/a:b", "/srv/a\\:b"), ("/srv/a\\b", "/srv/a\\\\b"), ("/plain", "/plain")],
)
def test_escape_option(path: str, escaped: str) -> None:
    assert escape_option(path) == escaped


def test_an_image_gets_neither_redirect_dir_nor_metacopy() -> None:
    assert overlay_data("/img,1", "/t/u", "/t/w", host=False) == (
        "lowerdir=/img\\,1,upperdir=/t/u,workdir=/t/w,redirect_dir=off,metacopy=off"
    )
    assert overlay_data("/", "/t/u", "/t/w", host=True) == (
        "lowerdir=/,upperdir=/t/u,workdir=/t/w,redirect_dir=on,metacopy=on"
    )


def test_manifest_diff_reports_changed_and_gone_entries_not_new_ones() -> None:
    before = ["d 101 102 750 /var/lib/redis", "f 101 102 640 /etc/redis/redis.conf", "f 0 0 644 /etc/redis/x"]
    after = ["d 101 102 750 /var/lib/redis", "f 0 0 640 /etc/redis/redis.conf", "f 101 102 660 /var/lib/redis/dump.rdb"]
    assert manifest_diff(before, after) == [
        "was f 101 102 640 /etc/redis/redis.conf, now f 0 0 640 /etc/redis/redis.conf",
        "gone: f 0 0 644 /etc/redis/x",
    ]


def test_first_error_prefers_an_error_line() -> None:
    out = "stage2: stopping redis-server.service\n"
    err = "dynmigrate: stage2: removing the account\nuserdel: user redis is currently used by process 77\n"
    assert first_error(out, err) == "userdel: user redis is currently used by process 77"
    assert first_error("", "last words\n") == "last words"
    assert first_error("ok\n", "2026-11-30T07:01:02Z migrate.sh[stage2] redis: ERROR: a process of UID 101 runs\n") == (
        "migrate.sh[stage2] redis: ERROR: a process of UID 101 runs"
    )
    assert first_error("", "") == ""


@pytest.mark.parametrize(
    ("errno_", "host", "params", "message"),
    [
        (errno.ENODEV, True, {}, "this kernel has no overlayfs (modprobe overlay)"),
        (
            errno.EINVAL,
            True,
            {},
            "this kernel's overlayfs lacks metacopy and redirect_dir: rehearsing the running host needs both "
            "(systemd renames state directories into private/, and a chown must not copy file data)",
        ),
        (
            errno.EINVAL,
            True,
            {"redirect_dir": "N"},
            "this kernel's overlayfs lacks metacopy: rehearsing the running host needs both "
            "(systemd renames state directories into private/, and a chown must not copy file data)",
        ),
        (errno.EINVAL, False, {}, "cannot mount an overlay: Invalid argument"),
    ],
)
def test_missing_overlay_features_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errno_: int, host: bool, params: dict[str, str], message: str
) -> None:
    def refuse(*args: object) -> None:
        raise OSError(errno_, os.strerror(errno_))

    monkeypatch.setattr(overlay, "mount", refuse)
    monkeypatch.setattr(overlay, "_parameter", lambda name: params.get(name, ""))
    with pytest.raises(overlay.OverlayError) as caught:
        overlay.check_overlay(tmp_path, host=host)
    assert str(caught.value) == message


def test_manifest_diff_ignores_the_mode_of_a_socket_its_daemon_binds_again() -> None:
    before = ["s 114 119 755 /var/lib/prosody/prosody.sock", "s 114 119 755 /run/x.sock"]
    after = ["s 114 119 750 /var/lib/prosody/prosody.sock", "s 0 0 755 /run/x.sock"]
    assert manifest_diff(before, after) == ["was s 114 119 755 /run/x.sock, now s 0 0 755 /run/x.sock"]
