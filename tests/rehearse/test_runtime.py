"""The copy of a booted copy's /run/systemd units into the scanned tree (no boot: two plain trees).

The source stands for /proc/PID/root of the copy's init, which its generators wrote: treated as
hostile all the same (links never followed, reads bounded, special files never opened).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Generator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from dynmigrate.app import RUNTIME_UNIT_DIRS
from dynmigrate.rehearse import overlay, runtime
from dynmigrate.rehearse.container import Container, Proc
from dynmigrate.rehearse.request import Request
from dynmigrate.rehearse.runtime import copy_runtime
from dynmigrate.rehearse.worker import (
    Copy,
    RehearseError,
    check_setup_boots_first,
    copy_runtime_units,
    scan_notes,
)
from treebuilder import Dir, Link, build

GEN = "run/systemd/generator"
LATE = "run/systemd/generator.late"


def entries(top: Path) -> dict[str, str]:
    """Every entry below top: 'link TARGET', 'dir MODE' or 'file MODE CONTENT'."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in (*dirnames, *filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, top)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = f"link {os.readlink(p)}"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = f"dir {stat.S_IMODE(st.st_mode):o}"
            else:
                out[rel] = f"file {stat.S_IMODE(st.st_mode):o} {Path(p).read_bytes().decode(errors='replace')}"
    return out


def test_the_dirs_are_the_run_part_of_the_unit_search_path() -> None:
    assert RUNTIME_UNIT_DIRS == (
        "/run/systemd/system.control",
        "/run/systemd/transient",
        "/run/systemd/generator.early",
        "/run/systemd/system",
        "/run/systemd/system.attached",
        "/run/systemd/generator",
        "/run/systemd/generator.late",
    )


def test_generator_output_is_copied_and_replaces_what_the_tree_had(tmp_path: Path) -> None:
    src, dest = tmp_path / "booted", tmp_path / "merged"
    dest.mkdir()
    build(
        src,
        {
            f"{GEN}/postgresql.service.wants/postgresql@15-main.service": Link(
                "/lib/systemd/system/postgresql@.service"
            ),
            f"{LATE}/legacy.service": "[Unit]\nSourcePath=/etc/init.d/legacy\n",
            f"{LATE}/multi-user.target.wants/legacy.service": Link("../legacy.service"),
            "run/systemd/system/": Dir(),
            "run/other/secret": "not a unit directory",
        },
    )
    # the scanned tree: stale generator output in the lower layer (one directory the booted copy
    # does not have at all), and no /run/systemd/system
    stale = {f"{GEN}/stale.service": "[Service]\n", "run/systemd/generator.early/old.service": "[Service]\n"}
    build(dest, {**stale, "etc/hostname": "x\n"})
    got = copy_runtime(str(src), str(dest), RUNTIME_UNIT_DIRS)
    assert got == runtime.RuntimeCopy(
        found=("/run/systemd/system", "/run/systemd/generator", "/run/systemd/generator.late"),
        files=1,
        links=2,
        dirs=5,
        skipped=(),
    )
    assert entries(dest / "run") == {
        "systemd": "dir 755",
        "systemd/system": "dir 755",
        "systemd/generator": "dir 755",
        "systemd/generator/postgresql.service.wants": "dir 755",
        "systemd/generator/postgresql.service.wants/postgresql@15-main.service": (
            "link /lib/systemd/system/postgresql@.service"
        ),
        "systemd/generator.late": "dir 755",
        "systemd/generator.late/legacy.service": "file 644 [Unit]\nSourcePath=/etc/init.d/legacy\n",
        "systemd/generator.late/multi-user.target.wants": "dir 755",
        "systemd/generator.late/multi-user.target.wants/legacy.service": "link ../legacy.service",
    }
    assert (dest / "etc/hostname").read_text() == "x\n"
    assert "generator output and runtime units: /run/systemd/system, " in got.note()


