"""The host: its distribution, systemd version and host name."""

from __future__ import annotations

import re

from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.collect.textfiles import read_text
from dynmigrate.model.findings import Problem
from dynmigrate.model.references import Package
from dynmigrate.model.snapshot import HostInfo


def read_host(fs: RootFS, packages: tuple[Package, ...], problems: list[Problem]) -> HostInfo:
    values: dict[str, str] = {}
    for candidate in ("/etc/os-release", "/usr/lib/os-release"):
        if fs.exists(candidate):
            text = read_text(fs, candidate, problems) or ""
            for line in text.split("\n"):
                k, sep, v = line.partition("=")
                if sep:
                    values[k.strip()] = v.strip().strip('"')
            break
    version: int | None = None
    source = "unknown"
    for pkg in packages:
        if pkg.name == "systemd" and pkg.version:
            m = re.match(r"^(?:\d+:)?(\d+)", pkg.version)
            if m:
                version, source = int(m.group(1)), f"dpkg: systemd {pkg.version}"
    if version is None:
        for d in ("/usr/lib/systemd", "/lib/systemd", "/usr/lib/x86_64-linux-gnu/systemd", "/usr/lib64/systemd"):
            try:
                names = fs.listdir(d) if fs.is_dir(d) else []
            except RootError:
                continue
            for name in names:
                m = re.match(r"^libsystemd-(?:shared|core)-(\d+)", name)
                if m:
                    version, source = int(m.group(1)), f"{d}/{name}"
                    break
            if version is not None:
                break
    hostname = ""
    if fs.exists("/etc/hostname"):
        hostname = (read_text(fs, "/etc/hostname", problems) or "").strip().split("\n")[0][:64]
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9.-]*$", hostname):
        hostname = ""
    return HostInfo(
        values.get("ID", ""), values.get("VERSION_ID", ""), values.get("PRETTY_NAME", ""), version, source, hostname
    )
