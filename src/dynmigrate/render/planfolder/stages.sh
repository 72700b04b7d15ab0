# ---- stages (migrate) and their rollbacks ---------------------------------------------------

crashpoint() {
	# fault injection for the end-to-end tests: DYNMIGRATE_CRASH_AT=NAME kills the script here
	if [ "${DYNMIGRATE_CRASH_AT:-}" = "$1" ]; then
		log "crash point $1 reached (DYNMIGRATE_CRASH_AT): killing myself"
		kill -KILL $$
	fi
}

confirmed_all() {
	local id missing=()
	for id in "${A_MANUAL[@]}"; do
		[ -n "${CONFIRMED[$id]:-}" ] || missing+=("$id")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		log "acknowledgements or manual steps not confirmed (see REPORT.md, then pass --confirm ID for each):"
		printf '  %s\n' "${missing[@]}" >&2
		return 1
	fi
}

unit_hash() {
	# unit_hash UNIT DROPIN: the unit as systemd has it loaded, without the plan's own drop-in,
	# comments and blank lines aside (compared with the plan's view)
	systemctl cat -- "$1" 2>/dev/null |
		awk -v ours="$2" '/^# \// { skip = ($2 == ours) } !skip' |
		sed -e '/^[[:space:]]*[#;]/d' -e 's/[[:space:]]*$//' -e '/^$/d' | sha256sum | cut -d' ' -f1
}

units_unchanged() {
	# before every stage: each unit is still the one the plan was made for (its drop-in aside)
	local i unit
	for i in "${!A_DROPIN_UNITS[@]}"; do
		unit=${A_DROPIN_UNITS[$i]}
		systemctl cat -- "$unit" >/dev/null 2>&1 || die "unit $unit not found"
		if [ "$(unit_hash "$unit" "${A_DROPIN_PATHS[$i]}")" != "${A_UNIT_HASH[$i]}" ]; then
			die "unit $unit differs from the one the plan was made for (its file or drop-ins changed): plan again"
		fi
	done
}

preflight_checks() {
	# read-only checks: nothing on the host changes before all of them pass
	local v i unit gid d
	v=$(systemd_version)
	log "preflight on systemd $v"
	[ "$v" -ge "$A_MIN_SYSTEMD" ] ||
		die "systemd $v is too old for this plan's drop-ins (they need $A_MIN_SYSTEMD; StateDirectory= needs 235)"
	if [ "$v" -lt 236 ]; then log "systemd < 236: stage 1 moves the data into private/ itself"; fi
	if [ "$v" -lt 243 ]; then log "systemd < 243: no automatic move back; the rollback moves data itself"; fi
	if awk -F: -v a="$DYN_MIN" -v b="$DYN_MAX" '$3 >= a && $3 <= b { f = 1; print "  static account " $1 " has UID " $3 } END { exit !f }' /etc/passwd >&2; then
		die "static accounts inside the dynamic range $DYN_MIN-$DYN_MAX"
	fi
	if awk -F: -v a="$DYN_MIN" -v b="$DYN_MAX" '$3 >= a && $3 <= b { f = 1; print "  static group " $1 " has GID " $3 } END { exit !f }' /etc/group >&2; then
		die "static groups inside the dynamic range $DYN_MIN-$DYN_MAX"
	fi
	for i in "${!A_DROPIN_UNITS[@]}"; do
		unit=${A_DROPIN_UNITS[$i]}
		systemctl cat -- "$unit" >/dev/null 2>&1 || die "unit $unit not found"
		case "$(systemctl is-enabled -- "$unit" 2>/dev/null || true)" in
		masked | masked-runtime) die "unit $unit is masked" ;;
		esac
	done
	units_unchanged
	if static_user_exists "$A_NAME"; then
		[ "$(account_uid "$A_NAME")" = "$A_UID" ] ||
			die "unexpected owner: $A_NAME has UID $(account_uid "$A_NAME"), the plan was made for UID $A_UID"
		gid=$(passwd_field /etc/passwd "$A_NAME" 4)
		[ "$gid" = "$A_GID" ] || die "unexpected group: $A_NAME has GID $gid, the plan was made for GID $A_GID"
	elif ! stage_done 2; then
		die "account $A_NAME does not exist and stage 2 never ran here"
	fi
	if [ "$A_DELETE_GROUP" = 0 ] && static_group_exists "$A_NAME"; then
		die "a static group $A_NAME would stay after the user is deleted: the dynamic user $A_NAME cannot start (EILSEQ)"
	fi
	if [ "${#A_CFG_SRC[@]}" -gt 0 ] && ! command -v setpriv >/dev/null; then
		die "setpriv (util-linux) is missing: stage 1 copies ${A_CFG_SRC[0]} with it, as $A_NAME"
	fi
	if ! stage_done 1; then
		for d in "${A_MOVE[@]}"; do
			if [ ! -d "$d" ] || [ -L "$d" ]; then continue; fi
			managed_split "$d" || continue
			if mountpoint -q -- "$d"; then die "$d is a mount point: systemd cannot rename() it into $MB/private"; fi
			if [ "$(stat -c %d -- "$d")" != "$(stat -c %d -- "$MB")" ]; then
				die "$d is on another filesystem than $MB: the move into private/ fails with EXDEV"
			fi
			if [ -e "$MB/private/$MN" ]; then die "$MB/private/$MN exists already: the move into private/ would fail"; fi
		done
	fi
}

