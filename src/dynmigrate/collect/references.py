"""Readers for the places outside unit files that name an account.

Every parser is a pure function of (text, path[, known names]) returning references and
problems, so that property tests can feed it arbitrary text. `configs.read_references` wires
them to a RootFS. Parsers for free-form text (cron commands, sudoers, polkit JavaScript) only
keep names that are known accounts or groups, so that they do not turn every word into a reference.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dynmigrate.collect.rootfs import RootError, RootFS
from dynmigrate.collect.xmlsafe import UnsafeXML, parse_xml
from dynmigrate.model.common import Location, RelPath
from dynmigrate.model.findings import Problem
from dynmigrate.model.paths import rel
from dynmigrate.model.references import (
    Action,
    BusActivation,
    Reference,
    RefKind,
    StatOverride,
    Target,
)
from dynmigrate.model.shellwords import split_words

Parsed = tuple[list[Reference], list[Problem]]
NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
# the same, possessive: never given back, so that a pattern around it cannot backtrack into it
NAME_P = r"[A-Za-z_][A-Za-z0-9_.-]*+"
LOGICAL_LINE_MAX = 1024 * 1024  # a continued line is cut here (systemd's LONG_LINE_MAX)
NAME_RE = re.compile(rf"^{NAME}\$?$")
CONFIG_LIMIT = 1024 * 1024


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, each with the number of its first line.

    Linear: pieces are joined once, and a logical line is cut at LOGICAL_LINE_MAX.
    """
    out: list[tuple[int, str]] = []
    pieces: list[str] = []
    size = 0
    start = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        if not pieces:
            start = lineno
            size = 0
        continued = line.endswith("\\") and not line.endswith("\\\\")
        piece = line[:-1] + " " if continued else line
        if size < LOGICAL_LINE_MAX:
            pieces.append(piece[: LOGICAL_LINE_MAX - size])
            size += len(pieces[-1])
        if continued:
            continue
        out.append((start, "".join(pieces)))
        pieces = []
    if pieces:
        out.append((start, "".join(pieces)))
    return out


def _split(text: str) -> list[str]:
    try:
        return split_words(text)
    except ValueError:
        return text.split()


# -- user switches in command lines ----------------------------------------------------------

# option -> does the value carry "user[:group]"
_USER_OPTS = {
    "-u": "user",
    "--user": "user",
    "--uid": "user",
    "--chuid": "user",
    "-c": "chuid",  # start-stop-daemon -c user[:group]
    "--reuid": "user",
    "--ruid": "user",
    "--euid": "user",
    "--runas": "user",
    "--username": "user",
    "-U": "user",
    "--setuid": "user",
    "--setgid": "group",
    "--regid": "group",
    "--group": "group",
    "-g": "group",
}
_SWITCHERS = {"runuser", "su", "sudo", "setpriv", "start-stop-daemon", "chpst", "setuidgid", "s6-setuidgid"}


@dataclass(frozen=True, slots=True)
class Switch:
    name: str
    target: Target
    how: str  # the option or command that carried it

    def reference(self, loc: Location, detail: str, unit: str, confidence: str) -> Reference:
        """The link from a unit to the account this switch names: `detail` says where it was read."""
        return Reference(
            self.name,
            self.target,
            RefKind.EXEC_ARGUMENT,
            Action.SWITCHES_TO,
            loc,
            f"{detail}: {self.how} {self.name}",
            unit=unit,
            confidence=confidence,
        )


def user_switches(argv: list[str], known: frozenset[str]) -> list[Switch]:
    """Names a command line switches to: "-u NAME", "--user=NAME", "setpriv --reuid NAME", ...

    Only names in `known` (accounts and groups of the scanned root) are kept.
    """
    out: list[Switch] = []
    prog = argv[0].rsplit("/", 1)[-1] if argv else ""
    i = 0
    while i < len(argv):
        arg = argv[i]
        value: str | None = None
        opt = arg
        if arg.startswith("--") and "=" in arg:
            opt, value = arg.split("=", 1)
        elif arg in _USER_OPTS and i + 1 < len(argv):
            value = argv[i + 1]
        elif len(arg) > 2 and arg[:2] in ("-u", "-U") and not arg.startswith("--"):
            opt, value = arg[:2], arg[2:]
        kind = _USER_OPTS.get(opt)
        if kind and value is not None:
            # "-c" and "-g" are too common to trust outside the programs that use them so
            if kind == "chuid" and prog != "start-stop-daemon":
                kind = None
            if opt == "-g" and prog not in _SWITCHERS:
                kind = None
        if kind and value is not None:
            user, _, group = value.partition(":")
            if kind == "group":
                if value in known:
                    out.append(Switch(value, Target.GROUP, opt))
            else:
                if user in known:
                    out.append(Switch(user, Target.USER, opt))
                if group and group in known:
                    out.append(Switch(group, Target.GROUP, opt))
        i += 1
    if prog in ("setuidgid", "s6-setuidgid", "chroot") and len(argv) > 1 and argv[1] in known:
        out.append(Switch(argv[1], Target.USER, prog))
    if prog == "su":
        words = [w for w in argv[1:] if not w.startswith("-")]
        skip_next = False
        for j, w in enumerate(argv[1:], 1):
            if skip_next:
                skip_next = False
                continue
            if w in ("-s", "--shell", "-c", "--command", "-g", "--group"):
                skip_next = True
                continue
            if not w.startswith("-") and w in known:
                out.append(Switch(w, Target.USER, "su"))
                break
            del j
        del words
    return out


# -- cron -----------------------------------------------------------------------------------

_CRON_SPECIAL = re.compile(r"^@(reboot|yearly|annually|monthly|weekly|daily|midnight|hourly)\b")
_FIND_USER = re.compile(rf"-(user|group|uid|gid)\s+({NAME})")


