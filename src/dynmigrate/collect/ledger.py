"""The retired-UID ledger that earlier migrations wrote on this root (uid, gid, name, unit, date)."""

from __future__ import annotations

from dynmigrate.collect.rootfs import RootFS
from dynmigrate.collect.textfiles import read_text
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.findings import Problem
from dynmigrate.model.snapshot import RetiredId

LEDGER_PATH = "/var/lib/dynmigrate/retired-ids"


def read_ledger(fs: RootFS, problems: list[Problem]) -> list[RetiredId]:
    if not fs.exists(LEDGER_PATH):
        return []
    text = read_text(fs, LEDGER_PATH, problems) or ""
    out: list[RetiredId] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        try:
            out.append(RetiredId(int(f[0]), int(f[1]), f[2], f[3], f[4]))
        except (ValueError, IndexError):
            problems.append(Problem(Location(RelPath(LEDGER_PATH), lineno), "ledger line malformed"))
    return out
