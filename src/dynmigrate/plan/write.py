"""Write a plan folder: everything a reviewer reads and an operator runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from dynmigrate.app import ScanResult
from dynmigrate.model.common import escape, mask_secrets
from dynmigrate.model.plan import MigrationPlan
from dynmigrate.plan.ansible import PLAYBOOK
from dynmigrate.plan.ansible import README as ANSIBLE_README
from dynmigrate.plan.documents import plan_data, render_report, userdel_plan
from dynmigrate.plan.script import APT_HOOK, LIB_PATH, dropin_file, override_file, render_scripts

SAFE_REL = re.compile(r"^[A-Za-z0-9@._:+\\/-]+$")


class PlanWriteError(Exception):
    pass


def _check_rel(rel: str) -> str:
    if not SAFE_REL.match(rel) or ".." in rel.split("/"):
        raise PlanWriteError(f"refusing an unsafe file name in the plan: {rel!r}")
    return rel


def review(text: str) -> str:
    """A file for reviewers, never installed: secret values masked, untrusted text escaped."""
    return escape(mask_secrets(text), lines=True)


def plan_files(plan: MigrationPlan) -> dict[str, tuple[str, int]]:
    """Relative path -> (content, mode) of every file except the scripts and documents."""
    files: dict[str, tuple[str, int]] = {}
    for a in plan.accounts:
        for u in a.units:
            base = f"units/{u.unit}"
            files[_check_rel(dropin_file(u.unit))] = (u.dropin_text, 0o644)
            # review copies, never installed: secret values masked
            files[_check_rel(f"{base}/effective.before.service")] = (review(u.before), 0o644)
            files[_check_rel(f"{base}/effective.after.service")] = (review(u.after), 0o644)
            files[_check_rel(f"{base}/effective.diff")] = (review(u.diff), 0o644)
        for i, o in enumerate(a.overrides):
            if o.content is not None:
                files[_check_rel(override_file(a.account, i))] = (o.content, 0o644)
        for name, text in a.suggested:
            files[_check_rel(f"suggested/{name}")] = (review(text), 0o644)
    for alt in plan.alternatives:
        files[_check_rel(f"alternatives/{alt.unit}/50-dynmigrate.conf")] = (review(alt.dropin_text), 0o644)
    return files


def security_scores(result: ScanResult, plan: MigrationPlan) -> dict[str, tuple[str, str]]:
    """systemd-analyze security --offline=yes exposure before and after, in a throwaway root."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return {}
    scores: dict[str, tuple[str, str]] = {}
    for a in plan.accounts:
        for u in a.units:
            if "@." in u.unit:
                continue
            unit = result.snapshot.unit(u.unit)
            if unit is None or unit.fragment is None:
                continue
            pair = []
            for with_dropin in (False, True):
                with tempfile.TemporaryDirectory(prefix="dynmigrate-sec-") as tmp:
                    sysdir = Path(tmp, "etc/systemd/system")
                    ddir = sysdir / f"{u.unit}.d"
                    ddir.mkdir(parents=True)
                    (sysdir / u.unit).write_text(result.snapshot.unit_text(unit.fragment) or "", encoding="utf-8")
                    for i, p in enumerate(unit.dropins):
                        (ddir / p.rsplit("/", 1)[-1]).write_text(result.snapshot.unit_text(p) or "", encoding="utf-8")
                        del i
                    if with_dropin:
                        (ddir / "50-dynmigrate.conf").write_text(u.dropin_text, encoding="utf-8")
                    try:
                        proc = subprocess.run(
                            [tool, "security", "--offline=yes", f"--root={tmp}", "--no-pager", u.unit],
                            capture_output=True,
                            text=True,
                            timeout=60,
                            check=False,
                        )
                    except (OSError, subprocess.TimeoutExpired):
                        break
                    m = re.search(r"Overall exposure level for \S+: ([0-9.]+ \S+)", proc.stdout + proc.stderr)
                    if m is None:
                        break
                    pair.append(re.sub(r"\x1b\[[0-9;]*m", "", m.group(1)))
            if len(pair) == 2:
                scores[u.unit] = (pair[0], pair[1])
    return scores


def write_plan(result: ScanResult, plan: MigrationPlan, outdir: str | Path, *, security: bool = True) -> list[str]:
    out = Path(outdir)
    if out.exists() and any(out.iterdir()):
        raise PlanWriteError(f"{out} exists and is not empty (use a new folder, or --replace)")
    files = plan_files(plan)
    repair_text = ""
    files_sha: list[tuple[str, str]] = []
    # the scripts check what they install against these checksums
    hook = ("files/80dynmigrate-repair", APT_HOOK)
    # render once without the repair script to get its text, then include its checksum
    _migrate, _rollback, repair_text, _lib = render_scripts(plan, [])
    files["files/dynmigrate-repair"] = (repair_text, 0o755)
    files[hook[0]] = (hook[1], 0o644)
    for rel in sorted(files):
        content = files[rel][0]
        if rel.startswith(("units/", "files/")) and not rel.endswith((".before.service", ".after.service", ".diff")):
            files_sha.append((hashlib.sha256(content.encode("utf-8", "surrogateescape")).hexdigest(), rel))
    migrate, rollback, _, library = render_scripts(plan, files_sha)
    scores = security_scores(result, plan) if security else {}
    docs = {
        "migrate.sh": (migrate, 0o755),
        "rollback.sh": (rollback, 0o755),
        LIB_PATH: (library, 0o644),
        "REPORT.md": (render_report(plan, scores), 0o644),
        "plan.json": (json.dumps(plan_data(plan), indent=2, sort_keys=True, ensure_ascii=False) + "\n", 0o644),
        "userdel-plan.txt": (userdel_plan(plan), 0o644),
        "ansible/site.yml": (PLAYBOOK, 0o644),
        "ansible/README.md": (ANSIBLE_README, 0o644),
    }
    for a in plan.accounts:
        record = {k: v for k, v in plan_data(plan).items() if k != "accounts"}
        record["account"] = next(x for x in plan_data(plan)["accounts"] if x["account"] == a.account)
        docs[f"accounts/{a.account}.json"] = (
            json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            0o644,
        )
    files.update(docs)
    written: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)  # the scripts trust the files next to them: keep others out
    for rel in sorted(files):
        content, mode = files[rel]
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8", errors="surrogateescape")
        os.chmod(path, mode)
        written.append(rel)
    return written
