"""Named questions over the graph. Rules and the planner ask these; nobody pokes at raw dicts."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

from dynmigrate.graph.build import Graph
from dynmigrate.graph.kinds import EdgeKind, NodeKind, node_id
from dynmigrate.model.accounts import NOBODY_NAMES, Account, Group
from dynmigrate.model.common import CONFIDENCE_ORDER, Confidence, Location, RelPath
from dynmigrate.model.files import ClosedDir, FileKind, OwnedTree, PathInfo
from dynmigrate.model.paths import is_under, parent_of
from dynmigrate.model.references import Action, BusActivation, Reference, RefKind, Target
from dynmigrate.model.report import Link
from dynmigrate.model.snapshot import Snapshot
from dynmigrate.model.units import LoadState, Unit

BASE_PASSWD_MAX = 99  # base-passwd's static range (www-data is 33)


MANAGED_BASES = {
    "/var/lib": "StateDirectory",
    "/var/cache": "CacheDirectory",
    "/var/log": "LogsDirectory",
    "/run": "RuntimeDirectory",
    "/var/run": "RuntimeDirectory",
    "/etc": "ConfigurationDirectory",
}


def managed_slot(path: str, *, is_dir: bool = True) -> tuple[str, str] | None:
    """("StateDirectory", "redis") for /var/lib/redis and below; None outside the managed bases.

    A file directly in a base (/var/log/foo.log) cannot be managed (facts F4.15), nor can
    anything under the private/ indirection.
    """
    for base, key in MANAGED_BASES.items():
        if is_under(path, base) and path != base:
            rest = path[len(base) + 1 :]
            top = rest.split("/", 1)[0]
            if top == "private" and key != "ConfigurationDirectory":
                # /var/lib/private/X is X's own managed directory under DynamicUser (F2.3)
                inner = rest.split("/", 2)
                if len(inner) < 2 or not inner[1]:
                    return None
                return key, inner[1]
            if "/" not in rest and not is_dir and key != "ConfigurationDirectory":
                return None  # a file straight in the base: only a directory can be managed
            return key, top
    return None


def other_access(info: PathInfo, known: Mapping[str, PathInfo]) -> tuple[bool, bool]:
    """(can read, can enter) for an unprivileged other user, judged along the whole path.

    Every ancestor must let others enter (x). Ancestors the snapshot does not list are root-owned
    and the plan leaves them as they are: they are taken as enterable, which only ever keeps more
    paths private, never fewer.
    """
    parent = parent_of(info.path)
    while parent != "/":
        anc = known.get(parent)
        if anc is not None and anc.kind is FileKind.DIR and not anc.mode & 0o001:
            return False, False
        parent = parent_of(parent)
    return bool(info.mode & 0o004), info.kind is FileKind.DIR and bool(info.mode & 0o001)


class Queries:
    def __init__(self, snapshot: Snapshot, graph: Graph) -> None:
        self.snap = snapshot
        self.g = graph
        self._units: dict[str, Unit] = {str(u.name): u for u in snapshot.units}
        self._trees_by_uid: dict[int, list[OwnedTree]] = {}
        self._trees_by_gid: dict[int, list[OwnedTree]] = {}
        for t in snapshot.trees:
            if t.uid != 0:
                self._trees_by_uid.setdefault(t.uid, []).append(t)
            if t.gid != 0:
                self._trees_by_gid.setdefault(t.gid, []).append(t)
        self._refs: dict[tuple[str, Target], list[Reference]] = {}
        for r in snapshot.references:
            self._refs.setdefault((r.name, r.target), []).append(r)

    @cached_property
    def _shipped(self) -> dict[str, frozenset[str]]:
        """package -> the paths it ships; built on the first package_refs, not at start-up."""
        return {p.name: frozenset(map(str, p.files)) for p in self.snap.packages}

    # -- accounts ---------------------------------------------------------------------------

    def is_system(self, acc: Account) -> bool:
        return self.snap.accounts.system_range.is_system_uid(acc.uid)

    def is_base_account(self, acc: Account) -> bool:
        return 0 < acc.uid <= BASE_PASSWD_MAX

    def candidates(self) -> list[Account]:
        """Static system accounts that get a verdict (root and non-system accounts do not)."""
        return [a for a in self.snap.accounts.accounts if self.is_system(a) or a.name in NOBODY_NAMES]

    def primary_group(self, acc: Account) -> Group | None:
        return self.snap.accounts.group_by_gid(acc.gid)

    def accounts_with_primary_gid(self, gid: int) -> list[Account]:
        return [a for a in self.snap.accounts.accounts if a.gid == gid]

    def own_group(self, acc: Account) -> Group | None:
        """The static group named like the account, its primary group or not. It cannot stay after
        the user is deleted: with a static group of that name and no static user, systemd refuses to
        start the dynamic user (EILSEQ, facts F1.7)."""
        return self.snap.accounts.group(str(acc.name))

    def own_group_users(self, acc: Account) -> list[str]:
        """Who else relies on the account's own group (its other members, the accounts whose primary
        group it is): while there is one, the group must stay. The scan's verdict (DM108) and the
        plan's groupdel are both decided by this list."""
        grp = self.own_group(acc)
        if grp is None:
            return []
        members = sorted({str(m) for m in grp.members if m != acc.name})
        primaries = sorted(
            {f"{a.name} (primary)" for a in self.accounts_with_primary_gid(grp.gid) if a.name != acc.name}
        )
        return members + primaries

    def groups_of(self, acc: Account) -> list[Group]:
        return [g for g in self.snap.accounts.groups if acc.name in g.members]

    # -- units ------------------------------------------------------------------------------

    def unit(self, name: str) -> Unit | None:
        return self._units.get(name)

    def bus_activation(self, name: str) -> BusActivation | None:
        """The D-Bus service file that starts this unit (by its name or an alias) when its bus name is called."""
        unit = self.unit(name)
        names = {name, *(unit.aliases if unit is not None else ())}
        return next((a for a in self.snap.bus_activations if a.unit in names), None)

    def bus_requirement(self, name: str) -> tuple[str, Location | None] | None:
        """Why the service cannot run without owning its bus name: BusName= (systemd waits for the
        name), Type=dbus (the same), or D-Bus activation (callers start it by that name). None when
        the service can run without the bus."""
        unit = self.unit(name)
        if unit is None:
            return None
        bus = unit.value("Service", "BusName")
        if bus is not None:
            return f"owns bus name {bus.value}", bus.location
        typ = unit.value("Service", "Type")
        if typ is not None and typ.value == "dbus":
            return "is Type=dbus", typ.location
        act = self.bus_activation(name)
        if act is not None:
            return f"is D-Bus activated as {act.bus_name}", act.location
        return None

    def pulled_in_by(self, name: str) -> list[str]:
        """Why a unit starts at all: "enabled" (a .wants/.requires link), or the units that name it in
        Wants=, Requires=, BindsTo=, Upholds= or Sockets=. Empty: nothing starts it but a person."""
        unit = self.unit(name)
        if unit is None:
            return []
        names = {name, *unit.aliases}
        out = ["enabled"] if unit.enabled else []
        for other in self.snap.units:
            if other.name in names or other.is_template:
                continue
            keys = [("Unit", k) for k in ("Wants", "Requires", "BindsTo", "Upholds")] + [("Service", "Sockets")]
            if any(names & set(d.value.split()) for sec, key in keys for d in other.values(sec, key)):
                out.append(str(other.name))
        return out

    def link_location(self, link: Link) -> Location | None:
        """Where the evidence of a link is: its source file and line (`file:line` or `file`)."""
        if not link.source.startswith("/"):
            return None
        file, sep, line = link.source.rpartition(":")
        if sep and line.isdigit():
            return Location(RelPath(file), int(line))
        return Location(RelPath(link.source))

    def unit_location(self, name: str) -> Location | None:
        """The unit's fragment: where a finding about the unit as a whole points."""
        unit = self._units.get(name)
        return Location(RelPath(unit.fragment)) if unit is not None and unit.fragment else None

    def systemd_version_location(self) -> Location | None:
        """The file the systemd version was read from (dpkg's status, or a libsystemd-shared-N.so)."""
        source = self.snap.host.systemd_version_source
        if source.startswith("dpkg:"):
            return Location(RelPath("/var/lib/dpkg/status"))
        return Location(RelPath(source)) if source.startswith("/") else None

    def units_of(self, account: str, *, include_masked: bool = False) -> list[Link]:
        """Every unit linked to the account, best evidence first per unit; masked units run nothing."""
        node = node_id(NodeKind.ACCOUNT, account)
        if node not in self.g:
            return []
        links: list[Link] = []
        for src, _dst, data in self.g.in_edges(node, data=True):
            if data.get("kind") != EdgeKind.RUNS_AS.value:
                continue
            unit = self._units.get(str(self.g.nodes[src]["name"]))
            if not include_masked and unit is not None and unit.state is LoadState.MASKED:
                continue
            links.append(
                Link(
                    self.g.nodes[src]["name"],
                    str(data.get("how", "")),
                    Confidence(data["confidence"]),  # every runs-as edge has one (graph/build.py)
                    str(data.get("source", "")),
                    str(data.get("detail", "")),
                )
            )
        return sorted(set(links), key=lambda lk: (lk.unit, lk.rank, lk.how, lk.source, lk.detail))

    def unit_names_of(
        self, account: str, *, min_confidence: Confidence = Confidence.POSSIBLE, include_masked: bool = False
    ) -> list[str]:
        limit = CONFIDENCE_ORDER[min_confidence]
        return sorted({lk.unit for lk in self.units_of(account, include_masked=include_masked) if lk.rank <= limit})

    def units_running_as(self, account: str, *, min_confidence: Confidence = Confidence.POSSIBLE) -> list[Unit]:
        """The units linked to the account at least this surely, by name; masked units run nothing."""
        names = self.unit_names_of(account, min_confidence=min_confidence)
        return [unit for name in names if (unit := self._units.get(name)) is not None]

    def best_link(self, account: str, unit: str) -> Link | None:
        links = [lk for lk in self.units_of(account) if lk.unit == unit]
        return min(links, key=lambda lk: (lk.rank, lk.how)) if links else None

    def accounts_of(self, unit: str) -> list[str]:
        node = node_id(NodeKind.UNIT, unit)
        if node not in self.g:
            return []
        out = set()
        for _src, dst, data in self.g.out_edges(node, data=True):
            if data.get("kind") == EdgeKind.RUNS_AS.value and self.g.nodes[dst].get("kind") == "account":
                out.add(self.g.nodes[dst]["name"])
        return sorted(out)

    def package_of(self, unit: str) -> str | None:
        node = node_id(NodeKind.UNIT, unit)
        if node not in self.g:
            return None
        for src, _dst, data in self.g.in_edges(node, data=True):
            if data.get("kind") == EdgeKind.SHIPS.value:
                return str(self.g.nodes[src]["name"])
        return None

    # -- files ------------------------------------------------------------------------------

    def trees_of(self, acc: Account, *, include_group: bool = True) -> list[OwnedTree]:
        out = list(self._trees_by_uid.get(acc.uid, []))
        grp = self.own_group(acc)
        if include_group and grp is not None:
            out += [t for t in self._trees_by_gid.get(grp.gid, []) if t.uid != acc.uid]
        return sorted(out, key=lambda t: t.top.path)

    def setid_files_of(self, acc: Account) -> list[PathInfo]:
        """setuid files and setgid files (or setgid directories) among the account's own (UID) trees:
        DM304's subjects, and the set-ID files the plan gives to root without their bits."""
        found = {
            info.path: info
            for tree in self.trees_of(acc, include_group=False)
            for info in (tree.top, *tree.special)  # a tree's top can be among its special entries too
            if info.setuid or (info.setgid and info.kind is FileKind.FILE)
        }
        return [found[p] for p in sorted(found)]

    def closed_config_dirs(self, acc: Account) -> list[ClosedDir]:
        """The account's topmost configuration directories other users cannot enter (an ACL aside),
        and whether the plan can bind their content file by file. DM309's verdict and the plan's
        credentials come from this one answer."""
        snap = self.snap
        known = {str(e.path): e for e in snap.etc_entries}
        acls = set(snap.acl_paths)
        closed = [
            e
            for e in self.etc_entries_of(acc)
            if e.kind is FileKind.DIR and e.path not in acls and not other_access(e, known)[1]
        ]
        out: list[ClosedDir] = []
        for d in closed:
            if any(is_under(str(d.path), str(o.path)) and o != d for o in closed):
                continue
            inside = [e for e in snap.etc_entries if is_under(str(e.path), str(d.path)) and e.path != d.path]
            fact = snap.path(d.path)
            flat = all(e.kind is FileKind.FILE and parent_of(e.path) == d.path for e in inside)
            # the walk records every entry of a directory an account owns under /etc (root's too); a
            # path fact, when the directory has one, counts them independently; otherwise no problem
            # (a listing refused, an entry gone or unreadable) may have touched the directory
            listed = (
                fact.entries == len(inside)
                if fact is not None
                else not any(is_under(str(p.location.file), str(d.path)) for p in snap.problems)
            )
            foreign = [e for e in inside if not self._handed_over(acc, e)]
            why = (
                "it has subdirectories or links"
                if not flat
                else "not every entry of it is known to the plan"
                if not (listed and inside)
                else f"{foreign[0].path} ({foreign[0].uid}:{foreign[0].gid} {foreign[0].mode:04o}) is neither "
                "the account's nor a file of root's that other users may read"
                if foreign
                else ""
            )
            out.append(ClosedDir(d, why))
        return out

    def _handed_over(self, acc: Account, e: PathInfo) -> bool:
        """Whether the plan may hand this file of a closed directory to the service: the account's
        own (it could read it), or root's and readable to other users (root's file that others may
        not read could be a link the account made to a secret: never handed over)."""
        grp = self.own_group(acc)
        if e.uid == acc.uid or (grp is not None and e.gid == grp.gid):
            return True
        return e.uid == 0 and e.gid == 0 and bool(e.mode & 0o004)

    def closed_dir_files(self, d: ClosedDir) -> list[PathInfo]:
        """The files the plan binds into the unit's view of a closed directory it handles."""
        if d.why:
            return []
        return [e for e in self.snap.etc_entries if parent_of(e.path) == d.info.path]

    def etc_entries_of(self, acc: Account) -> list[PathInfo]:
        grp = self.own_group(acc)
        own_gid = grp.gid if grp is not None else None
        return [e for e in self.snap.etc_entries if e.uid == acc.uid or (own_gid is not None and e.gid == own_gid)]

    def orphan_trees(self) -> list[OwnedTree]:
        """Trees owned by a UID or GID that no account or group has (a deleted account's files)."""
        uids = {a.uid for a in self.snap.accounts.accounts}
        gids = {g.gid for g in self.snap.accounts.groups}
        return [t for t in self.snap.trees if (t.uid != 0 and t.uid not in uids) or (t.gid != 0 and t.gid not in gids)]

    # -- references -------------------------------------------------------------------------

    def refs_to(self, name: str, target: Target = Target.USER) -> list[Reference]:
        return sorted(self._refs.get((name, target), []))

    def refs_to_account(self, acc: Account) -> list[Reference]:
        """References to the user, and to its own same-named group."""
        out = self.refs_to(acc.name, Target.USER)
        grp = self.primary_group(acc)
        if grp is not None and str(grp.name) == str(acc.name):
            out += self.refs_to(grp.name, Target.GROUP)
        return sorted(set(out))

    def removed_creators(self, acc: Account) -> list[str]:
        """Positive evidence that nothing uses the account: the packages whose maintainer scripts
        create (or purge) it, when every one of them is no longer installed (dpkg status) and nothing
        else names it: no installed package's script, unit, config, cron, sudoers, D-Bus, tmpfiles or
        sysusers file. Empty when that is not proven (no dpkg status, no such package, another name)."""
        installed = {p.name for p in self.snap.packages if p.installed}
        if not installed:
            return []  # no dpkg status read: nothing is known about what is installed
        refs = self.refs_to_account(acc)
        if any(r.kind is not RefKind.PACKAGE_SCRIPT or not r.package or r.package in installed for r in refs):
            return []
        return sorted({r.package for r in refs})

    def package_refs(self, package: str) -> list[Reference]:
        """What a package does with account and group names, whichever way it spells it: the commands
        of its maintainer scripts (adduser, addgroup, systemd-sysusers, chown, dpkg-statoverride), the
        sysusers.d declarations it ships (systemd-sysusers applies them whether or not a script names
        the file), and the host's statoverride entries for paths it ships (dpkg's record of what its
        scripts did, also when a script builds the command from words the scan cannot follow)."""
        shipped = self._shipped.get(package, frozenset())
        confs = {f.rsplit("/", 1)[-1] for f in shipped if "/sysusers.d/" in f and f.endswith(".conf")}

        def made(r: Reference) -> bool:
            if r.kind is RefKind.SYSUSERS:
                return str(r.location.file).rsplit("/", 1)[-1] in confs
            if r.kind is RefKind.STATOVERRIDE:
                return r.path is not None and str(r.path) in shipped
            return r.package == package

        out = [r for r in self.snap.references if made(r)]
        return sorted(out)

    def uses(self, acc: Account) -> list[Reference]:
        """References that use the account (not ones that merely create or declare it)."""
        return [
            r
            for r in self.refs_to_account(acc)
            if r.action not in (Action.CREATES, Action.MENTIONS)
            and r.kind is not RefKind.PACKAGE_SCRIPT
            and not (r.unit and r.action is Action.SWITCHES_TO)
        ]