run_stage0() {
	preflight_checks
	if nss_ok; then
		log "nss-systemd resolves dynamic users"
	else
		log "nss-systemd is not usable (the scan said: $NSS_ACTION): enabling it"
		ensure_nss_systemd
	fi
	backup_account
	mark_done 0
}

undo_stage0() {
	local other
	if stage_done 1 || stage_done 2 || stage_done 3; then die "later stages are done: roll them back first"; fi
	unmark_done 0
	other=$(find "$STATE/accounts" -mindepth 2 -maxdepth 2 -name 'stage[0-3].done' -print -quit 2>/dev/null || true)
	if [ -z "$other" ]; then restore_nss; fi
	if [ -d "$(acct_dir)" ]; then
		run mv -T -- "$(acct_dir)" "$(acct_dir).rolled-back.$(date -u +%Y%m%dT%H%M%SZ)"
		log "preflight undone; its backup is kept in $(acct_dir).rolled-back.*"
	fi
}

stage2_in_flight() {
	[ -e "$(acct_dir)/stage2.started" ] && ! stage_done 2
}

run_stage1() {
	local d
	stage_done 0 || die "run stage0 (preflight) first"
	[ -e "$(acct_dir)/backup.done" ] || die "the backup is missing: run stage0 first"
	same_plan
	backup_intact backup.done
	units_unchanged
	if stage2_in_flight; then
		die "stage 2 was interrupted: run stage2 again, or roll it back (rollback.sh --account $A_NAME stage2)"
	fi
	copy_state_configs
	# stop under the unit as it was, start under the drop-in: a restart would run the old
	# instance's ExecStop= in the new sandbox, whose credential binds (BindReadOnlyPaths=%d/...)
	# do not exist for an instance started before them, and systemd would fall back to SIGTERM
	stop_units
	if [ "$(systemd_version)" -lt 236 ]; then
		move_into_private
	fi
	install_dropins
	crashpoint stage1-installed
	start_units
	if ! check_after check_units "$A_UID"; then
		die "health check failed with the drop-ins installed; roll back: rollback.sh --account $A_NAME stage1"
	fi
	for d in "${A_MOVE[@]}"; do
		if [ "$DRY_RUN" = 0 ] && [ -e "$d" ] && [ ! -L "$d" ]; then
			log "WARNING: $d has not moved into private/ (is the unit running?)"
		fi
	done
	mark_done 1
}

undo_stage1() {
	same_plan
	if [ -e "$(acct_dir)/backup.done" ]; then backup_intact backup.done; fi
	stage_done 2 && die "stage 2 is done: roll back stage2 first"
	if stage2_in_flight; then die "stage 2 was interrupted: roll it back first (rollback.sh --account $A_NAME stage2)"; fi
	stop_units
	check_after no_processes_of "$A_UID" || die "stop those processes first: owners and modes are restored only while nothing runs as $A_NAME"
	remove_dropins
	crashpoint undo1-dropins-removed
	move_back_from_private
	crashpoint undo1-moved-back
	drop_state_copies
	reown_idmapped_files
	restore_manifest "$(acct_dir)/manifest"
	restore_runtime
	start_units
	if ! check_after check_units "$A_UID"; then
		die "after the rollback the service is not healthy: see the journal"
	fi
	unmark_done 1
}

