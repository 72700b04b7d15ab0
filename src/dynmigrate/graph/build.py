"""Snapshot -> ownership graph. One _add_* step per edge kind; every edge says where it came from."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, TypeAlias

import networkx as nx

from dynmigrate.graph.kinds import EdgeKind, How, NodeKind, node_id
from dynmigrate.model.common import Confidence, Location
from dynmigrate.model.paths import parent_of, rel
from dynmigrate.model.references import Action, RefKind, Target
from dynmigrate.model.snapshot import Snapshot
from dynmigrate.model.units import DIRECTORY_BASES, DIRECTORY_KEYS, LoadState, Unit
from dynmigrate.model.unitsyntax import exec_argv

if TYPE_CHECKING:
    Graph: TypeAlias = nx.MultiDiGraph[str]
else:
    Graph = nx.MultiDiGraph


def _src(loc: Location | None) -> str:
    return str(loc) if loc is not None else ""


def _edge(g: Graph, a: str, b: str, kind: EdgeKind, source: str, **attrs: str) -> None:
    g.add_edge(
        a,
        b,
        key=f"{kind.value}|{source}|{attrs.get('how', '')}|{attrs.get('detail', '')}",
        kind=kind.value,
        source=source,
        **attrs,
    )


def _named(snap: Snapshot, kind: NodeKind, value: str) -> str | None:
    """The account (kind ACCOUNT) or group a User= or Group= value names, by name or by number."""
    if kind is NodeKind.ACCOUNT:
        acc = snap.accounts.account(value)
        if acc is None and value.isdigit():
            acc = snap.accounts.account_by_uid(int(value))
        return None if acc is None else acc.name
    grp = snap.accounts.group(value)
    if grp is None and value.isdigit():
        grp = snap.accounts.group_by_gid(int(value))
    return None if grp is None else grp.name


def _add_accounts(g: Graph, snap: Snapshot) -> None:
    for acc in snap.accounts.accounts:
        g.add_node(
            node_id(NodeKind.ACCOUNT, acc.name),
            kind=NodeKind.ACCOUNT.value,
            name=acc.name,
            uid=acc.uid,
            gid=acc.gid,
            source=_src(acc.location),
        )
    for grp in snap.accounts.groups:
        g.add_node(
            node_id(NodeKind.GROUP, grp.name),
            kind=NodeKind.GROUP.value,
            name=grp.name,
            gid=grp.gid,
            source=_src(grp.location),
        )


def _add_member_of(g: Graph, snap: Snapshot) -> None:
    for acc in snap.accounts.accounts:
        primary = snap.accounts.group_by_gid(acc.gid)
        if primary is not None:
            _edge(
                g,
                node_id(NodeKind.ACCOUNT, acc.name),
                node_id(NodeKind.GROUP, primary.name),
                EdgeKind.MEMBER_OF,
                _src(acc.location),
                how="primary",
            )
    for grp in snap.accounts.groups:
        for member in grp.members:
            if snap.accounts.account(member) is not None:
                _edge(
                    g,
                    node_id(NodeKind.ACCOUNT, member),
                    node_id(NodeKind.GROUP, grp.name),
                    EdgeKind.MEMBER_OF,
                    _src(grp.location),
                    how="supplementary",
                )


def _add_units(g: Graph, snap: Snapshot) -> None:
    for unit in snap.units:
        g.add_node(
            node_id(NodeKind.UNIT, unit.name),
            kind=NodeKind.UNIT.value,
            name=unit.name,
            state=unit.state.value,
            fragment=unit.fragment or "",
            source=unit.found_at or "",
        )


def _user_link(g: Graph, snap: Snapshot, unit: Unit) -> None:
    """User=/Group= (certain), including numeric values; DynamicUser= without User= (F1.9)."""
    u = node_id(NodeKind.UNIT, unit.name)
    dyn = unit.value("Service", "DynamicUser")
    if dyn is not None and unit.flag("Service", "DynamicUser") and unit.value("Service", "User") is None:
        acc = snap.accounts.account(unit.prefix)
        if acc is not None:
            _edge(
                g,
                u,
                node_id(NodeKind.ACCOUNT, acc.name),
                EdgeKind.RUNS_AS,
                _src(dyn.location),
                how=How.USER_DIRECTIVE.value,
                confidence=Confidence.CERTAIN,
                detail=f"DynamicUser=yes without User=: the name is the unit's prefix {unit.prefix}, and the "
                "static account of that name wins (F1.7, F1.9)",
            )
    for key, kind, how in (
        ("User", NodeKind.ACCOUNT, How.USER_DIRECTIVE),
        ("Group", NodeKind.GROUP, How.GROUP_DIRECTIVE),
    ):
        d = unit.value("Service", key)
        name = None if d is None else _named(snap, kind, d.value)
        if d is not None and name is not None:
            _edge(
                g,
                u,
                node_id(kind, name),
                EdgeKind.RUNS_AS,
                _src(d.location),
                how=how.value,
                confidence=Confidence.CERTAIN,
                detail=f"{key}={d.value}",
            )


def _name_related(account: str, *names: str) -> bool:
    """memcache ~ memcached, redis ~ redis-server, _chrony ~ chrony, systemd-network ~ systemd-networkd."""
    a = account.lstrip("_").lower()
    if len(a) < 3:
        return False
    for n in names:
        n = n.lower()
        if not n:
            continue
        if n == a or n.startswith(a) or a.startswith(n):
            return True
        tokens = [t for t in re.split(r"[-_.@]", n) if len(t) >= 3]
        if any(t.startswith(a) or a.startswith(t) for t in tokens):
            return True
    return False


def _package_of(snap: Snapshot, unit: Unit) -> str | None:
    """The package that ships the unit file. Package lists name /lib/systemd/system even on
    usr-merged roots, so units are matched by their file name inside a systemd unit directory."""
    names = {p.rsplit("/", 1)[-1] for p in (unit.fragment, unit.found_at) if p}
    for pkg in snap.packages:
        for f in pkg.files:
            if "/systemd/system/" in f and f.rsplit("/", 1)[-1] in names:
                return pkg.name
    return None


def _add_runs_as(g: Graph, snap: Snapshot) -> None:
    services = [u for u in snap.units if u.type == "service"]
    for unit in services:
        _user_link(g, snap, unit)
    _runs_as_by_reference(g, snap)
    _runs_as_by_package(g, snap, services)
    _runs_as_by_directory_owner(g, snap, services)


def _runs_as_by_reference(g: Graph, snap: Snapshot) -> None:
    """Exec arguments, wrapper scripts and daemon configs (collected as references with unit=)."""
    for ref in snap.references:
        if not ref.unit or ref.action is not Action.SWITCHES_TO:
            continue
        how = {
            RefKind.DAEMON_CONFIG: How.DAEMON_CONFIG,
            RefKind.EXEC_ARGUMENT: How.EXEC_ARGUMENT if ref.confidence == Confidence.CERTAIN else How.WRAPPER_SCRIPT,
        }.get(ref.kind)
        if how is None:
            continue
        kind = NodeKind.ACCOUNT if ref.target is Target.USER else NodeKind.GROUP
        target = node_id(kind, ref.name)
        if target in g:
            _edge(
                g,
                node_id(NodeKind.UNIT, ref.unit),
                target,
                EdgeKind.RUNS_AS,
                _src(ref.location),
                how=how.value,
                confidence=ref.confidence or Confidence.LIKELY,
                detail=ref.detail,
            )


def _runs_as_by_package(g: Graph, snap: Snapshot, services: list[Unit]) -> None:
    """The package that ships the unit creates a related account."""
    creators: dict[str, list[tuple[str, str, Location]]] = {}
    for ref in snap.references:
        if ref.kind is RefKind.PACKAGE_SCRIPT and ref.action is Action.CREATES and ref.target is Target.USER:
            if ref.detail.startswith("systemd-sysusers"):
                continue  # base accounts declared for the whole system, not for this package
            creators.setdefault(ref.package, []).append((ref.name, ref.detail, ref.location))
    pkg_deps = {p.name: p.depends for p in snap.packages}
    for unit in services:
        pkg = _package_of(snap, unit)
        if pkg is None:
            continue
        g.add_node(node_id(NodeKind.PACKAGE, pkg), kind=NodeKind.PACKAGE.value, name=pkg)
        _edge(
            g,
            node_id(NodeKind.PACKAGE, pkg),
            node_id(NodeKind.UNIT, unit.name),
            EdgeKind.SHIPS,
            unit.fragment or unit.found_at or "",
        )
        if unit.value("Service", "User") is None and not unit.may_change_uid:
            # started as root and its bounding set lacks CAP_SETUID: it stays root (radvd), so an
            # account its package creates is not one it runs as
            continue
        for source_pkg in (pkg, *pkg_deps.get(pkg, ())):
            for name, detail, loc in creators.get(source_pkg, []):
                # A package that ships a unit and creates an account says little about who the
                # process runs as (sshd's privilege-separation user, a oneshot helper unit running
                # as root): never more than "possible" on its own.
                related = _name_related(name, unit.prefix, pkg, source_pkg)
                acc_node = node_id(NodeKind.ACCOUNT, name)
                if acc_node not in g:
                    continue
                _edge(
                    g,
                    node_id(NodeKind.UNIT, unit.name),
                    acc_node,
                    EdgeKind.RUNS_AS,
                    _src(loc),
                    how=How.PACKAGE.value,
                    confidence=Confidence.POSSIBLE,
                    detail=f"package {pkg} ships the unit; {source_pkg} creates {name} ({detail[:60]})"
                    + ("" if related else "; the names are unrelated"),
                )


def _runs_as_by_directory_owner(g: Graph, snap: Snapshot, services: list[Unit]) -> None:
    """Ownership of the unit's declared or conventional directories."""
    for unit in services:
        for path, how_detail in _unit_dirs(unit):
            for fact_path in (path,):
                fact = snap.path(fact_path)
                if fact is None or fact.target is None:
                    continue
                uid = fact.target.uid
                acc = snap.accounts.account_by_uid(uid) if uid != 0 else None
                if acc is None or not snap.accounts.system_range.is_system_uid(acc.uid):
                    continue
                _edge(
                    g,
                    node_id(NodeKind.UNIT, unit.name),
                    node_id(NodeKind.ACCOUNT, acc.name),
                    EdgeKind.RUNS_AS,
                    fact_path,
                    how=How.DIRECTORY_OWNERSHIP.value,
                    confidence=Confidence.POSSIBLE,
                    detail=f"{how_detail} {fact_path} is owned by {acc.name}",
                )