def _command_refs(cmd: str, known: frozenset[str], loc: Location, kind: RefKind, detail: str) -> list[Reference]:
    refs = [
        Reference(s.name, s.target, kind, Action.RUNS_AS, loc, f"{detail}: {s.how} {s.name}")
        for s in user_switches(_split(cmd), known)
    ]
    for m in _FIND_USER.finditer(cmd):
        if m.group(2) in known:
            target = Target.GROUP if m.group(1) in ("group", "gid") else Target.USER
            refs.append(Reference(m.group(2), target, kind, Action.MENTIONS, loc, f"{detail}: find -{m.group(1)}"))
    return refs


def parse_crontab(text: str, path: RelPath, known: frozenset[str], *, owner: str | None = None) -> Parsed:
    """/etc/crontab and /etc/cron.d have a user column; spool crontabs belong to `owner`."""
    refs: list[Reference] = []
    problems: list[Problem] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        loc = Location(path, lineno)
        if re.match(rf"^{NAME}\s*=", stripped):
            continue  # environment assignment
        words = stripped.split()
        special = _CRON_SPECIAL.match(stripped)
        ntime = 1 if special else 5
        if not special and (len(words) < 6 or not all(re.match(r"^[\d*/,\-A-Za-z]+$", w) for w in words[:5])):
            problems.append(Problem(loc, "not a cron line: ignored"))
            continue
        if owner is None:
            if len(words) <= ntime + 1:
                problems.append(Problem(loc, "cron line without user or command: ignored"))
                continue
            user = words[ntime]
            command = " ".join(words[ntime + 1 :])
            if user in known or NAME_RE.match(user):
                refs.append(Reference(user, Target.USER, RefKind.CRON, Action.RUNS_AS, loc, "cron job runs as it"))
        else:
            command = " ".join(words[ntime:])
            refs.append(Reference(owner, Target.USER, RefKind.CRON, Action.RUNS_AS, loc, "per-user crontab job"))
        refs += _command_refs(command, known, loc, RefKind.CRON, "cron command")
    return refs, problems


# -- sudoers --------------------------------------------------------------------------------

_SUDO_TOKEN = re.compile(rf"(?<![\w/.-])(%?{NAME})")


def parse_sudoers(text: str, path: RelPath, known: frozenset[str]) -> Parsed:
    refs: list[Reference] = []
    for lineno, line in _logical_lines(text):
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not stripped.startswith(("#include", "#includedir"))):
            continue
        if stripped.startswith(("#include", "@include", "Defaults")) and "Defaults:" not in stripped:
            continue
        loc = Location(path, lineno)
        head, _, rest = stripped.partition("=")
        runas = re.findall(r"\(([^()]*)\)", rest)  # "((((" fails at once at every "(", not at the end
        runas_names = {n.strip().lstrip("%") for part in runas for n in re.split(r"[,:]", part)}
        for m in _SUDO_TOKEN.finditer(stripped):
            token = m.group(1)
            is_group = token.startswith("%")
            name = token.lstrip("%")
            if name not in known:
                continue
            in_head = m.start() < len(head)
            action = Action.GRANTS if in_head else (Action.RUNS_AS if name in runas_names else Action.MENTIONS)
            target = Target.GROUP if is_group else Target.USER
            what = "sudo rule for it" if action is Action.GRANTS else "sudo runs commands as it"
            if stripped.startswith("Defaults"):
                action, what = Action.MENTIONS, "sudo Defaults for it"
            refs.append(Reference(name, target, RefKind.SUDOERS, action, loc, what))
    return refs, []


# -- tmpfiles.d / sysusers.d ----------------------------------------------------------------


def _fields(line: str) -> list[str]:
    try:
        return split_words(line)
    except ValueError:
        return line.split()


def _records(text: str, path: RelPath, too_short: str, problems: list[Problem]) -> Iterator[tuple[Location, list[str]]]:
    """The fields of every line of a tmpfiles.d or sysusers.d file that is neither blank nor a
    comment; a line of fewer than two fields is the problem too_short."""
    for lineno, line in _logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        loc = Location(path, lineno)
        f = _fields(stripped)
        if len(f) < 2:
            problems.append(Problem(loc, too_short))
            continue
        yield loc, f


def parse_tmpfiles(text: str, path: RelPath) -> Parsed:
    refs: list[Reference] = []
    problems: list[Problem] = []
    for loc, f in _records(text, path, "tmpfiles line needs at least a type and a path", problems):
        entry_path = f[1]
        mode = f[2] if len(f) > 2 else "-"
        user = f[3] if len(f) > 3 else "-"
        group = f[4] if len(f) > 4 else "-"
        detail = f"{f[0]} {entry_path} {mode} {user} {group}"
        target_path = rel(entry_path) if entry_path.startswith("/") else None
        for name, target in ((user, Target.USER), (group, Target.GROUP)):
            name = name.lstrip(":")
            if name in ("-", "") or name.isdigit():
                continue
            if not NAME_RE.match(name):
                problems.append(Problem(loc, f"odd {target.value} name {name[:40]!r} in tmpfiles line"))
                continue
            refs.append(Reference(name, target, RefKind.TMPFILES, Action.OWNS_PATH, loc, detail, target_path))
    return refs, problems


