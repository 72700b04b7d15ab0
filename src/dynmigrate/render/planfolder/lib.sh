# ---- dynmigrate shell library (shared by migrate.sh, rollback.sh and dynmigrate-repair) ----
# Every value that came from the scanned host is single-quoted in the data section below;
# nothing here evaluates text from the host except the health probes chosen at plan time.

readonly DYN_MIN=61184
readonly DYN_MAX=65519
UNITS_STOPPED=0
DRY_RUN=0  # set by --dry-run only (never from the environment: the APT hook runs this library too)
DRY_FD=1

# ---- every change to the host goes through run, run_to or run_append ----------------------
# With --dry-run they print the command with its values (`+ CMD ARGS`, shell-quoted) on stdout
# instead of running it, in the order the stage would run it; everything else (reads, the checks
# before a change) runs as in a real stage, so a dry run stops where the stage would stop. A check
# of what a printed command would have done (a health check after a restart) goes through
# check_after and is printed too. tests/plan/test_dry_run_script.py fails on a command that changes
# the host without them.

dry_print() {
	# dry_print [--to FILE|--append-to FILE] CMD ARGS...: the command as a shell line, values quoted
	local out redirect=""
	case "$1" in
	--to) printf -v redirect ' > %q' "$2" && shift 2 ;;
	--append-to) printf -v redirect ' >> %q' "$2" && shift 2 ;;
	esac
	printf -v out ' %q' "$@"
	printf '+%s%s\n' "$out" "$redirect" >&"$DRY_FD"
}

run() {
	# run CMD ARGS...: a command that changes the host
	if [ "$DRY_RUN" = 1 ]; then
		dry_print "$@"
		return 0
	fi
	"$@"
}

run_to() {
	# run_to FILE CMD ARGS...: CMD's output replaces FILE
	local file=$1
	shift
	if [ "$DRY_RUN" = 1 ]; then
		dry_print --to "$file" "$@"
		return 0
	fi
	"$@" >"$file"
}

run_append() {
	# run_append FILE CMD ARGS...: CMD's output is appended to FILE
	local file=$1
	shift
	if [ "$DRY_RUN" = 1 ]; then
		dry_print --append-to "$file" "$@"
		return 0
	fi
	"$@" >>"$file"
}

dry_list() {
	# dry_list CMD ARGS...: a dry run's own temporary file (in /tmp) with CMD's output; prints its name
	local file
	file=$(mktemp -t dynmigrate-dry-run.XXXXXX)
	"$@" >"$file"
	printf '%s' "$file"
}

dry_forget() {
	rm -f -- "$1"
}

check_after() {
	# check_after CMD ARGS...: a check of what the commands before it did (printed in a dry run)
	if [ "$DRY_RUN" = 1 ]; then
		dry_print check: "$@"
		return 0
	fi
	"$@"
}

A_TRIGGERS=()

log() {
	local line
	line="$(date -u +%Y-%m-%dT%H:%M:%SZ) ${SCRIPT_NAME}[${STAGE:-main}]${A_NAME:+ ${A_NAME}}: $*"
	if [ "$DRY_RUN" = 1 ]; then line="(dry run) $line"; fi
	printf '%s\n' "$line" >&2
	if [ "$DRY_RUN" = 0 ] && [ -d "$STATE" ]; then printf '%s\n' "$line" >>"$STATE/log"; fi
}

die() {
	log "ERROR: $*"
	exit 1
}

on_exit() {
	# a stage that fails after stopping the units must not leave the service down
	local rc=$?
	if [ "$rc" != 0 ] && [ "$UNITS_STOPPED" = 1 ] && [ -n "$A_NAME" ]; then
		if static_user_exists "$A_NAME"; then
			log "the stage failed with the units stopped: starting them again (the account still exists)"
			start_units || true
		elif [ "${STAGE:-}" = stage3 ]; then
			log "the stage failed with the units stopped: starting them again (under their dynamic UID)"
			start_units || true
		else
			log "the stage failed after $A_NAME was deleted: the units are stopped; run this stage again, or" \
				"roll it back with: rollback.sh --account $A_NAME ${STAGE:-stage2}"
		fi
	fi
	return "$rc"
}

need_root() {
	[ "$(id -u)" = 0 ] || die "must run as root"
}

systemd_version() {
	systemctl --version | awk 'NR == 1 { print $2 + 0 }'
}

acct_dir() {
	printf '%s/accounts/%s' "$STATE" "$A_NAME"
}

stage_done() {
	[ -e "$(acct_dir)/stage$1.done" ]
}

mark_done() {
	run_to "$(acct_dir)/stage$1.done" date -u +%Y-%m-%dT%H:%M:%SZ
	log "stage $1 done"
}

unmark_done() {
	run rm -f -- "$(acct_dir)/stage$1.done"
}

# Names are compared as strings, never as patterns.
passwd_field() {
	# passwd_field FILE NAME N: field N of the line whose first field is NAME
	awk -F: -v n="$2" -v f="$3" '$1 == n { print $f; exit }' "$1"
}

account_uid() {
	getent passwd "$1" | cut -d: -f3
}

static_user_exists() {
	# only /etc/passwd: a dynamic user resolved through nss-systemd does not count
	[ -n "$(passwd_field /etc/passwd "$1" 1)" ]
}

static_group_exists() {
	[ -n "$(passwd_field /etc/group "$1" 1)" ]
}

# Verify the files this script installs against the checksums recorded at plan time.
verify_plan_files() {
	local sum rel
	while IFS= read -r sum && IFS= read -r rel; do
		[ -f "$PLAN_DIR/$rel" ] || die "plan file missing: $rel"
		[ "$(sha256sum <"$PLAN_DIR/$rel" | cut -d' ' -f1)" = "$sum" ] || die "plan file changed since planning: $rel"
	done < <(printf '%s\n' "${PLAN_FILES[@]}")
}

# ---- paths --------------------------------------------------------------------------------

managed_split() {
	# managed_split PATH: MB=the managed base (/var/lib, /var/cache, /var/log, /run), MN=the name below it
	# (systemd keeps StateDirectory=foo/bar as /var/lib/private/foo/bar)
	MB="" MN=""
	local b
	for b in /var/lib /var/cache /var/log /run; do
		case "$1" in "$b"/?*)
			MB=$b
			MN=${1#"$b"/}
			return 0
			;;
		esac
	done
	return 1
}