def _unit_dirs(unit: Unit) -> list[tuple[str, str]]:
    """Directories a unit declares, writes, or uses by convention (for ownership links)."""
    out: list[tuple[str, str]] = []
    for key in DIRECTORY_KEYS:
        if key == "ConfigurationDirectory":
            continue
        for word, _ in unit.words("Service", key):
            name = word.split(":", 1)[0]
            if name and not name.startswith("/") and ".." not in name.split("/"):
                out.append((f"{DIRECTORY_BASES[key]}/{name}", f"{key}="))
    for d in unit.values("Service", "ReadWritePaths") + unit.values("Service", "ReadWriteDirectories"):
        for word in d.value.split():
            w = word.lstrip("-+")
            if w.startswith("/") and not w.startswith("/etc"):
                out.append((str(rel(w)), "ReadWritePaths="))
    pid = unit.value("Service", "PIDFile")
    if pid is not None and pid.value.startswith("/"):
        parent = parent_of(rel(pid.value))
        if parent not in ("/run", "/var/run"):
            out.append((str(parent), "PIDFile= directory"))
    for base in ("/var/lib", "/var/log", "/var/cache", "/run"):
        out.append((f"{base}/{unit.prefix}", "conventional directory"))
    return list(dict.fromkeys(out))


def _add_owns(g: Graph, snap: Snapshot) -> None:
    for tree in snap.trees:
        pnode = node_id(NodeKind.PATH, tree.top.path)
        g.add_node(
            pnode, kind=NodeKind.PATH.value, name=tree.top.path, mode=tree.top.mode_str(), filekind=tree.top.kind.value
        )
        for ident, is_user in ((tree.uid, True), (tree.gid, False)):
            if ident == 0:
                continue
            if is_user:
                acc = snap.accounts.account_by_uid(ident)
                owner = node_id(NodeKind.ACCOUNT, acc.name) if acc else node_id(NodeKind.UID, str(ident))
            else:
                grp = snap.accounts.group_by_gid(ident)
                owner = node_id(NodeKind.GROUP, grp.name) if grp else node_id(NodeKind.UID, f"g{ident}")
            if owner not in g:
                g.add_node(owner, kind=NodeKind.UID.value, name=owner.split(":", 1)[1])
            _edge(
                g,
                owner,
                pnode,
                EdgeKind.OWNS,
                tree.top.path,
                detail=f"{tree.entries} entries, {tree.bytes} bytes",
                how="uid" if is_user else "gid",
            )


