"""Review documents of a plan: REPORT.md, plan.json, the userdel plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dynmigrate import __version__
from dynmigrate.engine.catalogue import fix_of
from dynmigrate.model.common import Effect, escape, inert, mask_secrets
from dynmigrate.model.plan import AccountPlan, MigrationPlan, UnitPlan
from dynmigrate.model.security import Exposure, Security
from dynmigrate.model.units import DIRECTORY_BASES
from dynmigrate.render.common import finding_data

STAGE_TEXT = {
    "stage0": "preflight: systemd version, nss-systemd, no static account in 61184-65519, units exist and are not "
    "masked, the account has the UID/GID the plan was made for; back up its passwd/group/shadow/gshadow lines, "
    "statoverrides and an ownership manifest of every path involved",
    "stage1": "sandbox: install the drop-ins while the static account still exists; systemd keeps the static UID "
    "but applies every DynamicUser restriction and moves state into private/; restart and health-check",
    "stage2": "release: stop, re-own config to root, remove statoverrides (saved), pin guarded paths, write the "
    "sysusers/tmpfiles/logrotate overrides, install the upgrade guard, userdel/groupdel, start; check that the "
    "main process runs with a UID in 61184-65519 and that every data file is still there",
    "stage3": "cleanup: find files still owned by the old UID/GID on every real filesystem, re-own them to root "
    "(never delete), and add the UID to the retired-UID ledger",
}
ROLLBACK_TEXT = {
    "stage0": "restore /etc/nsswitch.conf if the preflight changed it (the backup is kept)",
    "stage1": "remove the drop-ins, move private/X back to X by hand (systemd only does it for directories the "
    "unit still declares), restore ownership from the manifest, restart",
    "stage2": "recreate the group and the account with the same GID/UID (and password state), remove the "
    "overrides and pins, restore the statoverrides and the ownership manifest, restart as the static user",
    "stage3": "give every re-owned path its recorded owner back; remove the ledger line",
}


def _fence(text: str, lang: str = "") -> list[str]:
    ticks = "````" if "```" in text else "```"
    return [f"{ticks}{lang}", text.rstrip("\n"), ticks]


def unit_file_kind(fragment: str) -> str:
    """Whose unit file it is, from where it lies (a unit in /etc is the admin's, not the vendor's)."""
    if fragment.startswith(("/etc/", "/run/")):
        return "local unit file" if fragment.startswith("/etc/") else "runtime unit file"
    return "vendor unit file"


def unit_section(u: UnitPlan) -> list[str]:
    out = [f"### {escape(u.unit)}", ""]
    out.append(
        f"- Drop-in: `{escape(u.dropin_path)}` ({unit_file_kind(u.fragment)} `{escape(u.fragment)}` is never edited)"
    )
    out.append(f"- Identity: {u.exec_mode.value}")
    out.append(
        f"- Health probe: `{escape(u.probe)}` ({u.probe_source})"
        if u.probe
        else "- Health probe: none given: only `systemctl is-active` and the restart counter are checked, and "
        "active is not the same as working; pass `--probe UNIT=COMMAND`"
    )
    out.append("")
    out.append("Decisions:")
    out.append("")
    out += [f"- {escape(d)}" for d in u.decisions]
    out.append("")
    out.append("Effective unit, before and after (`systemctl cat`):")
    out.append("")
    out += _fence(escape(u.diff, lines=True) or "(no change)", "diff")
    out.append("")
    return out


def _cell(text: str) -> str:
    return escape(text).replace("|", "\\|")


def mode_changes(a: AccountPlan) -> list[str]:
    """Every owner and mode change the plan causes, before and after, and who makes it."""
    rows: list[tuple[str, str, str, str, str]] = []
    for u in a.units:
        for m in u.directories:
            if m.key == "ConfigurationDirectory" or "%" in m.name:
                continue
            mode = f"{m.mode:04o}" if m.mode is not None else "0755"
            if m.key in ("StateDirectory", "CacheDirectory", "LogsDirectory"):
                base = DIRECTORY_BASES[m.key]  # StateDirectory=foo/bar lives in /var/lib/private/foo/bar
                after = f"dynamic UID {mode}, moved to {base}/private/{m.name} (parent 0700 root)"
            else:
                after = f"dynamic UID {mode}"
            rows.append((str(m.path), m.before or "(created)", after, f"systemd, at each start of {u.unit}", m.key))
    for fx in a.file_fixes:
        rows.append((str(fx.path), f"{fx.uid}:{fx.gid} {fx.mode:04o}", f"0:0 {fx.new_mode:04o}", "stage 2", fx.reason))
    for p in a.pins:
        by = "dpkg, at each upgrade (statoverride pin)"
        rows.append((str(p.path), "(as then)", f"0:0 {p.mode:04o}", by, p.reason))
    for lf in a.leftovers:
        new_uid = 0 if lf.uid == a.uid else lf.uid
        new_gid = 0 if a.delete_group and lf.gid == a.group_gid else lf.gid
        rows.append(
            (
                str(lf.path),
                f"{lf.uid}:{lf.gid}",
                f"{new_uid}:{new_gid}, modes unchanged",
                "stage 3",
                f"left over ({lf.entries} entries, each path re-owned)",
            )
        )
    if not rows:
        return []
    out = [
        "### Mode and owner changes",
        "",
        "No change lets other users read what they could not read before: what they could not read keeps "
        "its mode and reaches the service through a credential or a manual step.",
        "",
        "| Path | Before | After | By | Why |",
        "|---|---|---|---|---|",
    ]
    out += [f"| `{_cell(p)}` | {_cell(b)} | {_cell(af)} | {_cell(by)} | {_cell(why)} |" for p, b, af, by, why in rows]
    out.append("")
    return out


def exposure_lines(unit: str, security: Security) -> list[str]:
    """The unit's exposure before and after, and what improved (systemd's own words per check)."""
    e: Exposure | None = security.units.get(unit)
    if e is None:
        return [f"`systemd-analyze security`: {escape(security.note)}", ""]
    out = [
        f"`systemd-analyze security --offline=yes` exposure: before {e.before}, after {e.after} "
        "(0.0 is tight, 10.0 exposed)",
        "",
    ]
    for title, changes in (("Improved", e.improved), ("Worse", e.worse)):
        if changes:
            out += [f"{title}:", ""]
            out += [
                f"- {escape(c.name)} ({c.exposure_before:.1f} -> {c.exposure_after:.1f}): {escape(c.after)}"
                for c in changes
            ]
            out.append("")
    if not e.improved and not e.worse:
        out += ["No check changed.", ""]
    return out


def evidence_lines(a: AccountPlan) -> list[str]:
    """What the scan found about the account, whatever its verdict: how its units are linked to it, what
    it owns, what names it outside unit files, and the findings."""
    out = ["### Evidence", "", f"Verdict: {a.verdict.value} ({escape(a.reason)})", ""]
    out += ["Units that run as it:", ""]
    out += [
        f"- {escape(lk.unit)} via {escape(lk.how)} [{lk.confidence}] at `{escape(lk.source)}`: {escape(lk.detail)}"
        for lk in a.links
    ] or ["- none found"]
    out += ["", "Paths it owns:", ""]
    out += [
        f"- `{escape(t.top.path)}` {t.top.kind.value} {t.top.uid}:{t.top.gid} {t.top.mode_str()}: {t.files} files, "
        f"{t.dirs} dirs, {t.others} other, {t.bytes} bytes"
        for t in a.trees
    ] or ["- none"]
    out += ["", "References outside unit files:", ""]
    out += [
        f"- {r.kind.value} {r.action.value} ({r.target.value} {escape(r.name)}) at `{escape(str(r.location))}`: "
        f"{escape(r.detail)}"
        for r in a.references
    ] or ["- none"]
    out += ["", "Findings:", ""]
    if not a.findings:
        return [*out, "- none: no rule found anything that stands in the way", ""]
    out += ["| Rule | Effect | Message | Where | Fix |", "|---|---|---|---|---|"]
    for f in a.findings:
        where, message, fix = (
            escape(t).replace("|", "\\|") for t in (str(f.location or "-"), f.message, fix_of(f.rule))
        )
        out.append(f"| {f.rule} | {f.effect.value} | {message} | {where} | {fix} |")
    out.append("")
    return out


def account_section(a: AccountPlan, security: Security) -> list[str]:
    out = [
        f"## {escape(a.account)} (UID {a.uid}, GID {a.gid}): {a.verdict.value}" + (" (FORCED)" if a.forced else ""),
        "",
    ]
    out.append(f"- Units: {', '.join(escape(u.unit) for u in a.units)}")
    out.append(f"- Group: {escape(a.group_note)}")
    out.append("")
    out += evidence_lines(a)
    for u in a.units:
        out += unit_section(u)
        out += exposure_lines(u.unit, security)
    out += mode_changes(a)
    out += credential_lines(a)
    out += override_lines(a)
    out += upgrade_lines(a)
    out += cron_timer_lines(a)
    out += leftover_lines(a)
    out += stage_lines(a)
    out += ["### Risks", ""]
    out += [f"- {escape(r)}" for r in a.risks] or ["- none recorded"]
    out.append("")
    out += hand_check_lines(a)
    return out


def credential_lines(a: AccountPlan) -> list[str]:
    if not a.credentials:
        return []
    out = ["### Credentials", ""]
    for c in a.credentials:
        if c.directory:
            out.append(
                f"- `{escape(c.path)}` for {escape(c.unit)}: `TemporaryFileSystem={escape(c.path)}:ro`, "
                f"with each of its files bound in from its own credential ({escape(c.reason)})"
            )
        else:
            out.append(
                f"- `{escape(c.path)}` for {escape(c.unit)}: "
                f"`LoadCredential={escape(c.name)}:{escape(c.path)}` bound back over the path; or point the "
                f"daemon at `$CREDENTIALS_DIRECTORY/{escape(c.name)}` ({escape(c.reason)})"
            )
    return [
        *out,
        "",
        "systemd copies each credential when the unit starts: an edit of such a file on disk reaches the "
        "daemon at its next restart (systemd 252 and 257 do not copy it again at a reload), and a file added "
        "later to a directory listed here stays unseen by the unit until the plan is made again.",
        "",
    ]


def override_lines(a: AccountPlan) -> list[str]:
    if not (a.overrides or a.statoverrides or a.pins):
        return []
    out = ["### Overrides in /etc and dpkg", ""]
    for o in a.overrides:
        what = "symlink to /dev/null" if o.content is None else "file"
        out.append(f"- `{escape(o.target)}` ({o.kind}, {what}): {escape(o.reason)}")
    for s in a.statoverrides:
        out.append(
            f"- statoverride `{escape(s.user)} {escape(s.group)} {s.mode:o} {escape(s.path)}` is removed in stage "
            "2 (dpkg would abort on an unknown user) and restored by the rollback"
        )
    for p in a.pins:
        out.append(f"- pin `root root {p.mode:o} {escape(p.path)}`: {escape(p.reason)}")
    out.append("")
    return out


def upgrade_lines(a: AccountPlan) -> list[str]:
    out = ["### Package upgrades", ""]
    if a.recreated_by:
        out.append(
            "These maintainer scripts create the account again when the package is upgraded (a static "
            "account silently wins over DynamicUser=yes):"
        )
        out.append("")
        out += [f"- {escape(r)}" for r in a.recreated_by]
        out.append("")
    out.append(
        "Guard: stage 2 installs `/usr/local/sbin/dynmigrate-repair` and an APT `DPkg::Post-Invoke` hook "
        "that deletes a recreated account again and restarts the unit under a dynamic UID; statoverride pins "
        "make guarded `chown`s in package scripts skip the data. Upgrades with plain `dpkg -i` bypass the "
        "hook: run `dynmigrate verify --repair` afterwards."
    )
    out.append("")
    return out


def cron_timer_lines(a: AccountPlan) -> list[str]:
    if not a.suggested:
        return []
    out = ["### Cron jobs as timers (not installed)", ""]
    out.append(
        "Cron cannot run a job as a user that exists only while its unit runs. Stage 2 comments the "
        "jobs out in an /etc copy of the cron file; these units run them under the same dynamic user "
        "(same `User=`, so the same UID as the service). Review, then install them from `suggested/` "
        "(a secret value in a job shows as `<masked>` there: copy it from the cron file):"
    )
    out.append("")
    out += [f"- `suggested/{escape(name)}`" for name, _ in a.suggested]
    out.append("")
    return out


def leftover_lines(a: AccountPlan) -> list[str]:
    if not a.leftovers:
        return []
    out = ["### Files outside the managed directories (stage 3 re-owns them to root)", ""]
    out += [f"- `{escape(lf.path)}` ({lf.uid}:{lf.gid}, {lf.entries} entries)" for lf in a.leftovers]
    out.append("")
    return out


def stage_lines(a: AccountPlan) -> list[str]:
    out = ["### Stages", ""]
    for stage, text in STAGE_TEXT.items():
        out.append(f"- `migrate.sh --account {escape(a.account)} {stage}`: {text}")
        out.append(f"  - rollback `rollback.sh --account {escape(a.account)} {stage}`: {ROLLBACK_TEXT[stage]}")
    out.append("")
    return out


def hand_check_lines(a: AccountPlan) -> list[str]:
    """What a person checks before stage 2: confirmations, manual steps, acknowledgements."""
    out = ["### Check by hand before stage 2", ""]
    if a.confirm_ids:
        out.append(
            "Stage 2 refuses to run until each is confirmed with `--confirm ID` "
            f"(`{' '.join('--confirm ' + escape(i) for i in a.confirm_ids)}`)."
        )
        out.append("")
    if a.manual_steps:
        out += ["Manual steps: a person must do these; the plan cannot:", ""]
        out += [f"- [ ] `{m.id}`: {escape(m.text)}" for m in a.manual_steps]
        out.append("")
    if a.acknowledgements:
        out += ["Acknowledgements: the plan handles these itself; confirm that you read them:", ""]
        out += [f"- [ ] `{m.id}`: {escape(m.text)}" for m in a.acknowledgements]
        out.append("")
    if not a.manual_steps:
        out.append("- [ ] no manual step: nothing beyond the health checks")
    out.append(
        "- [ ] after stage 1, the journal of each unit has no permission errors "
        "(`journalctl -u UNIT -b`), and the service really works (not only `active`)"
    )
    out.append("")
    return out


def render_report(plan: MigrationPlan, security: Security, cited: Sequence[str] = ()) -> str:
    out = [f"# dynmigrate plan for {escape(plan.host)}", ""]
    out.append(f"Scan of `{escape(plan.root)}`, dynmigrate {__version__}, plan schema {plan.schema_version}.")
    out.append(
        f"systemd on the scanned root: {plan.systemd_version or 'unknown'}; "
        f"nss-systemd action in the preflight: {plan.nss_action}."
    )
    out.append("")
    out += [
        "| Account | UID | Units | Verdict | Manual steps | Acknowledgements |",
        "|---|---|---|---|---|---|",
    ]
    for a in plan.accounts:
        out.append(
            f"| {escape(a.account)} | {a.uid} | {', '.join(escape(u.unit) for u in a.units)} | "
            f"{a.verdict.value}{' (forced)' if a.forced else ''} | {len(a.manual_steps)} | "
            f"{len(a.acknowledgements)} |"
        )
    out.append("")
    if plan.refused:
        out += ["Not planned:", ""]
        out += [f"- {escape(r.account)}: {escape(r.why)}" for r in plan.refused]
        out.append("")
    if plan.alternatives:
        out += ["Options for accounts that must stay (drop-ins in `alternatives/`, not installed by the scripts):", ""]
        for alt in plan.alternatives:
            out.append(f"- {escape(alt.unit)} under a new dynamic user `{escape(alt.new_name)}`:")
            out += [f"  - {escape(step)}" for step in alt.steps]
        out.append("")
    out += [
        "How to run it (as root, on the host):",
        "",
        "```",
        "./migrate.sh --dry-run stage0   # every command a stage would run, with its values; nothing changes",
        "./migrate.sh stage0          # preflight and backups",
        "./migrate.sh stage1          # sandbox: drop-ins with the static account still there",
        "./migrate.sh --confirm ID... stage2   # release the account",
        "./migrate.sh stage3          # cleanup of leftovers, retired-UID ledger",
        "./rollback.sh stage3; ./rollback.sh stage2; ./rollback.sh stage1; ./rollback.sh stage0",
        "dynmigrate verify            # afterwards, and after package upgrades",
        "```",
        "",
    ]
    out += cited  # a rehearsal's result (`plan --rehearsal FILE`), already markdown
    for a in plan.accounts:
        out += account_section(a, security)
    return mask_secrets("\n".join(out).rstrip("\n") + "\n")


def userdel_plan(plan: MigrationPlan) -> str:
    out = ["# dynmigrate userdel plan: what stage 2 deletes, in order, and what must hold first.", ""]
    for a in plan.accounts:
        out.append(f"account {a.account} (UID {a.uid}, GID {a.gid})")
        out.append(
            "  preconditions: stages 0 and 1 done; backup present; UID still matches; units stopped; no "
            "process of the UID left; every acknowledgement and manual step confirmed"
        )
        for i in a.confirm_ids:
            out.append(f"  confirm: {i}")
        for s in a.statoverrides:
            out.append(f"  dpkg-statoverride --remove {s.path}   # saved: {s.user} {s.group} {s.mode:o}")
        out.append(f"  userdel {a.account}")
        out.append(f"  groupdel {a.group}" if a.delete_group else f"  # group kept: {a.group_note}")
        out.append(
            f"  rollback: groupadd -g {a.group_gid} {a.group}; useradd -r -M -u {a.uid} -g {a.gid} "
            f"-d {a.home} -s {a.shell} {a.account}"
            if a.delete_group
            else f"  rollback: useradd -r -M -u {a.uid} -g {a.gid} -d {a.home} -s {a.shell} {a.account}"
        )
        out.append("")
    return "\n".join(escape(line) for line in out)


def plan_data(plan: MigrationPlan) -> dict[str, Any]:
    data = {
        "schema_version": plan.schema_version,
        "tool": {"name": "dynmigrate", "version": __version__},
        "root": plan.root,
        "host": plan.host,
        "systemd_version": plan.systemd_version,
        "nss_action": plan.nss_action,
        "accounts": [account_data(a) for a in plan.accounts],
        "refused": [{"account": r.account, "kind": r.kind.value, "why": r.why} for r in plan.refused],
        "alternatives": [
            {
                "account": x.account,
                "unit": x.unit,
                "new_name": x.new_name,
                "dropin": x.dropin_text,
                "steps": list(x.steps),
            }
            for x in plan.alternatives
        ],
        "skip_trees": list(plan.skip_trees),
    }
    return dict(inert(data))


def account_data(a: AccountPlan) -> dict[str, Any]:
    """One account of plan.json (and of the accounts/NAME.json record the scripts read)."""
    return {
        "account": a.account,
        "uid": a.uid,
        "gid": a.gid,
        "group": a.group,
        "group_gid": a.group_gid,
        "home": a.home,
        "shell": a.shell,
        "delete_group": a.delete_group,
        "group_note": a.group_note,
        "verdict": a.verdict.value,
        "forced": a.forced,
        "findings": [finding_data(f) for f in a.findings],
        "blocking": [f.rule for f in a.findings if f.effect is Effect.BLOCKS],
        "units": [unit_data(u) for u in a.units],
        "file_fixes": [
            {
                "path": f.path,
                "from": f"{f.uid}:{f.gid} {f.mode:04o}",
                "to": f"{f.new_uid}:{f.new_gid} {f.new_mode:04o}",
                "reason": f.reason,
            }
            for f in a.file_fixes
        ],
        "credentials": [{"unit": c.unit, "name": c.name, "path": c.path} for c in a.credentials],
        "overrides": [
            {"target": o.target, "kind": o.kind, "replaces": o.replaces, "reason": o.reason, "content": o.content}
            for o in a.overrides
        ],
        "statoverrides": [
            {"user": s.user, "group": s.group, "mode": f"{s.mode:o}", "path": s.path} for s in a.statoverrides
        ],
        "pins": [{"path": p.path, "mode": f"{p.mode:o}", "reason": p.reason} for p in a.pins],
        "supplementary_groups": list(a.supplementary_groups),
        "leftovers": [{"path": lf.path, "uid": lf.uid, "gid": lf.gid, "entries": lf.entries} for lf in a.leftovers],
        "acknowledgements": [{"id": m.id, "rule": m.rule, "text": m.text} for m in a.acknowledgements],
        "manual_steps": [{"id": m.id, "rule": m.rule, "text": m.text} for m in a.manual_steps],
        "confirm": list(a.confirm_ids),
        "risks": list(a.risks),
        "recreated_by": list(a.recreated_by),
        "manifest_paths": list(a.manifest_paths),
        "run_units": [u for u, _probe in a.run_units],
        "moved_dirs": list(a.moved_dirs),
        "runtime_dirs": list(a.runtime_dirs),
        "min_systemd": a.min_systemd,
    }


def unit_data(u: UnitPlan) -> dict[str, Any]:
    return {
        "unit": u.unit,
        "fragment": u.fragment,
        "dropin_path": u.dropin_path,
        "dropin": u.dropin_text,
        "exec_mode": u.exec_mode.value,
        "enabled": u.enabled,
        "pidfile": u.pidfile,
        "state_configs": [[str(a), str(b)] for a, b in u.state_configs],
        "probe": u.probe,
        "probe_source": u.probe_source,
        "decisions": list(u.decisions),
        "directories": [
            {
                "key": m.key,
                "name": m.name,
                "path": m.path,
                "exists": m.exists,
                "declared": m.declared,
                "mode": None if m.mode is None else f"{m.mode:04o}",
                "why": m.why,
            }
            for m in u.directories
        ],
    }