def parse_sysusers(text: str, path: RelPath) -> Parsed:
    refs: list[Reference] = []
    problems: list[Problem] = []
    for loc, f in _records(text, path, "sysusers line needs a type and a name", problems):
        kind, name = f[0].rstrip("!"), f[1]
        if not NAME_RE.match(name) and kind != "r":
            problems.append(Problem(loc, f"invalid name {name[:40]!r} in sysusers line"))
            continue
        ident = f[2] if len(f) > 2 else "-"
        if kind == "u":
            refs.append(Reference(name, Target.USER, RefKind.SYSUSERS, Action.CREATES, loc, f"u {name} {ident}"))
            if ":" not in ident or ident.split(":", 1)[1] in ("", "-"):
                refs.append(Reference(name, Target.GROUP, RefKind.SYSUSERS, Action.CREATES, loc, f"u {name} {ident}"))
            else:
                grp = ident.split(":", 1)[1]
                if not grp.isdigit() and NAME_RE.match(grp):
                    refs.append(
                        Reference(grp, Target.GROUP, RefKind.SYSUSERS, Action.MENTIONS, loc, f"u {name} {ident}")
                    )
        elif kind == "g":
            refs.append(Reference(name, Target.GROUP, RefKind.SYSUSERS, Action.CREATES, loc, f"g {name} {ident}"))
        elif kind == "m":
            refs.append(Reference(name, Target.USER, RefKind.SYSUSERS, Action.MENTIONS, loc, f"m {name} {ident}"))
            if NAME_RE.match(ident):
                refs.append(Reference(ident, Target.GROUP, RefKind.SYSUSERS, Action.MENTIONS, loc, f"m {name} {ident}"))
        elif kind == "r":
            continue
        else:
            problems.append(Problem(loc, f"unknown sysusers line type {kind[:10]!r}"))
    return refs, problems


# -- logrotate ------------------------------------------------------------------------------


def parse_logrotate(text: str, path: RelPath) -> Parsed:
    refs: list[Reference] = []
    problems: list[Problem] = []
    block_path: RelPath | None = None
    depth = 0
    in_script = False
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        loc = Location(path, lineno)
        words = stripped.split()
        first = words[0]
        if in_script:
            if first == "endscript":
                in_script = False
            continue
        if first in ("postrotate", "prerotate", "firstaction", "lastaction", "preremove"):
            in_script = True
            continue
        if stripped.endswith("{"):
            depth += 1
            names = stripped[:-1].split()
            block_path = rel(names[0].strip('"')) if names and names[0].lstrip('"').startswith("/") else None
            continue
        if first == "}":
            depth = max(0, depth - 1)
            block_path = None
            continue
        if first == "su":
            if len(words) != 3:
                problems.append(Problem(loc, "su needs a user and a group"))
                continue
            for name, target in ((words[1], Target.USER), (words[2], Target.GROUP)):
                if NAME_RE.match(name) and not name.isdigit():
                    refs.append(Reference(name, target, RefKind.LOGROTATE, Action.RUNS_AS, loc, stripped, block_path))
        elif first in ("create", "createolddir"):
            args = words[1:]
            if args and re.match(r"^0?[0-7]{3,4}$", args[0]):
                args = args[1:]
            for name, target in zip(args[:2], (Target.USER, Target.GROUP), strict=False):
                if NAME_RE.match(name) and not name.isdigit():
                    refs.append(Reference(name, target, RefKind.LOGROTATE, Action.OWNS_PATH, loc, stripped, block_path))
    return refs, problems


# -- D-Bus policy ---------------------------------------------------------------------------


def parse_dbus_policy(data: bytes, path: RelPath) -> Parsed:
    """user=/group= on <policy> and <allow>/<deny>; own= under a user policy."""
    refs: list[Reference] = []
    try:
        root = parse_xml(data)
    except UnsafeXML as exc:
        return [], [Problem(Location(path, exc.line), f"D-Bus policy refused: {exc.reason}")]
    for elem in root.iter():
        line = elem.line
        loc = Location(path, line)
        if elem.tag == "policy":
            owned = [
                c.attrs.get("own") or c.attrs.get("own_prefix") or ""
                for c in elem.children
                if c.tag == "allow" and ("own" in c.attrs or "own_prefix" in c.attrs)
            ]
            for attr, target in (("user", Target.USER), ("group", Target.GROUP)):
                name = elem.attrs.get(attr)
                if not name or name == "*":
                    continue
                if owned:
                    for bus_name in owned:
                        refs.append(Reference(name, target, RefKind.DBUS, Action.OWNS_NAME, loc, f"may own {bus_name}"))
                else:
                    refs.append(Reference(name, target, RefKind.DBUS, Action.GRANTS, loc, f'<policy {attr}="{name}">'))
        elif elem.tag in ("allow", "deny"):
            for attr, target in (("user", Target.USER), ("group", Target.GROUP)):
                name = elem.attrs.get(attr)
                if name and name != "*":
                    refs.append(
                        Reference(name, target, RefKind.DBUS, Action.GRANTS, loc, f'<{elem.tag} {attr}="{name}">')
                    )
    return refs, []


# -- polkit ---------------------------------------------------------------------------------

# a string runs to its closing quote or, unterminated, to the end of the line: either way the scan
# goes on after it (retrying every quote inside an unterminated string was quadratic)
_JS_STRING = re.compile(r"""(["'])((?:(?!\1)[^\\\n]|\\.)*+)(\1)?""")
_UNIX_ID = re.compile(rf"unix-(user|group):({NAME})")


def parse_polkit(text: str, path: RelPath, known: frozenset[str]) -> Parsed:
    refs: list[Reference] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stripped.startswith(("//", "#")):
            continue
        loc = Location(path, lineno)
        for m in _UNIX_ID.finditer(line):
            target = Target.GROUP if m.group(1) == "group" else Target.USER
            refs.append(Reference(m.group(2), target, RefKind.POLKIT, Action.GRANTS, loc, f"unix-{m.group(1)}"))
        if _UNIX_ID.search(line):
            continue
        in_group_at = line.find("isInGroup")
        for m in _JS_STRING.finditer(line):
            name = m.group(2)
            if m.group(3) and name in known:
                in_group = in_group_at != -1 and in_group_at + len("isInGroup") <= m.start()
                target = Target.GROUP if in_group else Target.USER
                refs.append(Reference(name, target, RefKind.POLKIT, Action.GRANTS, loc, "polkit rule names it"))
    return refs, []