def test_links_are_copied_as_links_never_followed(tmp_path: Path) -> None:
    """A loop, a link out of the tree, a link to a directory: each copied as the link it is; the
    file a link names is never read."""
    src, dest = tmp_path / "booted", tmp_path / "merged"
    dest.mkdir()
    outside = tmp_path / "outside-secret"
    outside.write_text("secret\n")
    build(
        src,
        {
            f"{GEN}/loop-a.service": Link("loop-b.service"),
            f"{GEN}/loop-b.service": Link("loop-a.service"),
            f"{GEN}/self.wants": Link("."),
            f"{GEN}/out.service": Link(str(outside)),
            f"{GEN}/up.service": Link("../../../../../../../../etc/shadow"),
            # a listed directory that is a link in the copy is not entered
            "run/systemd/generator.late": Link(str(tmp_path / "outside-dir")),
        },
    )
    build(tmp_path, {"outside-dir/evil.service": "[Service]\n"})
    got = copy_runtime(str(src), str(dest), RUNTIME_UNIT_DIRS)
    assert (got.found, got.files, got.links, got.skipped) == (
        ("/run/systemd/generator",),
        0,
        5,
        ("/run/systemd/generator.late: not a directory",),
    )
    assert entries(dest / GEN) == {
        "loop-a.service": "link loop-b.service",
        "loop-b.service": "link loop-a.service",
        "self.wants": "link .",
        "out.service": f"link {outside}",
        "up.service": "link ../../../../../../../../etc/shadow",
    }
    assert not (dest / LATE).exists()
    assert not os.path.lexists(dest / LATE)


def test_a_link_in_the_path_of_the_scanned_tree_is_not_written_through(tmp_path: Path) -> None:
    src, dest, elsewhere = tmp_path / "booted", tmp_path / "merged", tmp_path / "elsewhere"
    dest.mkdir()
    build(src, {f"{GEN}/a.service": "[Service]\n"})
    build(dest, {"run/systemd": Link(str(elsewhere))})
    elsewhere.mkdir()
    with pytest.raises(OSError, match="Not a directory"):
        copy_runtime(str(src), str(dest), RUNTIME_UNIT_DIRS)
    assert os.listdir(elsewhere) == []


def test_hostile_names_are_copied_as_they_are(tmp_path: Path) -> None:
    src, dest = tmp_path / "booted", tmp_path / "merged"
    dest.mkdir()
    names = ["-rf", "a\nb.service", " .service", "x\x1b[2J.service", os.fsdecode(b"\xff\xfe.service")]
    build(src, {f"{GEN}/{n}": f"[Unit]\nDescription={n!r}\n" for n in names})
    got = copy_runtime(str(src), str(dest), RUNTIME_UNIT_DIRS)
    assert (got.files, got.skipped) == (len(names), ())
    assert sorted(os.listdir(dest / GEN)) == sorted(names)
    for n in names:
        assert (dest / GEN / n).read_text(errors="surrogateescape") == f"[Unit]\nDescription={n!r}\n"


def test_huge_files_special_files_and_setuid_bits(tmp_path: Path) -> None:
    """A file over the limit is left out whole (a sparse one: nothing of it is read past the limit),
    a FIFO is never opened, a setuid bit is not copied, a private mode stays private."""
    src, dest = tmp_path / "booted", tmp_path / "merged"
    dest.mkdir()
    build(src, {f"{GEN}/private.service": "[Service]\n", f"{GEN}/suid": "#!/bin/sh\n"})
    with open(src / GEN / "huge.service", "wb") as fh:
        fh.truncate(runtime.FILE_LIMIT + 1)
    os.mkfifo(src / GEN / "fifo.service")
    (src / GEN / "private.service").chmod(0o600)
    (src / GEN / "suid").chmod(0o4755)
    got = copy_runtime(str(src), str(dest), RUNTIME_UNIT_DIRS)
    assert got.skipped == (
        "/run/systemd/generator/fifo.service: not a file, directory or symbolic link",
        "/run/systemd/generator/huge.service: larger than 8 MiB",
    )
    assert entries(dest / GEN) == {"private.service": "file 600 [Service]\n", "suid": "file 755 #!/bin/sh\n"}
    assert "; left out: /run/systemd/generator/fifo.service: not a file" in got.note()


def test_depth_and_entry_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, dest = tmp_path / "booted", tmp_path / "merged"
    dest.mkdir()
    deep = "/".join(f"d{n}" for n in range(runtime.DEPTH_LIMIT + 2))
    build(src, {f"{GEN}/{deep}/x.service": "[Service]\n", **{f"{LATE}/u{n}.service": "" for n in range(5)}})
    monkeypatch.setattr(runtime, "ENTRY_LIMIT", runtime.DEPTH_LIMIT + 3)
    got = copy_runtime(str(src), str(dest), RUNTIME_UNIT_DIRS)
    cut = "/".join(f"d{n}" for n in range(runtime.DEPTH_LIMIT))
    assert got.skipped == (
        f"/run/systemd/generator/{cut}: deeper than {runtime.DEPTH_LIMIT} levels",
        f"/run/systemd/generator.late: more than {runtime.DEPTH_LIMIT + 3} entries in all (only 3 of its own, "
        "the first listed, were copied)",
    )
    assert len(os.listdir(dest / LATE)) == 3


