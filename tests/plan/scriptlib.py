"""Run functions of the generated scripts' shell library (lib.sh + stages.sh) without a booted host.

The library is sourced into a bash that sets the variables the generated header and data section
would set, with STATE and PLAN_DIR in a temporary folder. Commands that change the machine's
accounts, units or packages are shadowed by stubs that record the call and fail, so a test that
forgets to replace a stage step can never touch this machine.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pytest

IS_ROOT = os.geteuid() == 0
# root's PATH on a Debian host (not the test runner's, which may hold version-manager shims)
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# An account that exists nowhere: the functions under test only act on the paths a test creates.
TEST_UID = 4242
TEST_GID = 4243
DANGEROUS = (
    "systemctl",
    "useradd",
    "userdel",
    "usermod",
    "groupadd",
    "groupdel",
    "chage",
    "dpkg-statoverride",
    "dpkg",
    "apt-get",
    "nscd",
    "journalctl",
)


def need_root() -> None:
    """chown to other UIDs needs root: skip outside CI, fail under CI (like the e2e tests)."""
    if IS_ROOT:
        return
    if os.environ.get("CI"):
        pytest.fail("these script tests need root (chown to other UIDs), and CI is set", pytrace=False)
    pytest.skip("needs root (chown to other UIDs)")


def library() -> str:
    plan = resources.files("dynmigrate.render.planfolder")
    return plan.joinpath("lib.sh").read_text(encoding="utf-8") + "\n" + plan.joinpath("stages.sh").read_text("utf-8")


def q(value: object) -> str:
    return shlex.quote(str(value))


def arr(values: list[str] | tuple[str, ...]) -> str:
    return "(" + " ".join(q(v) for v in values) + ")"


@dataclass
class Sandbox:
    """A temporary STATE/PLAN_DIR, a stub bin directory first on PATH, and the account's data."""

    tmp: Path
    arrays: dict[str, list[str]] = field(default_factory=dict)
    scalars: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = self.tmp / "state"
        self.plan = self.tmp / "plan"
        self.bin = self.tmp / "bin"
        self.calls = self.tmp / "calls"
        for d in (self.state, self.plan, self.bin):
            d.mkdir(parents=True, exist_ok=True)
        self.calls.touch()
        for name in DANGEROUS:
            self.stub(name, f'echo "{name} $*" >>{q(self.calls)}\nexit 97\n')

    def stub(self, name: str, body: str) -> Path:
        """Install an executable bin/NAME (bash) that runs first on PATH."""
        path = self.bin / name
        path.write_text("#!/bin/bash\n" + body, encoding="utf-8")
        path.chmod(0o755)
        return path

    def wrap(self, name: str, before: str) -> Path:
        """bin/NAME runs BEFORE (bash) and then the real NAME with the same arguments."""
        real = shutil.which(name, path=ROOT_PATH)
        assert real, f"{name} not found"
        return self.stub(name, f'{before}\nexec {q(real)} "$@"\n')

    def preamble(self) -> str:
        values = {
            "A_NAME": "dmtestsvc",
            "A_UID": str(TEST_UID),
            "A_GID": str(TEST_GID),
            "A_GROUP": "dmtestsvc",
            "A_GROUP_GID": str(TEST_GID),
            "A_DELETE_GROUP": "1",
            "A_MIN_SYSTEMD": "235",
            "PLAN_ID": "test-plan",
            **self.scalars,
        }
        arrays: dict[str, list[str]] = {
            name: []
            for name in (
                "A_DROPIN_UNITS",
                "A_DROPIN_FILES",
                "A_DROPIN_PATHS",
                "A_RUN_UNITS",
                "A_RUN_PROBES",
                "A_MOVE",
                "A_RUNTIME",
                "A_CFG_SRC",
                "A_CFG_DST",
                "A_FIX_PATH",
                "A_FIX_MODE",
                "A_OVR_TARGET",
                "A_OVR_SOURCE",
                "A_OVR_KIND",
                "A_OVR_ORIG",
                "A_UNIT_HASH",
                "A_PIN_PATH",
                "A_PIN_MODE",
                "A_MANUAL",
                "A_MANIFEST",
            )
        }
        arrays.update(self.arrays)
        lines = [
            "set -euo pipefail",
            "shopt -s nullglob",
            "umask 077",
            "export LC_ALL=C",
            "SCRIPT_NAME=test",
            f"STATE={q(self.state)}",
            f"PLAN_DIR={q(self.plan)}",
            "START_TIMEOUT=1 SETTLE=0 PROBE_TIMEOUT=1 STAGE=test",
            "declare -A CONFIRMED=()",
            *(f"{k}={q(v)}" for k, v in values.items()),
            *(f"{k}={arr(v)}" for k, v in arrays.items()),
        ]
        return "\n".join(lines) + "\n"

    def run(self, body: str, *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Source the library, then run BODY (bash) with the stubs first on PATH."""
        script = self.preamble() + library() + "\n" + f"mkdir -p -- {q(self.state)}/accounts/dmtestsvc\n" + body
        env = {**os.environ, "PATH": f"{self.bin}:{ROOT_PATH}"}
        return subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )

    def dangerous_calls(self) -> list[str]:
        return self.calls.read_text(encoding="utf-8").splitlines()


def owner_mode(path: Path) -> tuple[int, int, str]:
    st = path.lstat()
    return st.st_uid, st.st_gid, oct(st.st_mode)
