"""D-Bus activation files of the system bus."""

from __future__ import annotations

from dynmigrate.collect import references as R
from dynmigrate.collect.rootfs import RootFS
from dynmigrate.collect.textfiles import dir_files, read_text
from dynmigrate.model.findings import Problem
from dynmigrate.model.references import BusActivation


def read_bus_activations(fs: RootFS, problems: list[Problem]) -> list[BusActivation]:
    out: list[BusActivation] = []
    seen: set[str] = set()
    for d in R.DBUS_SERVICE_DIRS:
        for p in dir_files(fs, d, [], ".service"):
            name = p.rsplit("/", 1)[-1]
            if name in seen:
                continue  # an earlier directory's file of the same name wins
            seen.add(name)
            text = read_text(fs, p, problems)
            if text is not None:
                out += R.parse_bus_activation(text, p)
    return out
