"""Scan result + selection -> MigrationPlan (pure data)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from dynmigrate.engine.catalogue import fix_of
from dynmigrate.graph.queries import Queries, managed_slot, other_access
from dynmigrate.model.accounts import Account, Group
from dynmigrate.model.common import Confidence, Effect, RelPath, Verdict, escape
from dynmigrate.model.files import FileKind, PathInfo
from dynmigrate.model.paths import is_under, rel
from dynmigrate.model.plan import (
    MIN_SYSTEMD,
    AccountPlan,
    Alternative,
    Credential,
    ExecMode,
    FileFix,
    Leftover,
    ManagedDir,
    ManualStep,
    MigrationPlan,
    OverrideFile,
    Refusal,
    RefusalKind,
    StatOverridePin,
    UnitPlan,
    dropin_name,
)
from dynmigrate.model.references import Action, Reference, RefKind, StatOverride, Target
from dynmigrate.model.report import AccountVerdict, Report
from dynmigrate.model.snapshot import SecretHint
from dynmigrate.model.units import Directive, LoadState, Unit
from dynmigrate.plan.directories import derive_directories, root_daemon_runtime
from dynmigrate.plan.dropin import (
    build_dropin,
    dropin_text,
    later_conflicts,
    pid_file_readers,
    systemctl_cat,
    unified_diff,
)

PLANNABLE = (Verdict.CONVERTIBLE, Verdict.NEEDS_MANUAL, Verdict.BLOCKED)
BUILTIN_PROBES: dict[str, str] = {
    "redis-server": "redis-cli -h 127.0.0.1 ping | grep -qx PONG",
    "memcached": (
        "exec 3<>/dev/tcp/127.0.0.1/11211 && printf 'version\\r\\n' >&3 && timeout 5 head -n1 <&3 | grep -q '^VERSION'"
    ),
    "postgresql": "pg_isready -q",
    "nginx": "curl -fsS -o /dev/null http://127.0.0.1/",
}


class SelectionError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Selection:
    units: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    all_convertible: bool = False


@dataclass(frozen=True, slots=True)
class PlanOptions:
    force: bool = False
    probes: Mapping[str, str] = field(default_factory=dict)  # unit -> command given by the user
    builtin_probes: bool = True


def select_accounts(q: Queries, report: Report, sel: Selection) -> list[AccountVerdict]:
    chosen: dict[str, AccountVerdict] = {}
    for name in sel.accounts:
        acc = report.account(name)
        if acc is None:
            raise SelectionError(f"no static system account named {escape(name)}")
        chosen[acc.name] = acc
    for uname in sel.units:
        unit = q.snap.unit(uname) or q.snap.unit(uname + ".service")
        if unit is None:
            raise SelectionError(f"no unit named {escape(uname)}")
        owners = [a for a in q.accounts_of(unit.name) if report.account(a) is not None]
        if unit.template is not None and not owners:
            owners = [a for a in q.accounts_of(unit.template) if report.account(a) is not None]
        if not owners:
            raise SelectionError(f"no static system account runs {escape(unit.name)}")
        for owner in owners:
            av = report.account(owner)
            if av is not None:
                chosen[av.name] = av
    if sel.all_convertible:
        for av in report.accounts:
            if av.verdict is Verdict.CONVERTIBLE:
                chosen[av.name] = av
    return [chosen[k] for k in sorted(chosen)]


def state_config_copies(
    unit: Unit, moves: list[tuple[str, str]], instances: tuple[str, ...]
) -> tuple[tuple[RelPath, RelPath], ...]:
    """The copies stage 1 makes of configuration files moved into the state directory (the drop-in's
    state_configs): one per enabled instance of a template, its %i (and %I) filled in."""
    out: list[tuple[RelPath, RelPath]] = []
    for path, target in moves:
        if not unit.is_template:
            out.append((rel(path), rel(target)))
            continue
        for inst in instances:
            name = inst.split("@", 1)[1].rsplit(".", 1)[0]
            src, dst = (p.replace("%i", name).replace("%I", name) for p in (path, target))
            if "%" not in src + dst and "/" not in name:
                out.append((rel(src), rel(dst)))
    return tuple(sorted(set(out)))


def _plan_units(q: Queries, acc: Account) -> tuple[list[Unit], list[str]]:
    """Units the drop-ins go to.

    Units linked with certain or likely evidence (possible-only links, such as a package that ships
    the unit and creates the account, only when nothing better exists: the operator then confirms
    DM213). Enabled instances go through their template, except when the template names its user
    after the instance (User=%i): then each instance gets its own drop-in.
    """
    notes: list[str] = []
    links = q.units_of(acc.name)
    strong = [lk for lk in links if lk.confidence in (Confidence.CERTAIN, Confidence.LIKELY)]
    chosen = strong or links
    names = sorted({lk.unit for lk in chosen})
    for weak in sorted({lk.unit for lk in links} - set(names)):
        notes.append(
            f"{weak} is linked to {acc.name} only indirectly: no drop-in (plan it with --unit if it really "
            "runs as the account)"
        )
    out: dict[str, Unit] = {}
    for name in names:
        unit = q.unit(name)
        if unit is None or unit.type != "service":
            continue
        if unit.state is LoadState.MASKED:
            notes.append(f"{name} is masked: no drop-in (unmask it and plan again to include it)")
            continue
        if unit.generated or unit.fragment is None:
            notes.append(f"{name} has no unit file of its own (generated): no drop-in")
            continue
        if unit.template is not None:
            template = q.unit(unit.template)
            if template is not None and _user_per_instance(template):
                out[unit.name] = unit
                notes.append(
                    f"{template.name} names its user after the instance (User=%i): the drop-in goes to {unit.name} only"
                )
            elif template is not None and template.name not in out:
                out[template.name] = template
                notes.append(f"{name} is an instance: the drop-in goes to its template {template.name}")
            continue
        if unit.is_template and _user_per_instance(unit):
            continue  # its instances get drop-ins of their own
        out[unit.name] = unit
    return [out[k] for k in sorted(out)], notes


def _user_per_instance(template: Unit) -> bool:
    user = template.assignments("Service", "User")
    return bool(user) and any(spec in user[-1].raw for spec in ("%i", "%I"))


def _exec_mode(q: Queries, acc: Account, unit: Unit) -> ExecMode:
    """USER when systemd already switches identity (User=, or DynamicUser= naming it after the unit);
    BANG for a root-start daemon that switches to the account itself."""
    if unit.assignments("Service", "User") and unit.assignments("Service", "User")[-1].raw.strip():
        return ExecMode.USER
    if unit.flag("Service", "DynamicUser"):
        return ExecMode.USER
    return ExecMode.BANG


def _probe(q: Queries, unit: Unit, options: PlanOptions) -> tuple[str, str]:
    for key in (unit.name, unit.prefix):
        if key in options.probes:
            return options.probes[key], "user"
    for name, cmd in q.snap.policy.probes:
        if name in (unit.name, unit.prefix):
            return cmd, "policy"
    if options.builtin_probes:
        for key, cmd in BUILTIN_PROBES.items():
            if unit.prefix == key or unit.prefix.startswith(key + "@"):
                return cmd, "built-in"
    return "", ""


def runtime_sockets(q: Queries, acc: Account) -> frozenset[str]:
    """Names of /run subdirectories where the account has sockets (clients connect to them)."""
    out: set[str] = set()
    for tree in q.trees_of(acc):
        for info in (tree.top, *tree.special):
            if info.kind is FileKind.SOCKET:
                slot = managed_slot(info.path, is_dir=False)
                if slot is not None and slot[0] == "RuntimeDirectory":
                    out.add(slot[1])
    return frozenset(out)


def _cred_name(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.rsplit("/", 1)[-1])


@dataclass(frozen=True, slots=True)
class _ConfigAccess:
    """What becomes of the configuration the account owned: root's, each file with its mode and why
    (FileFix), the credentials that hand the closed ones to the service, and the manual steps for
    what the plan must leave as it is."""

    fixes: tuple[FileFix, ...]
    credentials: tuple[Credential, ...]
    manual: tuple[str, ...]


def _file_fixes(q: Queries, acc: Account) -> _ConfigAccess:
    """Configuration the account owned becomes root's, and never readable to more users than before.

    What others could read stays readable (0644/0755, as systemd expects configuration). What they
    could not read keeps its permission bits and reaches the service through LoadCredential=. A
    directory they could not enter stays closed too: when the plan knows every entry of it and each
    is a file, the unit sees a read-only tmpfs there with the files bound in; otherwise a manual step.
    """
    snap = q.snap
    known = {str(e.path): e for e in snap.etc_entries}
    acls = set(snap.acl_paths)
    manual = [_acl_step(e.path) for e in q.etc_entries_of(acc) if e.path in acls]
    creds, shown, manual_dirs = _closed_dirs(q, acc)
    fixes: list[FileFix] = []
    for e in q.etc_entries_of(acc):
        if e.kind not in (FileKind.FILE, FileKind.DIR) or e.path in acls:
            continue
        # the closed directory E is in (the first found), and whether the unit sees its files
        under = next((d for d in (*shown, *manual_dirs) if is_under(str(e.path), d)), None)
        seen = under is not None and under in shown
        readable, enterable = other_access(e, known)
        if e.kind is FileKind.DIR:
            fixes.append(_config_dir_fix(e, readable and enterable, under, seen))
            continue
        hints = snap.secret_hints(e.path)
        if hints or not readable:
            fix, cred = _closed_file_fix(e, hints, under, seen)
            fixes.append(fix)
            if cred is not None:
                creds.append(cred)
            continue
        new_mode = 0o755 if e.mode & 0o111 else 0o644
        reason = "config: root-owned and world-readable (others could read it before, no secret found in it)"
        fixes.append(FileFix(e.path, e.uid, e.gid, e.mode, 0, 0, new_mode, reason))
    return _ConfigAccess(tuple(fixes), tuple(creds), tuple(manual))


def _acl_step(path: RelPath) -> str:
    return (
        f"{path} has an ACL (system.posix_acl_access): its mode bits do not tell who may read it, so the "
        "plan leaves its owner and ACL as they are; re-own it by hand without widening the ACL, and hand "
        "it to the service with LoadCredential= if the dynamic user must read it"
    )


def _closed_dirs(q: Queries, acc: Account) -> tuple[list[Credential], set[str], set[str]]:
    """The configuration directories other users could not enter: the credentials that show one to
    the unit (the directory, and each root-owned file in it), the directories shown so, and those
    left to a manual step (DM309's finding, from the same query)."""
    creds: list[Credential] = []
    shown: set[str] = set()
    manual_dirs: set[str] = set()
    for closed in q.closed_config_dirs(acc):
        d = closed.info
        if closed.why:
            manual_dirs.add(str(d.path))
            continue
        shown.add(str(d.path))
        why = f"other users could not enter it ({d.uid}:{d.gid} {d.mode:04o}): each of its files is a credential"
        creds.append(Credential("", _cred_name(d.path), d.path, why, directory=True))
        for f in q.closed_dir_files(closed):
            if f.uid == 0 and f.gid == 0:  # root's, readable to others: it stays as it is on disk
                why = f"root's file ({f.mode:04o}) in a directory other users could not enter"
                creds.append(Credential("", _cred_name(f.path), f.path, f"{why}: bound into the unit's view of it"))
    return creds, shown, manual_dirs


def _config_dir_fix(e: PathInfo, open_to_others: bool, under: str | None, seen: bool) -> FileFix:
    """A configuration directory becomes root's: 0755 when others could list it, else its mode kept."""
    keep = e.mode & 0o777
    if open_to_others:
        new_mode, reason = 0o755, "config directory: root-owned and traversable (others could list it before)"
    elif seen:
        new_mode, reason = keep, "others could not enter it: root-owned, mode kept; the unit sees its files"
    elif under is not None:
        new_mode, reason = keep, "others could not enter it: root-owned, mode kept (see the manual step)"
    else:
        new_mode, reason = keep, "others could not list it: root-owned, mode kept"
    return FileFix(e.path, e.uid, e.gid, e.mode, 0, 0, new_mode, reason)


def _closed_file_fix(
    e: PathInfo, hints: tuple[SecretHint, ...], under: str | None, seen: bool
) -> tuple[FileFix, Credential | None]:
    """A file that looks secret (root-only then) or that others could not read (mode kept) becomes
    root's, and reaches the service as a credential unless it is in a closed directory left to a
    manual step (a directory the unit sees has its credential for each of its files)."""
    if hints:
        new_mode = 0o600
        why = f"looks secret ({hints[0].keyword})"
    else:
        new_mode = e.mode & 0o777
        in_closed_dir = ", in a directory they could not enter)" if e.mode & 0o004 else ")"
        why = f"other users could not read it ({e.uid}:{e.gid} {e.mode:04o}" + in_closed_dir
    kept = "root-only" if new_mode == 0o600 else "root-owned, mode kept"
    cred: Credential | None = Credential("", _cred_name(e.path), e.path, why)
    if seen:
        reason = f"{why}: {kept}, bound into the unit's view of {under} with LoadCredential="
    elif under is not None:
        reason, cred = f"{why}: {kept}, inside {under} (see the manual step)", None
    else:
        reason = f"{why}: {kept}, handed to the service with LoadCredential="
    return FileFix(e.path, e.uid, e.gid, e.mode, 0, 0, new_mode, reason), cred


def _sysusers_overrides(q: Queries, acc: Account, delete_group: bool) -> list[OverrideFile]:
    out: list[OverrideFile] = []
    by_file: dict[RelPath, list[int]] = {}
    for ref in q.refs_to(acc.name, Target.USER) + (q.refs_to(acc.name, Target.GROUP) if delete_group else []):
        if ref.kind is RefKind.SYSUSERS and ref.action is Action.CREATES:
            by_file.setdefault(ref.location.file, []).append(ref.location.line)
    for path, lines in sorted(by_file.items()):
        fname = path.rsplit("/", 1)[-1]
        target = RelPath(f"/etc/sysusers.d/{fname}")
        body = q.snap.config_text(path)
        drop = set(lines)
        kept_others = [
            ln
            for i, ln in enumerate(body.split("\n"), 1)
            if i not in drop and ln.strip() and not ln.lstrip().startswith("#")
        ]
        if path.startswith("/etc/sysusers.d/"):
            content = _without_lines(body, drop, acc.name)
            out.append(
                OverrideFile(
                    target,
                    "sysusers-override",
                    content,
                    path,
                    f"{path} declares {acc.name}: those lines are commented out",
                    _sha(body),
                )
            )
        elif not kept_others:
            out.append(
                OverrideFile(
                    target,
                    "sysusers-mask",
                    None,
                    path,
                    f"{path} declares only {acc.name}: masked with a /dev/null symlink (facts F5.3)",
                )
            )
        else:
            content = _without_lines(body, drop, acc.name)
            out.append(
                OverrideFile(
                    target,
                    "sysusers-override",
                    content,
                    path,
                    f"{path} declares {acc.name} among others: an /etc copy without its lines",
                )
            )
    return out


def _without_lines(body: str, lines: set[int], name: str) -> str:
    out = [f"# Copy of the vendor file written by dynmigrate: {name} moved to DynamicUser=yes."]
    for i, line in enumerate(body.split("\n"), 1):
        out.append(f"# dynmigrate: {line}" if i in lines else line)
    text = "\n".join(out)
    return text if text.endswith("\n") else text + "\n"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _lines_by_file(refs: list[Reference], kind: RefKind) -> dict[RelPath, set[int]]:
    """Lines of each file where references of one kind name the account."""
    out: dict[RelPath, set[int]] = {}
    for ref in refs:
        if ref.kind is kind:
            out.setdefault(ref.location.file, set()).add(ref.location.line)
    return out


def _tmpfiles_overrides(q: Queries, acc: Account, managed: list[ManagedDir]) -> list[OverrideFile]:
    out: list[OverrideFile] = []
    by_file = _lines_by_file(q.refs_to_account(acc), RefKind.TMPFILES)
    for path, lines in sorted(by_file.items()):
        body = q.snap.config_text(path)
        new: list[str] = [f"# Copy of {path} written by dynmigrate: {acc.name} moved to DynamicUser=yes."]
        for i, line in enumerate(body.split("\n"), 1):
            if i not in lines:
                new.append(line)
                continue
            fields = line.split()
            covered = len(fields) > 1 and any(is_under(fields[1], str(m.path)) for m in managed)
            if covered:
                new.append(f"# dynmigrate (a managed directory creates it now): {line}")
            else:
                swapped = [("root" if (j in (3, 4) and f == acc.name) else f) for j, f in enumerate(fields)]
                new.append(f"# dynmigrate: {line}")
                new.append(" ".join(swapped))
        content = "\n".join(new).rstrip("\n") + "\n"
        out.append(
            OverrideFile(
                RelPath(f"/etc/tmpfiles.d/{path.rsplit('/', 1)[-1]}"),
                "tmpfiles-override",
                content,
                path,
                f"{path} names {acc.name}, which no longer resolves at boot",
                _sha(body) if path.startswith("/etc/tmpfiles.d/") else "",
            )
        )
    return out


def _logrotate_overrides(q: Queries, acc: Account, manual: list[str]) -> list[OverrideFile]:
    out: list[OverrideFile] = []
    by_file = _lines_by_file(q.refs_to_account(acc), RefKind.LOGROTATE)
    for path, lines in sorted(by_file.items()):
        if not path.startswith(("/etc/logrotate.d/", "/usr/lib/logrotate.d/")):
            manual.append(
                f"{path} names {acc.name} (lines {', '.join(map(str, sorted(lines)))}): logrotate skips "
                "those files once the user is gone; edit them by hand (su root adm, copytruncate)"
            )
            continue
        body = q.snap.config_text(path)
        new: list[str] = [
            f"# Edited by dynmigrate: {acc.name} moved to DynamicUser=yes; the log files keep their"
            " dynamic owner (copytruncate)."
        ]
        for i, line in enumerate(body.split("\n"), 1):
            if i in lines:
                indent = line[: len(line) - len(line.lstrip())]
                new.append(f"{indent}# dynmigrate: {line.strip()}")
                if line.strip().startswith("create"):
                    new.append(f"{indent}copytruncate")
            else:
                new.append(line)
        content = "\n".join(new).rstrip("\n") + "\n"
        target = RelPath(f"/etc/logrotate.d/{path.rsplit('/', 1)[-1]}")
        out.append(
            OverrideFile(
                target,
                "logrotate-override",
                content,
                path,
                f"logrotate skips files whose user ({acc.name}) is unknown",
                _sha(body) if target == path else "",
            )
        )
    return out


CRON_FIELDS = re.compile(r"^\s*(@\w+|\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(\S+)\s+(.*)$")
CRON_SPECIAL = {
    "@hourly": "hourly",
    "@daily": "daily",
    "@midnight": "daily",
    "@weekly": "weekly",
    "@monthly": "monthly",
    "@yearly": "yearly",
    "@annually": "yearly",
}


def on_calendar(spec: str) -> str | None:
    """OnCalendar= for the cron schedules that translate exactly; None for the rest."""
    if spec in CRON_SPECIAL:
        return CRON_SPECIAL[spec]
    parts = spec.split()
    if len(parts) != 5:
        return None
    minute, hour, dom, month, dow = parts
    if dom != "*" or month != "*" or dow != "*":
        return None
    if minute.isdigit() and hour.isdigit():
        return f"*-*-* {int(hour):02d}:{int(minute):02d}:00"
    if minute.isdigit() and hour == "*":
        return f"*-*-* *:{int(minute):02d}:00"
    if minute.startswith("*/") and minute[2:].isdigit() and hour == "*":
        return f"*-*-* *:00/{int(minute[2:])}:00"
    return None


def _cron(q: Queries, acc: Account) -> tuple[list[OverrideFile], list[tuple[str, str]]]:
    """Cron jobs that run as the account: an /etc copy of the cron file with them commented out
    (cron would skip them anyway once the user is gone), and a timer pair that runs each job under
    the same dynamic user, written to the plan folder for the operator to install."""
    overrides: list[OverrideFile] = []
    suggestions: list[tuple[str, str]] = []
    by_file: dict[RelPath, set[int]] = {}
    for ref in q.refs_to(acc.name, Target.USER):
        if ref.kind is RefKind.CRON and ref.action is Action.RUNS_AS and ref.detail == "cron job runs as it":
            by_file.setdefault(ref.location.file, set()).add(ref.location.line)
    n = 0
    for path, lines in sorted(by_file.items()):
        body = q.snap.config_text(path)
        if not body:
            continue
        new = [f"# Edited by dynmigrate: {acc.name} moved to DynamicUser=yes; its jobs run from systemd timers now."]
        for i, line in enumerate(body.split("\n"), 1):
            if i not in lines:
                new.append(line)
                continue
            new.append(f"# dynmigrate: {line}")
            m = CRON_FIELDS.match(line)
            if m is None:
                continue
            n += 1
            name = f"{acc.name}-cron-{n}"
            calendar = on_calendar(m.group(1))
            command = m.group(3).replace("%", "%%")
            timer = (
                f"# From {path}:{i}: {m.group(1)}\n[Unit]\nDescription={acc.name} job from {path}\n\n"
                f"[Timer]\n"
                + (
                    f"OnCalendar={calendar}\n"
                    if calendar
                    else f"# OnCalendar=: translate the cron schedule '{m.group(1)}' by hand\n"
                )
                + "Persistent=true\n\n[Install]\nWantedBy=timers.target\n"
            )
            service = (
                f"# From {path}:{i}\n"
                "# Review: the job runs in DynamicUser's sandbox (ProtectSystem=strict); paths it writes\n"
                "# outside the service's managed directories need ReadWritePaths= here.\n"
                f"[Unit]\nDescription={acc.name} job from {path}\n\n[Service]\nType=oneshot\n"
                f"DynamicUser=yes\nUser={acc.name}\nExecStart=/bin/sh -c {shlex_quote(command)}\n"
            )
            suggestions += [(f"{name}.timer", timer), (f"{name}.service", service)]
        content = "\n".join(new).rstrip("\n") + "\n"
        overrides.append(
            OverrideFile(
                RelPath(path),
                "cron-override",
                content,
                RelPath(path),
                f"{path} runs jobs as {acc.name}: commented out; suggested timers in the plan",
                _sha(body),
            )
        )
    return overrides, suggestions


def shlex_quote(text: str) -> str:
    """Quote for a unit's ExecStart= (systemd's rules: double quotes, backslash escapes)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _leftovers(
    q: Queries, acc: Account, managed: list[ManagedDir], fixed: set[str], delete_group: bool
) -> list[Leftover]:
    out: list[Leftover] = []
    roots = [str(m.path) for m in managed if m.key != "ConfigurationDirectory"]
    for tree in q.trees_of(acc, include_group=delete_group):
        p = tree.top.path
        if p in fixed or any(is_under(p, r) for r in roots):
            continue
        if tree.uid != acc.uid and not delete_group:
            continue
        out.append(Leftover(p, tree.uid, tree.gid, tree.entries))
    return out


def _setid_fixes(q: Queries, acc: Account, managed: list[ManagedDir], fixes: list[FileFix]) -> list[FileFix]:
    """Set-ID files of the account outside the managed directories go to root without their bits in
    stage 2, before the unit starts (stage 3 would only do it after the health check): a client that
    runs one (lldpcli, setuid _lldpd) would otherwise still switch to the old UID, which no longer
    reaches the daemon's files (its socket belongs to the dynamic UID). Inside a managed directory
    systemd's chown drops the bits itself (facts F2.6). The rollback restores owner and mode."""
    roots = [str(m.path) for m in managed if m.key != "ConfigurationDirectory"]
    done = {str(f.path) for f in fixes}
    out: list[FileFix] = []
    for info in q.setid_files_of(acc):
        p = str(info.path)
        if info.uid != acc.uid or p in done or any(is_under(p, r) for r in roots):
            continue
        reason = (
            f"{'setuid' if info.setuid else 'setgid'} file of {acc.name} ({info.uid}:{info.gid} {info.mode:04o}): "
            "root-owned without the set-ID bit, so that no client runs as the old UID; mode kept otherwise"
        )
        out.append(FileFix(info.path, info.uid, info.gid, info.mode, 0, 0, info.mode & 0o777, reason))
    return out


def _upgrade(
    q: Queries, acc: Account, units: list[Unit], fixes: list[FileFix]
) -> tuple[list[str], list[StatOverridePin]]:
    """Package scripts that recreate the account, and the statoverride pins that make their chowns skip.

    A pin is applied by dpkg at every upgrade: its mode is the one the plan leaves the path with (a
    re-owned config keeps its kept mode), or the path's mode today; never one that lets more users in.
    """
    after = {str(f.path): f.new_mode for f in fixes}
    recreated: list[str] = []
    pins: dict[str, StatOverridePin] = {}
    for ref in q.refs_to_account(acc):
        if ref.kind is not RefKind.PACKAGE_SCRIPT:
            continue
        if ref.action is Action.CREATES and ref.target is Target.USER and not ref.detail.startswith("systemd-sysusers"):
            recreated.append(f"{ref.package}: {ref.location}: {ref.detail}")
        if ref.action in (Action.CHOWNS, Action.OWNS_PATH) and ref.guarded and ref.path is not None:
            mode = (
                0o644
                if ref.action is Action.OWNS_PATH and not ref.path.startswith(("/var/lib", "/var/log", "/var/cache"))
                else 0o755
            )
            fact = q.snap.path(ref.path)
            if fact is not None and fact.target is not None and fact.target.kind is FileKind.FILE:
                mode = 0o644
            if str(ref.path) in after:
                mode = after[str(ref.path)]
            elif fact is not None and fact.target is not None:
                mode = fact.target.mode & 0o777
            pins.setdefault(
                ref.path,
                StatOverridePin(
                    ref.path,
                    mode,
                    f"{ref.package} skips `{ref.detail[:60]}` when a statoverride exists ({ref.location})",
                ),
            )
    return sorted(set(recreated)), sorted(pins.values())


def _group_note(acc: Account, primary: Group | None, own: Group | None, relying: list[str]) -> str:
    if own is not None and relying:
        return f"group {own.name} is kept: other users rely on it ({', '.join(relying)})"
    kept = f"primary group {primary.name if primary else acc.gid}"
    if own is not None and (primary is None or primary.gid != own.gid):
        return f"group {own.name} (GID {own.gid}) is deleted with the user; its {kept} is shared and kept"
    if own is not None:
        return f"group {own.name} (GID {own.gid}) is deleted with the user"
    return f"{kept} is shared: only the user is deleted"


def _plan_verdict(verdict: Verdict, manual: Sequence[ManualStep]) -> tuple[Verdict, str]:
    """The plan's verdict and its reason: a manual step only planning finds (a closed directory, an
    ACL, a later drop-in) makes a convertible account need it, and that step is the reason ("" =
    the scan's reason stands)."""
    if verdict is Verdict.CONVERTIBLE and manual:
        return Verdict.NEEDS_MANUAL, f"{manual[0].id}: {manual[0].text}"
    return verdict, ""


@dataclass(frozen=True, slots=True)
class _AccountGroups:
    """The account's groups as the plan treats them. The group named like the account goes with it,
    primary or not (a static group of that name left behind is EILSEQ, facts F1.7), unless others
    rely on it: then DM108 blocks, from the same list."""

    primary: Group | None
    own: Group | None  # the group named like the account
    delete: bool
    note: str
    # Group= values in a unit that name the account's own group (Group= of the dynamic user then)
    own_names: tuple[str, ...]
    # static groups the dynamic user keeps (SupplementaryGroups=); the own group is not granted
    # back: it is deleted (or, kept for others, blocks: DM108)
    supplementary: tuple[str, ...]


def _account_groups(q: Queries, acc: Account) -> _AccountGroups:
    grp = q.primary_group(acc)
    own_grp = q.own_group(acc)
    own_is_primary = own_grp is not None and grp is not None and own_grp.gid == grp.gid
    relying = q.own_group_users(acc)
    own_names = (acc.name, str(acc.gid)) + ((str(grp.name),) if grp is not None and own_is_primary else ())
    own_names += (str(own_grp.name), str(own_grp.gid)) if own_grp is not None and not own_is_primary else ()
    supplementary = sorted(
        str(g.name) for g in q.groups_of(acc) if g.gid != acc.gid and (own_grp is None or g.gid != own_grp.gid)
    )
    return _AccountGroups(
        grp,
        own_grp,
        own_grp is not None and not relying,
        _group_note(acc, grp, own_grp, relying),
        own_names,
        tuple(supplementary),
    )


@dataclass(slots=True)
class _Planned:
    """The account's units as they are planned, with the manual steps and risks found on the way
    (in the order they are found: a manual step's id is its place in the list)."""

    units: list[UnitPlan] = field(default_factory=list)
    managed: list[ManagedDir] = field(default_factory=list)
    manual: list[ManualStep] = field(default_factory=list)
    risks: list[str] = field(default_factory=list)

    def add_steps(self, account: str, texts: Iterable[str]) -> None:
        for text in texts:
            self.manual.append(ManualStep(f"M{len(self.manual) + 1}-{account}", "plan", text))


@dataclass(frozen=True, slots=True)
class _UnitOutcome:
    plan: UnitPlan
    managed: tuple[ManagedDir, ...]
    dir_steps: tuple[str, ...]  # directories that would swallow a shared tree (one step per text per account)
    manual: tuple[str, ...]
    risks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _AccountFiles:
    """What the plan does with the account's files and the references to it outside its units."""

    overrides: tuple[OverrideFile, ...]
    suggested: tuple[tuple[str, str], ...]
    statoverrides: tuple[StatOverride, ...]
    fixes: tuple[FileFix, ...]
    recreated: tuple[str, ...]
    pins: tuple[StatOverridePin, ...]
    leftovers: tuple[Leftover, ...]
    manifest: tuple[RelPath, ...]
    manual: tuple[str, ...]  # steps for logrotate configurations the plan cannot edit


def plan_account(q: Queries, av: AccountVerdict, options: PlanOptions) -> AccountPlan:
    """One account's plan: its units' drop-ins, then its files, with the steps a person takes."""
    acc = q.snap.accounts.account(av.name)
    assert acc is not None
    groups = _account_groups(q, acc)
    units, unit_notes = _plan_units(q, acc)
    access = _file_fixes(q, acc)
    planned = _Planned(risks=list(unit_notes))
    for unit in units:
        done = _plan_unit(q, acc, groups, access.credentials, unit, options)
        for text in done.dir_steps:  # once per account, however many of its units ask for it
            if text not in (m.text for m in planned.manual):
                planned.add_steps(acc.name, [text])
        planned.add_steps(acc.name, done.manual)
        planned.risks += done.risks
        planned.managed += done.managed
        planned.units.append(done.plan)
    planned.add_steps(acc.name, access.manual)
    planned.manual += _rule_steps(av, acc.name, options.force)
    files = _account_files(q, acc, units, groups.delete, access.fixes, planned.managed)
    planned.add_steps(acc.name, files.manual)
    planned.risks += _account_risks(acc, units, planned)
    verdict, reason = _plan_verdict(av.verdict, planned.manual)
    return AccountPlan(
        account=acc.name,
        uid=acc.uid,
        gid=acc.gid,
        group=str(groups.own.name) if groups.own else str(groups.primary.name) if groups.primary else str(acc.gid),
        group_gid=groups.own.gid if groups.own else acc.gid,
        home=acc.home,
        shell=acc.shell,
        gecos=acc.gecos,
        delete_group=groups.delete,
        group_note=groups.note,
        verdict=verdict,
        forced=options.force and av.verdict is Verdict.BLOCKED,
        findings=av.findings,
        units=tuple(planned.units),
        file_fixes=files.fixes,
        credentials=tuple(sorted(replace(c, unit=u.unit) for u in planned.units for c in access.credentials)),
        overrides=files.overrides,
        statoverrides=files.statoverrides,
        pins=files.pins,
        supplementary_groups=groups.supplementary,
        leftovers=files.leftovers,
        manual_steps=tuple(planned.manual),
        risks=tuple(dict.fromkeys(planned.risks)),
        recreated_by=files.recreated,
        manifest_paths=files.manifest,
        suggested=files.suggested,
        reason=reason or av.reason,
        links=av.links,
        trees=av.trees,
        references=tuple(r for r in av.references if not r.unit),
        acknowledgements=_acknowledgements(av, acc.name, planned.units),
        moved_dirs=_managed_paths(planned.units, ("StateDirectory", "CacheDirectory", "LogsDirectory")),
        runtime_dirs=_managed_paths(planned.units, ("RuntimeDirectory",)),
        min_systemd=_min_systemd(planned.units),
    )


def _managed_paths(units: Sequence[UnitPlan], keys: tuple[str, ...]) -> tuple[RelPath, ...]:
    """The units' managed directories of these kinds whose name has no specifier: what stage 1
    moves under private/ (state, cache, logs) or empties (runtime)."""
    return tuple(sorted({m.path for u in units for m in u.directories if m.key in keys and "%" not in m.name}))


def _min_systemd(units: Sequence[UnitPlan]) -> int:
    """The oldest systemd the drop-ins work on (stage 0 refuses an older one)."""
    if any("LoadCredential=" in u.dropin_text for u in units):
        return 248  # LoadCredential= (247) and the %d specifier (248)
    if any("ExecPaths=" in u.dropin_text for u in units):
        return 247  # ExecPaths=
    return MIN_SYSTEMD


def _plan_unit(
    q: Queries,
    acc: Account,
    groups: _AccountGroups,
    credentials: tuple[Credential, ...],
    unit: Unit,
    options: PlanOptions,
) -> _UnitOutcome:
    """The drop-in of one unit, the unit before and after it, and the manual steps and risks it brings."""
    snap = q.snap
    mode = _exec_mode(q, acc, unit)
    managed, refused_dirs, dir_steps = _unit_directories(q, acc, unit, credentials, mode)
    unit_creds = [replace(c, unit=unit.name) for c in credentials]
    sockets = runtime_sockets(q, acc)
    supplementary = list(groups.supplementary)
    d = build_dropin(unit, acc.name, mode, managed, supplementary, unit_creds, groups.own_names, sockets, acc.home)
    name = dropin_name(p.rsplit("/", 1)[-1] for p in unit.dropins)
    dpath = RelPath(f"/etc/systemd/system/{unit.name}.d/{name}")
    text = dropin_text(unit, acc.name, acc.uid, d.items)
    before = systemctl_cat(snap, unit)
    after = systemctl_cat(snap, unit, (dpath, text))
    d.manual += pid_file_readers(snap, unit, d.moved_pidfiles)
    d.manual += [_later_conflict_step(conflict, name) for conflict in later_conflicts(unit, d.items, name)]
    probe, source = _probe(q, unit, options)
    pid = unit.value("Service", "PIDFile")
    old_pid = (pid.raw if unit.is_template else pid.value) if pid else ""
    instances = tuple(sorted(u.name for u in snap.units if u.template == unit.name and u.enabled))
    plan = UnitPlan(
        unit=unit.name,
        fragment=unit.fragment or RelPath("/"),
        dropin_path=dpath,
        dropin_text=text,
        before=before,
        after=after,
        diff=unified_diff(before, after, unit.name),
        exec_mode=mode,
        directories=tuple(managed),
        decisions=tuple(d.decisions),
        probe=probe,
        probe_source=source,
        enabled=unit.enabled or any(u.template == unit.name and u.enabled for u in snap.units),
        pidfile=next((v for k, v in reversed(d.items) if k == "PIDFile"), old_pid),
        instances=instances,
        state_configs=state_config_copies(unit, d.state_configs, instances),
    )
    return _UnitOutcome(plan, tuple(managed), tuple(dir_steps), tuple(d.manual), (*refused_dirs, *d.risks))


def _unit_directories(
    q: Queries, acc: Account, unit: Unit, credentials: tuple[Credential, ...], mode: ExecMode
) -> tuple[list[ManagedDir], list[str], list[str]]:
    """The unit's managed directories (derive_directories), the names refused and the manual steps."""
    managed, refused, steps = derive_directories(q, acc, unit)
    # systemd mounts a ConfigurationDirectory= over the unit's tmpfs (seen on 252): the closed
    # directory is shown through TemporaryFileSystem= alone
    shadowed = {str(c.path) for c in credentials if c.directory}
    managed = [m for m in managed if not (m.key == "ConfigurationDirectory" and str(m.path) in shadowed)]
    if mode is ExecMode.BANG:
        managed = root_daemon_runtime(unit, managed)
    return managed, refused, steps


def _later_conflict_step(conflict: Directive, name: str) -> str:
    return (
        f"{conflict.location} sorts after {name} and sets {conflict.key}={conflict.value} again: "
        f"it would undo part of the migration; rename it so that it sorts before {name} (e.g. "
        f"40-{conflict.location.file.rsplit('/', 1)[-1]}: the plan's drop-in was made from the unit with it), "
        "or remove it"
    )


def _rule_steps(av: AccountVerdict, account: str, force: bool) -> list[ManualStep]:
    """One manual step per rule whose findings need one (blocking ones too when forced): what was
    found comes with what to do, the rule's one-line fix."""
    by_rule: dict[str, list[str]] = {}
    for f in av.findings:
        if f.effect is Effect.NEEDS_MANUAL or (f.effect is Effect.BLOCKS and force):
            by_rule.setdefault(str(f.rule), []).append(f.message)
    return [
        ManualStep(f"{rule}-{account}", rule, f"{'; '.join(dict.fromkeys(messages))}. To do: {fix_of(rule)}")
        for rule, messages in sorted(by_rule.items())
    ]


def _acknowledgements(av: AccountVerdict, account: str, units: list[UnitPlan]) -> tuple[ManualStep, ...]:
    """What the plan handles and the operator confirms in stage 2: findings to acknowledge, and an
    account none of whose units is enabled (the stages restart and check nothing)."""
    by_rule: dict[str, list[str]] = {}
    for f in av.findings:
        if f.effect is Effect.ACKNOWLEDGE:
            by_rule.setdefault(str(f.rule), []).append(f.message)
    acks = [
        ManualStep(f"{rule}-{account}", rule, "; ".join(dict.fromkeys(messages)))
        for rule, messages in sorted(by_rule.items())
    ]
    if not any(u.enabled or u.instances for u in units):
        acks.append(
            ManualStep(
                f"NORUN-{account}",
                "plan",
                "no unit of the account is enabled: the stages restart and health-check nothing; "
                "confirm that nothing needs to run as it",
            )
        )
    return tuple(acks)


def _account_files(
    q: Queries,
    acc: Account,
    units: list[Unit],
    delete_group: bool,
    config_fixes: tuple[FileFix, ...],
    managed: list[ManagedDir],
) -> _AccountFiles:
    """Overrides of the files that name the account, its re-owned files, what package upgrades would
    undo, what it leaves behind, and every path whose ownership stage 0 records."""
    overrides = _sysusers_overrides(q, acc, delete_group)
    overrides += _tmpfiles_overrides(q, acc, managed)
    logrotate_manual: list[str] = []
    overrides += _logrotate_overrides(q, acc, logrotate_manual)
    cron_overrides, suggested = _cron(q, acc)
    overrides += cron_overrides
    snap = q.snap
    statoverrides = tuple(o for o in snap.statoverrides if o.user == acc.name or (delete_group and o.group == acc.name))
    fixes = [*config_fixes, *_setid_fixes(q, acc, managed, list(config_fixes))]
    recreated, pins = _upgrade(q, acc, units, fixes)
    fixed: set[str] = {str(f.path) for f in fixes}
    leftovers = _leftovers(q, acc, managed, fixed, delete_group)
    manifest = sorted({*(m.path for m in managed if m.exists), *fixed, *(lf.path for lf in leftovers)})
    return _AccountFiles(
        overrides=tuple(sorted(overrides)),
        suggested=tuple(suggested),
        statoverrides=statoverrides,
        fixes=tuple(sorted(fixes)),
        recreated=tuple(recreated),
        pins=tuple(pins),
        leftovers=tuple(sorted(leftovers)),
        manifest=tuple(RelPath(p) for p in manifest),
        manual=tuple(logrotate_manual),
    )


def _account_risks(acc: Account, units: list[Unit], planned: _Planned) -> list[str]:
    risks: list[str] = []
    if any(m.key in ("StateDirectory", "CacheDirectory", "LogsDirectory") for m in planned.managed):
        risks.append(
            "data moves under /var/lib/private (0700 root): backup agents and non-root readers (group adm "
            "for logs) lose access; back up /var/lib/private/NAME, not the symlink (facts F2.3, F3.6)"
        )
    risks.append(
        "the dynamic UID is usually stable across restarts but not guaranteed (facts F1.5): never write it "
        "into files outside the managed directories"
    )
    if any(u.exec_mode is ExecMode.BANG for u in planned.units):
        risks.append("'!' keeps the daemon's own user switch: it must resolve the dynamic user by name (nss-systemd)")
    for u in units:
        if u.value("Service", "ReadWriteDirectories") or any(
            managed_slot(w.lstrip("-")) == ("ConfigurationDirectory", acc.name)
            for d in u.values("Service", "ReadWritePaths")
            for w in d.value.split()
        ):
            risks.append(
                f"{u.name} could write its configuration directory; it is read-only now (e.g. redis "
                "CONFIG REWRITE fails)"
            )
            break
    return risks


def _no_unit_file(q: Queries, av: AccountVerdict) -> str:
    """Why an account has nothing to plan: name each unit and where it comes from (a unit generated
    from an init script has no file a drop-in could go next to)."""
    why: list[str] = []
    for name in av.units:
        unit = q.snap.unit(name)
        if unit is not None and unit.masked_by is not None:
            why.append(f"{name} is masked ({unit.masked_by})")
        elif unit is not None and unit.from_init_script:
            why.append(f"{name} is generated from {unit.source_path}")
        else:
            why.append(f"{name} has no unit file")
    return "no unit file to put a drop-in next to" + (f": {'; '.join(why)}" if why else "")


def make_plan(q: Queries, report: Report, sel: Selection, options: PlanOptions) -> MigrationPlan:
    """The plan of the selected accounts, from what the scan knows (q) and what it concluded (report)."""
    chosen = select_accounts(q, report, sel)
    if not chosen:
        raise SelectionError("nothing selected: use --unit, --account or --all-convertible")
    planned: list[AccountPlan] = []
    refused: list[Refusal] = []
    for av in chosen:
        if av.verdict not in PLANNABLE:
            refused.append(Refusal(av.name, RefusalKind.NOT_PLANNABLE, f"{av.verdict.value}: {av.reason}"))
            continue
        if av.verdict is Verdict.BLOCKED and not options.force:
            blockers = "; ".join(f"{f.rule} {f.message}" for f in av.findings if f.effect is Effect.BLOCKS)
            refused.append(Refusal(av.name, RefusalKind.BLOCKED, f"blocked: {blockers}"))
            continue
        plan = plan_account(q, av, options)
        if not plan.units:
            refused.append(Refusal(av.name, RefusalKind.NO_UNIT_FILE, _no_unit_file(q, av)))
            continue
        planned.append(plan)
    planned = _one_override_per_target(planned)
    alternatives: list[Alternative] = []
    for r in refused:
        stays = report.account(r.account)
        if stays is not None and r.kind is RefusalKind.BLOCKED:
            alternatives += _alternatives(q, stays)
    nss = q.snap.accounts.nss
    nss_action = "none" if nss.resolves_dynamic_users else ("enable" if nss.library else "install")
    return MigrationPlan(
        root=q.snap.root_label,
        host=q.snap.host.hostname or "host",
        systemd_version=q.snap.host.systemd_version,
        nss_action=nss_action,
        accounts=tuple(planned),
        refused=tuple(refused),
        alternatives=tuple(sorted(alternatives)),
        skip_trees=tuple(n.path for n in q.snap.nested_roots),
    )


def _alternatives(q: Queries, av: AccountVerdict) -> list[Alternative]:
    """A base or shared account stays; each of its units could run under a new dynamic name."""
    blockers = {str(f.rule) for f in av.findings if f.effect is Effect.BLOCKS}
    if not blockers or not blockers <= {"DM106", "DM108"}:
        return []
    taken = {a.name for a in q.snap.accounts.accounts} | {g.name for g in q.snap.accounts.groups}
    out: list[Alternative] = []
    for name in q.unit_names_of(av.name, min_confidence=Confidence.LIKELY):
        unit = q.unit(name)
        if unit is None or unit.fragment is None or unit.is_template:
            continue
        base = re.sub(r"[^A-Za-z0-9_-]", "-", unit.prefix)  # systemd's user name charset (F1.8)
        if not re.match(r"^[A-Za-z_]", base):
            base = f"_{base}"
        new = base if base not in taken else f"{base}-dyn"
        if new in taken or len(new) > 31:
            continue
        link = q.best_link(av.name, name)
        items = [("DynamicUser", "yes"), ("User", new), ("SupplementaryGroups", str(av.group))]
        text = dropin_text(unit, av.name, av.uid, items).replace("moves from static account", "leaves static account")
        steps = [
            f"{av.name} stays: only {name} moves, to a new dynamic user {new}",
            f"change the daemon's own user setting from {av.name} to {new}"
            + (f" ({link.source}: {link.detail})" if link and link.how in ("daemon-config", "exec-argument") else ""),
            f"files {name} writes must move into managed directories (StateDirectory= etc.); files it only reads "
            f"stay readable through SupplementaryGroups={av.group} or world read",
            "plan the result again: dynmigrate scan must show the unit under its new name",
        ]
        out.append(Alternative(av.name, name, new, text, tuple(steps)))
    return out


def _one_override_per_target(plans: list[AccountPlan]) -> list[AccountPlan]:
    """Two accounts editing the same /etc file in one plan would each write it from the original and
    undo the other's edit: the first account keeps it, the others get a manual step."""
    seen: dict[str, str] = {}
    out: list[AccountPlan] = []
    for plan in plans:
        keep: list[OverrideFile] = []
        extra: list[ManualStep] = []
        for o in plan.overrides:
            owner = seen.get(str(o.target))
            if owner is None:
                seen[str(o.target)] = plan.account
                keep.append(o)
            else:
                extra.append(
                    ManualStep(
                        f"M{len(plan.manual_steps) + len(extra) + 1}-{plan.account}",
                        "plan",
                        f"{o.target} is also edited for {owner} in this plan: after both stage 2s, edit it for "
                        f"{plan.account} by hand ({o.reason}), or migrate {plan.account} with a plan of its own",
                    )
                )
        steps = plan.manual_steps + tuple(extra)
        verdict, reason = _plan_verdict(plan.verdict, steps)
        out.append(
            replace(plan, overrides=tuple(keep), manual_steps=steps, verdict=verdict, reason=reason or plan.reason)
            if extra
            else plan
        )
    return out