expected_real() {
	# where PATH really is: itself, or below MB/private/MN when PATH goes through a moved directory
	local p=$1 d
	for d in "${A_MOVE[@]}"; do
		if [ -L "$d" ] && managed_split "$d"; then
			case "$p" in
			"$d") printf '%s' "$MB/private/$MN" && return 0 ;;
			"$d"/*) printf '%s' "$MB/private/$MN/${p#"$d"/}" && return 0 ;;
			esac
		fi
	done
	printf '%s' "$p"
}

safe_path() {
	# safe_path PATH: PATH reaches what it reached when it was recorded, through no symlink planted since
	# (a service account that controls a directory could otherwise aim a chown/chmod at /etc/shadow)
	local real p=${1%/}
	real=$(realpath -e -- "$p" 2>/dev/null) || return 1
	[ "$real" = "$(expected_real "$p")" ]
}

# ---- owners and modes: only ever on the recorded inode, never through a link ----------------
# set_attrs reads records of 8 NUL-terminated fields on stdin:
#   UID GID MODE TYPE DEV INO EXPECT PATH
# UID, GID, MODE: the new values, "-" = leave as it is (MODE is octal; never applied to a link).
# TYPE: what PATH must be (find's %y: f d l p s c b). DEV, INO: the recorded inode ("-" = none
# recorded). EXPECT: where the opened file must really be (readlink of its fd), "-" = no check.
# PATH is opened with O_PATH|O_NOFOLLOW (python3), its fd checked against TYPE/DEV/INO/EXPECT,
# and chown/chmod act on that fd through /proc/self/fd: a link swapped in at any moment is
# refused, never followed. Prints one line per refused path; status 1 if any was refused.
# Call it only when no process of the old or the new UID runs (see no_processes_of).

SET_ATTRS_PY='
import os, stat, sys
TYPES = {b"f": stat.S_IFREG, b"d": stat.S_IFDIR, b"l": stat.S_IFLNK, b"p": stat.S_IFIFO,
         b"s": stat.S_IFSOCK, b"c": stat.S_IFCHR, b"b": stat.S_IFBLK}
NAMES = {v: k.decode() for k, v in TYPES.items()}
fields = sys.stdin.buffer.read().split(b"\0")[:-1]
refused = 0
for i in range(0, len(fields) - 7, 8):
    uid, gid, mode, kind, dev, ino, expect, path = fields[i:i + 8]
    name = path.decode("utf-8", "backslashreplace")
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        print(f"{name}: cannot open it ({e.strerror}): left as it is")
        refused += 1
        continue
    try:
        st = os.fstat(fd)
        proc = f"/proc/self/fd/{fd}"
        why = ""
        have = NAMES.get(stat.S_IFMT(st.st_mode), "?")
        if stat.S_IFMT(st.st_mode) != TYPES.get(kind):
            why = f"is of type {have} now, recorded as type {kind.decode()}"
        elif dev != b"-" and (st.st_dev, st.st_ino) != (int(dev), int(ino)):
            # a regular file replaced since (sed -i, an editor, a package upgrade) is the file at
            # PATH when PATH is its only link and no symlink leads to it: then it is changed too,
            # without set-ID bits; anything else (a hard link to another file, a link) is refused
            if (kind == b"f" and stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and st.st_dev == int(dev)
                    and os.readlink(proc.encode()) == path):
                print(f"{name} was replaced since it was recorded: its only link, changed all the same")
                mode = b"-" if mode == b"-" else b"%o" % (int(mode, 8) & 0o1777)
            else:
                why = "is another file than the one recorded (its inode changed)"
        if not why and expect != b"-" and os.readlink(proc.encode()) != expect:
            why = "resolves elsewhere than when it was recorded"
        if why:
            print(f"{name} {why}: left as it is")
            refused += 1
            continue
        if uid != b"-" or gid != b"-":
            os.chown(proc, -1 if uid == b"-" else int(uid), -1 if gid == b"-" else int(gid))
        if mode != b"-" and kind != b"l":
            os.chmod(proc, int(mode, 8))
    except OSError as e:
        print(f"{name}: {e.strerror}: owner or mode not changed")
        refused += 1
    finally:
        os.close(fd)
sys.exit(1 if refused else 0)
'

# The fallback without a usable python3 (bash cannot open with O_NOFOLLOW): lstat, open in a child
# under a timeout (a FIFO swapped in cannot block it), then check the fd's inode against the
# recorded one (or the lstat'ed one) before chown/chmod act on the fd. Links, sockets and devices
# are never opened: chown -h (which never follows), then the inode is checked again.
# shellcheck disable=SC2016 # expanded by the child bash that runs it
SET_ATTR_FD='
if [ "$6" = p ]; then exec 3<>"$1"; else exec 3<"$1"; fi
if [ "$(stat -L -c "%d %i" /proc/self/fd/3)" != "$2" ]; then
	printf "%s is another file than the one recorded (its inode changed): left as it is\n" "$1"
	exit 1
fi
if [ "$5" != - ] && [ "$(readlink /proc/self/fd/3)" != "$5" ]; then
	printf "%s resolves elsewhere than when it was recorded: left as it is\n" "$1"
	exit 1
fi
if [ -n "$3" ]; then chown -- "$3" /proc/self/fd/3 || exit 1; fi
if [ "$4" != - ]; then chmod -- "$4" /proc/self/fd/3 || exit 1; fi
'

type_letter() {
	case "$1" in
	directory) echo d ;;
	"regular file" | "regular empty file") echo f ;;
	"symbolic link") echo l ;;
	fifo) echo p ;;
	socket) echo s ;;
	"character special file") echo c ;;
	"block special file") echo b ;;
	*) echo "?" ;;
	esac
}

set_attrs_sh() {
	local uid gid mode kind dev ino expect path now ndev nino ntype own refused=0
	while IFS= read -r -d '' uid && IFS= read -r -d '' gid && IFS= read -r -d '' mode && IFS= read -r -d '' kind &&
		IFS= read -r -d '' dev && IFS= read -r -d '' ino && IFS= read -r -d '' expect && IFS= read -r -d '' path; do
		if ! now=$(stat -c '%d %i %F' -- "$path" 2>/dev/null); then
			printf '%s: cannot stat it: left as it is\n' "$path"
			refused=1
			continue
		fi
		read -r ndev nino ntype <<<"$now"
		ntype=$(type_letter "$ntype")
		if [ "$ntype" != "$kind" ]; then
			printf '%s is of type %s now, recorded as type %s: left as it is\n' "$path" "$ntype" "$kind"
			refused=1
			continue
		fi
		if [ "$dev" != - ] && [ "$ndev $nino" != "$dev $ino" ]; then
			# as in the python helper: a replaced regular file that is PATH's only link is changed too
			if [ "$kind" = f ] && [ "$ndev" = "$dev" ] && [ "$(stat -c %h -- "$path" 2>/dev/null)" = 1 ] &&
				[ "$(realpath -e -- "$path" 2>/dev/null)" = "$path" ]; then
				printf '%s was replaced since it was recorded: its only link, changed all the same\n' "$path"
				expect=$path
				if [ "$mode" != - ]; then mode=$(printf '%o' "$((8#$mode & 8#1777))"); fi
			else
				printf '%s is another file than the one recorded (its inode changed): left as it is\n' "$path"
				refused=1
				continue
			fi
		fi
		dev=$ndev ino=$nino
		own=""
		if [ "$uid" != - ]; then own=$uid; fi
		if [ "$gid" != - ]; then own=$own:$gid; fi
		case "$kind" in
		f | d | p)
			timeout 10 bash -c "$SET_ATTR_FD" _ "$path" "$dev $ino" "$own" "$mode" "$expect" "$kind" || refused=1
			;;
		*)
			if [ -n "$own" ] && ! chown -h -- "$own" "$path"; then refused=1; fi
			if [ "$(stat -c '%d %i' -- "$path" 2>/dev/null)" != "$dev $ino" ]; then
				printf '%s changed while its owner was set (a link or file swapped in?)\n' "$path"
				refused=1
			elif [ "$mode" != - ] && [ "$kind" != l ] && [ "$((8#$(stat -c %a -- "$path")))" != "$((8#$mode))" ]; then
				printf '%s: mode %s not restored (a %s is never opened without python3)\n' "$path" "$mode" "$kind"
				refused=1
			fi
			;;
		esac
	done
	return "$refused"
}

attrs_python() {
	# the python3 helper needs os.O_PATH (Linux, python >= 3.4); probed once
	if [ -z "${DM_PY:-}" ]; then
		if (cd / && python3 -I -c 'import os; os.O_PATH') >/dev/null 2>&1; then DM_PY=1; else DM_PY=0; fi
	fi
	[ "$DM_PY" = 1 ]
}

set_attrs() {
	local out rc=0 line
	if [ "$DRY_RUN" = 1 ]; then
		set_attrs_print
		return 0
	fi
	if attrs_python; then
		out=$(cd / && python3 -I -c "$SET_ATTRS_PY") || rc=$?
	else
		out=$(set_attrs_sh) || rc=$?
	fi
	if [ -n "$out" ]; then
		while IFS= read -r line; do log "WARNING: $line"; done <<<"$out"
	fi
	return "$rc"
}

set_attrs_print() {
	# what set_attrs would change, one line per record (a dry run)
	local uid gid mode kind dev ino expect path
	while IFS= read -r -d '' uid && IFS= read -r -d '' gid && IFS= read -r -d '' mode && IFS= read -r -d '' kind &&
		IFS= read -r -d '' dev && IFS= read -r -d '' ino && IFS= read -r -d '' expect && IFS= read -r -d '' path; do
		dry_print set_attrs "owner=$uid:$gid" "mode=$mode" "type=$kind" "inode=$dev:$ino" "resolves-to=$expect" "$path"
	done
}

attr_record() {
	# attr_record UID GID MODE TYPE DEV INO EXPECT PATH: one record for set_attrs
	printf '%s\0' "$@"
}

# ---- health -------------------------------------------------------------------------------

unit_pids() {
	# PIDs in the unit's cgroup, from /proc/PID/cgroup (any cgroup layout, inside a container too)
	local cg f line
	cg=$(systemctl show -p ControlGroup --value -- "$1" 2>/dev/null || true)
	[ -n "$cg" ] || return 0
	for f in /proc/[0-9]*/cgroup; do
		while IFS= read -r line; do
			if [ "${line#*:*:}" = "$cg" ]; then
				f=${f#/proc/}
				printf '%s\n' "${f%/cgroup}"
				break
			fi
		done 2>/dev/null <"$f" || true
	done
}

