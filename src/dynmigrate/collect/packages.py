"""dpkg's packages: their files of interest, maintainer scripts and statoverrides, and the
references to accounts these make."""

from __future__ import annotations

from dynmigrate.collect import references as R
from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.collect.textfiles import dir_files, read_text
from dynmigrate.model.accounts import AccountData
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.findings import Problem
from dynmigrate.model.paths import rel
from dynmigrate.model.references import Action, Package, Reference, RefKind, StatOverride, Target

SCRIPT_LIMIT = 512 * 1024


DPKG_INFO = "/var/lib/dpkg/info"
INTERESTING = (
    "/lib/systemd/system/",
    "/usr/lib/systemd/system/",
    "/etc/init.d/",
    "/usr/lib/sysusers.d/",
    "/usr/lib/tmpfiles.d/",
    "/etc/",
    "/var/",
    "/usr/share/dbus-1/system.d/",
)


def read_packages(
    fs: RootFS, accounts: AccountData, interesting_paths: set[str], problems: list[Problem]
) -> tuple[list[Package], list[Reference], list[StatOverride]]:
    """The dpkg packages (their interesting files and maintainer scripts), the references their
    statoverrides and maintainer scripts make to accounts, and the statoverrides."""
    overrides, refs = _read_statoverrides(fs, problems)
    status: dict[str, tuple[str, tuple[str, ...]]] = {}
    if fs.exists("/var/lib/dpkg/status"):
        stext = read_text(fs, "/var/lib/dpkg/status", problems, limit=64 * 1024 * 1024)
        if stext is not None:
            status = R.parse_dpkg_status(stext)
    if not fs.is_dir(DPKG_INFO):
        return [], refs, overrides
    try:
        names = fs.listdir(DPKG_INFO)
    except RootError as exc:
        problems.append(Problem(Location(RelPath(DPKG_INFO)), exc.reason))
        return [], refs, overrides
    # kept in a package's files too: a path with a statoverride (whose setgid helper it is), and
    # the sysusers.d files it ships (the accounts it declares)
    keep = interesting_paths | {str(o.path) for o in overrides}
    files, scripts = _dpkg_info(fs, names, keep, problems)
    sysusers_by_conf = _sysusers_by_conf(fs)
    packages: list[Package] = []
    for pkg in sorted(set(files) | set(scripts) | set(status)):
        version, depends = status.get(pkg, ("", ()))
        pkg_scripts = tuple(sorted(scripts.get(pkg, ())))
        packages.append(Package(pkg, depends, tuple(files.get(pkg, ())), pkg_scripts, version, pkg in status))
        for spath in pkg_scripts:
            stext = read_text(fs, spath, problems, limit=SCRIPT_LIMIT)
            if stext is not None:
                refs += _maintainer_script_references(R.scan_maintainer_script(stext, spath), pkg, sysusers_by_conf)
    return packages, refs, overrides


def _read_statoverrides(fs: RootFS, problems: list[Problem]) -> tuple[list[StatOverride], list[Reference]]:
    """dpkg-statoverride's database, and the owner and group (other than root) each entry names."""
    text = None
    if fs.exists("/var/lib/dpkg/statoverride"):
        text = read_text(fs, "/var/lib/dpkg/statoverride", problems)
    if text is None:
        return [], []
    overrides, probs = R.parse_statoverride(text, RelPath("/var/lib/dpkg/statoverride"))
    problems += probs
    refs: list[Reference] = []
    for o in overrides:
        for name, target in ((o.user, Target.USER), (o.group, Target.GROUP)):
            if not name.startswith("#") and name != "root":
                refs.append(
                    Reference(
                        name,
                        target,
                        RefKind.STATOVERRIDE,
                        Action.OWNS_PATH,
                        o.location,
                        f"{o.user} {o.group} {o.mode:o} {o.path}",
                        o.path,
                    )
                )
    return overrides, refs


