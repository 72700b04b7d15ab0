"""shellcheck in the quick tier: the hand-written fragments once, and of every generated script only
what dynmigrate generated around them.

A plan's lib/dynmigrate.sh is a generated comment header, then lib.sh and stages.sh byte for byte,
then the generated data section and main; files/dynmigrate-repair is a generated header, lib.sh and
repair.sh byte for byte, and a last line; migrate.sh and rollback.sh are generated whole (they
source the library). The quick tier checks that the fragments are in each script unchanged,
shellchecks the fragments once (as .ci/run lints them) and the generated rest of every script. The
whole scripts as they run (`shellcheck -x`, the library followed) are shellchecked by the slow tier
(`pytest -m e2e`: about 6 s a plan folder).
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from conftest import REPO

FRAGMENTS = REPO / "src" / "dynmigrate" / "render" / "planfolder"
# The fragments use variables their generated header defines, and the generated rest uses the
# fragments' variables and functions: the same exclusions as .ci/run's lint of the fragments.
EXCLUDE = "SC2034,SC2154,SC2153"


def _fragment(name: str) -> str:
    return (FRAGMENTS / name).read_text(encoding="utf-8")


def library_block() -> str:
    """What lib/dynmigrate.sh holds of the fragments (render_library)."""
    return _fragment("lib.sh") + "\n" + _fragment("stages.sh") + "\n"


def repair_block() -> str:
    """What files/dynmigrate-repair holds of the fragments (render_repair)."""
    return _fragment("lib.sh") + "\n" + _fragment("repair.sh")


def generated_rest(text: str, block: str, where: str) -> str:
    """TEXT without BLOCK, which it must hold once, byte for byte."""
    assert text.count(block) == 1, f"{where} does not hold the shell fragments once, byte for byte"
    return text.replace(block, "", 1)


def generated_parts(plan: Path) -> dict[str, str]:
    """What dynmigrate generated of the plan folder PLAN's scripts, by file name."""

    def read(rel: str) -> str:
        return (plan / rel).read_text(encoding="utf-8", errors="surrogateescape")

    return {
        "migrate.sh": read("migrate.sh"),
        "rollback.sh": read("rollback.sh"),
        "dynmigrate.sh": generated_rest(read("lib/dynmigrate.sh"), library_block(), "lib/dynmigrate.sh"),
        "dynmigrate-repair": generated_rest(read("files/dynmigrate-repair"), repair_block(), "dynmigrate-repair"),
    }


def shellcheck_generated(plan: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    """shellcheck over the generated parts of PLAN's scripts, written to SCRATCH (the library they
    source is not followed: SC1091 is the notice that says so)."""
    scratch.mkdir(parents=True, exist_ok=True)
    names = []
    for name, text in generated_parts(plan).items():
        (scratch / name).write_text(text, encoding="utf-8", errors="surrogateescape")
        names.append(name)
    return subprocess.run(
        ["shellcheck", "--shell=bash", "-e", f"{EXCLUDE},SC1091", *names],
        capture_output=True,
        text=True,
        check=False,
        cwd=scratch,
    )


@functools.cache
def _fragments_process() -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["shellcheck", "--shell=bash", "-e", EXCLUDE, "lib.sh", "stages.sh", "repair.sh"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=FRAGMENTS,
    )


def start_fragments_check() -> None:
    """Start shellcheck over the fragments (about 3 s of CPU), once a process: it runs on another
    core while the tests go on, and fragments_check() waits for it."""
    _fragments_process()


@functools.cache
def fragments_check() -> tuple[int, str]:
    """The exit code and output of shellcheck over lib.sh, stages.sh and repair.sh."""
    proc = _fragments_process()
    out, _ = proc.communicate(timeout=600)
    return proc.returncode, out
