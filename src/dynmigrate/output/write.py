"""Write a plan folder: everything a reviewer reads and an operator runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dynmigrate.model.common import escape, mask_secrets
from dynmigrate.model.plan import MigrationPlan
from dynmigrate.model.snapshot import Snapshot
from dynmigrate.output.security import NOT_MEASURED, measure
from dynmigrate.render.planfolder.ansible import PLAYBOOK, ansible_readme
from dynmigrate.render.planfolder.documents import plan_data, render_report, userdel_plan
from dynmigrate.render.planfolder.script import (
    LIB_PATH,
    apt_hook,
    dropin_file,
    override_file,
    render_repair,
    render_scripts,
)

SAFE_REL = re.compile(r"^[A-Za-z0-9@._:+\\/-]+$")
MARKER = ".dynmigrate-plan"  # marks a folder dynmigrate wrote, and lists its files (see check_replaceable)
NAME_MAX = 255  # bytes in one file name (Linux)


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
            files[_check_rel(dropin_file(u))] = (u.dropin_text, 0o644)
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


def _sha256(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8", "surrogateescape")).hexdigest()


def render_marker(files: dict[str, str]) -> str:
    """The marker of a plan folder: every file the plan wrote, with its sha256."""
    return (
        "# dynmigrate plan folder. `dynmigrate plan --replace` replaces this folder only while it holds\n"
        "# exactly these files, unchanged (anything else in it is somebody's, and is never deleted).\n"
        + "".join(f"{_sha256(content)}  {rel}\n" for rel, content in sorted(files.items()))
    )


def _marker_entries(folder: Path) -> dict[str, str]:
    """rel -> sha256 from a plan folder's marker; PlanWriteError when the folder has none."""
    marker = folder / MARKER
    if marker.is_symlink() or not marker.is_file():
        raise PlanWriteError(
            f"{folder} is not a dynmigrate plan folder (no {MARKER}): not replaced; choose another folder"
        )
    entries: dict[str, str] = {}
    for line in marker.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        if not line or line.startswith("#"):
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            raise PlanWriteError(f"{folder}/{MARKER} is damaged: not replaced")
        entries[rel] = digest
    return entries


def check_replaceable(folder: Path) -> None:
    """Refuse unless folder holds a dynmigrate plan and nothing else, every file as it was written."""
    entries = _marker_entries(folder)
    listed_dirs = {str(Path(rel).parent) for rel in entries} | {"."}
    for rel_dir in list(listed_dirs):
        while rel_dir not in ("", "."):
            rel_dir = str(Path(rel_dir).parent)
            listed_dirs.add(rel_dir)
    foreign: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath).relative_to(folder)
        for name in sorted(dirnames + filenames):
            rel = str(base / name) if str(base) != "." else name
            path = Path(dirpath, name)
            if path.is_symlink():
                foreign.append(rel)
            elif name in dirnames:
                if rel not in listed_dirs:
                    foreign.append(rel + "/")
            elif rel == MARKER and str(base) == ".":
                continue
            elif rel not in entries or not path.is_file():
                foreign.append(rel)
            elif hashlib.sha256(path.read_bytes()).hexdigest() != entries[rel]:
                raise PlanWriteError(f"{folder}: {rel} changed since it was written: not replaced")
        dirnames[:] = [d for d in dirnames if not Path(dirpath, d).is_symlink()]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise PlanWriteError(f"{folder} holds files that are not part of the plan ({shown}): not replaced")


def check_destination(out: Path, replace: bool) -> bool:
    """Whether out already exists (as a directory we may fill or replace); PlanWriteError otherwise."""
    if out.is_symlink():
        raise PlanWriteError(f"{out} is a symbolic link: not written")
    if not out.exists():
        return False
    if not out.is_dir():
        raise PlanWriteError(f"{out} is not a directory")
    if not any(out.iterdir()):
        return True
    if not replace:
        raise PlanWriteError(f"{out} exists and is not empty (use a new folder, or --replace)")
    check_replaceable(out)
    return True


def _check_name(rel: str) -> None:
    for comp in rel.split("/"):
        if len(os.fsencode(comp)) > NAME_MAX:
            raise PlanWriteError(f"file name too long for the plan folder: {comp[:40]}... ({len(comp)} characters)")