def _add_directories(g: Graph, snap: Snapshot) -> None:
    for unit in snap.units:
        if unit.type != "service" or unit.state is not LoadState.LOADED:
            continue
        u = node_id(NodeKind.UNIT, unit.name)
        for key in DIRECTORY_KEYS:
            for word, d in unit.words("Service", key):
                name = word.split(":", 1)[0]
                if not name or name.startswith("/") or ".." in name.split("/"):
                    continue
                path = f"{DIRECTORY_BASES[key]}/{name}"
                pnode = node_id(NodeKind.PATH, path)
                if pnode not in g:
                    g.add_node(pnode, kind=NodeKind.PATH.value, name=path)
                _edge(g, u, pnode, EdgeKind.DECLARES_DIRECTORY, _src(d.location), detail=f"{key}={word}")


def _add_writes(g: Graph, snap: Snapshot) -> None:
    for unit in snap.units:
        if unit.type != "service" or unit.state is not LoadState.LOADED:
            continue
        u = node_id(NodeKind.UNIT, unit.name)
        for key in ("ReadWritePaths", "ReadWriteDirectories", "PIDFile", "WorkingDirectory"):
            for d in unit.values("Service", key):
                for word in d.value.split() if key.startswith("ReadWrite") else [d.value]:
                    w = word.lstrip("-+!")
                    if not w.startswith("/"):
                        continue
                    path = str(rel(w))
                    pnode = node_id(NodeKind.PATH, path)
                    if pnode not in g:
                        g.add_node(pnode, kind=NodeKind.PATH.value, name=path)
                    _edge(g, u, pnode, EdgeKind.WRITES, _src(d.location), detail=f"{key}={d.value}")
        for key in ("ExecStart",):
            for d in unit.values("Service", key):
                argv = exec_argv(d.value)
                for arg in argv[1:]:
                    for piece in arg.split("="):
                        if piece.startswith(("/var/log/", "/var/lib/", "/run/", "/var/run/")):
                            path = str(rel(piece))
                            pnode = node_id(NodeKind.PATH, path)
                            if pnode not in g:
                                g.add_node(pnode, kind=NodeKind.PATH.value, name=path)
                            _edge(g, u, pnode, EdgeKind.WRITES, _src(d.location), detail=f"{key} argument {piece}")