restore_runtime() {
	# runtime directories systemd removed at stop (RuntimeDirectory= of the drop-in): let tmpfiles
	# create them again where the vendor configuration does
	local d
	command -v systemd-tmpfiles >/dev/null || return 0
	for d in "${A_RUNTIME[@]}"; do
		if [ ! -e "$d" ]; then run systemd-tmpfiles --create --prefix="$d" >/dev/null 2>&1 || true; fi
	done
}

record_text() {
	printf '# dynmigrate migration record, written %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	declare -p A_NAME A_UID A_GID A_GROUP A_GROUP_GID A_DELETE_GROUP A_RUN_UNITS A_RUN_PROBES A_TRIGGERS A_DROPIN_UNITS A_FIX_PATH \
		A_FIX_MODE A_OVR_TARGET A_OVR_SOURCE A_OVR_KIND A_PIN_PATH A_PIN_MODE A_MOVE | sed 's/^declare /declare -g /'
}

write_record() {
	# what verify and dynmigrate-repair need to know about this migrated account
	run install -d -m 0700 -- "$STATE/migrated"
	run_to "$STATE/migrated/$A_NAME.env.tmp" record_text
	run mv -f -- "$STATE/migrated/$A_NAME.env.tmp" "$STATE/migrated/$A_NAME.env"
	run install -m 0600 -- "$PLAN_DIR/accounts/$A_NAME.json" "$STATE/migrated/$A_NAME.json"
}

install_guard() {
	write_record
	run install -D -m 0755 -- "$PLAN_DIR/files/dynmigrate-repair" /usr/local/sbin/dynmigrate-repair
	if [ -d /etc/apt/apt.conf.d ]; then
		install_file "$PLAN_DIR/files/80dynmigrate-repair" /etc/apt/apt.conf.d/80dynmigrate-repair
	fi
	log "installed the upgrade guard: /usr/local/sbin/dynmigrate-repair runs after every apt/dpkg run"
}

remove_guard() {
	run rm -f -- "$STATE/migrated/$A_NAME.env" "$STATE/migrated/$A_NAME.json"
	if [ -z "$(find "$STATE/migrated" -name '*.env' -print -quit 2>/dev/null || true)" ]; then
		remove_ours /etc/apt/apt.conf.d/80dynmigrate-repair files/80dynmigrate-repair
		if [ -f /usr/local/sbin/dynmigrate-repair ] && cmp -s -- "$PLAN_DIR/files/dynmigrate-repair" /usr/local/sbin/dynmigrate-repair; then
			run rm -f -- /usr/local/sbin/dynmigrate-repair
			log "removed /usr/local/sbin/dynmigrate-repair"
		fi
	fi
}

run_stage2() {
	local dir
	dir=$(acct_dir)
	stage_done 1 || die "run stage1 (sandbox) first"
	[ -e "$dir/backup.done" ] || die "the backup is missing: refusing to delete $A_NAME"
	same_plan
	backup_intact backup.done
	if [ -e "$dir/stage2-backup.done" ]; then backup_intact stage2-backup.done; fi
	units_unchanged
	confirmed_all || die "stage 2 refused until every acknowledgement and manual step is confirmed"
	if [ "${#A_RUN_UNITS[@]}" = 0 ]; then log "no unit of $A_NAME is enabled or runs: nothing is restarted or checked"; fi
	if static_user_exists "$A_NAME"; then
		[ "$(account_uid "$A_NAME")" = "$A_UID" ] ||
			die "unexpected owner: $A_NAME has UID $(account_uid "$A_NAME"), the plan was made for UID $A_UID"
		no_stray_processes || die "stop those processes first (they would keep the old UID)"
	fi
	if [ "$A_DELETE_GROUP" = 0 ] && static_group_exists "$A_NAME"; then
		die "a static group $A_NAME would stay after the user is deleted: the dynamic user $A_NAME cannot start (EILSEQ)"
	fi
	check_overrides
	stop_units
	if static_user_exists "$A_NAME"; then
		no_stray_processes || die "stop those processes first (they would keep the old UID)"
	fi
	if [ ! -e "$dir/stage2-backup.done" ]; then
		if [ -f /var/lib/dpkg/statoverride ]; then run cp -a /var/lib/dpkg/statoverride "$dir/statoverride.before-stage2"; fi
		run cp -a /etc/passwd "$dir/passwd.before-stage2"
		run cp -a /etc/group "$dir/group.before-stage2"
		run_to "$dir/data.list" data_list
		if [ -f /var/lib/dpkg/statoverride ]; then
			run seal "$dir" stage2-backup.done passwd.before-stage2 group.before-stage2 data.list statoverride.before-stage2
		else
			run seal "$dir" stage2-backup.done passwd.before-stage2 group.before-stage2 data.list
		fi
		log "saved statoverride, passwd, group and the list of data files as they were before stage 2"
	fi
	crashpoint stage2-after-backup
	run_to "$dir/stage2.started" true
	fix_files
	remove_statoverrides
	install_overrides
	crashpoint stage2-before-userdel
	delete_account
	crashpoint stage2-after-userdel
	# the guard deletes a static account that comes back: only once this one is really gone
	install_guard
	crashpoint stage2-before-start
	start_units
	if ! check_after check_units dynamic; then
		die "the service does not run under a dynamic UID; roll back: rollback.sh --account $A_NAME stage2"
	fi
	check_after check_data_intact || die "data check failed; roll back: rollback.sh --account $A_NAME stage2"
	mark_done 2
}