pid_uid() {
	# the real UID of a process (nothing if it is gone)
	local line ruid
	while IFS= read -r line; do
		case "$line" in Uid:*)
			read -r ruid _ <<<"${line#Uid:}"
			printf '%s\n' "$ruid"
			return 0
			;;
		esac
	done 2>/dev/null <"/proc/$1/status" || true
}

unit_uids() {
	local pid
	for pid in $(unit_pids "$1"); do pid_uid "$pid"; done | sort -un
}

main_uid() {
	local pid
	pid=$(systemctl show -p MainPID --value -- "$1")
	[ -n "$pid" ] && [ "$pid" != 0 ] || return 1
	pid_uid "$pid"
}

health() {
	# health UNIT PROBE: active, not restarting, and the probe (if any) answers.
	local unit=$1 probe=$2 state="" i before after
	for i in $(seq 1 "$START_TIMEOUT"); do
		state=$(systemctl is-active -- "$unit" || true)
		case "$state" in active | failed) break ;; esac
		sleep 1
	done
	if [ "$state" != active ]; then
		log "$unit is $state after ${i}s"
		journalctl -n 20 --no-pager --unit="$unit" >&2 || true
		return 1
	fi
	before=$(systemctl show -p NRestarts --value -- "$unit")
	sleep "$SETTLE"
	after=$(systemctl show -p NRestarts --value -- "$unit")
	state=$(systemctl is-active -- "$unit" || true)
	if [ "$state" != active ] || [ "$before" != "$after" ]; then
		log "$unit is not stable (state $state, restarts $before -> $after)"
		journalctl -n 20 --no-pager --unit="$unit" >&2 || true
		return 1
	fi
	if [ -n "$probe" ]; then
		if ! timeout "$PROBE_TIMEOUT" bash -c "$probe" >/dev/null 2>&1; then
			log "$unit is active but its probe failed: $probe (active is not the same as working)"
			return 1
		fi
		log "$unit answers its probe"
	fi
	return 0
}

check_units() {
	# check_units EXPECT: EXPECT is "dynamic" or a static UID
	local expect=$1 i unit probe uids uid ok
	for i in "${!A_RUN_UNITS[@]}"; do
		unit=${A_RUN_UNITS[$i]}
		probe=${A_RUN_PROBES[$i]}
		if skipped_by_condition "$unit"; then
			log "$unit was skipped by its start conditions (Condition*=): not meant to run here, not checked"
			continue
		fi
		health "$unit" "$probe" || return 1
		uids=$(unit_uids "$unit")
		[ -n "$uids" ] || uids=$(main_uid "$unit" || true)
		ok=0
		for uid in $uids; do
			if [ "$expect" = dynamic ]; then
				if [ "$uid" -ge "$DYN_MIN" ] && [ "$uid" -le "$DYN_MAX" ]; then ok=1; fi
			elif [ "$uid" = "$expect" ]; then
				ok=1
			fi
		done
		if [ "$ok" != 1 ]; then
			log "$unit runs with UID(s) $(echo "$uids" | tr '\n' ' ')but $expect was expected"
			return 1
		fi
		log "$unit is healthy (UIDs: $(echo "$uids" | tr '\n' ' '))"
	done
}

skipped_by_condition() {
	# the unit was started and systemd skipped it: a Condition*= did not hold (not a failure)
	local state
	state=$(systemctl show -p ActiveState -p ConditionResult -p ConditionTimestampMonotonic -- "$1" 2>/dev/null || true)
	case "$state" in *ActiveState=inactive*) ;; *) return 1 ;; esac
	case "$state" in *ConditionResult=no*) ;; *) return 1 ;; esac
	case "$state" in *ConditionTimestampMonotonic=0*) return 1 ;; esac
	return 0
}

