"""A reproducible benchmark tree: about N entries, deep and wide parts, a few system owners.

    python bench/tree.py DEST [--entries 1000000] [--seed 11]

The layout is a pure function of (entries, seed): a wide part (many directories of many
files), a deep part (chains 60 levels deep), symlinks (relative, absolute, dangling, to
directories: a walk must never follow them), about 2% of the entries owned by 20 system
accounts (UIDs 100-119, some with a different group), a few hundred directories owned by them
with files below, some setuid/setgid files, and a few FIFOs and sockets. Owners are set with
lchown, so building needs root; without root every entry stays the builder's own.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import stat
import sys
from dataclasses import dataclass

SYSTEM_UIDS = tuple(range(100, 120))
FILES_PER_DIR = 100


@dataclass(slots=True)
class Built:
    entries: int = 1  # the top directory itself
    system_owned: int = 0
    system_dirs: int = 0
    setuid: int = 0


def _own(path: str, uid: int, gid: int, built: Built, is_dir: bool, chown: bool) -> None:
    if chown:
        os.lchown(path, uid, gid)
    built.system_owned += 1
    if is_dir:
        built.system_dirs += 1


def build_tree(dest: str, entries: int = 1_000_000, seed: int = 11) -> Built:
    """Create the tree under dest (which must not exist). Returns what was built."""
    rng = random.Random(seed)
    chown = os.geteuid() == 0
    built = Built()
    os.mkdir(dest, 0o755)
    # one system-owned directory per this many directories, one system-owned file per this many files
    dir_every = 50
    payload = b"x" * 64

    def make_dir(path: str, owner: int | None) -> None:
        os.mkdir(path, 0o755)
        built.entries += 1
        if owner is not None:
            _own(path, owner, owner if rng.random() < 0.8 else 4, built, True, chown)

    def make_file(path: str, owner: int | None, inherited: bool) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if rng.random() < 0.3:
            os.write(fd, payload)
        os.close(fd)
        built.entries += 1
        r = rng.random()
        if r < 0.002:
            os.chmod(path, 0o4755 if r < 0.001 else 0o2755)
            built.setuid += 1
        if owner is not None:
            _own(path, owner, owner, built, False, chown)
        elif not inherited and rng.random() < 0.004:
            uid = rng.choice(SYSTEM_UIDS)
            _own(path, uid, uid, built, False, chown)

    # the deep part: 5% of the entries in chains of 60 directories
    deep_budget = entries // 20
    chain = 0
    while built.entries < deep_budget:
        path = os.path.join(dest, f"deep{chain:03d}")
        for level in range(60):
            owner = rng.choice(SYSTEM_UIDS) if level == 30 and chain % 3 == 0 else None
            make_dir(path, owner)
            for i in range(4):
                make_file(os.path.join(path, f"f{i}"), owner, owner is not None)
            path = os.path.join(path, f"d{level:02d}")
        chain += 1
    # the wide part: top/mid/leaf directories of FILES_PER_DIR entries each
    top = 0
    ndirs = 0
    while built.entries < entries:
        tpath = os.path.join(dest, f"wide{top:03d}")
        make_dir(tpath, None)
        for m in range(50):
            if built.entries >= entries:
                break
            ndirs += 1
            owner = rng.choice(SYSTEM_UIDS) if ndirs % dir_every == 0 else None
            mpath = os.path.join(tpath, f"m{m:02d}")
            make_dir(mpath, owner)
            for i in range(FILES_PER_DIR - 2):
                make_file(os.path.join(mpath, f"file{i:03d}"), owner, owner is not None)
            kind = ndirs % 4
            link = os.path.join(mpath, "link")
            if kind == 0:
                os.symlink("file000", link)
            elif kind == 1:
                os.symlink("/etc/passwd", link)
            elif kind == 2:
                os.symlink("../../", link)  # a loop if anything followed it
            else:
                os.symlink("missing", link)
            built.entries += 1
            special = os.path.join(mpath, "special")
            if ndirs % 500 == 0:
                os.mkfifo(special, 0o600)
            elif ndirs % 500 == 250:
                sock = socket.socket(socket.AF_UNIX)
                sock.bind(special)
                sock.close()
            else:
                os.mkdir(special, 0o750)
            built.entries += 1
        top += 1
    return built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    built = build_tree(args.dest, args.entries, args.seed)
    st_dest = os.lstat(args.dest)
    print(
        f"built {built.entries} entries under {args.dest} (mode {stat.filemode(st_dest.st_mode)}): "
        f"{built.system_owned} owned by system accounts ({built.system_dirs} directories), "
        f"{built.setuid} setuid/setgid"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
