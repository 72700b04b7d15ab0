"""Render migrate.sh, rollback.sh and dynmigrate-repair from a MigrationPlan.

The shell logic is hand-written and linted (lib.sh, stages.sh, repair.sh, shellcheck-clean);
only the data section is generated, and every value in it goes through shlex.quote.
"""

from __future__ import annotations

import hashlib
import shlex
from importlib import resources

from dynmigrate import __version__
from dynmigrate.model.common import escape
from dynmigrate.model.plan import AccountPlan, MigrationPlan, UnitPlan


def q(value: object) -> str:
    """One shell word with exactly VALUE's bytes. Text with characters a terminal acts on (ESC, C1,
    bidi, zero-width, raw bytes) is written as $'...' with \\xHH escapes, so that the script shows
    them inert and bash still reads back the same bytes."""
    text = str(value)
    if escape(text) == text.replace("\\", "\\\\"):
        return shlex.quote(text)
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        ch = chr(byte)
        if byte < 0x80 and ch.isprintable() and ch not in "'\\":
            out.append(ch)
        else:
            out.append(f"\\x{byte:02x}")
    return "$'" + "".join(out) + "'"


def arr(name: str, values: list[str] | tuple[str, ...]) -> str:
    return f"{name}=({' '.join(q(v) for v in values)})" if values else f"{name}=()"


def _resource(name: str) -> str:
    return resources.files("dynmigrate.render.planfolder").joinpath(name).read_text(encoding="utf-8")


def dropin_file(u: UnitPlan) -> str:
    return f"units/{u.unit}/{u.dropin_name}"


def override_file(acc: str, index: int) -> str:
    return f"files/{acc}/override-{index}"


def unit_hash(effective: str) -> str:
    """The unit as the plan saw it, normalised like stage 0 normalises `systemctl cat` (comments,
    trailing blanks and empty lines aside)."""
    lines = [ln.rstrip() for ln in effective.splitlines() if not ln.lstrip().startswith(("#", ";"))]
    body = "".join(f"{ln}\n" for ln in lines if ln)
    return hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest()


def find_pattern(path: str) -> str:
    """A path as a find -path pattern that matches only itself (glob characters escaped)."""
    return "".join("\\" + c if c in "\\*?[" else c for c in path)


def account_data(a: AccountPlan) -> str:
    runs = list(a.run_units)
    copies = sorted({pair for u in a.units for pair in u.state_configs})
    sources = ["" if o.content is None else override_file(a.account, i) for i, o in enumerate(a.overrides)]
    lines = [
        f"\t{q(a.account)})",
        f"\t\tA_NAME={q(a.account)} A_UID={a.uid} A_GID={a.gid} A_GROUP={q(a.group)} "
        f"A_GROUP_GID={a.group_gid} A_DELETE_GROUP={1 if a.delete_group else 0}",
        f"\t\tA_HOME={q(a.home)} A_SHELL={q(a.shell)} A_GECOS={q(a.gecos)}",
        "\t\t" + arr("A_DROPIN_UNITS", [u.unit for u in a.units]),
        "\t\t" + arr("A_DROPIN_FILES", [dropin_file(u) for u in a.units]),
        "\t\t" + arr("A_DROPIN_PATHS", [u.dropin_path for u in a.units]),
        "\t\t" + arr("A_DROPIN_PROBES", [u.probe for u in a.units]),
        "\t\t" + arr("A_RUN_UNITS", [r[0] for r in runs]),
        "\t\t" + arr("A_RUN_PROBES", [r[1] for r in runs]),
        "\t\t" + arr("A_MOVE", [str(p) for p in a.moved_dirs]),
        "\t\t" + arr("A_RUNTIME", [str(p) for p in a.runtime_dirs]),
        "\t\t" + arr("A_CFG_SRC", [str(c[0]) for c in copies]),
        "\t\t" + arr("A_CFG_DST", [str(c[1]) for c in copies]),
        "\t\t" + arr("A_FIX_PATH", [str(f.path) for f in a.file_fixes]),
        "\t\t" + arr("A_FIX_MODE", [f"{f.new_mode:04o}" for f in a.file_fixes]),
        "\t\t" + arr("A_OVR_TARGET", [str(o.target) for o in a.overrides]),
        "\t\t" + arr("A_OVR_SOURCE", sources),
        "\t\t" + arr("A_OVR_KIND", [o.kind for o in a.overrides]),
        "\t\t" + arr("A_OVR_ORIG", [o.original_sha256 for o in a.overrides]),
        "\t\t" + arr("A_UNIT_HASH", [unit_hash(u.before) for u in a.units]),
        f"\t\tA_MIN_SYSTEMD={a.min_systemd}",
        "\t\t" + arr("A_SO_USER", [s.user for s in a.statoverrides]),
        "\t\t" + arr("A_SO_GROUP", [s.group for s in a.statoverrides]),
        "\t\t" + arr("A_SO_MODE", [f"{s.mode:o}" for s in a.statoverrides]),
        "\t\t" + arr("A_SO_PATH", [str(s.path) for s in a.statoverrides]),
        "\t\t" + arr("A_PIN_PATH", [str(p.path) for p in a.pins]),
        "\t\t" + arr("A_PIN_MODE", [f"{p.mode:o}" for p in a.pins]),
        "\t\t" + arr("A_MANUAL", list(a.confirm_ids)),
        "\t\t" + arr("A_MANIFEST", [str(p) for p in a.manifest_paths]),
        "\t\t;;",
    ]
    return "\n".join(lines)


