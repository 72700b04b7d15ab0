"""The truth corpus: real Debian daemons migrated by dynmigrate's own plans in booted copies.

    python3 bench/corpus/corpus.py list [--suite SUITE]
    python3 bench/corpus/corpus.py build --suite SUITE [--group GROUP]
    python3 bench/corpus/corpus.py check --suite SUITE [--only DAEMON ...]
    python3 bench/corpus/corpus.py build --suite SUITE --group ci-sample    # the CI sample's root

`daemons.ini` (beside this file) lists the daemons; each belongs to a root group, and every group
of a suite is one debootstrapped root with all of its daemons installed. A root is cached under
``${DYNMIGRATE_CORPUS_CACHE:-/var/cache/dynmigrate-corpus}/<key>/root``, the key being a hash of
everything that determines its content, and is built beside its final place then renamed, under a
lock, as the end-to-end roots are.

Each root is left quiet: the units of the corpus packages are disabled after installation and the
units their packages enabled are recorded in ``/var/lib/dynmigrate-corpus/enabled`` inside the
root, one ``PACKAGE UNIT`` a line. A run enables and starts one daemon's units, as the admin who
installed that package would have found them, so that daemons sharing a port never meet.

``check`` (corpus_check.py) boots a throwaway copy per daemon and runs its setup and probe alone,
so that anyone can re-check the definitions before a migration run.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
DAEMONS_INI: Final = HERE / "daemons.ini"
# Bump whenever the way a root is built changes: it is part of the cache key.
BUILDER_VERSION: Final = "2"
DEFAULT_CACHE: Final = "/var/cache/dynmigrate-corpus"
DEFAULT_MIRROR: Final = "http://deb.debian.org/debian"
SUITES: Final = ("bookworm", "trixie")
# What every corpus root has besides its daemons: systemd with nss-systemd (as a host that runs
# DynamicUser services needs), python3 for the probes and for dynmigrate itself, and the tools
# the probes call.
BASE_PACKAGES: Final = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "libnss-systemd",
    "ca-certificates",
    "python3",
    "python3-click",
    "python3-rich",
    "python3-networkx",
    "procps",
    "iproute2",
)
UNIT_DIRS: Final = ("/lib/systemd/system/", "/usr/lib/systemd/system/")
UNIT_SUFFIXES: Final = (".service", ".socket", ".timer", ".path")
ENABLED_RECORD: Final = "var/lib/dynmigrate-corpus/enabled"
# Where a run copies probe.py inside a booted copy; "$PROBE" in a setup or probe stands for it.
PROBE_PATH: Final = "/usr/local/lib/dynmigrate-corpus/probe.py"
PROBE_COMMAND: Final = f"python3 {PROBE_PATH}"
BUILD_TIMEOUT: Final = 3600.0


class CorpusError(Exception):
    """A corpus definition or a build that cannot go on; the message says which file or step."""


@dataclass(frozen=True, slots=True)
class Daemon:
    name: str
    package: str
    unit: str
    account: str
    group: str
    suites: tuple[str, ...]
    setup: str
    probe: str
    broken: str = ""  # why it cannot work in a container at all (the runner's BROKEN-BEFORE)
    manual: str = ""  # the plan's manual steps done as written, run before stage 2 ("" = none)
    sample: tuple[str, ...] = ()  # the suites whose CI sample includes it (its root group: ci-sample)
    probe_timeout: int = 0  # seconds the plan's health check gives one probe run (0 = the plan's default)


@dataclass(frozen=True, slots=True)
class RootSpec:
    suite: str
    group: str
    packages: tuple[str, ...]
    mirror: str

    @property
    def key(self) -> str:
        doc = {
            "builder": BUILDER_VERSION,
            "suite": self.suite,
            "group": self.group,
            "mirror": self.mirror,
            "packages": sorted(self.packages),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _joined(value: str) -> str:
    """Continuation lines of an INI value joined into one shell line."""
    return " ".join(line.strip() for line in value.splitlines() if line.strip())


def shell_line(command: str) -> str:
    """A setup or probe as the shell line that runs it: "$PROBE" spelled out."""
    return command.replace("$PROBE", PROBE_COMMAND)


def load_daemons(path: Path = DAEMONS_INI) -> tuple[Daemon, ...]:
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as err:
        raise CorpusError(f"{path}: {err}") from None
    daemons = []
    for name in parser.sections():
        section = parser[name]
        unknown_sample = sorted(set(section.get("sample", "").split()) - set(SUITES))
        if unknown_sample:
            raise CorpusError(f"{path}: [{name}] sample names unknown suites {', '.join(unknown_sample)}")
        missing = [k for k in ("package", "unit", "account", "root", "suites", "setup", "probe") if k not in section]
        if missing:
            raise CorpusError(f"{path}: [{name}] lacks {', '.join(missing)}")
        suites = tuple(section["suites"].split())
        unknown = sorted(set(suites) - set(SUITES))
        if unknown:
            raise CorpusError(f"{path}: [{name}] names unknown suites {', '.join(unknown)}")
        daemons.append(
            Daemon(
                name=name,
                package=section["package"].strip(),
                unit=section["unit"].strip(),
                account=section["account"].strip(),
                group=section["root"].strip(),
                suites=suites,
                setup=_joined(section["setup"]),
                probe=_joined(section["probe"]),
                broken=_joined(section.get("broken", "")),
                manual=_joined(section.get("manual", "")),
                sample=tuple(section.get("sample", "").split()),
                probe_timeout=int(section.get("probe_timeout", "0")),
            )
        )
    return tuple(daemons)


def root_specs(daemons: Sequence[Daemon], suite: str, mirror: str) -> tuple[RootSpec, ...]:
    groups: dict[str, set[str]] = {}
    for daemon in daemons:
        if suite in daemon.suites:
            groups.setdefault(daemon.group, set()).add(daemon.package)
    return tuple(
        RootSpec(suite=suite, group=group, packages=tuple(sorted(packages)), mirror=mirror)
        for group, packages in sorted(groups.items())
    )


SAMPLE_GROUP: Final = "ci-sample"


def sample_spec(daemons: Sequence[Daemon], suite: str, mirror: str) -> RootSpec:
    """The small root of the CI sample: the packages of the daemons whose `sample` names the suite."""
    packages = sorted({d.package for d in daemons if suite in d.sample})
    return RootSpec(suite=suite, group=SAMPLE_GROUP, packages=tuple(packages), mirror=mirror)


def cache_dir() -> Path:
    return Path(os.environ.get("DYNMIGRATE_CORPUS_CACHE") or DEFAULT_CACHE)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: Sequence[str], log: Path, what: str) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise CorpusError(f"{what} failed (exit {proc.returncode}); see {log}")


def enabled_units(root: Path, package: str) -> list[str]:
    """The units PACKAGE had enabled when it was installed into ROOT (the build recorded them)."""
    try:
        text = (root / ENABLED_RECORD).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [unit for pkg, _, unit in (line.partition(" ") for line in text.splitlines()) if pkg == package and unit]


def _names(relation: str) -> frozenset[str]:
    """The package names of a dpkg relation field ("a (>= 1) | b, c:any" -> a, b, c)."""
    words = (alternative.split("(")[0].strip().split(":")[0] for alternative in relation.replace("|", ",").split(","))
    return frozenset(word for word in words if word)


def parse_status(text: str) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """dpkg's status file: each installed package's dependencies, and who provides each name.

    Depends and Pre-Depends count with every alternative (the closure keeps only what is
    installed); version constraints and architecture qualifiers are dropped.
    """
    depends: dict[str, frozenset[str]] = {}
    providers: dict[str, set[str]] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        name = fields.get("Package")
        if not name or not fields.get("Status", "").endswith(" installed"):
            continue

        depends[name] = _names(fields.get("Depends", "")) | _names(fields.get("Pre-Depends", ""))
        for virtual in _names(fields.get("Provides", "")):
            providers.setdefault(virtual, set()).add(name)
    return depends, {k: frozenset(v) for k, v in providers.items()}


def closure(status: str, package: str) -> frozenset[str]:
    """PACKAGE and every installed package it depends on, directly or not (through Provides too)."""
    depends, providers = parse_status(status)
    seen: set[str] = set()
    todo = [package]
    while todo:
        name = todo.pop()
        for real in (name,) if name in depends else providers.get(name, ()):
            if real not in seen:
                seen.add(real)
                todo.extend(depends[real])
    return frozenset(seen)


def _package_units(root: Path, package: str) -> list[str]:
    """PACKAGE's units: native unit files, and init scripts that no native unit replaces."""
    units = []
    scripts = []
    info = root / "var/lib/dpkg/info"
    for listing in sorted(info.glob(f"{package}.list")) + sorted(info.glob(f"{package}:*.list")):
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            directory, _, unit = line.rpartition("/")
            if f"{directory}/" in UNIT_DIRS and unit.endswith(UNIT_SUFFIXES):
                units.append(unit)
            elif directory == "/etc/init.d" and unit and not unit.startswith("."):
                scripts.append(unit)
    for script in scripts:
        if not any((root / d.lstrip("/") / f"{script}.service").exists() for d in UNIT_DIRS):
            units.append(f"{script}.service")
    return units


