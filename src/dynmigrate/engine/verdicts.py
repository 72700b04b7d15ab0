"""Findings -> one verdict per account. The worst effect wins; no unit means no service."""

from __future__ import annotations

from collections.abc import Sequence

from dynmigrate.graph.queries import Queries
from dynmigrate.model.accounts import NOBODY_NAMES, Account
from dynmigrate.model.common import EFFECT_RANK, Effect, Verdict
from dynmigrate.model.findings import Finding
from dynmigrate.model.report import AccountVerdict, Report
from dynmigrate.model.snapshot import Snapshot


def decide(acc: Account, q: Queries, findings: Sequence[Finding]) -> tuple[Verdict, str]:
    if acc.name in NOBODY_NAMES or (q.primary_group(acc) is not None and acc.uid == 65534):
        return Verdict.NEVER, "nobody/nogroup are reported but never migrated"
    if acc.name in q.snap.policy.never_accounts:
        return Verdict.NEVER, f"site policy {q.snap.policy.source} says never touch it"
    never_units = sorted(set(q.unit_names_of(acc.name)) & set(q.snap.policy.never_units))
    if never_units:
        return Verdict.NEVER, f"site policy {q.snap.policy.source} says never touch {', '.join(never_units)}"
    if not q.units_of(acc.name):
        if q.is_base_account(acc):
            return Verdict.NOT_SERVICE, "no unit runs as it (a base-passwd account: kept)"
        if q.uses(acc) or q.trees_of(acc):
            return Verdict.NOT_SERVICE, "no unit runs as it"
        gone = q.removed_creators(acc)
        if gone:
            return Verdict.ORPHAN, (
                f"no unit runs as it, it owns nothing, and only {', '.join(gone)} named it, which is no longer "
                "installed (dpkg status)"
            )
        return Verdict.NOT_SERVICE, (
            "no unit runs as it (kept: finding no link is no proof that nothing uses it; orphan needs the "
            "package that created it to be gone)"
        )
    ranked = sorted(
        (f for f in findings if f.effect is not Effect.INFORMS),
        key=lambda f: (EFFECT_RANK[f.effect], f.rule, f.message),
    )
    acks = sorted({str(f.rule) for f in ranked if f.effect is Effect.ACKNOWLEDGE})
    if not ranked or ranked[0].effect is Effect.ACKNOWLEDGE:
        if acks:
            return Verdict.CONVERTIBLE, f"the plan handles everything; stage 2 asks to acknowledge {', '.join(acks)}"
        return Verdict.CONVERTIBLE, "nothing stands in the way"
    worst = ranked[0]
    verdict = Verdict.BLOCKED if worst.effect is Effect.BLOCKS else Verdict.NEEDS_MANUAL
    return verdict, f"{worst.rule}: {worst.message}"


def make_report(snap: Snapshot, q: Queries, findings: Sequence[Finding]) -> Report:
    by_subject: dict[str, list[Finding]] = {}
    for f in findings:
        by_subject.setdefault(f.subject, []).append(f)
    verdicts: list[AccountVerdict] = []
    for acc in sorted(q.candidates(), key=lambda a: (a.uid, a.name)):
        own = by_subject.get(acc.name, [])
        verdict, reason = decide(acc, q, own)
        grp = q.primary_group(acc)
        links = q.units_of(acc.name)
        verdicts.append(
            AccountVerdict(
                name=acc.name,
                uid=acc.uid,
                gid=acc.gid,
                group=grp.name if grp else str(acc.gid),
                shell=acc.shell,
                home=acc.home,
                verdict=verdict,
                reason=reason,
                units=tuple(sorted({lk.unit for lk in links})),
                links=tuple(links),
                trees=tuple(q.trees_of(acc)),
                references=tuple(q.refs_to_account(acc)),
                findings=tuple(own),
            )
        )
    names = {a.name for a in q.candidates()}
    host = tuple(f for f in findings if f.subject not in names)
    return Report(
        root=snap.root_label,
        host=snap.host,
        system_range=snap.accounts.system_range,
        nss=snap.accounts.nss,
        accounts=tuple(verdicts),
        host_findings=host,
        walked_entries=snap.walked_entries,
        unit_count=len(snap.units),
    )