def _dpkg_info(
    fs: RootFS, names: list[str], keep: set[str], problems: list[Problem]
) -> tuple[dict[str, list[RelPath]], dict[str, list[RelPath]]]:
    """From the names in /var/lib/dpkg/info: each package's files worth keeping (listed in keep,
    under an INTERESTING directory at most five levels deep, or a sysusers.d file), and its
    maintainer scripts."""
    files: dict[str, list[RelPath]] = {}
    scripts: dict[str, list[RelPath]] = {}
    for name in names:
        stem, dot, ext = name.rpartition(".")
        if not dot:
            continue
        pkg = stem.split(":", 1)[0]
        path = RelPath(f"{DPKG_INFO}/{name}")
        if ext == "list":
            ltext = read_text(fs, path, problems, limit=32 * 1024 * 1024)
            if ltext is None:
                continue
            files[pkg] = [
                RelPath(line)
                for line in ltext.split("\n")
                if line in keep
                or (line.startswith(INTERESTING) and line.count("/") <= 5)
                or ("/sysusers.d/" in line and line.endswith(".conf"))
            ]
        elif ext in ("postinst", "preinst", "config", "postrm"):
            scripts.setdefault(pkg, []).append(path)
    return files, scripts


def _sysusers_by_conf(fs: RootFS) -> dict[str, list[Reference]]:
    """sysusers.d declarations by file name (the first directory's wins), for the
    "systemd-sysusers foo.conf" of maintainer scripts."""
    out: dict[str, list[Reference]] = {}
    for d in R.SYSUSERS_DIRS:
        for p in dir_files(fs, d, [], ".conf"):
            t = read_text(fs, p, [])
            if t:
                out.setdefault(p.rsplit("/", 1)[-1], R.parse_sysusers(t, p)[0])
    return out


def _maintainer_script_references(
    actions: list[R.ScriptAction], pkg: str, sysusers_by_conf: dict[str, list[Reference]]
) -> list[Reference]:
    """The references of one package's maintainer script: its account commands, and the accounts
    that the sysusers.d files it hands to systemd-sysusers create."""
    refs: list[Reference] = []
    for act in actions:
        if act.tool == "systemd-sysusers":
            refs += _sysusers_call_references(act, pkg, sysusers_by_conf)
            continue
        guard = " (skipped while the name resolves: guarded by getent)" if act.guarded_by_getent else ""
        action = _script_action(act.tool)
        for nm, target in act.names:
            refs.append(
                Reference(
                    nm,
                    target,
                    RefKind.PACKAGE_SCRIPT,
                    action,
                    act.location,
                    act.command + guard,
                    rel(act.path.split()[0]) if act.path.startswith("/") else None,
                    guarded=act.guarded_by_statoverride,
                    package=pkg,
                )
            )
    return refs


def _script_action(tool: str) -> Action:
    """What a maintainer script's account command does."""
    if tool in ("adduser", "addgroup", "useradd", "groupadd"):
        return Action.CREATES
    if tool in ("deluser", "delgroup", "userdel", "groupdel"):
        return Action.REMOVES
    if tool.startswith("dpkg-statoverride"):
        return Action.OWNS_PATH
    return Action.CHOWNS


def _sysusers_call_references(
    act: R.ScriptAction, pkg: str, sysusers_by_conf: dict[str, list[Reference]]
) -> list[Reference]:
    """The accounts `systemd-sysusers FILE.conf...` creates (PKG.conf when no file is named)."""
    refs: list[Reference] = []
    for conf in act.path.split() or [f"{pkg}.conf"]:
        for sref in sysusers_by_conf.get(conf.rsplit("/", 1)[-1], []):
            if sref.action is Action.CREATES:
                refs.append(
                    Reference(
                        sref.name,
                        sref.target,
                        RefKind.PACKAGE_SCRIPT,
                        Action.CREATES,
                        act.location,
                        f"systemd-sysusers {conf} ({sref.detail})",
                        package=pkg,
                    )
                )
    return refs