def _is_template(unit: str) -> bool:
    return unit.split(".")[0].endswith("@")


def _enabled(root: Path, unit: str) -> bool:
    """Whether UNIT starts at boot: a native unit enabled, or an init script with rc start links."""
    native = any((root / d.lstrip("/") / unit).exists() for d in UNIT_DIRS)
    if not native:
        script = unit.removesuffix(".service")
        return any(
            link.name[3:] == script and link.name.startswith("S")
            for level in "2345"
            for link in (root / f"etc/rc{level}.d").glob(f"S*{script}")
        )
    state = subprocess.run(
        ["systemctl", f"--root={root}", "is-enabled", unit], capture_output=True, text=True, check=False
    ).stdout.strip()
    return state == "enabled"


def _quiet(root: Path, spec: RootSpec, base: frozenset[str], log: Path) -> None:
    """Disable every unit the corpus packages brought, recording which ones were enabled.

    A corpus package brought the units of every package it pulled in (its dependency closure
    minus what debootstrap had installed): rabbitmq-server brings epmd.socket, dovecot-imapd
    brings dovecot.service. Init scripts without a native unit count as NAME.service.
    """
    status = (root / "var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    record: list[str] = []
    to_disable: dict[str, None] = {}
    for package in spec.packages:
        for owner in sorted(closure(status, package) - base):
            for unit in _package_units(root, owner):
                if not _is_template(unit) and _enabled(root, unit):
                    record.append(f"{package} {unit}")
                    to_disable[unit] = None
    for unit in to_disable:
        # its exit status is not the verdict (update-rc.d complains about links it does not
        # find): whether the unit is still enabled afterwards is
        with contextlib.suppress(CorpusError):
            _run(["systemctl", f"--root={root}", "disable", unit], log, f"disabling {unit}")
        if _enabled(root, unit):
            raise CorpusError(f"{unit} is still enabled after disabling it; see {log}")
    target = root / ENABLED_RECORD
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(f"{line}\n" for line in record), encoding="utf-8")