def data_section(plan: MigrationPlan, files: list[tuple[str, str]]) -> str:
    out = [
        "# ---- data: written by dynmigrate at plan time; every value is quoted ----",
        "# Values are literal on purpose: '$' and backticks inside single quotes must not expand",
        "# (hence the shellcheck directives SC2016/SC1003 below).",
        "# shellcheck disable=SC2016,SC1003",
        arr("ACCOUNTS", [a.account for a in plan.accounts]),
        f"NSS_ACTION={q(plan.nss_action)}",
        "# other systems' trees (DM308) stage 3 does not search, and the same as find -path patterns",
        arr("SKIP_TREES", list(plan.skip_trees)),
        arr("SKIP_PATTERNS", [find_pattern(p) for p in plan.skip_trees]),
        "# sha256 and path of every plan file this script installs",
        "# shellcheck disable=SC2016,SC1003",
        "PLAN_FILES=(",
    ]
    for digest, rel in files:
        out.append(f"\t{q(digest)} {q(rel)}")
    out += [")", "", "# shellcheck disable=SC2016,SC1003", "load_account() {", '\tcase "$1" in']
    out += [account_data(a) for a in plan.accounts]
    out += ['\t*) die "no such account in this plan: $1" ;;', "\tesac", "}", ""]
    return "\n".join(out)


def header(kind: str, plan: MigrationPlan) -> str:
    accounts = ", ".join(a.account for a in plan.accounts)
    return f"""#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# dynmigrate {__version__}: {kind} script for host {escape(plan.host)} (accounts: {escape(accounts)}).
# Generated from a scan of {escape(plan.root)}; review REPORT.md before running anything.
#
#   {
        "migrate.sh [--account NAME]... [--confirm ID]... [--dry-run] STAGE"
        if kind == "migration"
        else "rollback.sh [--account NAME]... [--dry-run] STAGE"
    }
#
# Stages: stage0 (preflight), stage1 (sandbox), stage2 (release the account), stage3 (cleanup).
# Every stage is idempotent: after an interruption, run it again. --dry-run prints every command
# that would change the host, in order and with its values, and changes nothing.
set -euo pipefail
shopt -s nullglob
umask 077
export LC_ALL=C
SCRIPT_NAME={"migrate.sh" if kind == "migration" else "rollback.sh"}
STATE=${{DYNMIGRATE_STATE:-/var/lib/dynmigrate}}
PLAN_DIR=$(cd -- "$(dirname -- "${{BASH_SOURCE[0]}}")" && pwd)
START_TIMEOUT=${{DYNMIGRATE_START_TIMEOUT:-60}}
SETTLE=${{DYNMIGRATE_SETTLE:-5}}
PROBE_TIMEOUT=${{DYNMIGRATE_PROBE_TIMEOUT:-30}}
STAGE=""
A_NAME=""
declare -A CONFIRMED=()

"""


