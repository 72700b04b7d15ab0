"""nsswitch.conf files units use instead of /etc's (a RootDirectory=, a chroot, a bind mount)."""

from __future__ import annotations

from dynmigrate.collect.accounts import parse_nsswitch
from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.collect.textfiles import optional_text
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.findings import Problem
from dynmigrate.model.references import NssOverride
from dynmigrate.model.shellwords import split_words
from dynmigrate.model.units import EXEC_KEYS, Unit
from dynmigrate.model.unitsyntax import exec_argv


def _nss_passwd(fs: RootFS, path: str, problems: list[Problem]) -> tuple[str, ...] | None:
    """passwd's sources in an nsswitch.conf under ROOT; glibc's default (files) when it is absent."""
    if not fs.exists(path):
        return ("files",)
    text = optional_text(fs, path, problems)
    if text is None:
        return None
    dbs, _ = parse_nsswitch(text, RelPath(path))
    return dbs["passwd"][0] if "passwd" in dbs else ("files",)


_NssCandidate = tuple[
    str, str, bool, Location, bool
]  # (nsswitch.conf, how, inside another root, directive, must exist)


def _dir_value(fs: RootFS, value: str) -> str | None:
    """An absolute directory an argument or assignment names (its value after "="), if it exists."""
    value = value.split("=", 1)[-1]
    if value.startswith("/") and len(value) > 1 and fs.is_dir(value.rstrip("/")):
        return value.rstrip("/")
    return None


def _chroot_candidates(fs: RootFS, unit: Unit) -> list[_NssCandidate]:
    """RootDirectory=, and directories an Exec*= argument or Environment= value names."""
    out: list[_NssCandidate] = []
    root_dir = unit.value("Service", "RootDirectory")
    if root_dir is not None and root_dir.value.startswith("/") and root_dir.value.rstrip("/"):
        top = root_dir.value.rstrip("/")
        if fs.is_dir(top):
            out.append((f"{top}/etc/nsswitch.conf", f"RootDirectory={top}", True, root_dir.location, False))
    for key in EXEC_KEYS:
        for d in unit.values("Service", key):
            for arg in exec_argv(d.value)[1:]:
                base = _dir_value(fs, arg)
                if base is not None:
                    how = f"chroot directory {base} ({key}= argument)"
                    out.append((f"{base}/etc/nsswitch.conf", how, True, d.location, True))
    for d in unit.values("Service", "Environment"):
        try:
            words = split_words(d.value)
        except ValueError:
            continue  # an unclosed quote: systemd refuses the line too
        for word in words:
            base = _dir_value(fs, word)
            if base is not None:
                how = f"chroot directory {base} (Environment= {word.split('=', 1)[0]})"
                out.append((f"{base}/etc/nsswitch.conf", how, True, d.location, True))
    return out


def _bind_candidates(unit: Unit) -> list[_NssCandidate]:
    """BindPaths=/BindReadOnlyPaths= over /etc/nsswitch.conf or /etc."""
    out: list[_NssCandidate] = []
    for key in ("BindPaths", "BindReadOnlyPaths"):
        for d in unit.values("Service", key):
            for word in d.value.split():
                src, _, rest = word.lstrip("-+").partition(":")
                dest = rest.split(":", 1)[0] or src
                if not src.startswith("/"):
                    continue
                if dest.rstrip("/") == "/etc/nsswitch.conf":
                    out.append((src, f"{key}={word}", False, d.location, True))
                elif dest.rstrip("/") == "/etc":
                    out.append((f"{src.rstrip('/')}/nsswitch.conf", f"{key}={word}", False, d.location, True))
    return out


def read_nss_overrides(fs: RootFS, units: tuple[Unit, ...], problems: list[Problem]) -> list[NssOverride]:
    """nsswitch.conf files a unit's daemon reads instead of /etc/nsswitch.conf: in its RootDirectory=,
    in a directory an Exec*= argument or Environment= value names that holds etc/nsswitch.conf (a
    chroot the daemon enters itself), or bound over /etc/nsswitch.conf (BindPaths=)."""
    out: list[NssOverride] = []
    for unit in units:
        if unit.is_template or unit.type != "service":
            continue
        seen: set[str] = set()
        for path, how, chroot, loc, must_exist in (*_chroot_candidates(fs, unit), *_bind_candidates(unit)):
            if path in seen or (must_exist and not fs.exists(path)):
                continue
            seen.add(path)
            try:
                passwd = _nss_passwd(fs, path, problems)
            except RootError as exc:
                problems.append(Problem(Location(RelPath(path)), exc.reason))
                continue
            if passwd is not None:
                out.append(NssOverride(unit.name, RelPath(path), how, chroot, passwd, loc))
    return sorted(out)