reown_dynamic_files() {
	# files the dynamic UID owns in the moved directories go back to the static account, so that
	# systemd finds the right owner at the top and the manifest restores the rest exactly
	local d uid gid mode type dev ino path
	for d in "${A_MOVE[@]}"; do
		[ -d "$d/" ] || continue
		find "$d/" -xdev \( \( -uid "+$((DYN_MIN - 1))" -uid "-$((DYN_MAX + 1))" \) -o \
			\( -gid "+$((DYN_MIN - 1))" -gid "-$((DYN_MAX + 1))" \) \) -printf "$MANIFEST_FORMAT" 2>/dev/null || true
	done | while IFS=$'\t' read -r -d '' uid gid mode type dev ino path; do
		if [ "$uid" -ge "$DYN_MIN" ] && [ "$uid" -le "$DYN_MAX" ]; then uid=$A_UID; else uid=-; fi
		if [ "$gid" -ge "$DYN_MIN" ] && [ "$gid" -le "$DYN_MAX" ]; then gid=$A_GID; else gid=-; fi
		attr_record "$uid" "$gid" - "$type" "$dev" "$ino" - "$path"
	done | set_attrs || log "WARNING: some files of the dynamic UID were left as they are (see above)"
	reown_idmapped_files
}

reown_idmapped_files() {
	# systemd >= 257 id-maps a private directory it created (or found owned by root) instead of
	# chowning it: on disk it and what the service writes there belong to 65534:65534 (nobody),
	# mapped to the service's UID inside the unit only. A static unit finds such a tree unwritable,
	# so nobody's entries in a tree whose top is 65534:65534 go back to the account (the manifest
	# then restores every recorded path exactly), on the recorded inodes like every other change.
	# Directories of other owners, and ones that belonged to nobody before the migration (the
	# stage-0 manifest says so), are left alone.
	local d manifest uid gid mode type dev ino path
	[ "$A_UID" != 65534 ] || return 0
	manifest=$(acct_dir)/manifest
	for d in "${A_MOVE[@]}" "${A_RUNTIME[@]}"; do
		[ -d "$d/" ] || continue
		[ "$(stat -c %u:%g -- "$d/")" = 65534:65534 ] || continue
		if [ -f "$manifest" ] && tr '\0' '\n' <"$manifest" |
			awk -F'\t' -v p="$d" '($7 == p || $7 == p "/") && $1 == 65534 && $2 == 65534 { f = 1 } END { exit !f }'; then
			continue
		fi
		log "$d was id-mapped (65534:65534 on disk): its entries of nobody belong to $A_NAME again"
		find "$d/" -xdev \( -uid 65534 -o -gid 65534 \) -printf "$MANIFEST_FORMAT" 2>/dev/null || true
	done | while IFS=$'\t' read -r -d '' uid gid mode type dev ino path; do
		if [ "$uid" = 65534 ]; then uid=$A_UID; else uid=-; fi
		if [ "$gid" = 65534 ]; then gid=$A_GID; else gid=-; fi
		attr_record "$uid" "$gid" - "$type" "$dev" "$ino" - "$path"
	done | set_attrs || log "WARNING: some id-mapped files were left as they are (see above)"
}