def _build_into(target: Path, spec: RootSpec, debs: Path, log: Path) -> None:
    """debootstrap, install the group's packages, quiet their units.

    DEBS keeps the downloaded packages between builds (debootstrap's --cache-dir, and the
    chroot's /var/cache/apt/archives bind-mounted onto it): it changes how fast a root is built,
    never what is in it.
    """
    include = "--include=" + ",".join(BASE_PACKAGES)
    debs.mkdir(parents=True, exist_ok=True)
    _run(
        ["debootstrap", "--variant=minbase", f"--cache-dir={debs}", include, spec.suite, str(target), spec.mirror],
        log,
        "debootstrap",
    )
    base = frozenset(parse_status((target / "var/lib/dpkg/status").read_text(encoding="utf-8"))[0])
    policy = target / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# no daemon starts while the corpus root is built\nexit 101\n", encoding="utf-8")
    policy.chmod(0o755)
    proc, archives = target / "proc", target / "var/cache/apt/archives"
    _run(["mount", "-t", "proc", "proc", str(proc)], log, "mounting /proc")
    try:
        _run(["mount", "--bind", str(debs), str(archives)], log, "mounting the package cache")
        try:
            _run(
                ["chroot", str(target), "apt-get", "install", "-y", "--no-install-recommends", *spec.packages],
                log,
                "apt-get install",
            )
        finally:
            subprocess.run(["umount", "-l", str(archives)], check=False)
        _run(["chroot", str(target), "apt-get", "clean"], log, "apt-get clean")
    finally:
        subprocess.run(["umount", "-l", str(proc)], check=False)
    policy.unlink()
    _quiet(target, spec, base, log)
    for leaked in ("etc/hostname", "etc/resolv.conf"):
        (target / leaked).unlink(missing_ok=True)


