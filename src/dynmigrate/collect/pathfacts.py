"""The paths of interest (state directories, homes, Exec*= binaries) and what each one is."""

from __future__ import annotations

from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.model.accounts import AccountData
from dynmigrate.model.common import Location
from dynmigrate.model.files import FileKind
from dynmigrate.model.findings import Problem
from dynmigrate.model.paths import parent_of, rel
from dynmigrate.model.snapshot import PathFact
from dynmigrate.model.units import DIRECTORY_BASES, DIRECTORY_KEYS, EXEC_KEYS, Unit
from dynmigrate.model.unitsyntax import exec_argv


def interesting_paths(accounts: AccountData, units: tuple[Unit, ...]) -> set[str]:
    out: set[str] = {"/var/lib/private", "/var/cache/private", "/var/log/private", "/run/private"}
    for unit in units:
        if unit.type != "service":
            continue
        names = {unit.prefix}
        for key in DIRECTORY_KEYS:
            for word, _ in unit.words("Service", key):
                name = word.split(":", 1)[0]
                if name and not name.startswith("/") and ".." not in name.split("/"):
                    out.add(f"{DIRECTORY_BASES[key]}/{name}")
        for key in ("ReadWritePaths", "ReadWriteDirectories", "WorkingDirectory", "PIDFile", "RootDirectory"):
            for d in unit.values("Service", key):
                for word in d.value.split():
                    w = word.lstrip("-+~!")
                    if w.startswith("/"):
                        out.add(str(rel(w)))
                        if key == "PIDFile":
                            out.add(str(parent_of(rel(w))))
        for key in EXEC_KEYS:
            for d in unit.values("Service", key):
                argv = exec_argv(d.value)
                if argv and argv[0].startswith("/"):
                    out.add(str(rel(argv[0])))
        for name in names:
            for base in DIRECTORY_BASES.values():
                out.add(f"{base}/{name}")
            out.add(f"/var/run/{name}")
    for acc in accounts.accounts:
        if acc.uid == 0:
            continue
        if acc.home.startswith("/"):
            out.add(str(rel(acc.home)))
        for base in (*DIRECTORY_BASES.values(), "/var/run"):
            out.add(f"{base}/{acc.name}")
    return out


def path_fact(fs: RootFS, path: str, problems: list[Problem]) -> PathFact | None:
    p = rel(path)
    try:
        info = fs.lstat(p)
        resolved = fs.resolve(p)
        target = fs.lstat(resolved) if resolved != p else info
    except RootError as exc:
        problems.append(Problem(Location(p), exc.reason))
        return None
    entries = 0
    foreign = False
    dots: tuple[str, ...] = ()
    if target is not None and target.kind is FileKind.DIR:
        try:
            names = fs.listdir(resolved)
        except RootError:
            names = []
        entries = min(len(names), 1000)
        dots = tuple(n for n in names if n.startswith(".") and n not in (".", ".."))[:10]
        foreign = target.mountpoint
        parent = fs.lstat(parent_of(resolved))
        if parent is not None and not parent.mountpoint and target.mountpoint:
            foreign = True
    return PathFact(p, info, resolved, target, entries, foreign, dots)