undo_stage2() {
	local dyn
	same_plan
	stage_done 3 && die "stage 3 is done: roll back stage3 first"
	if [ -e "$(acct_dir)/backup.done" ]; then backup_intact backup.done; fi
	if [ -e "$(acct_dir)/stage2-backup.done" ]; then backup_intact stage2-backup.done; fi
	dyn=$(dynamic_uids)
	stop_units
	# shellcheck disable=SC2086 # one UID per word
	check_after no_processes_of "$A_UID" $dyn || die "stop those processes first: owners change only while nothing runs as them"
	# first the guard: an apt run during the rollback must not delete the account it recreates
	remove_guard
	recreate_account
	crashpoint undo2-recreated
	reown_dynamic_files
	remove_overrides
	restore_statoverrides
	restore_manifest "$(acct_dir)/manifest"
	restore_runtime
	start_units
	if ! check_after check_units "$A_UID"; then
		die "after the rollback the service does not run as $A_NAME ($A_UID): see the journal"
	fi
	unmark_done 2
	run rm -f -- "$(acct_dir)/stage2.started" "$(acct_dir)/stage2-backup.done"
}

leftover_roots() {
	# every mounted local, writable filesystem (like find -xdev per mount); pseudo, network and
	# read-only filesystems are skipped (another host's files on NFS are not ours to re-own)
	findmnt -rn -o TARGET,FSTYPE,OPTIONS | while read -r target fstype options; do
		case ",$options," in *,ro,*) continue ;; esac
		case "$fstype" in
		proc | sysfs | devtmpfs | devpts | cgroup | cgroup2 | securityfs | debugfs | tracefs | pstore | bpf | mqueue | \
			hugetlbfs | configfs | fusectl | binfmt_misc | autofs | efivarfs | rpc_pipefs | nsfs | ramfs | squashfs | overlay | \
			nfs | nfs4 | cifs | smb3 | smbfs | 9p | ceph | glusterfs | lustre | afs | fuse | fuse.*) ;;
		*) printf '%b\0' "$target" ;;
		esac
	done
}