def write_plan(
    snapshot: Snapshot,
    plan: MigrationPlan,
    outdir: str | Path,
    *,
    security: bool = True,
    replace: bool = False,
    cited: Sequence[str] = (),
) -> list[str]:
    """Write the plan into a temporary folder next to outdir, then rename it into place.

    A failure at any point leaves outdir as it was and no temporary folder behind. An existing
    outdir is replaced only with replace=True and only while it holds an untouched plan.
    """
    out = Path(outdir)
    existed = check_destination(out, replace)
    files = plan_files(plan)
    repair_text = _add_repair(files)
    migrate, rollback, _, library = render_scripts(plan, _installed_checksums(files))
    scores = measure(snapshot, plan) if security else NOT_MEASURED
    files.update(
        {
            "migrate.sh": (migrate, 0o755),
            "rollback.sh": (rollback, 0o755),
            LIB_PATH: (library, 0o644),
            "REPORT.md": (render_report(plan, scores, cited), 0o644),
            "plan.json": (_json_text(plan_data(plan)), 0o644),
            "userdel-plan.txt": (userdel_plan(plan), 0o644),
            "ansible/site.yml": (PLAYBOOK, 0o644),
            "ansible/README.md": (ansible_readme(plan), 0o644),
        }
    )
    files.update(_account_records(plan, _sha256(repair_text)))
    for rel in files:
        _check_name(rel)
    _check_name(out.name)
    return _write_folder(files, out, existed)


def _json_text(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _add_repair(files: dict[str, tuple[str, int]]) -> str:
    """Add dynmigrate-repair and the apt hook that checks it to files; the repair script's text."""
    repair_text = render_repair()
    files["files/dynmigrate-repair"] = (repair_text, 0o755)
    files["files/80dynmigrate-repair"] = (apt_hook(_sha256(repair_text)), 0o644)
    return repair_text


def _installed_checksums(files: dict[str, tuple[str, int]]) -> list[tuple[str, str]]:
    """(sha256, rel) of every file the scripts install: they check what they install against these."""
    return [
        (_sha256(files[rel][0]), rel)
        for rel in sorted(files)
        if rel.startswith(("units/", "files/")) and not rel.endswith((".before.service", ".after.service", ".diff"))
    ]


def _account_records(plan: MigrationPlan, repair_sha256: str) -> dict[str, tuple[str, int]]:
    """accounts/NAME.json per planned account: the plan's data with that account's section only."""
    data = plan_data(plan)
    records: dict[str, tuple[str, int]] = {}
    for a in plan.accounts:
        record = {k: v for k, v in data.items() if k != "accounts"}
        record["account"] = next(x for x in data["accounts"] if x["account"] == a.account)
        # verify --repair runs the installed dynmigrate-repair only while it has this hash
        record["repair_sha256"] = repair_sha256
        records[f"accounts/{a.account}.json"] = (_json_text(record), 0o644)
    return records


def _write_folder(files: dict[str, tuple[str, int]], out: Path, existed: bool) -> list[str]:
    """Write files and the marker into a new folder beside out, then move it into place."""
    marker = render_marker({rel: content for rel, (content, _mode) in files.items()})
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=parent))  # mode 0700
    except OSError as exc:
        raise PlanWriteError(f"cannot write the plan to {out}: {exc.strerror or exc}") from None
    try:
        written: list[str] = []
        for rel in sorted(files):
            content, mode = files[rel]
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8", errors="surrogateescape")
            os.chmod(path, mode)
            written.append(rel)
        (tmp / MARKER).write_text(marker, encoding="utf-8", errors="surrogateescape")
        os.chmod(tmp / MARKER, 0o644)
        _move_into_place(tmp, out, existed)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise PlanWriteError(f"cannot write the plan to {out}: {exc.strerror or exc}") from None
    return written


def _move_into_place(tmp: Path, out: Path, existed: bool) -> None:
    """rename(2) tmp to out; an existing out (empty, or a checked plan) is renamed aside first and
    removed only after the new plan is in place (renamed back if that fails)."""
    if not existed:
        os.rename(tmp, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=tmp.parent))
    os.rename(out, aside)  # replaces the empty directory aside, atomically
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(aside, out)
        raise
    shutil.rmtree(aside, ignore_errors=True)