account_units() {
	# every unit of the account that can run: the drop-in units, a template replaced by its loaded
	# instances (a template itself never runs)
	local unit
	for unit in "${A_DROPIN_UNITS[@]}"; do
		case "$unit" in
		*@.*)
			systemctl list-units --all --plain --no-legend --full -- "${unit%%@.*}@*.${unit##*.}" 2>/dev/null |
				awk '{ print $1 }'
			;;
		*) printf '%s\n' "$unit" ;;
		esac
	done
}

active_units() {
	# the account's units that run now (started at boot, by hand, by a socket, by D-Bus)
	local unit
	while IFS= read -r unit; do
		case "$(systemctl is-active -- "$unit" 2>/dev/null || true)" in
		active | activating | reloading) printf '%s\n' "$unit" ;;
		esac
	done < <(account_units)
}

active_triggers() {
	# the active units that start the account's units on demand (sockets, paths, timers)
	local unit t
	while IFS= read -r unit; do
		for t in $(systemctl show -p TriggeredBy --value -- "$unit" 2>/dev/null || true); do
			if systemctl is-active --quiet -- "$t"; then printf '%s\n' "$t"; fi
		done
	done < <(account_units) | sort -u
}

probe_of() {
	# the probe planned for UNIT, or for the template it is an instance of
	local i template=$1
	case "$1" in *@?*.*) template="${1%%@*}@.${1##*.}" ;; esac
	for i in "${!A_DROPIN_UNITS[@]}"; do
		if [ "${A_DROPIN_UNITS[$i]}" = "$1" ]; then printf '%s' "${A_DROPIN_PROBES[$i]}" && return 0; fi
	done
	for i in "${!A_DROPIN_UNITS[@]}"; do
		if [ "${A_DROPIN_UNITS[$i]}" = "$template" ]; then printf '%s' "${A_DROPIN_PROBES[$i]}" && return 0; fi
	done
}

running_units() {
	# The units a stage stops, starts and checks: the plan's enabled ones, and every unit of the
	# account that runs now or ran when stage 0 recorded them (a unit that ships disabled and was
	# started by hand, by a socket or by D-Bus): what ran keeps running, with the drop-in, and none
	# keeps the old UID busy at userdel; a unit that ran nowhere stays stopped. Sockets and other
	# units that start them on demand are stopped first and started again last (A_TRIGGERS).
	local unit u have record kind
	record=$(acct_dir)/units-at-start
	A_TRIGGERS=()
	while read -r kind unit; do
		[ -n "$unit" ] || continue
		if [ "$kind" = trigger ]; then
			have=0
			for u in "${A_TRIGGERS[@]}"; do [ "$u" != "$unit" ] || have=1; done
			[ "$have" = 1 ] || A_TRIGGERS+=("$unit")
			continue
		fi
		have=0
		for u in "${A_RUN_UNITS[@]}"; do [ "$u" != "$unit" ] || have=1; done
		[ "$have" = 0 ] || continue
		A_RUN_UNITS+=("$unit")
		A_RUN_PROBES+=("$(probe_of "$unit")")
		log "$unit is not enabled but runs (started by hand, a socket or D-Bus): it is restarted and checked too"
	done < <(
		if [ -f "$record" ]; then cat -- "$record"; fi
		units_record
	)
}

units_record() {
	# what runs now, one "unit NAME" or "trigger NAME" per line (stage 0 keeps it with the backup)
	active_units | sed 's/^/unit /'
	active_triggers | sed 's/^/trigger /'
}

reset_start_limit() {
	# reset-failed also resets the unit's start rate limit counter; the health check that follows
	# still sees a unit that keeps failing
	run systemctl reset-failed -- "$1" 2>/dev/null || true
}

start_units() {
	local unit
	# a socket refuses to start while its service runs: what starts units on demand comes first
	for unit in "${A_TRIGGERS[@]}"; do
		log "starting $unit (it starts units of $A_NAME on demand)"
		run systemctl start -- "$unit" || true
	done
	for unit in "${A_RUN_UNITS[@]}"; do
		log "starting $unit"
		reset_start_limit "$unit"
		run systemctl start -- "$unit" || true
	done
	UNITS_STOPPED=0
}

stop_units() {
	local unit
	UNITS_STOPPED=1
	# first what would start them again on demand
	for unit in "${A_TRIGGERS[@]}"; do
		log "stopping $unit (it starts units of $A_NAME on demand)"
		run systemctl stop -- "$unit" || die "cannot stop $unit"
	done
	for unit in "${A_RUN_UNITS[@]}"; do
		log "stopping $unit"
		run systemctl stop -- "$unit" || die "cannot stop $unit"
	done
}

# ---- processes ----------------------------------------------------------------------------

no_processes_of() {
	# no_processes_of UID...: nothing runs as any of them (owners and modes change only then)
	local uid left=""
	for uid in "$@"; do left+=$(procs_of_uid "$uid"); done
	if [ -n "$left" ]; then
		log "processes of UID(s) $* still run:"
		printf '%s\n' "$left" >&2
		return 1
	fi
}

dynamic_uids() {
	# the dynamic UIDs the account's units run under now (call it before stopping them)
	local unit uid
	for unit in "${A_RUN_UNITS[@]}"; do
		for uid in $(unit_uids "$unit"); do
			if [ "$uid" -ge "$DYN_MIN" ] && [ "$uid" -le "$DYN_MAX" ]; then printf '%s\n' "$uid"; fi
		done
	done | sort -un
}

procs_of_uid() {
	# PIDs and names of processes whose real or effective UID is $1 (no procps needed; a process
	# that exits while it is read is skipped)
	local want=$1 f line name ruid euid hit pid
	for f in /proc/[0-9]*/status; do
		name="" hit=0
		while IFS= read -r line; do
			case "$line" in
			Name:*) name=${line#Name:} ;;
			Uid:*)
				read -r ruid euid _ <<<"${line#Uid:}"
				if [ "$ruid" = "$want" ] || [ "$euid" = "$want" ]; then hit=1; fi
				;;
			esac
		done 2>/dev/null <"$f" || true
		if [ "$hit" = 1 ]; then
			pid=${f#/proc/}
			printf '%s %s\n' "${pid%/status}" "${name//[[:space:]]/}"
		fi
	done
}

stray_processes() {
	# processes of the account's UID outside the cgroups of its units
	local ours="" unit
	for unit in "${A_RUN_UNITS[@]}" "${A_DROPIN_UNITS[@]}"; do
		case "$unit" in *@.*) continue ;; esac  # a template has no cgroup of its own
		ours="$ours $(unit_pids "$unit" | tr '\n' ' ')"
	done
	procs_of_uid "$A_UID" | while read -r pid name; do
		case " $ours " in *" $pid "*) ;; *) printf '%s %s\n' "$pid" "$name" ;; esac
	done
}

no_stray_processes() {
	local left
	left=$(stray_processes)
	if [ -n "$left" ]; then
		log "processes still run as UID $A_UID outside the units:"
		printf '%s\n' "$left" >&2
		return 1
	fi
}

# ---- backups and manifests ----------------------------------------------------------------

