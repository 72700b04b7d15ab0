"""Overlay layers and options (pure), and the worker's small readers of what it saw in the copy."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dynmigrate.rehearse import overlay
from dynmigrate.rehearse.overlay import escape_option, host_layers, overlay_data, parse_mountinfo
from dynmigrate.rehearse.worker import first_error, layer_of, manifest_diff

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


# ------------------------------------------------------------- kernels without redirect_dir/metacopy

LACKS = "lacks metacopy: rehearsing the running host needs both (...)"


@pytest.mark.parametrize(
    ("trusted", "full_copy", "missing", "features", "seed", "note"),
    [
        # an image never gets the features, whatever the kernel has: the renamed directories are copied
        (False, False, "", False, True, ""),
        (False, False, LACKS, False, True, ""),
        # / or a trusted image on a kernel with both: the default, nothing copied
        (True, False, "", True, False, ""),
        # the user asked for the full copy: done even where the kernel has both, and said so
        (True, True, "", False, True, "full copy (--full-copy; asked for; the kernel has both)"),
        (True, True, LACKS, False, True, "full copy (--full-copy; this kernel's overlayfs lacks metacopy)"),
    ],
)
def test_layering_follows_trust_the_kernel_and_the_full_copy_option(
    trusted: bool, full_copy: bool, missing: str, features: bool, seed: bool, note: str
) -> None:
    chosen = overlay.choose_layering(trusted=trusted, full_copy=full_copy, missing=missing)
    assert (chosen.features, chosen.seed, chosen.note.split(":")[0]) == (features, seed, note)
    assert chosen.options == ("redirect_dir=on,metacopy=on" if features else "redirect_dir=off,metacopy=off")


def test_a_kernel_without_the_features_is_refused_unless_the_full_copy_is_asked_for() -> None:
    with pytest.raises(overlay.OverlayError) as caught:
        overlay.choose_layering(trusted=True, full_copy=False, missing=LACKS)
    assert str(caught.value) == (
        "this kernel's overlayfs lacks metacopy: rehearsing the running host needs both (...); --full-copy "
        "lays the overlay without them and copies the directories the migration renames into the upper "
        "layer first (ROOT is still never written; the copies cost their size in memory)"
    )


@pytest.mark.parametrize(
    ("refused", "params", "missing"),
    [
        ((), {}, ""),
        (
            ("redirect_dir=on,metacopy=on",),
            {"redirect_dir": "Y"},
            "lacks metacopy: rehearsing the running host needs both "
            "(systemd renames state directories into private/, and a chown must not copy file data)",
        ),
    ],
)
def test_missing_features_asks_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: tuple[str, ...], params: dict[str, str], missing: str
) -> None:
    tried: list[str] = []

    def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
        tried.append(",".join((data or "").split(",")[-2:]))
        if any(data and data.endswith(r) for r in refused):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    monkeypatch.setattr(overlay, "mount", mount)
    monkeypatch.setattr(overlay, "umount", lambda target: None)
    monkeypatch.setattr(overlay, "_parameter", lambda name: params.get(name, ""))
    assert overlay.missing_features(tmp_path) == missing
    # without the features the kernel is asked again for a plain overlay: --full-copy needs one
    assert tried == ["redirect_dir=on,metacopy=on"] + (["redirect_dir=off,metacopy=off"] if refused else [])


def test_a_kernel_without_overlayfs_is_no_missing_feature(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def mount(*args: object) -> None:
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))

    monkeypatch.setattr(overlay, "mount", mount)
    with pytest.raises(overlay.OverlayError, match=r"^this kernel has no overlayfs \(modprobe overlay\)$"):
        overlay.missing_features(tmp_path)


def test_a_seeded_directory_goes_to_the_layer_it_lies_in() -> None:
    points = ["/", "/home", "/var", "/var/lib/postgres"]
    assert layer_of(points, "/var/lib/redis") == (2, "/lib/redis")
    assert layer_of(points, "/var/lib/postgres/15") == (3, "/15")
    assert layer_of(points, "/variable/x") == (0, "/variable/x")
    assert layer_of(["/"], "/var/log/redis") == (0, "/var/log/redis")
