"""Benchmark: dynmigrate's ownership walk against GNU find over the same tree, in the same run.

    python bench/walk_vs_find.py [ROOT] [--runs N]

Both walk ROOT without crossing filesystems and stat every entry (find prints owner, group,
mode, size and path; the walk records owned regions). Machines here are noisy: the script
prints every run, the medians, and the ratio of medians; quote the ratio, not seconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from dynmigrate.collect.ownership import walk_ownership
from dynmigrate.collect.rootfs import RootFS


def time_find(root: str) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(["find", root, "-xdev", "-printf", "%U %G %m %s %p\\0"], capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    return elapsed, proc.stdout.count(b"\0")


def time_walk(root: str) -> tuple[float, int]:
    start = time.perf_counter()
    data, _problems = walk_ownership(RootFS(root))
    return time.perf_counter() - start, data.entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="/")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    finds: list[float] = []
    walks: list[float] = []
    n_find = n_walk = 0
    time_find(args.root)  # warm the dentry cache once for both
    for i in range(args.runs):
        f, n_find = time_find(args.root)
        w, n_walk = time_walk(args.root)
        finds.append(f)
        walks.append(w)
        print(f"run {i + 1}: find {f:.3f}s ({n_find} entries)  dynmigrate walk {w:.3f}s ({n_walk} entries)")
    mf, mw = statistics.median(finds), statistics.median(walks)
    print(f"median: find {mf:.3f}s, dynmigrate walk {mw:.3f}s")
    print(f"ratio walk/find (medians): {mw / mf:.2f}x over {n_walk} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