# -- dpkg -----------------------------------------------------------------------------------


def parse_statoverride(text: str, path: RelPath) -> tuple[list[StatOverride], list[Problem]]:
    out: list[StatOverride] = []
    problems: list[Problem] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        loc = Location(path, lineno)
        parts = line.split(" ", 3)
        if len(parts) != 4:
            problems.append(Problem(loc, "statoverride line needs USER GROUP MODE PATH"))
            continue
        user, group, mode, opath = parts
        try:
            out.append(StatOverride(user, group, int(mode, 8), rel(opath), loc))
        except ValueError:
            problems.append(Problem(loc, f"statoverride mode {mode[:10]!r} is not octal"))
    return out, problems


def parse_dpkg_status(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Installed packages: name -> (version, depends) (Depends and Pre-Depends, no versions)."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.split("\n"):
            if line.startswith((" ", "\t")) and key:
                fields[key] += " " + line.strip()
                continue
            k, sep, v = line.partition(":")
            if sep:
                key = k.strip()
                fields[key] = v.strip()
        name = fields.get("Package")
        if not name or "installed" not in fields.get("Status", "").split()[-1:]:
            continue
        deps: list[str] = []
        for dkey in ("Pre-Depends", "Depends"):
            for alt in fields.get(dkey, "").split(","):
                first = alt.split("|")[0].strip().split(" ")[0].split(":")[0]
                if first:
                    deps.append(first)
        out[name] = (fields.get("Version", ""), tuple(dict.fromkeys(deps)))
    return out


# possessive quantifiers throughout: a hostile line of blanks costs one pass, not one per split point
_ASSIGN = re.compile(rf"^\s*+(?:(?:local|readonly|export)\s++)?+({NAME_P})=(\S*+)\s*+$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*+|[0-9]++)(?::?-[^}]{0,256}+)?\}|\$([A-Za-z_][A-Za-z0-9_]*+|[0-9])")
_FUNC = re.compile(rf"^\s*+(?:function\s++)?+({NAME_P})\s*+\(\s*+\)\s*+\{{?\s*+$")
_SEPARATOR = re.compile(r";|&&|\|\||\|")
EXPANDED_MAX = 64 * 1024  # a variable or command line that expands beyond this stays literal
CALLED_LINES_MAX = 20_000  # lines read inside function calls, per script (calls can fan out)
_ACCOUNT_TOOLS = {"adduser", "addgroup", "useradd", "groupadd"}
_REMOVE_TOOLS = {"deluser", "delgroup", "userdel", "groupdel"}
_TRACKED = _ACCOUNT_TOOLS | _REMOVE_TOOLS | {"systemd-sysusers", "chown", "chgrp", "dpkg-statoverride"}
# options of adduser/useradd that take a value (so that the value is not taken as the name)
_ADDUSER_VALUE_OPTS = {
    "--home",
    "--shell",
    "--ingroup",
    "--gecos",
    "--uid",
    "--gid",
    "--firstuid",
    "--lastuid",
    "--firstgid",
    "--lastgid",
    "--conf",
    "--add-extra-groups",
    "--comment",
    "--key",
    "-d",
    "-s",
    "-g",
    "-G",
    "-c",
    "-u",
    "-k",
    "-K",
    "-e",
    "-f",
    "-p",
    "-b",
    "-R",
    "-P",
    "-Z",
}


@dataclass(frozen=True, slots=True)
class ScriptAction:
    """One account-relevant command found in a maintainer script."""

    tool: str
    names: tuple[tuple[str, Target], ...]
    path: str
    location: Location
    command: str
    guarded_by_statoverride: bool
    guarded_by_getent: bool


def _expand(text: str, env: dict[str, str]) -> str:
    """Substitute known variables; text that would grow beyond EXPANDED_MAX is left as it is."""
    pieces: list[str] = []
    size = 0
    pos = 0
    for m in _VAR.finditer(text):
        name = m.group(1) or m.group(2)
        value = env.get(name, m.group(0))
        pieces.append(text[pos : m.start()])
        pieces.append(value)
        size += m.start() - pos + len(value)
        if size > EXPANDED_MAX:
            return text
        pos = m.end()
    if not pieces:
        return text
    pieces.append(text[pos:])
    return "".join(pieces)


def _strip_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def scan_maintainer_script(text: str, path: RelPath) -> list[ScriptAction]:
    """Account creation, chown and statoverride commands in a maintainer script.

    A small shell reader, not a shell: it follows simple variable assignments, functions
    called with literal arguments, and the `if` blocks that guard a command with
    `dpkg-statoverride --list` or `getent`. Whatever it cannot resolve stays literal.
    """
    lines = _logical_lines(text)
    functions: dict[str, list[tuple[int, str]]] = {}
    body: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        lineno, line = lines[i]
        m = _FUNC.match(line)
        if m:
            name = m.group(1)
            depth = line.count("{") - line.count("}")
            fbody: list[tuple[int, str]] = []
            i += 1
            if depth == 0 and i < len(lines) and lines[i][1].strip() == "{":
                depth = 1
                i += 1
            while i < len(lines) and depth > 0:
                ln, ltext = lines[i]
                depth += ltext.count("{") - ltext.count("}")
                if depth > 0:
                    fbody.append((ln, ltext))
                i += 1
            functions[name] = fbody
            continue
        body.append((lineno, line))
        i += 1
    reader = _ScriptReader(functions, path, [], [CALLED_LINES_MAX])
    reader.block(body, {"DPKG_ROOT": ""}, [], depth=0)
    return reader.actions


@dataclass(frozen=True, slots=True)
class _ScriptReader:
    """What every block of one maintainer script shares: its functions, its path, the actions read
    so far and budget[0], which counts down the lines read inside function calls and loops."""

    functions: dict[str, list[tuple[int, str]]]
    path: RelPath
    actions: list[ScriptAction]
    budget: list[int]

    def block(self, lines: list[tuple[int, str]], env: dict[str, str], guards: list[str], depth: int) -> None:
        """Read a block; a block read inside a call or a loop (depth > 0) is taken from the budget."""
        if depth > 8:
            return
        if depth:
            if self.budget[0] < len(lines):
                return
            self.budget[0] -= len(lines)
        guards = list(guards)
        i = 0
        while i < len(lines):
            lineno, raw = lines[i]
            i += 1
            line = _uncommented(raw)
            if not line:
                continue
            m = _ASSIGN.match(line)
            if m:
                env[m.group(1)] = _strip_quotes(_expand(m.group(2), env))
                continue
            loop = _for_loop(line, lineno, lines, i, self.budget)
            if loop is not None:
                var, words, loop_body, i = loop
                env.pop(var, None)  # a list with an expansion: the body is read once, $VAR unresolved
                for word in words if words is not None else [None]:
                    if word is not None:
                        env[var] = word
                    self.block(loop_body, env, guards, depth + 1)
                continue
            if re.match(r"^(if|elif|while|until)\b", line):
                guards.append(line)
                if line.startswith("elif") and len(guards) > 1:
                    guards.pop(-2)
            if re.match(r"^fi\b|^done\b", line) and guards:
                guards.pop()
                continue
            if not _EXPANDS.search(line) and not _may_act(line, self.functions):
                continue  # no assignment, no expansion: no segment of it can act
            self.segments(line, lineno, env, guards, depth)

    def segments(self, line: str, lineno: int, env: dict[str, str], guards: list[str], depth: int) -> None:
        """Read the commands of one line: assignments, calls of functions, tracked commands."""
        for segment in _SEPARATOR.split(line):
            segment = re.sub(r"^(if|then|else|elif|do|!)\s+", "", segment.strip())
            segment = re.sub(r"^(if|then|else|elif|do|!)\s+", "", segment.strip())
            am = _ASSIGN.match(segment)
            if am:
                env[am.group(1)] = _strip_quotes(_expand(am.group(2), env))
                continue
            expanded = _expand(segment, env)
            if not _may_act(expanded, self.functions):
                continue
            cmd, words = _command(_split(expanded))
            if not words:
                continue
            if cmd in self.functions:
                fenv = dict(env)
                for n, arg in enumerate(words[1:], 1):
                    fenv[str(n)] = arg
                self.block(self.functions[cmd], fenv, guards, depth + 1)
                continue
            action = _account_command(cmd, words, Location(self.path, lineno), guards)
            if action is not None:
                self.actions.append(action)


def _uncommented(raw: str) -> str:
    return raw.split(" #", 1)[0].strip() if not raw.strip().startswith("#") else ""


_FOR = re.compile(rf"^for\s++({NAME_P})\s++in\b\s*+([^;]*+)(?:;\s*+(.*+))?$")
_LOOP_OPEN = re.compile(r"^(?:for|while|until)\b")
_LOOP_CLOSE = re.compile(r"^done\b")
_NOT_LITERAL = re.compile(r"[$`*?\[\]{}()<>|&~]")  # an expansion, a glob or an operator in the word list


def _for_loop(
    line: str, lineno: int, lines: list[tuple[int, str]], i: int, budget: list[int]
) -> tuple[str, list[str] | None, list[tuple[int, str]], int] | None:
    """`for VAR in WORD...; do BODY; done` starting at `line` (lines[i:] follow it): the variable, the
    literal words it takes (None when the list holds an expansion or a glob), the body's lines and
    the index of the line after `done`. None when the text is not a loop this reader follows.

    Every line looked at for the `done` is taken from budget[0], as the lines read in function
    calls are: loops that never end cannot make the reader quadratic."""
    m = _FOR.match(line)
    if m is None:
        return None
    var, listed, rest = m.group(1), m.group(2).strip(), (m.group(3) or "").strip()
    if not rest and i < len(lines) and re.match(r"^do\b", _uncommented(lines[i][1])):
        lineno, rest = lines[i][0], _uncommented(lines[i][1])
        i += 1
    if not re.match(r"^do\b", rest):
        return None
    try:
        words = None if _NOT_LITERAL.search(listed) else split_words(listed)
    except ValueError:
        words = None  # unbalanced quotes: a list this reader does not follow
    text = rest[2:]
    body: list[tuple[int, str]] = []
    depth = 1
    while True:
        budget[0] -= 1
        if budget[0] < 0:
            return None  # out of budget: read as before, line by line
        segments = _SEPARATOR.split(text)
        for k, segment in enumerate(segments):
            word = re.sub(r"^(then|else|do|!)\s+", "", segment.strip())
            depth += 1 if _LOOP_OPEN.match(word) else -1 if _LOOP_CLOSE.match(word) else 0
            if depth == 0:
                if any(not re.match(r"^(done\b)?\s*+([0-9]*+[<>]|$)", t.strip()) for t in segments[k:]):
                    return None  # a command after `done` on its line: read as before, line by line
                body += [(lineno, ";".join(segments[:k]))] if "".join(segments[:k]).strip() else []
                return var, words, body, i
        body += [(lineno, text)] if text.strip() else []
        if i >= len(lines):
            return None  # no `done`: read as before, line by line
        lineno, text = lines[i][0], _uncommented(lines[i][1])
        i += 1


def _command(words: list[str]) -> tuple[str, list[str]]:
    """The command's base name and its words, past a wrapper such as `in_sysroot adduser ...`,
    `env X=1 useradd ...` or `chroot "$R" adduser`."""
    if not words:
        return "", words
    cmd = words[0].rsplit("/", 1)[-1]
    if cmd not in _TRACKED:
        for k, w in enumerate(words[1:4], 1):
            if w.rsplit("/", 1)[-1] in _TRACKED:
                return w.rsplit("/", 1)[-1], words[k:]
    return cmd, words


# A substring of every tracked command name: adduser, addgroup, useradd, groupadd (add), deluser,
# delgroup, userdel, groupdel (del), chown, chgrp, systemd-sysusers, dpkg-statoverride.
_TRACKED_PART = re.compile(r"add|del|chown|chgrp|sysusers|statoverride")
_EXPANDS = re.compile(r"[=$`]")  # an assignment, or an expansion that could bring a command name in
_QUOTING = str.maketrans("", "", "\\'\"")


def _may_act(expanded: str, functions: dict[str, list[tuple[int, str]]]) -> bool:
    """False only when no word of the segment can be a tracked command or a function: a word is
    its characters in the text less quotes and backslashes, so a command name that no quote-free
    substring holds cannot be among the words. Splitting is what the scan of a maintainer script
    spends its time on, and most lines name none of these."""
    bare = expanded.translate(_QUOTING)
    return bool(_TRACKED_PART.search(bare)) or any(name and name in bare for name in functions)


def _cmdline(words: list[str]) -> str:
    kept: list[str] = []
    for w in words:
        if w.startswith((">", "2>", "<")) or w == "||":
            break
        kept.append(shlex.quote(w) if w and not re.match(r"^[\w./:=@%+,-]+$", w) else w)
    line = " ".join(kept)
    return line if len(line) <= 120 else line[:117] + "..."


@dataclass(frozen=True, slots=True)
class _Effect:
    """What one tracked command does to accounts: the tool as reported, the names it acts on, and
    the path (or the sysusers.d files) it names."""

    tool: str
    names: tuple[tuple[str, Target], ...]
    path: str = ""


def _account_command(cmd: str, words: list[str], loc: Location, guards: list[str]) -> ScriptAction | None:
    """The account action of one command (base name cmd, its words) under the conditions guards,
    or None when it acts on no account."""
    effect = _effect(cmd, words)
    if effect is None:
        return None
    guard_text = " ".join(guards)
    by_override = "dpkg-statoverride" in guard_text and "--list" in guard_text
    by_getent = "getent" in guard_text or "id " in guard_text
    return ScriptAction(effect.tool, effect.names, effect.path, loc, _cmdline(words), by_override, by_getent)


def _effect(cmd: str, words: list[str]) -> _Effect | None:
    if cmd in _ACCOUNT_TOOLS or cmd in _REMOVE_TOOLS:
        return _account_tool_effect(cmd, words)
    if cmd == "systemd-sysusers":
        return _Effect(cmd, (), " ".join(w for w in words[1:] if w.endswith(".conf")))
    if cmd in ("chown", "chgrp"):
        return _owner_change_effect(cmd, words)
    if cmd == "dpkg-statoverride" and ("--add" in words):
        return _statoverride_effect(words)
    return None


def _account_tool_effect(cmd: str, words: list[str]) -> _Effect | None:
    """adduser, useradd, addgroup, groupadd and their deleting twins: the name they create or remove."""
    args, group_too = _account_tool_operands(words)
    if not args or not NAME_RE.match(args[0]):
        return None
    if cmd in ("addgroup", "groupadd", "delgroup", "groupdel"):
        return _Effect(cmd, ((args[0], Target.GROUP),))
    if cmd in ("adduser", "deluser") and len(args) == 2:
        return None  # "adduser USER GROUP" adds a member, creates nothing ("deluser USER GROUP" removes one)
    if group_too or cmd in ("useradd", "userdel"):
        return _Effect(cmd, ((args[0], Target.USER), (args[0], Target.GROUP)))
    return _Effect(cmd, ((args[0], Target.USER),))


def _account_tool_operands(words: list[str]) -> tuple[list[str], bool]:
    """The operands of an account tool (options and their values left out, up to a redirection)
    and whether it was given --group (adduser's "and a group of the same name")."""
    args: list[str] = []
    group_too = False
    skip = False
    for w in words[1:]:
        if skip:
            skip = False
            continue
        if w in _ADDUSER_VALUE_OPTS:
            skip = True
            continue
        if w.startswith("-"):
            group_too = group_too or w == "--group"
            continue
        if w.startswith(">") or w in ("2>&1",):
            break
        args.append(w)
    return args, group_too


def _owner_change_effect(cmd: str, words: list[str]) -> _Effect | None:
    """chown USER[:GROUP] PATH... or chgrp GROUP PATH...: the names given (not numeric ids) and the paths."""
    ops = [w for w in words[1:] if not w.startswith("-")]
    if len(ops) < 2:
        return None
    owner, targets = ops[0], ops[1:]
    names: list[tuple[str, Target]] = []
    if cmd == "chgrp":
        names.append((owner, Target.GROUP))
    else:
        user, _, group = owner.partition(":")
        if user:
            names.append((user, Target.USER))
        if group:
            names.append((group, Target.GROUP))
    names = [(n, t) for n, t in names if NAME_RE.match(n) and not n.isdigit()]
    if not names:
        return None
    return _Effect(cmd, tuple(names), " ".join(targets))


def _statoverride_effect(words: list[str]) -> _Effect | None:
    """dpkg-statoverride --add USER GROUP MODE PATH: the owner's names and the path."""
    ops = [w for w in words[1:] if not w.startswith("-")]
    if len(ops) < 4:
        return None
    user, group, _mode, opath = ops[:4]
    names = tuple((n, t) for n, t in ((user, Target.USER), (group, Target.GROUP)) if NAME_RE.match(n))
    return _Effect("dpkg-statoverride --add", names, opath)


# -- daemon configs (for units without User=) -----------------------------------------------

# KEY, then "=" or ":" with optional blanks around it, or blanks alone, then the name: possessive
# quantifiers, so that a line of blanks is one pass (\s*[=:\s]\s* was quadratic in the blanks)
_KEY_SEP = r"(?:\s*+[=:]\s*+|\s++)"
_CONFIG_USER = re.compile(
    rf"""^\s*+(?:user|username|user_name|run_as_user|run\ as\ user|runas_user|runasuser|daemon_user|runas|
        setuid|uid|owner|process_user|server_user|unix_user){_KEY_SEP}["']?({NAME_P})["']?\s*+;?\s*+$""",
    re.IGNORECASE | re.VERBOSE,
)
_CONFIG_GROUP = re.compile(
    rf"""^\s*+(?:group|groupname|run_as_group|runas_group|daemon_group|setgid|gid|process_group|
        server_group|unix_group){_KEY_SEP}["']?({NAME_P})["']?\s*+;?\s*+$""",
    re.IGNORECASE | re.VERBOSE,
)
_CONFIG_XML_USER = re.compile(rf"^\s*+<user>\s*+({NAME_P})\s*+</user>")
_CONFIG_OPTION = re.compile(rf"^\s*+(-u|--user|-U|--uid|--runas)[=\s]\s*+({NAME_P})\s*+$")


def scan_daemon_config(text: str, path: RelPath, known: frozenset[str], unit: str) -> list[Reference]:
    """`user NAME`, `User=NAME`, `<user>NAME</user>`, `-u NAME` lines in a daemon's own configuration."""
    refs: list[Reference] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";", "//")):
            continue
        found: list[tuple[str, Target]] = []
        for regex, target in (
            (_CONFIG_USER, Target.USER),
            (_CONFIG_GROUP, Target.GROUP),
            (_CONFIG_XML_USER, Target.USER),
        ):
            m = regex.match(stripped)
            if m:
                found.append((m.group(1), target))
        m2 = _CONFIG_OPTION.match(stripped)
        if m2:
            found.append((m2.group(2), Target.USER))
        for name, target in found:
            if name in known:
                refs.append(
                    Reference(
                        name,
                        target,
                        RefKind.DAEMON_CONFIG,
                        Action.SWITCHES_TO,
                        Location(path, lineno),
                        stripped[:60],
                        unit=unit,
                        confidence="likely",
                    )
                )
    return refs


