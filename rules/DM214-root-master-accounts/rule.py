"""A root-started master whose package runs its children under several accounts of its own."""

from __future__ import annotations

from collections.abc import Iterator

from dynmigrate.engine.api import Account, Effect, Hit, RuleContext, Severity
from dynmigrate.model.references import Action, Target

ID = "DM214"
NAME = "root-master-accounts"
SEVERITY = Severity.ERROR
EFFECT = Effect.BLOCKS
TAGS = ("units", "process-model")
SUMMARY = (
    "A unit without User= whose package also creates other accounts: a root master that runs its "
    "children under several fixed accounts."
)
FIX = "Keep the accounts static: the forced sandbox would cover the root master and all its children."
FACTS = ("F1.11", "F4.3", "F4.4")


def _siblings(ctx: RuleContext, acc: Account, package: str) -> list[str]:
    """The other accounts the package creates for the daemon (adduser, addgroup, systemd-sysusers in
    its maintainer scripts, or a sysusers.d file it ships), that exist on the host: users (another
    daemon account), and groups the package gives paths to (chown, chgrp, statoverride in its
    scripts, or a host statoverride on a file it ships: postdrop) or puts the account in (frrvty).
    A group it only creates (netdev, for a D-Bus policy or device access) is not one of the
    daemon's accounts."""
    refs = [r for r in ctx.q.package_refs(package) if r.name != acc.name]
    created = {(r.target, r.name) for r in refs if r.action is Action.CREATES}
    given = {r.name for r in refs if r.target is Target.GROUP and r.action in (Action.CHOWNS, Action.OWNS_PATH)}
    out: set[str] = set()
    for target, name in created:
        if target is Target.USER:
            if ctx.snap.accounts.account(name) is not None:
                out.add(f"user {name}")
            continue
        group = ctx.snap.accounts.group(name)
        if group is not None and (name in given or acc.name in group.members):
            out.add(f"group {name}")
    return sorted(out)


def _root_units(ctx: RuleContext, acc: Account) -> dict[str, list[str]]:
    """The account's service units without User= (not already dynamic), by the package shipping them."""
    out: dict[str, list[str]] = {}
    for name in ctx.q.unit_names_of(acc.name):
        unit = ctx.q.unit(name)
        if unit is None or unit.type != "service" or unit.value("Service", "User") is not None:
            continue
        if unit.flag("Service", "DynamicUser"):
            continue  # systemd already runs it as a dynamic user: DM202
        package = ctx.q.package_of(name)
        if package:
            out.setdefault(package, []).append(name)
    return out


def check(ctx: RuleContext) -> Iterator[Hit]:
    for acc in ctx.service_accounts():
        for package, units in sorted(_root_units(ctx, acc).items()):
            siblings = _siblings(ctx, acc, package)
            if not siblings:
                continue
            yield Hit(
                acc.name,
                f"{', '.join(units)} {'has' if len(units) == 1 else 'have'} no User= (a master that starts as root) "
                f"and package {package} also creates {', '.join(siblings)}: a root master serving several accounts; "
                "DynamicUser=yes forces ProtectSystem=strict, ProtectHome=read-only and NoNewPrivileges= on it and on "
                "every child it starts, whatever account the child runs as: its spool, sockets and mailboxes become "
                "read-only",
                ctx.q.unit_location(units[0]),
                tuple(units),
            )
