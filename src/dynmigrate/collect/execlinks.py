"""Links from units to accounts through their Exec*= lines (units without User=): user switches,
wrapper scripts, the daemons' own configuration files, SysV init scripts."""

from __future__ import annotations

import re

from dynmigrate.collect import references as R
from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.collect.textfiles import optional_text, small_file
from dynmigrate.model.accounts import AccountData
from dynmigrate.model.common import RelPath
from dynmigrate.model.findings import Problem
from dynmigrate.model.references import Reference
from dynmigrate.model.units import EXEC_KEYS, Unit
from dynmigrate.model.unitsyntax import exec_argv, expand_env, unit_environment


def read_exec_links(
    fs: RootFS, accounts: AccountData, units: tuple[Unit, ...], problems: list[Problem]
) -> list[Reference]:
    known = frozenset({a.name for a in accounts.accounts} | {g.name for g in accounts.groups})
    refs: list[Reference] = []
    read_configs: set[tuple[str, str]] = set()

    def config(path: str, unit: str) -> None:
        if (path, unit) in read_configs:
            return
        read_configs.add((path, unit))
        text = optional_text(fs, path, problems)
        if text is not None:
            refs.extend(R.scan_daemon_config(text, RelPath(path), known, unit))

    for unit in units:
        if unit.type != "service":
            continue
        env = {**unit_environment(unit), **_environment_files(fs, unit, problems)}
        for key in EXEC_KEYS:
            for d in unit.values("Service", key):
                argv = exec_argv(expand_env(d.value, env))
                if not argv:
                    continue
                script = R.shell_script_argument(argv)
                if script is not None:
                    refs.extend(R.scan_shell_command(script, env, d.location, key, known, unit.name))
                refs.extend(s.reference(d.location, key, unit.name, "certain") for s in R.user_switches(argv, known))
                prog = argv[0]
                for arg in argv[1:]:
                    for piece in arg.split("="):
                        if piece.startswith("/etc/"):
                            config(piece, unit.name)
                if not prog.startswith("/"):
                    continue
                for conv in _conventional_configs(argv, unit):
                    config(conv, unit.name)
                text = _wrapper_script(fs, prog)
                if text is None:
                    continue
                refs.extend(R.scan_wrapper_script(text, RelPath(prog), known, unit.name))
                for cpath in R.config_paths_in_script(text)[:20]:
                    config(cpath, unit.name)
    for unit in units:
        if unit.source_path.startswith("/etc/init.d/"):
            refs.extend(_sysv_links(fs, unit, known, problems))
    return refs


def _conventional_configs(argv: list[str], unit: Unit) -> list[str]:
    """The configuration files a daemon started by an absolute path reads without naming them."""
    base = argv[0].rsplit("/", 1)[-1]
    conventional = [
        f"/etc/{base}/{base}.conf",
        f"/etc/{base}.conf",
        f"/etc/{unit.prefix}/{unit.prefix}.conf",
    ]
    if base == "dbus-daemon" and "--system" in argv:
        conventional += ["/usr/share/dbus-1/system.conf", "/etc/dbus-1/system.conf"]
    return conventional


def _wrapper_script(fs: RootFS, prog: str) -> str | None:
    """The text of PROG when it is a script (#!, no NUL byte, within the config size limit), else None."""
    if not small_file(fs, prog):
        return None
    try:
        head = fs.read_bytes(prog, R.CONFIG_LIMIT)
    except RootError:
        return None
    if not head.startswith(b"#!") or b"\x00" in head:
        return None
    return head.decode("utf-8", "surrogateescape")


def _environment_files(fs: RootFS, unit: Unit, problems: list[Problem]) -> dict[str, str]:
    """The variables of a unit's EnvironmentFile= files, for the user switches of its Exec*= lines
    only (-u "$SLAPD_USER"): they may hold secrets, so nothing else keeps them."""
    env: dict[str, str] = {}
    for d in unit.values("Service", "EnvironmentFile"):
        path = d.value.strip().lstrip("-")
        if not path.startswith("/") or "*" in path:
            continue
        text = optional_text(fs, path, problems)
        if text is not None:
            env.update(R.parse_environment_file(text))
    return env


def _sysv_links(fs: RootFS, unit: Unit, known: frozenset[str], problems: list[Problem]) -> list[Reference]:
    """User switches in a SysV init script, with the variables of /etc/default/NAME filled in."""
    script = unit.source_path
    sysv_env: dict[str, str] = {}
    texts: list[tuple[RelPath, str]] = []
    for path in (f"/etc/default/{script.rsplit('/', 1)[-1]}", script):
        body = optional_text(fs, path, problems)
        if body is None:
            continue
        texts.append((RelPath(path), body))
        for line in body.split("\n"):
            m = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*(?:#.*)?$", line)
            if m and "$(" not in m.group(2) and "`" not in m.group(2):
                sysv_env.setdefault(m.group(1), m.group(2).strip("\"'"))
    refs: list[Reference] = []
    for path, body in texts:
        expanded = "\n".join(expand_env(line, sysv_env) for line in body.split("\n"))
        refs.extend(R.scan_wrapper_script(expanded, path, known, unit.name))
    return refs
