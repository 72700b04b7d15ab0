"""collect(root) -> Snapshot: each reader of collect/ run once, in order, and the site policy
(dynmigrate.ini) that steers them."""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, replace
from typing import Protocol

from dynmigrate.collect.accounts import read_accounts
from dynmigrate.collect.activation import read_bus_activations
from dynmigrate.collect.configs import read_references
from dynmigrate.collect.execlinks import read_exec_links
from dynmigrate.collect.host import read_host
from dynmigrate.collect.ledger import read_ledger
from dynmigrate.collect.nssfiles import read_nss_overrides
from dynmigrate.collect.ownership import OwnershipData, walk_ownership
from dynmigrate.collect.packages import read_packages
from dynmigrate.collect.pathfacts import interesting_paths, path_fact
from dynmigrate.collect.rootfs import InputError, OwnershipManifest, RootError, RootFS
from dynmigrate.collect.secrethints import find_acls, find_secrets
from dynmigrate.collect.units import load_units
from dynmigrate.model.accounts import AccountData
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.findings import Problem
from dynmigrate.model.paths import rel
from dynmigrate.model.references import Package, Reference, StatOverride
from dynmigrate.model.snapshot import Policy, Snapshot
from dynmigrate.model.units import Unit

POLICY_PATH = "/etc/dynmigrate.ini"


class Events(Protocol):
    """How collect reports progress; the CLI draws it, tests ignore it."""

    def stage(self, name: str) -> None: ...

    def walk_progress(self, entries: int, current: str) -> None: ...


class NoEvents:
    def stage(self, name: str) -> None:
        return None

    def walk_progress(self, entries: int, current: str) -> None:
        return None


# -- site policy (the one place configparser is the right tool) -----------------------------


POLICY_LIMIT = 1024 * 1024


def _policy_line_without_key(text: str) -> int:
    """The number of the first line configparser would reject for lacking "=" or ":" (0: none).

    Lines are split at "\\n" only, as configparser splits them (not at the other line breaks
    str.splitlines knows, such as a vertical tab).
    """
    in_option = False
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if line[0] in " \t" and in_option:
            continue  # a continuation of the value above
        if stripped.startswith("[") and stripped.endswith("]"):
            in_option = False
            continue
        if "=" not in stripped and ":" not in stripped:
            return lineno
        in_option = True
    return 0


def _policy_errors(problems: list[Problem]) -> None:
    """Every problem in a policy file is fatal: a typo in [never] must not drop the list."""
    if problems:
        p = problems[0]
        where = f"{p.location.file}:{p.location.line}" if p.location.line else str(p.location.file)
        raise InputError(f"{where}: {p.message}")


def parse_policy(text: str, source: str) -> tuple[Policy, list[Problem]]:
    """dynmigrate.ini: plain INI written by admins for dynmigrate, so configparser fits.

    [never]
    accounts = postgres backup
    units = legacy.service
    [walk]
    skip = /srv/huge /var/lib/docker
    [probes]
    redis-server.service = redis-cli ping
    [ignore]
    redis = DM110
    redis-server.service = DM208
    """
    problems: list[Problem] = []
    if len(text) > POLICY_LIMIT:
        return Policy(source=source), [
            Problem(Location(RelPath(source)), f"policy file: larger than {POLICY_LIMIT // 1024} KiB")
        ]
    bad = _policy_line_without_key(text)
    if bad:
        # configparser would collect every such line into one message, quadratically
        return Policy(source=source), [
            Problem(Location(RelPath(source), bad), f"policy file: line {bad}: expected [section] or KEY = VALUE")
        ]
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        line = getattr(exc, "lineno", 0) or 0
        msg = str(exc).splitlines()[0]
        return Policy(source=source), [Problem(Location(RelPath(source), int(line)), f"policy file: {msg}")]

    def words(section: str, key: str) -> tuple[str, ...]:
        raw = parser.get(section, key, fallback="")
        return tuple(w for w in re.split(r"[\s,]+", raw) if w)

    problems += _policy_unknown(parser, source)
    probes = tuple(sorted(parser.items("probes"))) if parser.has_section("probes") else ()
    ignores = _policy_ignores(parser, text, source, problems)
    return (
        Policy(
            never_accounts=words("never", "accounts"),
            never_units=words("never", "units"),
            skip_paths=tuple(str(rel(p)) for p in words("walk", "skip")),
            probes=probes,
            source=source,
            ignores=ignores,
        ),
        problems,
    )


