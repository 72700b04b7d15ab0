"""What the ownership walk and the root reader record about files."""

from __future__ import annotations

import stat as st
from dataclasses import dataclass
from enum import StrEnum

from dynmigrate.model.common import RelPath


class FileKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    SOCKET = "socket"
    FIFO = "fifo"
    CHAR = "char-device"
    BLOCK = "block-device"

    @staticmethod
    def from_mode(mode: int) -> FileKind:
        if st.S_ISDIR(mode):
            return FileKind.DIR
        if st.S_ISLNK(mode):
            return FileKind.SYMLINK
        if st.S_ISSOCK(mode):
            return FileKind.SOCKET
        if st.S_ISFIFO(mode):
            return FileKind.FIFO
        if st.S_ISCHR(mode):
            return FileKind.CHAR
        if st.S_ISBLK(mode):
            return FileKind.BLOCK
        return FileKind.FILE

    @property
    def letter(self) -> str:
        return {
            FileKind.FILE: "f",
            FileKind.DIR: "d",
            FileKind.SYMLINK: "l",
            FileKind.SOCKET: "s",
            FileKind.FIFO: "p",
            FileKind.CHAR: "c",
            FileKind.BLOCK: "b",
        }[self]

    @staticmethod
    def from_letter(letter: str) -> FileKind:
        for kind in FileKind:
            if kind.letter == letter:
                return kind
        raise ValueError(f"unknown file kind letter {letter!r}")


@dataclass(frozen=True, slots=True, order=True)
class PathInfo:
    """One entry as lstat saw it (or as an ownership manifest declares it)."""

    path: RelPath
    kind: FileKind
    uid: int
    gid: int
    mode: int  # permission bits including setuid/setgid/sticky (07777)
    size: int = 0
    mountpoint: bool = False
    link_target: str = ""

    @property
    def setuid(self) -> bool:
        return bool(self.mode & st.S_ISUID) and self.kind is FileKind.FILE

    @property
    def setgid(self) -> bool:
        return bool(self.mode & st.S_ISGID) and self.kind in (FileKind.FILE, FileKind.DIR)

    @property
    def special(self) -> bool:
        """Worth listing one by one: setuid/setgid, sockets, FIFOs, devices, mount points."""
        return (
            self.setuid
            or self.setgid
            or self.mountpoint
            or self.kind in (FileKind.SOCKET, FileKind.FIFO, FileKind.CHAR, FileKind.BLOCK)
        )

    @property
    def flags(self) -> tuple[str, ...]:
        out: list[str] = []
        if self.setuid:
            out.append("setuid")
        if self.setgid:
            out.append("setgid")
        if self.mountpoint:
            out.append("mountpoint")
        if self.kind in (FileKind.SOCKET, FileKind.FIFO, FileKind.CHAR, FileKind.BLOCK):
            out.append(self.kind.value)
        return tuple(out)

    def mode_str(self) -> str:
        return f"{self.mode:04o}"


@dataclass(frozen=True, slots=True, order=True)
class NestedRoot:
    """Another system's tree inside ROOT (a container store, a chroot, a machine image): the
    walk does not descend, because its UIDs are not this host's accounts."""

    path: RelPath
    reason: str


@dataclass(frozen=True, slots=True, order=True)
class OwnedTree:
    """A region of the tree with one owner: its top entry and the same-owner entries below it.

    An entry starts a new region when its (uid, gid) differs from its parent directory's.
    Only regions whose uid or gid is not 0 are recorded.
    """

    top: PathInfo
    files: int
    dirs: int
    others: int
    bytes: int
    examples: tuple[RelPath, ...]
    special: tuple[PathInfo, ...]
    truncated_special: int = 0

    @property
    def uid(self) -> int:
        return self.top.uid

    @property
    def gid(self) -> int:
        return self.top.gid

    @property
    def entries(self) -> int:
        return self.files + self.dirs + self.others


@dataclass(frozen=True, slots=True)
class ClosedDir:
    """A configuration directory of the account that other users cannot enter. The plan keeps it
    closed: it binds each of its files into the unit when it knows them all (`why` empty), and
    otherwise a person must move what the service reads (`why` says what stands in the way)."""

    info: PathInfo
    why: str
