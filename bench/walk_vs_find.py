"""Benchmark: the ownership walk and a whole scan against GNU find, over the same tree, same run.

    python bench/walk_vs_find.py                      # builds a 1,000,000-entry tree in a temp dir
    python bench/walk_vs_find.py --entries 200000     # smaller
    python bench/walk_vs_find.py --root /             # an existing tree (a host, a Debian root)

Each run, alternating: `find TREE -xdev -printf '%U %G %m %p\\n' > /dev/null`, the walk through
the code path `scan` uses (walk_ownership with the scan's arguments, in a fresh interpreter, so
the time includes its start), and a whole `dynmigrate scan TREE --format json`. When the walk
skips other systems' trees (container stores, nested OS roots: DM308), the entry count is checked
against a find that prunes the same trees (untimed: find tries every -path pattern on every
entry, so a pruned find is slower than a plain one); the timed find walks everything. Every
command runs as a child of GNU time, which reports its peak RSS (the largest process of its tree:
the walk's helpers are children of the walk). The walk must count exactly as many entries as find
prints (find also prints TREE itself; it counts with -print0, as a name may hold a newline); the
counting find stops at the walk's depth cap (`-maxdepth`), which the walk reports as a problem for
every directory it does not enter. Then the unit reader: 10,000 generated units with drop-ins.
The machine is shared and noisy: quote the medians' ratios, not seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tree import SYSTEM_UIDS, build_tree

GNU_TIME = "/usr/bin/time"  # Debian package "time"
FIND_FORMAT = "%U %G %m %p\\n"

WALK_CHILD = """
import sys, time
from dynmigrate.collect.ownership import walk_ownership
from dynmigrate.collect.rootfs import RootFS
class NoEvents:  # what scan passes without a terminal (collect.snapshot.NoEvents, without its imports)
    def walk_progress(self, entries, current):
        return None