def test_the_listing_stops_at_the_entry_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory's names are read only up to what ENTRY_LIMIT leaves (never all of a huge one)."""
    src, dest = tmp_path / "booted", tmp_path / "merged"
    dest.mkdir()
    build(src, {f"{LATE}/u{n}.service": "" for n in range(50)})
    monkeypatch.setattr(runtime, "ENTRY_LIMIT", 4)
    read: list[int] = []
    real_scandir = os.scandir

    def counted(fd: int) -> Generator[os.DirEntry[str]]:
        with real_scandir(fd) as it:
            for e in it:
                read.append(1)
                yield e

    monkeypatch.setattr(os, "scandir", lambda fd: contextlib.closing(counted(fd)))
    got = copy_runtime(str(src), str(dest), RUNTIME_UNIT_DIRS)
    assert len(read) <= 5
    assert got.files == 4
    assert got.skipped == (f"/{LATE}: more than 4 entries in all (only 4 of its own, the first listed, were copied)",)


def test_an_entry_gone_or_replaced_since_the_listing_is_left_out_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link that is no longer one (readlink EINVAL), a directory replaced by a link (ENOTDIR at the
    open) or by another directory (another inode): each is named and left out, the rest copied.
    A directory's owner and mode come from the opened directory, not from the earlier stat."""
    src, dest = tmp_path / "booted", tmp_path / "merged"
    dest.mkdir()
    build(
        src,
        {
            f"{GEN}/a.service": "[Service]\n",
            f"{GEN}/was-link": Link("x"),
            f"{GEN}/was-dir": Link("elsewhere"),
            f"{GEN}/swapped.d/x.conf": "",
            f"{GEN}/kept.d/y.conf": "",
            "run/other/": Dir(),
        },
    )
    (src / GEN / "kept.d").chmod(0o750)
    real_stat, real_readlink = os.stat, os.readlink

    def stale_stat(name: str, *, dir_fd: int | None = None, follow_symlinks: bool = True) -> os.stat_result:
        st = real_stat(name, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
        if dir_fd is None:
            return st
        if name == "was-dir":
            return real_stat(src / "run/other")
        if name == "swapped.d":
            return os.stat_result((st.st_mode, st.st_ino + 1, *tuple(st)[2:]))
        if name == "kept.d":
            return os.stat_result((stat.S_IFDIR | 0o777, *tuple(st)[1:]))
        return st

    def gone_link(name: str, *, dir_fd: int | None = None) -> str:
        if name == "was-link" and dir_fd is not None:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real_readlink(name, dir_fd=dir_fd)

    monkeypatch.setattr(os, "stat", stale_stat)
    monkeypatch.setattr(os, "readlink", gone_link)
    got = copy_runtime(str(src), str(dest), RUNTIME_UNIT_DIRS)
    monkeypatch.undo()
    assert got.skipped == (
        f"/{GEN}/swapped.d: replaced since it was listed",
        f"/{GEN}/was-dir: {os.strerror(errno.ENOTDIR)}",
        f"/{GEN}/was-link: {os.strerror(errno.EINVAL)}",
    )
    assert entries(dest / GEN) == {
        "a.service": "file 644 [Service]\n",
        "kept.d": "dir 750",
        "kept.d/y.conf": "file 644 ",
    }


def test_a_copy_that_fails_as_a_whole_leaves_no_partial_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure past one entry (here the scanned tree full at the third directory) clears every
    directory of the list in the scanned tree, stale lower-layer copies included: the scan reads it
    as it would offline, and the error says what was copied and removed."""
    src, dest = tmp_path / "booted", tmp_path / "merged"
    dest.mkdir()
    build(src, {f"{GEN}/a.service": "", f"{LATE}/b.service": "", "run/systemd/system/c.service": ""})
    build(dest, {"run/systemd/generator.early/old.service": "", "etc/hostname": "x\n"})
    real_top = runtime._copy_top

    def full(copier: runtime._Copier, src_parent: int, dst_parent: int, name: str, path: str) -> bool:
        if path == f"/{LATE}":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_top(copier, src_parent, dst_parent, name, path)

    monkeypatch.setattr(runtime, "_copy_top", full)
    with pytest.raises(
        runtime.CopyFailed, match="2 files, 0 symbolic links and 2 directories copied before were removed"
    ):
        copy_runtime(str(src), str(dest), RUNTIME_UNIT_DIRS)
    assert entries(dest / "run") == {"systemd": "dir 755"}
    assert (dest / "etc/hostname").read_text() == "x\n"


def test_a_source_that_is_no_longer_the_copys_init_is_not_copied(tmp_path: Path) -> None:
    """/proc/PID/root of a PID reused since (the check after the open says so): nothing is copied
    and what the scanned tree had there is cleared."""
    src, dest = tmp_path / "booted", tmp_path / "merged"
    dest.mkdir()
    build(src, {f"{GEN}/a.service": ""})
    build(dest, {f"{LATE}/old.service": ""})
    with pytest.raises(runtime.CopyFailed, match="the copy's init is gone"):
        copy_runtime(str(src), str(dest), RUNTIME_UNIT_DIRS, lambda: False)
    assert entries(dest / "run") == {"systemd": "dir 755"}


def test_a_top_directory_left_out_is_not_listed_as_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, dest = tmp_path / "booted", tmp_path / "merged"
    dest.mkdir()
    build(src, {f"{GEN}/a.service": ""})
    monkeypatch.setattr(runtime, "DEPTH_LIMIT", 0)
    got = copy_runtime(str(src), str(dest), RUNTIME_UNIT_DIRS)
    assert got.found == ()
    assert got.skipped == (f"/{GEN}: deeper than 0 levels",)
    assert "none of them there" in got.note()


def laid(*, trusted: bool, host: bool = False, full_copy: bool = False) -> Copy:
    layering = overlay.choose_layering(trusted=trusted, full_copy=full_copy, missing="")
    container = cast(Container, SimpleNamespace(init=None))
    return Copy(Path("/t"), Path("/t/merged"), ("/",), layering, container, host, trusted)


@pytest.mark.parametrize(
    ("copy", "trusted_image", "boot_first", "says"),
    [
        (laid(trusted=True, host=True), False, True, "the copy was booted before it was scanned"),
        (laid(trusted=True), True, True, "the copy was booted before it was scanned"),
        (laid(trusted=True, full_copy=True), True, False, "units made at boot are not seen: --full-copy remounts"),
        (laid(trusted=False), False, False, "units made at boot are not seen: the copy of an image boots in a user"),
    ],
    ids=["host", "trusted-image", "full-copy", "image"],
)
def test_which_copies_are_scanned_after_boot_and_what_the_report_says(
    copy: Copy, trusted_image: bool, boot_first: bool, says: str
) -> None:
    """/ and a trusted image boot before the scan, which sees their generators' output; an image
    (user namespace) and --full-copy (layers seeded after the scan) do not, and the report says so."""
    req = Request(root="/" if copy.host else "/srv/img", tmpdir="/t", parent_pidfd=-1, trusted_image=trusted_image)
    copied = runtime.RuntimeCopy(("/run/systemd/generator",), 1, 1, 1, ()).note() if boot_first else ""
    assert copy.boot_first is boot_first
    notes = scan_notes(req, copy, copied)
    found = [n for n in notes if n.startswith(says)]
    assert len(found) == 1
    assert found[0] == copied or not boot_first
    assert ("--trusted-image for an image you built" in " ".join(notes)) is (not copy.trusted)


def test_setup_is_refused_in_a_copy_not_booted_before_the_scan() -> None:
    req = Request(root="/srv/img", tmpdir="/t", parent_pidfd=-1, trusted_image=True, setup=("true",))
    check_setup_boots_first(req, laid(trusted=True))
    with pytest.raises(RehearseError, match="--setup needs the copy booted before the scan"):
        check_setup_boots_first(req, laid(trusted=True, full_copy=True))


def test_the_copys_init_is_checked_after_its_root_is_opened(tmp_path: Path) -> None:
    """A PID whose start time is no longer the copy's init's (reused since): nothing is copied, what
    the scanned tree had is cleared, and the report says units made at boot are not seen."""
    build(tmp_path / "merged", {f"{GEN}/stale.service": ""})
    me = os.getpid()
    cp = replace(laid(trusted=True, host=True), merged=tmp_path / "merged")
    cp.container.init = Proc(me, "systemd", 1, -1)
    note = copy_runtime_units(cp)
    assert note.startswith("units made at boot are not seen: the booted copy's /run/systemd could not be copied")
    assert "the copy's init is gone" in note
    assert entries(tmp_path / "merged/run") == {"systemd": "dir 755"}