def scan_wrapper_script(text: str, path: RelPath, known: frozenset[str], unit: str) -> list[Reference]:
    """A script that ExecStart runs: user switches in its command lines."""
    refs: list[Reference] = []
    for lineno, line in _logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        loc = Location(path, lineno)
        argv = _split(stripped)
        assign = re.match(r"^(?:export\s+|local\s+)?[A-Za-z_][A-Za-z0-9_]*=(.*)$", stripped)
        if assign:  # OPTS="--user=x --pid-file=..." : the options live in the value
            argv = ["sh", *_split(_strip_quotes(assign.group(1).strip()))]
        refs.extend(s.reference(loc, "script", unit, "likely") for s in user_switches(argv, known))
    return refs


_SHELLS = {"sh", "bash", "dash"}
_PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^{}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_COMMAND_SEP = re.compile(r";|&&|\|\||\n")


def shell_script_argument(argv: list[str]) -> str | None:
    """The script of `sh -c SCRIPT` (bash, dash too), else None."""
    if len(argv) < 3 or argv[0].rsplit("/", 1)[-1] not in _SHELLS:
        return None
    for i, arg in enumerate(argv[1:-1], 1):
        if arg == "-c" or (arg.startswith("-") and not arg.startswith("--") and arg.endswith("c")):
            return argv[i + 1]
    return None