start = time.perf_counter()
data, problems = walk_ownership(RootFS(sys.argv[1]), cross_filesystems=False, skip=(), progress=NoEvents())
print(data.entries, len(data.trees), len(problems), f"{time.perf_counter() - start:.3f}")
sys.stdout.flush()
sys.stdout.buffer.write(b"".join(n.path.encode("utf-8", "surrogateescape") + b"\\0" for n in data.nested_roots))
"""


@dataclass(slots=True)
class Sample:
    seconds: float
    cpu: float  # user + system of the whole process tree
    rss_mb: float
    out: bytes


def run_child(argv: list[str], stdout: int | None = subprocess.PIPE) -> Sample:
    """Run argv under GNU time: a peak RSS read by wait4 in this process would include this
    interpreter's own, which the child inherits until exec."""
    with tempfile.NamedTemporaryFile(prefix="dynmigrate-bench-time-") as report:
        start = time.perf_counter()
        proc = subprocess.run(
            [GNU_TIME, "-q", "-o", report.name, "-f", "%x %U %S %M", *argv],
            stdout=stdout,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        elapsed = time.perf_counter() - start
        code, user, system, rss_kb = Path(report.name).read_text(encoding="utf-8").split()[-4:]
    if int(code) not in (0, 1):
        raise SystemExit(f"{argv[0]} exited {code}")
    return Sample(elapsed, float(user) + float(system), int(rss_kb) / 1024, proc.stdout or b"")


def add_accounts(tree: Path) -> None:
    """An /etc with the tree's system accounts and a unit each, so `scan` has work to do."""
    etc = tree / "etc"
    (etc / "systemd/system").mkdir(parents=True, exist_ok=True)
    users = ["root:x:0:0:root:/root:/bin/bash"]
    groups = ["root:x:0:"]
    for uid in SYSTEM_UIDS:
        users.append(f"svc{uid}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin")
        groups.append(f"svc{uid}:x:{uid}:")
        (etc / f"systemd/system/svc{uid}.service").write_text(
            f"[Service]\nUser=svc{uid}\nExecStart=/usr/bin/svc{uid}\n", encoding="utf-8"
        )
    (etc / "passwd").write_text("\n".join(users) + "\n", encoding="utf-8")
    (etc / "group").write_text("\n".join(groups) + "\n", encoding="utf-8")


def stats(name: str, samples: list[Sample]) -> float:
    secs = [s.seconds for s in samples]
    med = statistics.median(secs)
    print(
        f"  {name:<6} min {min(secs):7.2f}s  median {med:7.2f}s  max {max(secs):7.2f}s  "
        f"cpu median {statistics.median(s.cpu for s in samples):6.2f}s  "
        f"peak RSS {max(s.rss_mb for s in samples):7.1f} MB"
    )
    return med


def prune_args(root: str, nested: list[str]) -> list[str]:
    """find's expression that prints the tops of the trees the walk skipped without entering them."""
    from dynmigrate.render.planfolder.script import find_pattern

    prune: list[str] = []
    for path in nested:
        prune += ["-path", find_pattern(root.rstrip("/") + path), "-prune", "-print0", "-o"]
    return prune


def find_lines_without(root: str, nested: list[str]) -> int:
    """What find prints when it does not enter the trees the walk skipped (it prints their tops),
    nor directories deeper than the walk's depth cap (the walk reports those as problems)."""
    from dynmigrate.collect.ownership import MAX_DEPTH

    # -print0: a name holding a newline is one entry (a test's hostile root under /tmp has some)
    # run_child as the timed commands are: its GNU time report file exists during the count too
    # (on / it is an entry of the tree)
    argv = ["find", root, "-xdev", "-maxdepth", str(MAX_DEPTH + 1), *prune_args(root, nested), "-print0"]
    return run_child(argv).out.count(b"\0")


@dataclass(slots=True)
class WalkOut:
    entries: int
    trees: int
    problems: int
    inside: float
    nested: list[str]


def walk_out(sample: Sample) -> WalkOut:
    summary, _, nested_raw = sample.out.partition(b"\n")
    entries, trees, problems, inner = summary.split()
    nested = [n.decode("utf-8", "surrogateescape") for n in nested_raw.split(b"\0") if n]
    return WalkOut(int(entries), int(trees), int(problems), float(inner), nested)


def bench_tree(root: str, runs: int) -> bool:
    find = ["find", root, "-xdev", "-printf", FIND_FORMAT]
    walk = [sys.executable, "-c", WALK_CHILD, root]
    scan = [sys.executable, "-m", "dynmigrate", "scan", root, "--format", "json", "--no-progress"]
    subprocess.run(find, stdout=subprocess.DEVNULL, check=False)  # warms the cache
    first = walk_out(run_child(walk))  # and learns which trees the walk skips
    lines = find_lines_without(root, first.nested)
    if first.nested:
        print(f"the walk skipped {len(first.nested)} other systems' trees (DM308): {', '.join(first.nested)}")
    if first.problems:
        print(f"the walk reported {first.problems} problems (directories past its depth cap are not entered)")
    timed: dict[str, list[Sample]] = {"find": [], "walk": [], "scan": []}
    insides: list[float] = []
    ok = True
    with open(os.devnull, "wb") as null:
        for i in range(runs):
            timed["find"].append(run_child(find, null.fileno()))
            timed["walk"].append(run_child(walk))
            timed["scan"].append(run_child(scan, null.fileno()))
            got = walk_out(timed["walk"][-1])
            insides.append(got.inside)
            same = got.entries + 1 == lines
            ok = ok and same
            print(
                f"run {i + 1}: find {timed['find'][-1].seconds:6.2f}s  walk {timed['walk'][-1].seconds:6.2f}s "
                f"(inside {got.inside:.2f}s)  scan {timed['scan'][-1].seconds:6.2f}s  "
                f"walk entries {got.entries} + ROOT {'==' if same else '!='} find entries {lines}; "
                f"{got.trees} owned regions, {got.problems} problems",
                flush=True,
            )
    med = {name: stats(name, samples) for name, samples in timed.items()}
    mi = statistics.median(insides)
    print(f"  walk inside its process (without interpreter start and imports): median {mi:7.2f}s")
    mf, mw, ms = med["find"], med["walk"], med["scan"]
    print(f"  ratio of medians: walk/find {mw / mf:.2f}   scan/find {ms / mf:.2f}   walk inside/find {mi / mf:.2f}")
    return ok


def bench_units(count: int, runs: int) -> None:
    """The unit reader as scan runs it: the cyclic garbage collector paused (app.no_cycle_collection)."""
    from dynmigrate.app import no_cycle_collection
    from dynmigrate.collect.rootfs import RootFS
    from dynmigrate.collect.units import load_units

    with tempfile.TemporaryDirectory(prefix="dynmigrate-units-") as tmp:
        system = Path(tmp) / "etc/systemd/system"
        lib = Path(tmp) / "usr/lib/systemd/system"
        system.mkdir(parents=True)
        lib.mkdir(parents=True)
        for i in range(count):
            (lib / f"svc{i}.service").write_text(
                f"[Unit]\nDescription=service {i}\nAfter=network.target\n\n[Service]\n"
                f"User=svc{i % 50}\nExecStart=/usr/bin/svc{i} --config /etc/svc{i}.conf\n"
                f"StateDirectory=svc{i}\nEnvironment=A={i} B=two\n\n[Install]\nWantedBy=multi-user.target\n",
                encoding="utf-8",
            )
            dropin = system / f"svc{i}.service.d"
            dropin.mkdir()
            (dropin / "override.conf").write_text(
                f"[Service]\nExecStart=\nExecStart=/usr/bin/svc{i} --fast\nRestart=on-failure\n", encoding="utf-8"
            )
        times = []
        loaded = 0
        for _ in range(runs):
            start = time.perf_counter()
            with no_cycle_collection():
                loaded = len(load_units(RootFS(tmp)).units)
            times.append(time.perf_counter() - start)
        print(
            f"unit reader: {count} units with {count} drop-ins: {loaded} units loaded, "
            f"min {min(times):.2f}s median {statistics.median(times):.2f}s (target < 2 s)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="an existing tree to walk instead of a generated one")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--units", type=int, default=10_000, help="units for the reader benchmark (0: skip)")
    parser.add_argument("--unit-runs", type=int, default=3)
    args = parser.parse_args()
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"{GNU_TIME} is missing: apt-get install time")
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.2f} at start; python {sys.version.split()[0]}")
    ok = True
    if args.root:
        print(f"tree: {args.root}")
        ok = bench_tree(args.root, args.runs)
    else:
        tmp = tempfile.mkdtemp(prefix="dynmigrate-bench-")
        try:
            tree = Path(tmp) / "tree"
            start = time.perf_counter()
            built = build_tree(str(tree), args.entries, args.seed)
            add_accounts(tree)
            print(
                f"tree: {built.entries} entries (seed {args.seed}), {built.system_owned} owned by system "
                f"accounts ({built.system_dirs} directories), {built.setuid} setuid/setgid; "
                f"built in {time.perf_counter() - start:.0f}s"
            )
            ok = bench_tree(str(tree), args.runs)
        finally:
            shutil.rmtree(tmp)
    if args.units:
        bench_units(args.units, args.unit_runs)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    if not ok:
        print("MISMATCH: the walk did not count what find printed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