trusted_tree() {
	# $1: a tree the plan skips (DM308). True if it and every directory above it are still
	# directories (not links) that root owns and nobody else can write, as at plan time.
	local p=$1 owner perm
	while :; do
		[ -d "$p" ] && [ ! -L "$p" ] || return 1
		read -r owner perm < <(stat -c '%u %a' -- "$p") || return 1
		[ "$owner" = 0 ] && (((8#$perm & 8#022) == 0)) || return 1
		[ "$p" = / ] && return 0
		p=$(dirname -- "$p")
	done
}

skip_prunes() {
	# fills PRUNE with find arguments that prune the plan's other-system trees still trusted
	local i
	PRUNE=()
	for i in "${!SKIP_TREES[@]}"; do
		if trusted_tree "${SKIP_TREES[$i]}"; then
			PRUNE+=(-path "${SKIP_PATTERNS[$i]}" -prune -o)
		else
			log "WARNING: ${SKIP_TREES[$i]} is no longer a tree only root can write: searched for leftovers too"
		fi
	done
}

find_leftovers() {
	# records (MANIFEST_FORMAT) of every path of the old UID (and GID) on every real filesystem
	local root
	skip_prunes
	leftover_roots | while IFS= read -r -d '' root; do
		if [ "$A_DELETE_GROUP" = 1 ]; then
			find "$root" -xdev "${PRUNE[@]}" \( -uid "$A_UID" -o -gid "$A_GROUP_GID" \) -printf "$MANIFEST_FORMAT" 2>/dev/null || true
		else
			find "$root" -xdev "${PRUNE[@]}" -uid "$A_UID" -printf "$MANIFEST_FORMAT" 2>/dev/null || true
		fi
	done
}

run_stage3() {
	local dir out uid gid mode type dev ino path top d owner n dyn
	stage_done 2 || die "run stage2 (release) first"
	same_plan
	backup_intact backup.done
	backup_intact stage2-backup.done
	units_unchanged
	if static_user_exists "$A_NAME"; then
		die "a static $A_NAME is back (a package upgrade?): run dynmigrate-repair or dynmigrate verify --repair first"
	fi
	if getent passwd "$A_UID" >/dev/null; then
		die "UID $A_UID belongs to $(getent passwd "$A_UID" | cut -d: -f1) now: its files are not leftovers"
	fi
	if [ "$A_DELETE_GROUP" = 1 ] && getent group "$A_GROUP_GID" >/dev/null; then
		die "GID $A_GROUP_GID belongs to group $(getent group "$A_GROUP_GID" | cut -d: -f1) now: its files are not leftovers"
	fi
	dir=$(acct_dir)
	out="$dir/stage3.manifest"
	if [ ! -e "$out" ]; then
		run_to "$out.tmp" find_leftovers
		run mv -f -- "$out.tmp" "$out"
		if [ "$DRY_RUN" = 1 ]; then
			# the search is a read: a dry run keeps what it finds in a temporary file, to print each change
			out=$(dry_list find_leftovers)
		fi
	fi
	crashpoint stage3-found
	# owners change only while nothing runs as the old or the dynamic UID
	dyn=$(dynamic_uids)
	stop_units
	# shellcheck disable=SC2086 # one UID per word
	check_after no_processes_of "$A_UID" $dyn || die "stop those processes first: owners change only while nothing runs as them"
	while IFS=$'\t' read -r -d '' uid gid mode type dev ino path; do
		[ -e "$path" ] || [ -L "$path" ] || continue
		top=""
		for d in "${A_MOVE[@]}"; do
			managed_split "$d" || continue
			case "$path" in "$MB/private/$MN" | "$MB/private/$MN"/*) top="$MB/private/$MN" ;; esac
		done
		if [ -n "$top" ]; then
			owner=$(stat -c '%u %g' -- "$top")
			uid=${owner% *} gid=${owner#* }
		else
			if [ "$uid" = "$A_UID" ]; then uid=0; else uid=-; fi
			if [ "$A_DELETE_GROUP" = 1 ] && [ "$gid" = "$A_GROUP_GID" ]; then gid=0; else gid=-; fi
		fi
		# the mode is left to chown, which drops setuid/setgid bits: never a set-ID file for root
		attr_record "$uid" "$gid" - "$type" "$dev" "$ino" - "$path"
	done <"$out" | set_attrs || log "WARNING: some paths could not be re-owned (changed since they were found, read-only, immutable?): see above"
	n=$(tr -cd '\0' <"$out" | wc -c)
	if [ "$out" != "$dir/stage3.manifest" ]; then
		dry_forget "$out"
		out=$dir/stage3.manifest
	fi
	log "re-owned the $n leftover path(s) of UID $A_UID / GID $A_GROUP_GID (listed in $out; nothing deleted)"
	run touch "$STATE/retired-ids"
	if ! awk -F'\t' -v u="$A_UID" -v n="$A_NAME" '$1 == u && $3 == n { f = 1 } END { exit !f }' "$STATE/retired-ids" 2>/dev/null; then
		run_append "$STATE/retired-ids" printf '%s\t%s\t%s\t%s\t%s\n' "$A_UID" "$A_GROUP_GID" "$A_NAME" "${A_DROPIN_UNITS[*]}" "$(date -u +%Y-%m-%d)"
		log "UID $A_UID added to the retired-UID ledger $STATE/retired-ids"
	fi
	start_units
	check_after check_units dynamic || die "the service is not healthy after the cleanup; roll back: rollback.sh --account $A_NAME stage3"
	mark_done 3
}

# shellcheck disable=SC2016 # an awk program, run or printed by run_to
undo_stage3() {
	local out uid gid mode type dev ino path dyn
	same_plan
	out="$(acct_dir)/stage3.manifest"
	if [ -s "$out" ]; then
		dyn=$(dynamic_uids)
		stop_units
		# shellcheck disable=SC2086 # one UID per word
		check_after no_processes_of "$A_UID" $dyn || die "stop those processes first: owners change only while nothing runs as them"
		while IFS=$'\t' read -r -d '' uid gid mode type dev ino path; do
			[ -e "$path" ] || [ -L "$path" ] || continue
			# chown clears setuid/setgid bits: the recorded mode is given back, on the recorded inode only
			if [ "$type" = l ]; then mode=-; fi
			attr_record "$uid" "$gid" "$mode" "$type" "$dev" "$ino" - "$path"
		done <"$out" | set_attrs || log "WARNING: some stage-3 paths were left as they are (see above)"
		run mv -f -- "$out" "$out.undone"
		log "restored the owners and modes of the stage-3 paths"
		start_units
		check_after check_units dynamic || die "the service is not healthy after the rollback of stage 3: see the journal"
	fi
	if [ -f "$STATE/retired-ids" ]; then
		run_to "$STATE/retired-ids.tmp" awk -F'\t' -v u="$A_UID" -v n="$A_NAME" '!($1 == u && $3 == n)' "$STATE/retired-ids"
		run mv -f -- "$STATE/retired-ids.tmp" "$STATE/retired-ids"
	fi
	unmark_done 3
}