def expand_shell_params(text: str, env: dict[str, str]) -> str:
    """$VAR, ${VAR}, ${VAR:-word}, ${VAR:+word} (and without the colon) for the variables in env;
    the others stay literal: a small reader, not a shell."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(4)
        if name not in env:
            return m.group(0)
        value, op, word = env[name], m.group(2), m.group(3) or ""
        if op in (":+", "+"):
            return expand_shell_params(word, env) if (value or op == "+") else ""
        if op in (":-", "-"):
            return value if (value or op == "-") else expand_shell_params(word, env)
        return value

    return _PARAM.sub(one, text)


def parse_environment_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines of an EnvironmentFile= (systemd.exec(5)): comments, quotes, `export`."""
    env: dict[str, str] = {}
    for _, line in _logical_lines(text):
        m = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$", line)
        if m and not line.lstrip().startswith(("#", ";")):
            env[m.group(1)] = _strip_quotes(m.group(2))
    return env


def scan_shell_command(
    script: str, env: dict[str, str], loc: Location, key: str, known: frozenset[str], unit: str
) -> list[Reference]:
    """User switches in the script of an `Exec*=sh -c '...'` line, with the variables of the unit's
    Environment= and EnvironmentFile= filled in (Debian's slapd.service: `-u "$SLAPD_USER"`).
    Likely, not certain: the shell may take another branch."""
    refs: list[Reference] = []
    for command in _COMMAND_SEP.split(expand_shell_params(script, env)):
        argv = _split(command.strip())
        while argv and argv[0] in ("exec", "command", "nohup"):
            argv = argv[1:]
        refs.extend(s.reference(loc, f"{key}: sh -c", unit, "likely") for s in user_switches(argv, known))
    return refs