manifest_paths() {
	# existing paths only, NUL-separated
	local p
	for p in "${A_MANIFEST[@]}"; do
		if [ -e "$p" ] || [ -L "$p" ]; then printf '%s\0' "$p"; fi
	done
}

MANIFEST_FORMAT='%U\t%G\t%m\t%y\t%D\t%i\t%p\0'

write_manifest() {
	# UID GID MODE TYPE DEV INODE PATH, NUL-terminated records, for every path involved (recursively)
	local out=$1 p
	: >"$out.tmp"
	while IFS= read -r -d '' p; do
		find "$p" -xdev -printf "$MANIFEST_FORMAT" >>"$out.tmp" 2>/dev/null ||
			log "WARNING: some entries below $p vanished while they were recorded"
	done < <(manifest_paths)
	mv -f -- "$out.tmp" "$out"
}

restore_manifest() {
	# restore_manifest FILE: give every recorded path its recorded owner and mode back, on the
	# recorded inode only (a path replaced or turned into a link since is left as it is); runtime
	# directories under /run that vanished with the unit are created again.
	local file=$1 uid gid mode type dev ino path expect
	[ -s "$file" ] || return 0
	while IFS=$'\t' read -r -d '' uid gid mode type dev ino path; do
		expect=-
		if [ ! -e "$path" ] && [ ! -L "$path" ] && [ "$type" = d ]; then
			case "$path" in
			/run/* | /var/run/*)
				run mkdir -p -- "$path"
				log "recreated runtime directory $path"
				dev=- ino=- expect=$(realpath -m -- "$path")
				;;
			esac
		fi
		[ -e "$path" ] || [ -L "$path" ] || [ "$expect" != - ] || continue
		if [ "$type" = d ] && [ -L "$path" ] && [ "$(expected_real "$path")" != "$path" ]; then
			path="$path/" # a moved directory, seen through its private/ symlink: restore the directory itself
		fi
		if [ "$type" = l ]; then mode=-; fi
		attr_record "$uid" "$gid" "$mode" "$type" "$dev" "$ino" "$expect" "$path"
	done <"$file" | set_attrs || log "WARNING: some recorded paths were left as they are (see above)"
}

data_list() {
	# every file in the moved directories (for the "data intact" check); names are data, never code
	local d entry
	for d in "${A_MOVE[@]}"; do
		if [ -d "$d/" ]; then
			while IFS= read -r -d '' entry; do
				printf '%s/%s\0' "$d" "$entry"
			done < <(find "$d/" -xdev -type f -printf '%P\0')
		fi
	done | sort -z
}

BACKUP_FILES=(passwd shadow group gshadow member-of statoverride moved-dirs manifest plan-id units-at-start)

seal() {
	# seal MARKER FILE...: write MARKER (its first line the date, then the sha256 of every FILE);
	# a backup counts only with its marker, and only while every file still has its recorded hash
	local dir=$1 marker=$2
	shift 2
	{
		date -u +%Y-%m-%dT%H:%M:%SZ
		(cd "$dir" && sha256sum -- "$@")
	} >"$dir/$marker.tmp"
	mv -f -- "$dir/$marker.tmp" "$dir/$marker"
}

backup_intact() {
	# backup_intact MARKER: the files MARKER seals are all there with their recorded content
	local dir sums
	dir=$(acct_dir)
	[ -e "$dir/$1" ] || die "the backup is missing ($dir/$1): run stage0 first"
	sums=$(tail -n +2 "$dir/$1")
	[ -n "$sums" ] || die "$dir/$1 records no checksums (made by an older dynmigrate?): refusing to rely on it"
	(cd "$dir" && sha256sum --quiet --strict -c - <<<"$sums" >&2) ||
		die "the backup in $dir was changed or deleted since it was made (see above): refusing"
}

# shellcheck disable=SC2016 # awk programs, run or printed by run_to
backup_account() {
	local dir d
	dir=$(acct_dir)
	run install -d -m 0700 -- "$dir"
	if [ -e "$dir/backup.done" ]; then
		log "backup exists since $(head -n 1 "$dir/backup.done"): kept (never overwritten)"
		backup_intact backup.done
		return 0
	fi
	static_user_exists "$A_NAME" || die "no static account $A_NAME to back up"
	run_to "$dir/passwd" awk -F: -v n="$A_NAME" '$1 == n' /etc/passwd
	run_to "$dir/shadow" awk -F: -v n="$A_NAME" '$1 == n' /etc/shadow
	run_to "$dir/group" awk -F: -v n="$A_GROUP" '$1 == n' /etc/group
	if [ -f /etc/gshadow ]; then run_to "$dir/gshadow" awk -F: -v n="$A_GROUP" '$1 == n' /etc/gshadow; else run_to "$dir/gshadow" true; fi
	run_to "$dir/member-of" awk -F: -v u="$A_NAME" '{ n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) print $1 }' /etc/group
	if [ -f /var/lib/dpkg/statoverride ]; then
		run_to "$dir/statoverride" awk -v u="$A_NAME" -v g="$A_GROUP" '$1 == u || $2 == g' /var/lib/dpkg/statoverride
	else
		run_to "$dir/statoverride" true
	fi
	run_to "$dir/moved-dirs" true
	for d in "${A_MOVE[@]}"; do
		# real directories, and absent ones: systemd creates those in private/ and links them, and
		# after a rollback the static unit must find them where it looks, not behind private/ (0700)
		if { [ -d "$d" ] && [ ! -L "$d" ]; } || { [ ! -e "$d" ] && [ ! -L "$d" ]; }; then
			run_append "$dir/moved-dirs" printf '%s\n' "$d"
		fi
	done
	run write_manifest "$dir/manifest"
	run_to "$dir/units-at-start" units_record
	run chmod 0600 -- "$dir/passwd" "$dir/shadow" "$dir/group" "$dir/gshadow" "$dir/member-of" "$dir/statoverride" \
		"$dir/moved-dirs" "$dir/manifest" "$dir/units-at-start"
	run_to "$dir/plan-id" printf '%s\n' "$PLAN_ID"
	run seal "$dir" backup.done "${BACKUP_FILES[@]}"
	if [ "$DRY_RUN" = 0 ]; then
		log "backed up passwd/group/shadow/gshadow lines, statoverrides and an ownership manifest of $(tr -cd '\0' <"$dir/manifest" | wc -c) paths"
	fi
}

same_plan() {
	# the state on this host was made by this plan (a rollback must use the plan that migrated)
	local dir
	dir=$(acct_dir)
	[ -e "$dir/plan-id" ] || return 0
	[ "$(cat "$dir/plan-id")" = "$PLAN_ID" ] ||
		die "this host's state for $A_NAME was made by another plan ($(cat "$dir/plan-id")): use that plan folder"
}

check_data_intact() {
	local dir missing current
	dir=$(acct_dir)
	[ -f "$dir/data.list" ] || return 0
	current=$(mktemp)
	data_list >"$current" || { rm -f -- "$current"; die "cannot list the data again"; }
	missing=$(comm -z -23 "$dir/data.list" "$current" | tr '\0' '\n')
	rm -f -- "$current"
	if [ -n "$missing" ]; then
		log "files missing after the move:"
		printf '%s\n' "$missing" >&2
		return 1
	fi
	log "data intact: every file there when the units stopped is still there"
}

# ---- directories --------------------------------------------------------------------------

move_into_private() {
	# systemd >= 236 does this itself at the first start; older ones need it done by hand
	local d
	for d in "${A_MOVE[@]}"; do
		managed_split "$d" || continue
		if [ -d "$d" ] && [ ! -L "$d" ]; then
			if [ -L "$MB/private" ]; then die "$MB/private is a symlink: refusing to move data through it"; fi
			run mkdir -p -- "$MB/private/$(dirname -- "$MN")"
			run chmod 0700 -- "$MB/private"
			run mv -T -- "$d" "$MB/private/$MN"
			run ln -s -- "$(realpath -m --relative-to="$(dirname -- "$d")" "$MB/private/$MN")" "$d"
			log "moved $d into $MB/private/$MN"
		fi
	done
}

drop_private_parents() {
	# StateDirectory=foo/bar: systemd made $MB/private/foo (0755 root) to hold bar; once bar is back,
	# an empty foo goes too (only empty directories, never through a link)
	local p=$MN
	while [ "${p%/*}" != "$p" ]; do
		p=${p%/*}
		if [ -L "$MB/private/$p" ] || [ ! -d "$MB/private/$p" ]; then break; fi
		run rmdir --ignore-fail-on-non-empty -- "$MB/private/$p"
	done
}

move_back_one() {
	if [ -L "$1" ] && [ -d "$MB/private/$MN" ]; then
		run rm -f -- "$1"
		run mv -T -- "$MB/private/$MN" "$1"
		log "moved $MB/private/$MN back to $1"
		drop_private_parents
	elif [ ! -e "$1" ] && [ ! -L "$1" ] && [ -d "$MB/private/$MN" ]; then
		run mv -T -- "$MB/private/$MN" "$1"
		log "moved $MB/private/$MN back to $1 (an earlier run stopped between its steps)"
		drop_private_parents
	elif [ -L "$1" ] && [ ! -e "$1" ]; then
		log "WARNING: $1 is a dangling symlink; left as it is"
	fi
}

move_back_from_private() {
	# systemd moves private/X back only for directories the unit still declares (v243+); the vendor
	# unit usually declares none of them, so this is done here, and only for directories that were
	# real directories or absent before the migration (a unit already on DynamicUser keeps its
	# private/ layout).
	# Safe to re-run when killed between its steps.
	local d list
	list=$(acct_dir)/moved-dirs
	for d in "${A_MOVE[@]}"; do
		if [ -f "$list" ] && ! grep -Fxq -- "$d" "$list"; then continue; fi
		managed_split "$d" && move_back_one "$d"
	done
	for d in "${A_RUNTIME[@]}"; do
		managed_split "$d" || continue
		# RuntimeDirectoryPreserve=restart under DynamicUser: at stop systemd removes
		# /run/private/NAME but leaves its link /run/NAME -> private/NAME behind, and the static unit
		# then fails to create its runtime directory there. Only that link, dangling, is removed.
		if [ -L "$d" ] && [ ! -e "$d" ] && [ "$(realpath -m -- "$d")" = "$MB/private/$MN" ]; then
			run rm -f -- "$d"
			log "removed $d, a link into $MB/private that systemd left dangling when it removed the runtime directory"
			continue
		fi
		move_back_one "$d"
	done
	return 0
}

# ---- configuration files the daemon rewrites as its state ---------------------------------

copy_state_configs() {
	# A daemon that rewrites its configuration file as its state (redis-sentinel) cannot keep it in
	# /etc, which becomes root's: the drop-in starts it with a copy in its state directory. The copy
	# is made by the account itself (setpriv, with its own group only), so that it reads and writes
	# only what the account could, whatever links it planted; the mode is the file's. A copy that
	# exists is kept (the daemon's state since).
	local i src dst
	for i in "${!A_CFG_SRC[@]}"; do
		src=${A_CFG_SRC[$i]} dst=${A_CFG_DST[$i]}
		if [ -e "$dst" ] || [ -L "$dst" ]; then
			log "$dst exists: kept as the daemon's configuration"
			continue
		fi
		if [ ! -f "$src" ] || [ -L "$src" ]; then
			die "$src is not a regular file: cannot give the daemon its copy in $dst"
		fi
		log "copying $src to $dst as $A_NAME: the daemon rewrites it, and keeps it there from now on"
		run setpriv --reuid="$A_UID" --regid="$A_GID" --clear-groups -- cp -P --no-clobber --preserve=mode -- "$src" "$dst" ||
			die "could not copy $src to $dst as $A_NAME"
	done
}

drop_state_copies() {
	# rollback of stage 1: the daemon reads its file in /etc again. A copy it never changed is
	# removed; one it rewrote since is kept (its state since stage 1), with a warning
	local i src dst
	for i in "${!A_CFG_SRC[@]}"; do
		src=${A_CFG_SRC[$i]} dst=${A_CFG_DST[$i]}
		if [ ! -f "$dst" ] || [ -L "$dst" ]; then continue; fi
		if cmp -s -- "$src" "$dst"; then
			run rm -f -- "$dst"
			log "removed $dst, the unchanged copy of $src"
		else
			log "WARNING: $dst holds what the daemon wrote since stage 1, and it reads $src again: compare them"
		fi
	done
}

# ---- files installed by the plan ----------------------------------------------------------

install_file() {
	# install_file SOURCE TARGET: idempotent copy of a plan file, mode 0644
	local src=$1 dst=$2
	if [ -f "$dst" ] && cmp -s -- "$src" "$dst"; then return 0; fi
	run install -D -m 0644 -- "$src" "$dst"
	log "installed $dst"
}

remove_ours() {
	# remove_ours TARGET SOURCE: remove a file only if it is the one the plan installed
	local dst=$1 src=$2
	if [ -L "$dst" ] && [ "$(readlink -- "$dst")" = /dev/null ] && [ -z "$src" ]; then
		run rm -f -- "$dst"
		log "removed mask $dst"
	elif [ -f "$dst" ] && [ -n "$src" ] && cmp -s -- "$PLAN_DIR/$src" "$dst"; then
		run rm -f -- "$dst"
		log "removed $dst"
	elif [ -e "$dst" ] || [ -L "$dst" ]; then
		log "WARNING: $dst was changed after dynmigrate installed it: left in place"
	fi
}

install_dropins() {
	local i dst
	for i in "${!A_DROPIN_UNITS[@]}"; do
		dst=${A_DROPIN_PATHS[$i]}
		install_file "$PLAN_DIR/${A_DROPIN_FILES[$i]}" "$dst"
	done
	run systemctl daemon-reload
}

remove_dropins() {
	local i dst
	for i in "${!A_DROPIN_UNITS[@]}"; do
		dst=${A_DROPIN_PATHS[$i]}
		remove_ours "$dst" "${A_DROPIN_FILES[$i]}"
		run rmdir --ignore-fail-on-non-empty -- "${dst%/*}" 2>/dev/null || true
	done
	run systemctl daemon-reload
}

override_key() {
	# a file name for the saved original of an override target
	printf '%s' "$1" | sha256sum | cut -c1-16
}

check_overrides() {
	# the targets are as they were when the plan was made (or already ours): refuse otherwise
	local i t sum
	for i in "${!A_OVR_TARGET[@]}"; do
		t=${A_OVR_TARGET[$i]}
		if [ -L "$t" ] && [ "$(readlink -- "$t")" = /dev/null ]; then continue; fi
		[ -e "$t" ] || continue
		if [ -n "${A_OVR_SOURCE[$i]}" ] && cmp -s -- "$PLAN_DIR/${A_OVR_SOURCE[$i]}" "$t"; then continue; fi
		sum=$(sha256sum <"$t" | cut -d' ' -f1)
		[ "$sum" = "${A_OVR_ORIG[$i]}" ] ||
			die "$t changed since planning (or another plan edited it): re-plan before stage 2"
	done
}

install_overrides() {
	local i t dir
	dir=$(acct_dir)
	for i in "${!A_OVR_TARGET[@]}"; do
		t=${A_OVR_TARGET[$i]}
		if [ -e "$t" ] || [ -L "$t" ]; then
			if [ ! -e "$dir/override-orig.$(override_key "$t")" ] && [ ! -e "$dir/override-premasked.$(override_key "$t")" ]; then
				if [ -L "$t" ] && [ "$(readlink -- "$t")" = /dev/null ]; then
					run_to "$dir/override-premasked.$(override_key "$t")" true
				elif [ -z "${A_OVR_SOURCE[$i]}" ] || ! cmp -s -- "$PLAN_DIR/${A_OVR_SOURCE[$i]}" "$t"; then
					run cp -a -- "$t" "$dir/override-orig.$(override_key "$t")"
				fi
			fi
		fi
		if [ -z "${A_OVR_SOURCE[$i]}" ]; then
			if [ "$(readlink -- "$t" 2>/dev/null)" != /dev/null ]; then
				run mkdir -p -- "${t%/*}"
				run rm -f -- "$t"
				run ln -s /dev/null "$t"
				log "masked $t (${A_OVR_KIND[$i]})"
			fi
		else
			install_file "$PLAN_DIR/${A_OVR_SOURCE[$i]}" "$t"
		fi
	done
}

remove_overrides() {
	local i t dir key
	dir=$(acct_dir)
	for i in "${!A_OVR_TARGET[@]}"; do
		t=${A_OVR_TARGET[$i]}
		key=$(override_key "$t")
		if [ -e "$dir/override-premasked.$key" ]; then
			log "$t was masked before the migration: left masked"
			continue
		fi
		remove_ours "$t" "${A_OVR_SOURCE[$i]}"
		if [ -e "$dir/override-orig.$key" ] && [ ! -e "$t" ] && [ ! -L "$t" ]; then
			run cp -a -- "$dir/override-orig.$key" "$t"
			log "restored the original $t"
		fi
	done
}

# ---- accounts -----------------------------------------------------------------------------

SECRET_RE='^[[:space:]]*[A-Za-z0-9_.-]*(password|passwd|secret|token|api[_-]?key|requirepass|masterauth|private[_-]?key|auth[_-]?key|access[_-]?key)[A-Za-z0-9_.-]*[[:space:]]*([=:]|[[:space:]])[[:space:]]*[^[:space:]]'

fix_files() {
	# callers stop every process of the account first
	local i p kind other cur
	for i in "${!A_FIX_PATH[@]}"; do
		p=${A_FIX_PATH[$i]}
		[ -e "$p" ] || [ -L "$p" ] || continue
		if [ -L "$p" ] || ! safe_path "$p"; then
			die "$p is a symlink or resolves elsewhere now (planted since the plan?): refusing to chown/chmod it"
		fi
		if [ -d "$p" ]; then kind=d other=005; elif [ -f "$p" ]; then kind=f other=004; else die "$p is neither a file nor a directory now: refusing"; fi
		# never make readable (or, for a directory, listable or enterable) to other users what was not:
		# its mode may have changed since planning (the planner judged the mode it saw then)
		cur=$(stat -c %a -- "$p") || die "cannot stat $p"
		if [ $((0${A_FIX_MODE[$i]} & ~8#$cur & other)) != 0 ]; then
			die "$p is mode $cur now and others could not read it (the plan would make it ${A_FIX_MODE[$i]}): re-plan"
		fi
		if [ "$kind" = f ] && [ $((0${A_FIX_MODE[$i]} & 004)) != 0 ] && grep -Eiq -- "$SECRET_RE" "$p" 2>/dev/null; then
			die "$p holds a secret now (it did not when the plan was made): re-plan so that it gets LoadCredential="
		fi
		attr_record 0 0 "${A_FIX_MODE[$i]}" "$kind" - - "$(expected_real "$p")" "$p" | set_attrs ||
			die "$p changed while it was re-owned (a link swapped in?): refusing"
		log "re-owned $p to root, mode ${A_FIX_MODE[$i]}"
	done
}

remove_statoverrides() {
	# every statoverride naming the account or its group (the live list, not only the plan's), then
	# root-owned pins where package scripts skip their chown when an override exists
	local i user group mode path
	command -v dpkg-statoverride >/dev/null || return 0
	while read -r user group mode path; do
		if [ "$user" = "$A_NAME" ] || { [ "$A_DELETE_GROUP" = 1 ] && [ "$group" = "$A_GROUP" ]; }; then
			run dpkg-statoverride --remove "$path"
			log "removed statoverride '$user $group $mode $path' (restored by the rollback)"
		fi
	done < <(dpkg-statoverride --list 2>/dev/null || true)
	for i in "${!A_PIN_PATH[@]}"; do
		if ! dpkg-statoverride --list "${A_PIN_PATH[$i]}" >/dev/null 2>&1; then
			run dpkg-statoverride --add root root "${A_PIN_MODE[$i]}" "${A_PIN_PATH[$i]}"
			log "pinned ${A_PIN_PATH[$i]} as root root ${A_PIN_MODE[$i]} so that package scripts skip their chown"
		fi
	done
}

restore_statoverrides() {
	local i line user group mode path saved
	command -v dpkg-statoverride >/dev/null || return 0
	for i in "${!A_PIN_PATH[@]}"; do
		line=$(dpkg-statoverride --list "${A_PIN_PATH[$i]}" 2>/dev/null || true)
		if [ "$line" = "root root ${A_PIN_MODE[$i]} ${A_PIN_PATH[$i]}" ]; then
			run dpkg-statoverride --remove "${A_PIN_PATH[$i]}"
			log "removed pin of ${A_PIN_PATH[$i]}"
		fi
	done
	saved=$(acct_dir)/statoverride.before-stage2
	[ -f "$saved" ] || saved=$(acct_dir)/statoverride
	[ -f "$saved" ] || return 0
	while read -r user group mode path; do
		[ -n "$path" ] || continue
		if [ "$user" = "$A_NAME" ] || [ "$group" = "$A_GROUP" ]; then
			if ! dpkg-statoverride --list "$path" >/dev/null 2>&1; then
				run dpkg-statoverride --add "$user" "$group" "$mode" "$path"
				log "restored statoverride of $path"
			fi
		fi
	done <"$saved"
}

delete_account() {
	if static_user_exists "$A_NAME"; then
		[ "$(account_uid "$A_NAME")" = "$A_UID" ] || die "$A_NAME has UID $(account_uid "$A_NAME"), not $A_UID: refusing"
		run userdel -- "$A_NAME"
		log "deleted user $A_NAME (files are never removed)"
	fi
	if [ "$A_DELETE_GROUP" = 1 ] && static_group_exists "$A_GROUP"; then
		run groupdel -- "$A_GROUP"
		log "deleted group $A_GROUP"
	fi
	if command -v nscd >/dev/null; then run nscd -i passwd -i group 2>/dev/null || true; fi
}

recreate_account() {
	# from the backed-up lines: same UID/GID, home, shell, comment, password state and aging
	local dir gid_line home shell gecos grp hash lastchg min max warn inactive expire
	dir=$(acct_dir)
	[ -s "$dir/passwd" ] || die "no backup of $A_NAME in $dir: cannot recreate it"
	# any partial state: the group or the user may exist already (an interrupted run, a package
	# script); what exists must have the recorded IDs, what is missing is created
	if [ -s "$dir/group" ]; then
		gid_line=$(cut -d: -f3 "$dir/group")
		if static_group_exists "$A_GROUP"; then
			[ "$(passwd_field /etc/group "$A_GROUP" 3)" = "$gid_line" ] ||
				die "group $A_GROUP exists with GID $(passwd_field /etc/group "$A_GROUP" 3), not $gid_line: fix it by hand, then run the rollback again"
		else
			if getent group "$gid_line" >/dev/null; then die "GID $gid_line is taken: $(getent group "$gid_line")"; fi
			run groupadd -g "$gid_line" -- "$A_GROUP"
			log "recreated group $A_GROUP with GID $gid_line"
		fi
	fi
	if static_user_exists "$A_NAME"; then
		[ "$(account_uid "$A_NAME")" = "$A_UID" ] ||
			die "user $A_NAME exists with UID $(account_uid "$A_NAME"), not $A_UID: fix it by hand, then run the rollback again"
		log "user $A_NAME exists already with UID $A_UID"
	else
		if getent passwd "$A_UID" >/dev/null; then die "UID $A_UID is taken: $(getent passwd "$A_UID" | cut -d: -f1)"; fi
		home=$(cut -d: -f6 "$dir/passwd")
		shell=$(cut -d: -f7 "$dir/passwd")
		gecos=$(cut -d: -f5 "$dir/passwd")
		run useradd -r -M -u "$A_UID" -g "$A_GID" -d "$home" -s "$shell" -c "$gecos" -- "$A_NAME"
		if [ -s "$dir/shadow" ]; then
			IFS=: read -r _ hash lastchg min max warn inactive expire _ <"$dir/shadow" || true
			if [ -n "$hash" ]; then run usermod -p "$hash" -- "$A_NAME"; fi
			run chage ${lastchg:+-d "$lastchg"} ${min:+-m "$min"} ${max:+-M "$max"} ${warn:+-W "$warn"} \
				${inactive:+-I "$inactive"} ${expire:+-E "$expire"} -- "$A_NAME" 2>/dev/null ||
				log "WARNING: password aging not restored"
		fi
		log "recreated user $A_NAME with UID $A_UID and GID $A_GID"
	fi
	while read -r grp; do
		if [ -n "$grp" ] && static_group_exists "$grp"; then run usermod -a -G "$grp" -- "$A_NAME"; fi
	done <"$dir/member-of"
	check_after recreated_has_uid || die "recreated $A_NAME does not have UID $A_UID"
}

recreated_has_uid() {
	[ "$(account_uid "$A_NAME")" = "$A_UID" ]
}

nss_line_has_systemd() {
	# nss_line_has_systemd DB: the DB line of nsswitch.conf lists systemd (comments ignored)
	sed -e 's/#.*//' /etc/nsswitch.conf | awk -v db="$1:" '$1 == db { for (i = 2; i <= NF; i++) if ($i == "systemd") f = 1 } END { exit !f }'
}