def _add_references(g: Graph, snap: Snapshot) -> None:
    for ref in snap.references:
        if ref.unit and ref.action is Action.SWITCHES_TO:
            continue  # already a runs-as edge
        kind = NodeKind.ACCOUNT if ref.target is Target.USER else NodeKind.GROUP
        target = node_id(kind, ref.name)
        if target not in g:
            continue  # names that no account has (e.g. a sysusers declaration never applied)
        rnode = node_id(NodeKind.REFERENCE, f"{ref.kind.value}:{ref.location}:{ref.target.value}:{ref.action.value}")
        g.add_node(
            rnode,
            kind=NodeKind.REFERENCE.value,
            name=ref.kind.value,
            refkind=ref.kind.value,
            action=ref.action.value,
            detail=ref.detail,
            source=str(ref.location),
        )
        _edge(g, rnode, target, EdgeKind.REFERENCES, str(ref.location), detail=ref.detail, how=ref.action.value)


def build_graph(snap: Snapshot) -> Graph:
    g: Graph = Graph()
    _add_accounts(g, snap)
    _add_member_of(g, snap)
    _add_units(g, snap)
    _add_runs_as(g, snap)
    _add_owns(g, snap)
    _add_directories(g, snap)
    _add_writes(g, snap)
    _add_references(g, snap)
    return g
