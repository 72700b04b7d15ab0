"""`systemd-analyze verify` over every unit the sample plans rewrite: the drop-in adds no warning.

Each unit is verified in a throwaway root holding this machine's standard units (targets, slices),
the sample's unit files and drop-ins, stubs for the binaries the unit runs, and then our drop-in.
The output with the drop-in must equal the output without it, and exit 0.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, plan_sample
from dynmigrate.collect.rootfs import RootFS
from dynmigrate.collect.units import load_units
from dynmigrate.model.units import EXEC_KEYS
from dynmigrate.model.unitsyntax import exec_argv

ANALYZE = shutil.which("systemd-analyze")
HOST_UNITS = next(
    (Path(p) for p in ("/usr/lib/systemd/system", "/lib/systemd/system") if Path(p, "sysinit.target").exists()), None
)
PLANS = {
    "debian-web": ["shortlink", "redis", "memcache", "postgres"],
    "units-maze": ["webhook", "haproxy", "prometheus", "syncthing", "restic", "mosquitto"],
}


def _verify(root: Path, unit: str) -> tuple[int, str]:
    proc = subprocess.run(
        [str(ANALYZE), "verify", "--man=no", f"--root={root}", unit],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = "\n".join(line.replace(str(root), "ROOT") for line in (proc.stdout + proc.stderr).splitlines())
    return proc.returncode, out


@pytest.fixture(scope="module")
def host_units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this machine's standard units (files and alias links), made once: each throwaway
    root gets hard links to it (nothing writes to a unit file), not a copy of its 250 files."""
    copy = tmp_path_factory.mktemp("host-units")
    assert HOST_UNITS is not None
    for p in HOST_UNITS.iterdir():
        if not p.is_dir():
            shutil.copy2(p, copy / p.name, follow_symlinks=False)
    return copy


def _build(tmp: Path, sample: Path, unit: str, host_units: Path) -> Path:
    root = tmp / "root"
    for sub in ("usr/lib/systemd/system", "lib/systemd/system", "etc/systemd/system", "usr/local/lib/systemd/system"):
        src = sample / "root" / sub
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(src, root / sub, symlinks=True, dirs_exist_ok=True)
    vendor = root / "usr/lib/systemd/system"
    vendor.mkdir(parents=True, exist_ok=True)
    for p in host_units.iterdir():  # standard targets and slices the sample units depend on
        if not (vendor / p.name).exists() and not (vendor / p.name).is_symlink():
            os.link(p, vendor / p.name, follow_symlinks=False)
    units = {str(u.name): u for u in load_units(RootFS(root)).units}
    u = units.get(unit) or units[unit.split("@")[0] + "@.service"]
    for key in EXEC_KEYS:
        for directive in u.values("Service", key):
            argv = exec_argv(directive.value)
            if argv and argv[0].startswith("/"):
                stub = root / argv[0].lstrip("/")
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text("#!/bin/sh\n")
                stub.chmod(0o755)
    return root


@pytest.mark.skipif(ANALYZE is None or HOST_UNITS is None, reason="systemd-analyze and standard units needed")
@pytest.mark.parametrize("sample", sorted(PLANS))
def test_generated_dropins_verify_clean(sample: str, in_repo: Path, tmp_path: Path, host_units: Path) -> None:
    plan = tmp_path / "plan"
    res = plan_sample(sample, PLANS[sample], plan, "--no-security", "--force")  # debian-web's postgres is blocked
    assert res.exit_code == 0, res.stderr
    checked = 0
    for dropin in sorted(plan.glob("units/*/50-dynmigrate.conf")):
        unit = dropin.parent.name
        target = unit.replace("@.service", "@check.service")
        root = _build(tmp_path / unit, REPO / "samples" / sample, unit, host_units)
        _, before = _verify(root, target)
        d = root / "etc/systemd/system" / f"{unit}.d"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(dropin, d / "50-dynmigrate.conf")
        rc_after, after = _verify(root, target)
        assert rc_after == 0, after
        assert after == before, f"{unit}: the drop-in changed systemd-analyze verify's output:\n{after}"
        assert "50-dynmigrate" not in after
        checked += 1
    assert checked == len(list(plan.glob("units/*/50-dynmigrate.conf"))) > 0