def config_paths_in_script(text: str) -> list[str]:
    """Absolute /etc paths a wrapper script mentions (configs it may read)."""
    return sorted(set(re.findall(r"(/etc/[A-Za-z0-9_.+/-]+)", text)))


# -- wiring ---------------------------------------------------------------------------------

TMPFILES_DIRS = (
    "/etc/tmpfiles.d",
    "/run/tmpfiles.d",
    "/usr/local/lib/tmpfiles.d",
    "/usr/lib/tmpfiles.d",
    "/lib/tmpfiles.d",
)
SYSUSERS_DIRS = (
    "/etc/sysusers.d",
    "/run/sysusers.d",
    "/usr/local/lib/sysusers.d",
    "/usr/lib/sysusers.d",
    "/lib/sysusers.d",
)
DBUS_DIRS = (
    "/etc/dbus-1/system.d",
    "/usr/share/dbus-1/system.d",
    "/usr/local/share/dbus-1/system.d",
)
DBUS_SERVICE_DIRS = (
    "/usr/local/share/dbus-1/system-services",
    "/usr/share/dbus-1/system-services",
    "/lib/dbus-1/system-services",
)
# systemd-udevd's rule directories, earlier ones win for the same file name
UDEV_DIRS = (
    "/etc/udev/rules.d",
    "/run/udev/rules.d",
    "/usr/local/lib/udev/rules.d",
    "/usr/lib/udev/rules.d",
    "/lib/udev/rules.d",
)
POLKIT_DIRS = ("/etc/polkit-1/rules.d", "/usr/share/polkit-1/rules.d", "/usr/local/share/polkit-1/rules.d")
PKLA_DIRS = ("/etc/polkit-1/localauthority", "/var/lib/polkit-1/localauthority")


