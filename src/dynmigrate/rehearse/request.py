"""What the CLI asks the worker to rehearse (sent to it as JSON on stdin)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

PLAN_FOLDER = "/dynmigrate-rehearsal"  # inside the copy, made by the worker (never an entry of the image)
# Passed through from the caller's environment to the scripts (the settle and start timeouts).
SCRIPT_ENV = ("DYNMIGRATE_SETTLE", "DYNMIGRATE_START_TIMEOUT", "DYNMIGRATE_PROBE_TIMEOUT")

SETUP_NEEDS_TRUST = (
    "--setup on an image needs --trusted-image: an untrusted image boots in a user namespace that "
    "shifts the owner of every file of the copy, so a scan after the setup would see shifted owners; "
    "say --trusted-image when you built ROOT yourself (it then boots without user namespacing)"
)

SETUP_NO_FULL_COPY = (
    "--setup cannot be combined with --full-copy: the directories to copy are known only from the scan "
    "after the setup, when the copy already runs on its layers"
)


@dataclass(frozen=True, slots=True)
class Request:
    root: str
    tmpdir: str  # an empty folder the worker mounts its tmpfs on (and removes)
    parent_pidfd: int  # the CLI's pidfd: when it becomes readable the CLI is gone
    accounts: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    all_convertible: bool = False
    force: bool = False
    before_stage2: str = ""
    setup: tuple[str, ...] = ()  # run inside the booted copy before the scan, in order
    trusted_image: bool = False  # ROOT is an image the caller built: no user namespace, host overlay options
    full_copy: bool = False  # no redirect_dir/metacopy even for a trusted ROOT: copy what is renamed
    keep: bool = False
    probes: dict[str, str] = field(default_factory=dict)
    policy: str | None = None
    script_env: dict[str, str] = field(default_factory=dict)
    boot_timeout: float = 180.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Request:
        d: dict[str, Any] = json.loads(text)
        return cls(
            **{**d, "accounts": tuple(d["accounts"]), "units": tuple(d["units"]), "setup": tuple(d.get("setup", ()))}
        )