MAIN = r"""
usage() {
	sed -n '3,9p' "$0" | sed 's/^# \{0,1\}//'
	printf 'accounts in this plan: %s\n' "${ACCOUNTS[*]}"
}

dynmigrate_main() {
	# dynmigrate_main PREFIX ACTION ARGS...: PREFIX run (migrate.sh) or undo (rollback.sh)
	local prefix=$1 action=$2 stage="" acct selected=() known
	shift 2
	while [ $# -gt 0 ]; do
		case "$1" in
		--account)
			[ $# -ge 2 ] || die "--account needs a name"
			selected+=("$2")
			shift
			;;
		--account=*) selected+=("${1#--account=}") ;;
		--confirm)
			[ $# -ge 2 ] || die "--confirm needs a step id"
			CONFIRMED[$2]=1
			shift
			;;
		--confirm=*) CONFIRMED[${1#--confirm=}]=1 ;;
		--dry-run) DRY_RUN=1 ;;
		-h | --help)
			usage
			return 0
			;;
		stage0 | stage1 | stage2 | stage3 | preflight | sandbox | release | cleanup)
			stage=$1
			;;
		*) die "unknown argument: $1 (see --help)" ;;
		esac
		shift
	done
	case "$stage" in
	preflight) stage=stage0 ;;
	sandbox) stage=stage1 ;;
	release) stage=stage2 ;;
	cleanup) stage=stage3 ;;
	"")
		usage >&2
		return 2
		;;
	esac
	if [ "${#selected[@]}" -eq 0 ]; then selected=("${ACCOUNTS[@]}"); fi
	for acct in "${selected[@]}"; do
		known=0
		for a in "${ACCOUNTS[@]}"; do [ "$a" != "$acct" ] || known=1; done
		[ "$known" = 1 ] || die "account $acct is not in this plan (${ACCOUNTS[*]})"
	done
	need_root
	if [ "$DRY_RUN" = 1 ]; then
		exec 8>&1
		DRY_FD=8
		log "dry run: every command that would change the host is printed, not run; checks and reads run"
	fi
	run install -d -m 0700 -- "$STATE" "$STATE/accounts"
	verify_plan_files
	if [ "$DRY_RUN" = 0 ]; then
		exec 9>"$STATE/lock"
		flock -n 9 || die "another dynmigrate script is running (lock $STATE/lock)"
	elif [ -e "$STATE/lock" ]; then
		exec 9<"$STATE/lock"
		flock -n 9 || die "another dynmigrate script is running (lock $STATE/lock)"
	fi
	STAGE=$stage
	for acct in "${selected[@]}"; do
		load_account "$acct"
		run install -d -m 0700 -- "$(acct_dir)"
		running_units
		log "$action $stage"
		"${prefix}_$stage"
	done
	A_NAME=""
	log "$action $stage finished for: ${selected[*]}$([ "$DRY_RUN" = 0 ] || echo ' (dry run: nothing changed)')"
}
"""


LIB_PATH = "lib/dynmigrate.sh"


def render_library(plan: MigrationPlan, files: list[tuple[str, str]]) -> str:
    """lib/dynmigrate.sh: the functions, the stages and the plan's data, sourced by both scripts."""
    return (
        "# shellcheck shell=bash\n"
        f"# dynmigrate {__version__}: the library migrate.sh and rollback.sh source (they check its sha256 first).\n"
        f"# Plan for host {plan.host}, from a scan of {plan.root}.\n\n"
        + _resource("lib.sh")
        + "\n"
        + _resource("stages.sh")
        + "\n"
        + data_section(plan, files)
        + MAIN
    )


