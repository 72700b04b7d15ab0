"""Load and validate the rule catalogue: one directory per rule under rules/.

Explicit loading, no subclass magic: every rules/DMnnn-name/rule.py is imported by path and
must define ID, NAME, SEVERITY, EFFECT, TAGS, SUMMARY and check(ctx), and should define FIX (the
one-line fix every finding shows; the catalogue test requires it, a scan still runs without it).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dynmigrate.engine.api import CheckFn, RuleMeta
from dynmigrate.model.common import Effect, RuleId, Severity

RULE_DIR_RE = re.compile(r"^(DM\d{3})-([a-z0-9]+(?:-[a-z0-9]+)*)$")
README_HEADINGS = (
    "## What it detects",
    "## Why it matters under DynamicUser",
    "## Problematic example",
    "## Corrected example",
    "## How the plan handles it",
    "## References",
)


class CatalogueError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Rule:
    meta: RuleMeta
    check: CheckFn
    directory: Path


@dataclass(frozen=True, slots=True)
class RuleDoc:
    """What a renderer shows of a rule: metadata, folder name and README, read before rendering."""

    meta: RuleMeta
    folder: str
    readme: str


def rule_docs(rules: Iterable[Rule]) -> tuple[RuleDoc, ...]:
    return tuple(
        RuleDoc(r.meta, r.directory.name, (r.directory / "README.md").read_text(encoding="utf-8")) for r in rules
    )


def catalogue_dir() -> Path:
    """rules/ in a source checkout, or the copy a built wheel carries."""
    here = Path(__file__).resolve()
    packaged = here.parent.parent / "_catalogue"
    if packaged.is_dir():
        return packaged
    source = here.parents[3] / "rules"
    if source.is_dir():
        return source
    raise CatalogueError("rule catalogue not found (neither dynmigrate/_catalogue nor rules/)")


def _load_one(directory: Path) -> Rule:
    m = RULE_DIR_RE.match(directory.name)
    if not m:
        raise CatalogueError(f"{directory.name}: folder must be named DMnnn-kebab-name")
    path = directory / "rule.py"
    if not path.is_file():
        raise CatalogueError(f"{directory.name}: no rule.py")
    spec = importlib.util.spec_from_file_location(f"dynmigrate_rules.{m.group(1)}", path)
    if spec is None or spec.loader is None:
        raise CatalogueError(f"{directory.name}: cannot import rule.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [k for k in ("ID", "NAME", "SEVERITY", "EFFECT", "TAGS", "SUMMARY", "check") if not hasattr(module, k)]
    if missing:
        raise CatalogueError(f"{directory.name}: rule.py lacks {', '.join(missing)}")
    if m.group(1) != module.ID or m.group(2) != module.NAME:
        raise CatalogueError(f"{directory.name}: ID/NAME ({module.ID}, {module.NAME}) differ from the folder name")
    if not isinstance(module.SEVERITY, Severity) or not isinstance(module.EFFECT, Effect):
        raise CatalogueError(f"{directory.name}: SEVERITY and EFFECT must be Severity and Effect members")
    meta = RuleMeta(
        id=RuleId(module.ID),
        name=module.NAME,
        severity=module.SEVERITY,
        effect=module.EFFECT,
        tags=tuple(module.TAGS),
        summary=str(module.SUMMARY),
        fix=str(getattr(module, "FIX", "")) or f"See dynmigrate rules {module.ID}.",
        facts=tuple(getattr(module, "FACTS", ())),
    )
    return Rule(meta, module.check, directory)


# DM000 has no folder: the runner raises it when a rule crashes.
CRASH_FIX = "A bug in dynmigrate: report it with the message; the other rules' findings still stand."


def fix_of(rule_id: str) -> str:
    """The one-line fix for a rule id (every finding shows it)."""
    for rule in load_catalogue():
        if rule.meta.id == rule_id:
            return rule.meta.fix
    return CRASH_FIX


def find_rule(rule_id: str) -> Rule | None:
    """A rule by id (DM110) or by id-name (DM110-recreated-by-package), case-insensitive."""
    wanted = rule_id.upper()
    for rule in load_catalogue():
        if wanted in (rule.meta.id, f"{rule.meta.id}-{rule.meta.name}".upper()):
            return rule
    return None


@cache
def load_catalogue(directory: Path | None = None) -> tuple[Rule, ...]:
    base = directory or catalogue_dir()
    rules = [_load_one(d) for d in sorted(base.iterdir()) if d.is_dir() and RULE_DIR_RE.match(d.name)]
    ids = [r.meta.id for r in rules]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise CatalogueError(f"duplicate rule ids: {', '.join(dup)}")
    return tuple(rules)


def validate_catalogue(directory: Path | None = None) -> list[str]:
    """Everything a catalogue test enforces beyond loading: README headings and cases."""
    errors: list[str] = []
    for rule in load_catalogue(directory):
        d = rule.directory
        fix = rule.meta.fix
        if fix.startswith("See dynmigrate rules ") or len(fix) > 100 or "\n" in fix:
            errors.append(f"{d.name}: rule.py needs FIX, one line of at most 100 characters")
        readme = d / "README.md"
        if not readme.is_file():
            errors.append(f"{d.name}: no README.md")
        else:
            text = readme.read_text(encoding="utf-8")
            errors += [f"{d.name}: README.md lacks '{h}'" for h in README_HEADINGS if h not in text]
            if not text.startswith(f"# {rule.meta.id} {rule.meta.name}"):
                errors.append(f"{d.name}: README.md must start with '# {rule.meta.id} {rule.meta.name}'")
        for kind in ("good", "bad"):
            cases = sorted(p for p in (d / kind).glob("*") if p.is_dir()) if (d / kind).is_dir() else []
            if not cases:
                errors.append(f"{d.name}: no {kind}/ case")
            for case in cases:
                if not (case / "expected.json").is_file():
                    errors.append(f"{d.name}/{kind}/{case.name}: no expected.json")
                if not (case / "root").is_dir():
                    errors.append(f"{d.name}/{kind}/{case.name}: no root/")
    return errors
