"""A command admins run switches to the account and works in directories that become private."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator

from dynmigrate.engine.api import Effect, Hit, RuleContext, Severity
from dynmigrate.graph.queries import managed_slot
from dynmigrate.model.accounts import Account
from dynmigrate.model.files import FileKind
from dynmigrate.model.units import Unit
from dynmigrate.model.unitsyntax import exec_argv

ID = "DM117"
NAME = "admin-tool-runs-as-account"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("accounts", "process-model")
SUMMARY = (
    "A command in a bin directory that the unit also runs switches to the account when root starts it "
    "(a wrapper script, or the daemon's own program run with a subcommand) and works in the account's "
    "directories: under DynamicUser they are private, so the tool fails."
)
FIX = "Keep the account static (harden the unit instead): the package's admin tool needs it."
FACTS = ("F2.3", "F1.6", "F4.5")
COMMAND_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin")
PRIVATE_KEYS = ("StateDirectory", "CacheDirectory", "LogsDirectory")
SUBCOMMAND = re.compile(r"[a-z][a-z0-9-]*")


def check(ctx: RuleContext) -> Iterator[Hit]:
    yield from _wrapper_scripts(ctx)
    yield from _self_switching_programs(ctx)


def _wrapper_scripts(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        home = acc.home.rstrip("/") or "/"
        fact = ctx.snap.path(home)
        if home == "/" or fact is None or not fact.exists:
            continue
        slot = managed_slot(str(fact.resolved))
        if slot is None or slot[0] not in PRIVATE_KEYS:
            continue  # a home that does not move behind private/ stays reachable
        links = ctx.q.units_of(acc.name)
        own_user = {lk.unit for lk in links if lk.how == "User="}
        seen: set[str] = set()
        for link in links:
            loc = ctx.q.link_location(link)
            # the unit itself runs as the account (User=): the script's switch is for whoever starts
            # it as root from a shell, that is the admins
            if link.how != "wrapper-script" or link.unit not in own_user or loc is None:
                continue
            tool = str(loc.file)
            if posixpath.dirname(tool) not in COMMAND_DIRS or tool in seen:
                continue
            seen.add(tool)
            yield Hit(
                acc.name,
                f"{tool} ({link.detail}), which {link.unit} runs too, switches to {acc.name} when root runs it and "
                f"works in its home {home}: under DynamicUser that home moves behind {posixpath.dirname(home)}"
                f"/private (0700 root), which {acc.name} cannot enter outside the unit, and a dynamic user's "
                f"home is /: the admins' {posixpath.basename(tool)} fails (eacces)",
                loc,
                (link.unit, tool),
            )


def _private_dirs(ctx: RuleContext, acc: Account) -> list[str]:
    """The account's own directories that DynamicUser moves behind private/ (state, cache, logs)."""
    out: list[str] = []
    for tree in ctx.q.trees_of(acc, include_group=False):
        path = str(tree.top.path)
        slot = managed_slot(path)
        private = tree.top.kind is FileKind.DIR and slot is not None and slot[0] in PRIVATE_KEYS
        if private and not any(path.startswith(kept + "/") for kept in out):
            out.append(path)
    return out


def _sets_user(unit: Unit) -> bool:
    """User= as written: a template's User=%i expands to nothing in the template itself."""
    users = unit.assignments("Service", "User")
    return bool(users) and bool((users[-1].raw or users[-1].value).strip())


def _self_switching_programs(ctx: RuleContext) -> Iterator[Hit]:
    """The unit starts a command-directory program as root (no User=) with a subcommand, and the program
    ends up as the account: it switches by itself, so its other subcommands, which root runs from a
    shell (icinga2 object list, icinga2 daemon -C), switch the same way and use the same directories."""
    for acc in ctx.service_accounts():
        dirs = _private_dirs(ctx, acc)
        if not dirs:
            continue
        seen: set[str] = set()
        for name in sorted({lk.unit for lk in ctx.q.units_of(acc.name)}):
            unit = ctx.q.unit(name)
            if unit is None or unit.type != "service" or _sets_user(unit) or unit.flag("Service", "DynamicUser"):
                continue
            for d in unit.values("Service", "ExecStart"):
                argv = exec_argv(d.value)
                if len(argv) < 2 or posixpath.dirname(argv[0]) not in COMMAND_DIRS or argv[0] in seen:
                    continue
                if not SUBCOMMAND.fullmatch(argv[1]):
                    continue
                seen.add(argv[0])
                tool = posixpath.basename(argv[0])
                yield Hit(
                    acc.name,
                    f"{name} starts {argv[0]} {argv[1]} as root (no User=), so the program switches to {acc.name} "
                    f"by itself, and its other subcommands do too when root runs them from a shell; {acc.name}'s "
                    f"directories {', '.join(dirs)} move behind private/ (0700 root) under DynamicUser, which "
                    f"{acc.name} cannot enter outside the unit: the admins' {tool} commands using them fail (eacces)",
                    d.location,
                    (name, argv[0]),
                )