def wrapper(kind: str, plan: MigrationPlan, library: str) -> str:
    digest = hashlib.sha256(library.encode("utf-8", "surrogateescape")).hexdigest()
    prefix, action = ("run", "running") if kind == "migration" else ("undo", "rolling back")
    return (
        header(kind, plan)
        + f"""LIB="$PLAN_DIR/{LIB_PATH}"
LIB_SHA256={digest}
if [ ! -f "$LIB" ] || [ "$(sha256sum <"$LIB" | cut -d' ' -f1)" != "$LIB_SHA256" ]; then
	echo "$SCRIPT_NAME: $LIB is missing or changed since planning: refusing to run" >&2
	exit 1
fi
PLAN_ID=$LIB_SHA256
# shellcheck source=lib/dynmigrate.sh
source "$LIB"
trap on_exit EXIT
dynmigrate_main {prefix} {q(action)} "$@"
"""
    )


def render_repair() -> str:
    """dynmigrate-repair: the same for every plan (each migrated account's data is in its record)."""
    return (
        "#!/bin/bash\n"
        f"# dynmigrate-repair (dynmigrate {__version__}): installed by stage 2 of a dynmigrate migration.\n"
        "# After a package upgrade recreated a migrated account, delete it again and restart the unit\n"
        "# under its dynamic UID. Run by an APT DPkg::Post-Invoke hook and by `dynmigrate verify --repair`.\n"
        "set -euo pipefail\nshopt -s nullglob\numask 077\nexport LC_ALL=C\n"
        "SCRIPT_NAME=dynmigrate-repair\nSTATE=${DYNMIGRATE_STATE:-/var/lib/dynmigrate}\n"
        "START_TIMEOUT=${DYNMIGRATE_START_TIMEOUT:-60}\nSETTLE=${DYNMIGRATE_SETTLE:-5}\n"
        'PROBE_TIMEOUT=${DYNMIGRATE_PROBE_TIMEOUT:-30}\nSTAGE=repair\nA_NAME=""\nCHECK_ONLY=0\nPLAN_ID=""\n'
        "declare -a A_MOVE=() A_RUN_UNITS=() A_DROPIN_UNITS=()\n\n"
        + _resource("lib.sh")
        + "\n"
        + _resource("repair.sh")
        + '\nrepair_main "$@"\n'
    )


def render_scripts(plan: MigrationPlan, files: list[tuple[str, str]]) -> tuple[str, str, str, str]:
    """(migrate.sh, rollback.sh, dynmigrate-repair, lib/dynmigrate.sh)."""
    library = render_library(plan, files)
    migrate = wrapper("migration", plan, library)
    rollback = wrapper("rollback", plan, library)
    repair = render_repair()
    return migrate, rollback, repair, library


INSTALLED_REPAIR = "/usr/local/sbin/dynmigrate-repair"
REPAIR_STATE = "/var/lib/dynmigrate"


def apt_hook(repair_sha256: str) -> str:
    """The APT hook stage 2 installs. It runs a private copy of the installed dynmigrate-repair (in
    root's own state folder, never the path itself, which could change between the check and the
    run), and only while the copy has the sha256 the plan recorded for it."""
    command = (
        f"if [ -e {INSTALLED_REPAIR} ] && [ -d {REPAIR_STATE} ]; then "
        f"t=$(mktemp -p {REPAIR_STATE} repair.XXXXXX) || exit 0; "
        f"cat -- {INSTALLED_REPAIR} >$t; chmod 0700 $t; "
        f"if [ $(sha256sum <$t | cut -c1-64) = {repair_sha256} ]; then /bin/bash $t --from-apt || true; "
        f"else echo 'dynmigrate: {INSTALLED_REPAIR} does not have the sha256 the plan recorded: "
        "not run (run dynmigrate verify --repair)' >&2; fi; "
        "rm -f -- $t; fi"
    )
    assert '"' not in command  # an apt.conf string cannot hold a double quote
    return (
        "// Written by dynmigrate: after every dpkg run, undo a package script's re-creation of a\n"
        "// migrated account (the static account would silently win over DynamicUser=yes).\n"
        f"// Runs {INSTALLED_REPAIR} only while it has the sha256 the plan recorded.\n"
        "DPkg::Post-Invoke {\n"
        f'  "{command}";\n'
        "};\n"
    )