def build_root(spec: RootSpec, cache: Path | None = None) -> Path:
    key_dir = (cache or cache_dir()) / spec.key
    final = key_dir / "root"
    if final.is_dir():
        return final
    with _locked(key_dir.parent / f"{spec.key}.lock"):
        if final.is_dir():
            return final
        key_dir.mkdir(parents=True, exist_ok=True)
        (key_dir / "spec.json").write_text(
            json.dumps({"suite": spec.suite, "group": spec.group, "packages": list(spec.packages)}, indent=2) + "\n",
            encoding="utf-8",
        )
        log = key_dir / "build.log"
        log.write_bytes(b"")
        work = Path(tempfile.mkdtemp(prefix="build-", dir=key_dir))
        started = time.monotonic()
        try:
            _build_into(work / "root", spec, (cache or cache_dir()) / "debs" / spec.suite, log)
            os.rename(work / "root", final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"\nbuilt in {time.monotonic() - started:.0f} s\n")
    return final


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="corpus.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="the daemons and their root groups")
    listing.add_argument("--suite", choices=SUITES)
    build = sub.add_parser("build", help="build (or find cached) the roots of a suite")
    build.add_argument("--suite", choices=SUITES, required=True)
    build.add_argument("--group")
    build.add_argument("--mirror", default=os.environ.get("DYNMIGRATE_E2E_MIRROR", DEFAULT_MIRROR))
    check = sub.add_parser(
        "check",
        help="per daemon, in a throwaway booted copy: start it alone, probe, set up, probe; print a table",
    )
    check.add_argument("--suite", choices=SUITES, required=True)
    check.add_argument("--only", nargs="+", metavar="DAEMON", help="check these daemons only")
    check.add_argument("--mirror", default=os.environ.get("DYNMIGRATE_E2E_MIRROR", DEFAULT_MIRROR))
    args = parser.parse_args(argv)
    try:
        daemons = load_daemons()
        if args.command == "list":
            for daemon in daemons:
                if args.suite is None or args.suite in daemon.suites:
                    fields = (daemon.name, daemon.package, daemon.unit, daemon.account, daemon.group, *daemon.suites)
                    print("\t".join(fields))
            return 0
        if os.geteuid() != 0:
            raise CorpusError(f"{args.command} needs root (debootstrap, chroot, mount, systemd-nspawn)")
        if args.command == "check":
            return _check(daemons, args.suite, args.only or (), args.mirror)
        specs = root_specs(daemons, args.suite, args.mirror)
        if args.group == SAMPLE_GROUP:
            specs = (sample_spec(daemons, args.suite, args.mirror),)
        for spec in specs:
            if args.group and spec.group != args.group:
                continue
            print(f"{spec.suite}/{spec.group}: {len(spec.packages)} packages -> ", end="", flush=True)
            print(build_root(spec))
    except CorpusError as err:
        print(f"corpus: {err}", file=sys.stderr)
        return 1
    return 0


def _check(daemons: Sequence[Daemon], suite: str, only: Sequence[str], mirror: str) -> int:
    import corpus_check  # the container code is only needed here

    chosen = [d for d in daemons if suite in d.suites and (not only or d.name in only)]
    unknown = sorted(set(only) - {d.name for d in daemons if suite in d.suites})
    if unknown:
        raise CorpusError(f"{DAEMONS_INI}: no daemon {', '.join(unknown)} on {suite}")
    specs = {spec.group: spec for spec in root_specs(daemons, suite, mirror)}

    def root_of(daemon: Daemon) -> Path:
        return build_root(specs[daemon.group])

    def report(result: corpus_check.CheckResult) -> None:
        status, note = corpus_check.classify(result)
        print(f"{result.daemon}: {status.value}{f' ({note})' if note else ''}", file=sys.stderr, flush=True)

    workdir = cache_dir() / "check"
    print(f"checking {len(chosen)} daemons on {suite}; logs in {workdir / suite}", file=sys.stderr, flush=True)
    results = corpus_check.check_suite(chosen, suite, root_of, workdir, report)
    print(corpus_check.render_table(results), end="")
    return 1 if corpus_check.failed(results) else 0


if __name__ == "__main__":
    sys.exit(main())