@dataclass(frozen=True, slots=True)
class ConfigDir:
    """A configuration directory with systemd-style precedence: the first same-named file wins."""

    winners: tuple[RelPath, ...]
    masked: tuple[RelPath, ...]  # names masked by a /dev/null symlink or an empty file


def overlay_dir(fs: RootFS, dirs: Iterable[str], suffix: str, problems: list[Problem]) -> ConfigDir:
    chosen: dict[str, RelPath] = {}
    seen_real: set[str] = set()
    for d in dirs:
        try:
            real = fs.resolve(d)
            if real in seen_real or not fs.is_dir(real):
                continue
            seen_real.add(real)
            names = fs.listdir(d)
        except RootError as exc:
            problems.append(Problem(Location(RelPath(d)), exc.reason))
            continue
        for name in names:
            if name.endswith(suffix) and name not in chosen:
                chosen[name] = RelPath(f"{d}/{name}")
    winners: list[RelPath] = []
    masked: list[RelPath] = []
    for name in sorted(chosen):
        p = chosen[name]
        try:
            info = fs.lstat(p)
            real_p = fs.resolve(p)
        except RootError as exc:
            problems.append(Problem(Location(p), exc.reason))
            continue
        if info is None:
            continue
        if real_p == "/dev/null" or (info.link_target == "/dev/null"):
            masked.append(p)
            continue
        target = fs.lstat(real_p)
        if target is not None and target.kind.value == "file" and target.size == 0:
            masked.append(p)
            continue
        winners.append(p)
    return ConfigDir(tuple(winners), tuple(masked))


def files_recursive(fs: RootFS, directory: str, suffix: str, problems: list[Problem], depth: int = 0) -> list[RelPath]:
    out: list[RelPath] = []
    if depth > 6 or not fs.is_dir(directory):
        return out
    try:
        names = fs.listdir(directory)
    except RootError as exc:
        problems.append(Problem(Location(RelPath(directory)), exc.reason))
        return out
    for name in names:
        p = RelPath(f"{directory.rstrip('/')}/{name}")
        try:
            info = fs.lstat(p)
        except RootError as exc:
            problems.append(Problem(Location(p), exc.reason))
            continue
        if info is None:
            continue
        if info.kind.value == "dir":
            out += files_recursive(fs, p, suffix, problems, depth + 1)
        elif name.endswith(suffix):
            out.append(p)
    return out


# -- udev rules and D-Bus activation files -----------------------------------------------------

_UDEV_OWNER = re.compile(r'(?<![A-Za-z_])(OWNER|GROUP)\s*+:?=\s*+"([^"]*+)"')


def parse_udev_rules(text: str, path: RelPath) -> Parsed:
    """OWNER="name" and GROUP="name" assignments: udevd resolves them when it loads its rules."""
    refs: list[Reference] = []
    for lineno, line in _logical_lines(text):
        if line.lstrip().startswith("#"):
            continue
        for m in _UDEV_OWNER.finditer(line):
            name = m.group(2)
            if not NAME_RE.match(name) or name == "root":
                continue
            target = Target.USER if m.group(1) == "OWNER" else Target.GROUP
            detail = " ".join(line.split())
            detail = detail if len(detail) <= 120 else detail[:117] + "..."
            refs.append(Reference(name, target, RefKind.UDEV, Action.OWNS_PATH, Location(path, lineno), detail))
    return refs, []


def parse_bus_activation(text: str, path: RelPath) -> list[BusActivation]:
    """Name= and SystemdService= of a [D-BUS Service] file."""
    name, unit, line = "", "", 0
    section = ""
    for lineno, raw in enumerate(text.split("\n"), 1):
        stripped = raw.strip()
        if stripped.startswith("["):
            section = stripped
            continue
        key, sep, value = stripped.partition("=")
        if not sep or section != "[D-BUS Service]":
            continue
        if key.strip() == "Name":
            name, line = value.strip(), lineno
        elif key.strip() == "SystemdService":
            unit = value.strip()
    if not name or not unit:
        return []
    return [BusActivation(name, unit, Location(path, line))]