def _policy_unknown(parser: configparser.ConfigParser, source: str) -> list[Problem]:
    """A problem for each section and key of the policy file that dynmigrate does not know."""
    problems: list[Problem] = []
    known = {"never": {"accounts", "units"}, "walk": {"skip"}, "probes": None, "ignore": None}
    for section in parser.sections():
        if section not in known:
            problems.append(Problem(Location(RelPath(source)), f"policy file: unknown section [{section}]"))
            continue
        allowed = known[section]
        if allowed is None:
            continue
        for key in parser.options(section):
            if key not in allowed:
                problems.append(Problem(Location(RelPath(source)), f"policy file: unknown key {key} in [{section}]"))
    return problems


def _policy_ignores(
    parser: configparser.ConfigParser, text: str, source: str, problems: list[Problem]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """[ignore]: account or unit -> the rule ids it ignores; a word that is no rule id is a problem."""
    ignores: list[tuple[str, tuple[str, ...]]] = []
    if not parser.has_section("ignore"):
        return ()
    for key, raw in sorted(parser.items("ignore")):
        ids = tuple(w.upper() for w in re.split(r"[\s,]+", raw) if w)
        not_ids = [w for w in ids if not re.fullmatch(r"DM\d{3}", w)]
        if not_ids or not ids:
            line = _key_line(text, key)
            what = f"{', '.join(not_ids)} is not a rule id" if not_ids else "no rule id given"
            problems.append(Problem(Location(RelPath(source), line), f"policy file: [ignore] {key}: {what}"))
            ids = tuple(w for w in ids if w not in not_ids)
        if ids:
            ignores.append((key, ids))
    return tuple(ignores)


def _key_line(text: str, key: str) -> int:
    """The line of `key =` in an INI text (configparser keeps no line numbers), 0 if not found."""
    for n, line in enumerate(text.splitlines(), 1):
        name, sep, _ = line.partition("=")
        if sep and name.strip() == key:
            return n
    return 0


# -- the whole collect stage ----------------------------------------------------------------


def collect(
    root: str,
    *,
    manifest: OwnershipManifest | None = None,
    policy_file: str | None = None,
    cross_filesystems: bool = False,
    walk: bool = True,
    events: Events | None = None,
) -> Snapshot:
    """Read everything the later stages need from the tree at root, once, reporting progress to
    events. InputError for a policy that cannot be read and for a root without accounts."""
    ev = events or NoEvents()
    fs = RootFS(root, manifest)
    problems: list[Problem] = []
    if manifest is not None:
        manifest.check_paths(fs)
    ev.stage("policy")
    policy = _read_policy(fs, policy_file, problems)
    ev.stage("accounts")
    accounts = _read_accounts(fs, root, problems)
    ev.stage("units")
    loaded = load_units(fs)
    problems += loaded.problems
    ev.stage("references")
    found = _read_outside_units(fs, accounts, loaded.units, problems)
    ev.stage("paths")
    facts = [f for p in sorted(found.interest) if (f := path_fact(fs, p, problems)) is not None]
    owned = _walk(fs, policy, cross_filesystems, ev, problems) if walk else _NOT_WALKED
    activations = read_bus_activations(fs, problems)
    nss_overrides = read_nss_overrides(fs, loaded.units, problems)
    secrets = find_secrets(fs, owned.etc_entries, problems)
    acls = find_acls(fs, owned.etc_entries)
    host = read_host(fs, found.packages, problems)
    retired = read_ledger(fs, problems)
    ev.stage("done")
    return Snapshot(
        root_label=root,
        accounts=accounts,
        units=loaded.units,
        unit_texts=loaded.texts,
        search_path=loaded.search_path,
        references=tuple(sorted(set(found.references))),
        statoverrides=found.statoverrides,
        packages=found.packages,
        trees=owned.trees,
        etc_entries=owned.etc_entries,
        mountpoints=owned.mountpoints,
        walked_entries=owned.entries,
        paths=tuple(facts),
        host=host,
        policy=policy,
        retired=tuple(sorted(retired)),
        problems=tuple(sorted(set(problems))),
        secrets=tuple(sorted(set(secrets))),
        acl_paths=acls,
        config_texts=found.config_texts,
        nested_roots=owned.nested_roots,
        bus_activations=tuple(sorted(activations)),
        nss_overrides=tuple(nss_overrides),
    )


def _walk(fs: RootFS, policy: Policy, cross_filesystems: bool, ev: Events, problems: list[Problem]) -> OwnershipData:
    """The ownership walk, less the paths the policy's [walk] skip names."""
    ev.stage("walk")
    owned, probs = walk_ownership(fs, cross_filesystems=cross_filesystems, skip=policy.skip_paths, progress=ev)
    problems += probs
    return owned


# what a collect without the walk (walk=False) has of it: nothing
_NOT_WALKED = OwnershipData(trees=(), etc_entries=(), mountpoints=(), entries=0, crossed_filesystems=False)


def _read_policy(fs: RootFS, policy_file: str | None, problems: list[Problem]) -> Policy:
    """The site policy: the file given (--policy), else ROOT's own, else an empty policy. A policy
    that cannot be read is an error, never a silently empty policy: its [never] list is what keeps
    dynmigrate away from the site's accounts. [probes] count only in a file given from outside."""
    if policy_file is not None:
        try:
            with open(policy_file, encoding="utf-8") as fh:
                ptext = fh.read(POLICY_LIMIT + 1)
        except UnicodeDecodeError:
            raise InputError(f"{policy_file}: policy file is not UTF-8 text") from None
        except OSError as exc:
            raise InputError(f"{policy_file}: policy file: {exc.strerror or exc}") from None
        policy, probs = parse_policy(ptext, policy_file)
        _policy_errors(probs)
        return policy
    if not fs.exists(POLICY_PATH):
        return Policy()
    try:
        ptext = fs.read_text(POLICY_PATH)
    except RootError as exc:
        raise InputError(f"{exc.path}: policy file: {exc.reason}") from None
    policy, probs = parse_policy(ptext, POLICY_PATH)
    _policy_errors(probs)
    if not policy.probes:
        return policy
    problems.append(
        Problem(
            Location(RelPath(POLICY_PATH)),
            "[probes] inside the scanned root are ignored (pass the file with --policy)",
        )
    )
    return replace(policy, probes=())


def _read_accounts(fs: RootFS, root: str, problems: list[Problem]) -> AccountData:
    """The accounts and groups; a root without a single valid /etc/passwd line is no Linux root."""
    accounts, probs = read_accounts(fs)
    problems += probs
    if not accounts.accounts:
        why = next(
            (p.message for p in probs if p.location.file == "/etc/passwd" and not p.location.line),
            "no valid account line",
        )
        raise InputError(f"{root} is not a readable Linux root: /etc/passwd: {why}")
    return accounts


@dataclass(frozen=True, slots=True)
class _OutsideUnits:
    """What the references stage reads: the references to accounts (files outside the units,
    packages, Exec lines), the packages and statoverrides, the configuration texts the rules
    quote, and the paths worth a PathFact."""

    references: tuple[Reference, ...]
    packages: tuple[Package, ...]
    statoverrides: tuple[StatOverride, ...]
    config_texts: tuple[tuple[RelPath, str], ...]  # sorted by path
    interest: frozenset[str]


def _read_outside_units(
    fs: RootFS, accounts: AccountData, units: tuple[Unit, ...], problems: list[Problem]
) -> _OutsideUnits:
    """The references stage: configuration files, packages (with the paths of interest and the
    unit files among the files worth keeping) and Exec lines."""
    texts: dict[RelPath, str] = {}
    refs = read_references(fs, accounts, units, problems, texts)
    interest = interesting_paths(accounts, units)
    unit_files = {str(u.fragment) for u in units if u.fragment}
    packages, pkg_refs, overrides = read_packages(fs, accounts, interest | unit_files, problems)
    refs += pkg_refs
    refs += read_exec_links(fs, accounts, units, problems)
    return _OutsideUnits(
        tuple(refs), tuple(packages), tuple(overrides), tuple(sorted(texts.items())), frozenset(interest)
    )


__all__ = ["Events", "NoEvents", "collect", "parse_policy"]