nss_lib_present() {
	ldconfig -p 2>/dev/null | grep 'libnss_systemd\.so\.2' >/dev/null
}

nss_ok() {
	nss_line_has_systemd passwd && nss_line_has_systemd group && nss_lib_present
}

ensure_nss_systemd() {
	local deb want have f
	if nss_ok; then return 0; fi
	run install -d -m 0700 -- "$STATE"
	if [ ! -e "$STATE/nsswitch.conf.orig" ]; then
		run cp -a /etc/nsswitch.conf "$STATE/nsswitch.conf.orig"
		log "saved /etc/nsswitch.conf"
	fi
	if ! nss_lib_present; then
		want=$(dpkg-query -W -f='${Version}' systemd 2>/dev/null || true)
		deb=""
		for f in /var/cache/apt/archives/libnss-systemd_*.deb; do
			have=$(dpkg-deb -f "$f" Version 2>/dev/null || true)
			if [ -n "$want" ] && [ "$have" = "$want" ]; then deb=$f; fi
		done
		if [ -n "$deb" ]; then
			log "installing libnss-systemd $want from the local apt cache"
			(umask 022 && run env DEBIAN_FRONTEND=noninteractive dpkg -i -- "$deb" >&2) || die "dpkg -i $deb failed"
		else
			log "installing libnss-systemd with apt-get"
			(umask 022 && run env DYNMIGRATE_SKIP_REPAIR=1 DEBIAN_FRONTEND=noninteractive apt-get install -y libnss-systemd >&2) ||
				die "cannot install libnss-systemd"
		fi
		run touch "$STATE/nss-installed-by-dynmigrate"
	fi
	if ! nss_line_has_systemd passwd || ! nss_line_has_systemd group; then
		run sed -i -E '/^(passwd|group):/ { s/[[:space:]]*#.*$//; / systemd( |$)/! s/[[:space:]]*$/ systemd/ }' /etc/nsswitch.conf
		log "added systemd to the passwd and group lines of /etc/nsswitch.conf"
	fi
	check_after nss_ok || die "nss-systemd is still not usable"
}

restore_nss() {
	if [ -e "$STATE/nsswitch.conf.orig" ]; then
		run cp -a -- "$STATE/nsswitch.conf.orig" /etc/nsswitch.conf
		run rm -f -- "$STATE/nsswitch.conf.orig"
		log "restored /etc/nsswitch.conf (libnss-systemd stays installed; it is harmless)"
	fi
}
