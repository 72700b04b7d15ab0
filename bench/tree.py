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


@dataclass(slots=True)
class _Maker:
    """Makes the entries of one tree, drawing every random choice from one generator in order."""

    rng: random.Random
    built: Built
    chown: bool

    def dir(self, path: str, owner: int | None) -> None:
        os.mkdir(path, 0o755)
        self.built.entries += 1
        if owner is not None:
            _own(path, owner, owner if self.rng.random() < 0.8 else 4, self.built, True, self.chown)

    def file(self, path: str, owner: int | None, inherited: bool) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        if self.rng.random() < 0.3:
            os.write(fd, PAYLOAD)
        os.close(fd)
        self.built.entries += 1
        r = self.rng.random()
        if r < 0.002:
            os.chmod(path, 0o4755 if r < 0.001 else 0o2755)
            self.built.setuid += 1
        if owner is not None:
            _own(path, owner, owner, self.built, False, self.chown)
        elif not inherited and self.rng.random() < 0.004:
            uid = self.rng.choice(SYSTEM_UIDS)
            _own(path, uid, uid, self.built, False, self.chown)


PAYLOAD = b"x" * 64
DIR_EVERY = 50  # one system-owned directory per this many directories of the wide part


def build_tree(dest: str, entries: int = 1_000_000, seed: int = 11) -> Built:
    """Create the tree under dest (which must not exist). Returns what was built."""
    mk = _Maker(random.Random(seed), Built(), os.geteuid() == 0)
    os.mkdir(dest, 0o755)
    _deep_part(mk, dest, entries // 20)  # 5% of the entries in chains of 60 directories
    _wide_part(mk, dest, entries)
    return mk.built


def _deep_part(mk: _Maker, dest: str, budget: int) -> None:
    """Chains of 60 directories with 4 files each; every third chain is system-owned from level 30."""
    chain = 0
    while mk.built.entries < budget:
        path = os.path.join(dest, f"deep{chain:03d}")
        for level in range(60):
            owner = mk.rng.choice(SYSTEM_UIDS) if level == 30 and chain % 3 == 0 else None
            mk.dir(path, owner)
            for i in range(4):
                mk.file(os.path.join(path, f"f{i}"), owner, owner is not None)
            path = os.path.join(path, f"d{level:02d}")
        chain += 1


def _wide_part(mk: _Maker, dest: str, entries: int) -> None:
    """top/mid/leaf directories of FILES_PER_DIR entries each, up to `entries` in all."""
    top = 0
    ndirs = 0
    while mk.built.entries < entries:
        tpath = os.path.join(dest, f"wide{top:03d}")
        mk.dir(tpath, None)
        for m in range(50):
            if mk.built.entries >= entries:
                break
            ndirs += 1
            owner = mk.rng.choice(SYSTEM_UIDS) if ndirs % DIR_EVERY == 0 else None
            mpath = os.path.join(tpath, f"m{m:02d}")
            mk.dir(mpath, owner)
            for i in range(FILES_PER_DIR - 2):
                mk.file(os.path.join(mpath, f"file{i:03d}"), owner, owner is not None)
            _link_and_special(mpath, ndirs)
            mk.built.entries += 2
        top += 1


def _link_and_special(mpath: str, ndirs: int) -> None:
    """A symlink of one of four kinds (none may be followed) and a FIFO, a socket or a directory."""
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
    special = os.path.join(mpath, "special")
    if ndirs % 500 == 0:
        os.mkfifo(special, 0o600)
    elif ndirs % 500 == 250:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(special)
        sock.close()
    else:
        os.mkdir(special, 0o750)


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
