"""Benchmark: the unit reader over 10,000 generated units with drop-ins, and collect without the walk.

    python bench/units.py                       # 10,000 units, 5 runs, medians
    python bench/units.py --units 2000 --runs 3
    python bench/units.py --profile             # one cProfile run of the unit reader, top 25
    python bench/units.py --root DEBIAN_ROOT    # an existing root instead of a generated one

The generated root is a pure function of (units, seed), built in a temporary directory that is
removed at the end: vendor units in /usr/lib/systemd/system (some templates, some aliases through
symlinks, some masked in /etc), a drop-in directory in /etc/systemd/system for every unit (one or
two .conf files, some of them symlinks to a shared file), type-level and prefix drop-ins, template
instances wanted by multi-user.target.wants, and an /etc/passwd with the services' accounts.

Timed, alternating, in this process: load_units(RootFS(ROOT)) (the "units" stage of scan), and
collect(ROOT, walk=False) (everything scan reads except the ownership walk: accounts, units,
references, package data, path facts), both as scan runs them: with the cyclic garbage collector
paused (app.no_cycle_collection, which run_scan wraps collect and analyse in). The unit reader is
timed with the collector on as well, for comparison. The machine is shared: quote medians.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def build_units(root: Path, count: int, seed: int) -> None:
    """count vendor units, each with drop-ins; accounts for them in /etc/passwd."""
    rng = random.Random(seed)
    vendor = root / "usr/lib/systemd/system"
    etc = root / "etc/systemd/system"
    wants = etc / "multi-user.target.wants"
    for d in (vendor, etc, wants, root / "lib", root / "run/systemd/system"):
        d.mkdir(parents=True, exist_ok=True)
    (root / "lib/systemd").symlink_to("../usr/lib/systemd")
    shared = etc / "shared-hardening.conf"
    shared.write_text("[Service]\nProtectSystem=strict\nPrivateTmp=yes\n", encoding="utf-8")
    (etc / "service.d").mkdir()
    (etc / "service.d/10-all.conf").write_text("[Service]\nTimeoutStopSec=30\n", encoding="utf-8")
    users = ["root:x:0:0:root:/root:/bin/bash"]
    groups = ["root:x:0:"]
    for uid in range(100, 150):
        users.append(f"svc{uid}:x:{uid}:{uid}::/var/lib/svc{uid}:/usr/sbin/nologin")
        groups.append(f"svc{uid}:x:{uid}:")
    (root / "etc/passwd").write_text("\n".join(users) + "\n", encoding="utf-8")
    (root / "etc/group").write_text("\n".join(groups) + "\n", encoding="utf-8")
    for i in range(count):
        family = f"fam{i % 40}"
        template = rng.random() < 0.05
        name = f"{family}-svc{i}@.service" if template else f"{family}-svc{i}.service"
        user = f"svc{100 + i % 50}"
        (vendor / name).write_text(
            f"[Unit]\nDescription=service {i}\nAfter=network.target\n\n[Service]\n"
            f"User={user}\nExecStart=/usr/bin/svc{i} --config /etc/svc{i}.conf\n"
            f"StateDirectory=svc{i}\nEnvironment=A={i} B=two\n\n[Install]\nWantedBy=multi-user.target\n",
            encoding="utf-8",
        )
        if template:
            (wants / f"{family}-svc{i}@main.service").symlink_to(f"/usr/lib/systemd/system/{name}")
        elif rng.random() < 0.3:
            (wants / name).symlink_to(f"/lib/systemd/system/{name}")
        if not template and rng.random() < 0.05:
            (vendor / f"alias{i}.service").symlink_to(name)
        if rng.random() < 0.01:
            (etc / name).symlink_to("/dev/null")
        dropin = etc / f"{name}.d"
        dropin.mkdir()
        (dropin / "override.conf").write_text(
            f"[Service]\nExecStart=\nExecStart=/usr/bin/svc{i} --fast\nRestart=on-failure\n", encoding="utf-8"
        )
        if rng.random() < 0.2:
            (dropin / "hardening.conf").symlink_to("../shared-hardening.conf")
    for f in range(40):
        prefix = etc / f"fam{f}-.service.d"
        prefix.mkdir()
        (prefix / "family.conf").write_text(f"[Service]\nSyslogIdentifier=fam{f}\n", encoding="utf-8")


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds (this process: user + system) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def line(name: str, samples: list[tuple[float, float]]) -> str:
    wall = [w for w, _ in samples]
    cpu = statistics.median(c for _, c in samples)
    return (
        f"  {name:<22} min {min(wall):6.2f}s  median {statistics.median(wall):6.2f}s  max {max(wall):6.2f}s  "
        f"cpu median {cpu:6.2f}s"
    )


def run(root: str, runs: int, profile: bool) -> None:
    from dynmigrate.app import no_cycle_collection
    from dynmigrate.collect.rootfs import RootFS
    from dynmigrate.collect.snapshot import collect
    from dynmigrate.collect.units import load_units

    def as_scan(fn: Callable[[], object]) -> Callable[[], object]:
        def paused() -> object:
            with no_cycle_collection():
                return fn()

        return paused

    loaded = load_units(RootFS(root))
    dropins = sum(len(u.dropins) for u in loaded.units)
    print(f"units loaded: {len(loaded.units)} with {dropins} drop-ins, {len(loaded.problems)} problems")
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        load_units(RootFS(root))
        prof.disable()
        pstats.Stats(prof).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(30)
        return
    units: list[tuple[float, float]] = []
    units_gc: list[tuple[float, float]] = []
    whole: list[tuple[float, float]] = []
    for _ in range(runs):  # alternating, so all see the same load
        units.append(timed(as_scan(lambda: load_units(RootFS(root)))))
        units_gc.append(timed(lambda: load_units(RootFS(root))))
        whole.append(timed(as_scan(lambda: collect(root, walk=False))))
    print(line("load_units", units))
    print(line("load_units, gc on", units_gc))
    print(line("collect without walk", whole))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="an existing root instead of a generated one")
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="profile one load_units run instead")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    if args.root:
        print(f"root: {args.root}")
        run(args.root, args.runs, args.profile)
    else:
        tmp = tempfile.mkdtemp(prefix="dynmigrate-units-")
        try:
            start = time.perf_counter()
            build_units(Path(tmp), args.units, args.seed)
            print(f"root: {args.units} generated units (seed {args.seed}), built in {time.perf_counter() - start:.1f}s")
            run(tmp, args.runs, args.profile)
        finally:
            shutil.rmtree(tmp)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
