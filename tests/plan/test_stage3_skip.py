"""Stage 3 prunes other systems' trees (DM308) from its search, only while root alone can write them.

The functions under test are the real ones from stages.sh and the real generated data section,
run by bash against a real tree and GNU find.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from dynmigrate.model.common import RelPath
from dynmigrate.model.plan import MigrationPlan
from dynmigrate.render.planfolder.script import data_section, find_pattern

STAGES = resources.files("dynmigrate.render.planfolder").joinpath("stages.sh").read_text(encoding="utf-8")


def shell_function(name: str) -> str:
    match = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", STAGES, re.S | re.M)
    assert match, f"{name} not found in stages.sh"
    return match.group(0)


def test_find_pattern_escapes_glob_characters() -> None:
    assert find_pattern("/var/lib/machines") == "/var/lib/machines"
    assert find_pattern("/srv/a*b?c[1]\\d") == "/srv/a\\*b\\?c\\[1]\\\\d"


@pytest.fixture
def tree() -> Iterator[Path]:
    """A tree under /run: every directory above it must be root's and not world-writable."""
    if os.geteuid() != 0 or not os.access("/run", os.W_OK):
        pytest.skip("needs root and a writable /run (CI is root)")
    base = Path(tempfile.mkdtemp(prefix="dynmigrate-stage3-", dir="/run"))
    os.chmod(base, 0o755)
    for rel in ("machines/c1/f", "pub/jail/f", "odd[1]/f", "odd1/f", "data/f", "ownedby/inner/f"):
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
        os.chown(path, 120, 120)
    os.chmod(base / "pub", 0o1777)
    os.chown(base / "ownedby", 120, 120)
    os.symlink("machines", base / "link")
    yield base
    shutil.rmtree(base)


def test_stage3_prunes_only_trusted_trees(tree: Path) -> None:
    skip = [tree / "machines", tree / "pub/jail", tree / "odd[1]", tree / "link", tree / "ownedby/inner", tree / "gone"]
    plan = MigrationPlan(
        root="/",
        host="h",
        systemd_version=None,
        nss_action="none",
        accounts=(),
        refused=(),
        skip_trees=tuple(RelPath(str(p)) for p in skip),
    )
    script = "\n".join(
        [
            "set -euo pipefail",
            'log() { printf "%s\\n" "$*" >&2; }',
            'die() { log "$*"; exit 1; }',
            shell_function("trusted_tree"),
            shell_function("skip_prunes"),
            data_section(plan, []),
            "skip_prunes",
            'find "$1" -xdev "${PRUNE[@]}" -uid 120 -printf "%p\\0"',
        ]
    )
    proc = subprocess.run(["bash", "-c", script, "stage3", str(tree)], capture_output=True, text=True, check=True)
    found = sorted(os.path.relpath(p, tree) for p in proc.stdout.split("\0") if p)
    # machines and odd[1] are pruned (odd1 is not: the pattern matches only itself); a world-writable
    # parent, a symlink, an account's directory and a missing path are not trusted
    assert found == ["data/f", "odd1/f", "ownedby", "ownedby/inner/f", "pub/jail/f"]
    warned = sorted(line.split()[1] for line in proc.stderr.splitlines())
    assert warned == sorted(str(tree / p) for p in ("pub/jail", "link", "ownedby/inner", "gone"))
