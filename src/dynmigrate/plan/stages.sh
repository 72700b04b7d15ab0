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
		log "manual steps not confirmed (see REPORT.md, then pass --confirm ID for each):"
		printf '  %s\n' "${missing[@]}" >&2
		return 1
	fi
}

run_stage0() {
	local v unit gid
	v=$(systemd_version)
	log "preflight on systemd $v"
	[ "$v" -ge 235 ] || die "systemd $v has no StateDirectory= (needs 235)"
	if [ "$v" -lt 236 ]; then log "systemd < 236: stage 1 moves the data into private/ itself"; fi
	if [ "$v" -lt 243 ]; then log "systemd < 243: no automatic move back; the rollback moves data itself"; fi
	if awk -F: -v a="$DYN_MIN" -v b="$DYN_MAX" '$3 >= a && $3 <= b { f = 1; print "  static account " $1 " has UID " $3 } END { exit !f }' /etc/passwd >&2; then
		die "static accounts inside the dynamic range $DYN_MIN-$DYN_MAX"
	fi
	if awk -F: -v a="$DYN_MIN" -v b="$DYN_MAX" '$3 >= a && $3 <= b { f = 1; print "  static group " $1 " has GID " $3 } END { exit !f }' /etc/group >&2; then
		die "static groups inside the dynamic range $DYN_MIN-$DYN_MAX"
	fi
	if nss_ok; then
		log "nss-systemd resolves dynamic users"
	else
		log "nss-systemd is not usable (the scan said: $NSS_ACTION): enabling it"
		ensure_nss_systemd
	fi
	for unit in "${A_DROPIN_UNITS[@]}"; do
		systemctl cat -- "$unit" >/dev/null 2>&1 || die "unit $unit not found"
		case "$(systemctl is-enabled -- "$unit" 2>/dev/null || true)" in
		masked | masked-runtime) die "unit $unit is masked" ;;
		esac
	done
	if static_user_exists "$A_NAME"; then
		[ "$(account_uid "$A_NAME")" = "$A_UID" ] ||
			die "unexpected owner: $A_NAME has UID $(account_uid "$A_NAME"), the plan was made for UID $A_UID"
		gid=$(getent passwd "$A_NAME" | cut -d: -f4)
		[ "$gid" = "$A_GID" ] || die "unexpected group: $A_NAME has GID $gid, the plan was made for GID $A_GID"
	elif ! stage_done 2; then
		die "account $A_NAME does not exist and stage 2 never ran here"
	fi
	backup_account
	mark_done 0
}

undo_stage0() {
	local other
	unmark_done 0
	other=$(find "$STATE/accounts" -mindepth 2 -maxdepth 2 -name 'stage0.done' -print -quit 2>/dev/null || true)
	if [ -z "$other" ]; then restore_nss; fi
	log "preflight undone (the backup in $(acct_dir) is kept)"
}

run_stage1() {
	local d
	stage_done 0 || die "run stage0 (preflight) first"
	[ -e "$(acct_dir)/backup.done" ] || die "the backup is missing: run stage0 first"
	if [ "$(systemd_version)" -lt 236 ]; then
		stop_units
		move_into_private
	fi
	install_dropins
	crashpoint stage1-installed
	restart_units
	if ! check_units "$A_UID"; then
		die "health check failed with the drop-ins installed; roll back: rollback.sh --account $A_NAME stage1"
	fi
	for d in "${A_MOVE[@]}"; do
		if [ -e "$d" ] && [ ! -L "$d" ]; then
			log "WARNING: $d has not moved into private/ (is the unit running?)"
		fi
	done
	mark_done 1
}

undo_stage1() {
	stage_done 2 && die "stage 2 is done: roll back stage2 first"
	stop_units
	remove_dropins
	move_back_from_private
	restore_manifest "$(acct_dir)/manifest"
	start_units
	if ! check_units "$A_UID"; then
		die "after the rollback the service is not healthy: see the journal"
	fi
	unmark_done 1
}

write_record() {
	# what verify and dynmigrate-repair need to know about this migrated account
	install -d -m 0700 -- "$STATE/migrated"
	{
		printf '# dynmigrate migration record, written %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		declare -p A_NAME A_UID A_GID A_GROUP A_DELETE_GROUP A_RUN_UNITS A_RUN_PROBES A_FIX_PATH A_FIX_MODE \
			A_OVR_TARGET A_OVR_SOURCE A_OVR_KIND A_SO_PATH A_PIN_PATH A_PIN_MODE A_MOVE | sed 's/^declare /declare -g /'
	} >"$STATE/migrated/$A_NAME.env.tmp"
	mv -f -- "$STATE/migrated/$A_NAME.env.tmp" "$STATE/migrated/$A_NAME.env"
	install -m 0600 -- "$PLAN_DIR/accounts/$A_NAME.json" "$STATE/migrated/$A_NAME.json"
}

install_guard() {
	write_record
	install -D -m 0755 -- "$PLAN_DIR/files/dynmigrate-repair" /usr/local/sbin/dynmigrate-repair
	if [ -d /etc/apt/apt.conf.d ]; then
		install_file "$PLAN_DIR/files/80dynmigrate-repair" /etc/apt/apt.conf.d/80dynmigrate-repair
	fi
	log "installed the upgrade guard: /usr/local/sbin/dynmigrate-repair runs after every apt/dpkg run"
}

remove_guard() {
	rm -f -- "$STATE/migrated/$A_NAME.env" "$STATE/migrated/$A_NAME.json"
	if [ -z "$(find "$STATE/migrated" -name '*.env' -print -quit 2>/dev/null || true)" ]; then
		remove_ours /etc/apt/apt.conf.d/80dynmigrate-repair files/80dynmigrate-repair
		if [ -f /usr/local/sbin/dynmigrate-repair ] && cmp -s -- "$PLAN_DIR/files/dynmigrate-repair" /usr/local/sbin/dynmigrate-repair; then
			rm -f -- /usr/local/sbin/dynmigrate-repair
			log "removed /usr/local/sbin/dynmigrate-repair"
		fi
	fi
}

run_stage2() {
	stage_done 1 || die "run stage1 (sandbox) first"
	[ -e "$(acct_dir)/backup.done" ] || die "the backup is missing: refusing to delete $A_NAME"
	confirmed_all || die "stage 2 refused until every manual step is confirmed"
	if static_user_exists "$A_NAME"; then
		[ "$(account_uid "$A_NAME")" = "$A_UID" ] ||
			die "unexpected owner: $A_NAME has UID $(account_uid "$A_NAME"), the plan was made for UID $A_UID"
	fi
	stop_units
	if static_user_exists "$A_NAME"; then
		no_stray_processes || die "stop those processes first (they would keep the old UID)"
	fi
	if [ ! -e "$(acct_dir)/stage2-backup.done" ]; then
		if [ -f /var/lib/dpkg/statoverride ]; then cp -a /var/lib/dpkg/statoverride "$(acct_dir)/statoverride.before-stage2"; fi
		cp -a /etc/passwd "$(acct_dir)/passwd.before-stage2"
		cp -a /etc/group "$(acct_dir)/group.before-stage2"
		date -u +%Y-%m-%dT%H:%M:%SZ >"$(acct_dir)/stage2-backup.done"
		log "saved statoverride, passwd and group as they were before stage 2"
	fi
	crashpoint stage2-after-backup
	fix_files
	remove_statoverrides
	install_overrides
	install_guard
	crashpoint stage2-before-userdel
	delete_account
	crashpoint stage2-after-userdel
	crashpoint stage2-before-start
	start_units
	if ! check_units dynamic; then
		die "the service does not run under a dynamic UID; roll back: rollback.sh --account $A_NAME stage2"
	fi
	check_data_intact || die "data check failed; roll back: rollback.sh --account $A_NAME stage2"
	mark_done 2
}

undo_stage2() {
	stage_done 3 && die "stage 3 is done: roll back stage3 first"
	stop_units
	recreate_account
	crashpoint undo2-recreated
	remove_overrides
	restore_statoverrides
	remove_guard
	restore_manifest "$(acct_dir)/manifest"
	start_units
	if ! check_units "$A_UID"; then
		die "after the rollback the service does not run as $A_NAME ($A_UID): see the journal"
	fi
	unmark_done 2
}

leftover_roots() {
	# every mounted real filesystem (like find -xdev per mount), pseudo filesystems skipped
	findmnt -rn -o TARGET,FSTYPE | while read -r target fstype; do
		case "$fstype" in
		proc | sysfs | devtmpfs | devpts | cgroup | cgroup2 | securityfs | debugfs | tracefs | pstore | bpf | mqueue | \
			hugetlbfs | configfs | fusectl | binfmt_misc | autofs | efivarfs | rpc_pipefs | nsfs | ramfs | squashfs | overlay) ;;
		*) printf '%b\0' "$target" ;;
		esac
	done
}

run_stage3() {
	local dir out uid gid mode path top d n=0
	stage_done 2 || die "run stage2 (release) first"
	if static_user_exists "$A_NAME"; then
		die "a static $A_NAME is back (a package upgrade?): run dynmigrate-repair or dynmigrate verify --repair first"
	fi
	dir=$(acct_dir)
	out="$dir/stage3.manifest"
	if [ ! -e "$out" ]; then
		leftover_roots | while IFS= read -r -d '' root; do
			if [ "$A_DELETE_GROUP" = 1 ]; then
				find "$root" -xdev \( -uid "$A_UID" -o -gid "$A_GID" \) -printf '%U\t%G\t%m\t%p\0' 2>/dev/null || true
			else
				find "$root" -xdev -uid "$A_UID" -printf '%U\t%G\t%m\t%p\0' 2>/dev/null || true
			fi
		done >"$out.tmp"
		mv -f -- "$out.tmp" "$out"
	fi
	crashpoint stage3-found
	while IFS=$'\t' read -r -d '' uid gid mode path; do
		[ -e "$path" ] || [ -L "$path" ] || continue
		top=""
		for d in "${A_MOVE[@]}"; do
			case "$path" in "${d%/*}/private/${d##*/}" | "${d%/*}/private/${d##*/}"/*) top="${d%/*}/private/${d##*/}" ;; esac
		done
		if [ -n "$top" ]; then
			chown -h -- "$(stat -c %u:%g -- "$top")" "$path"
		else
			if [ "$uid" = "$A_UID" ]; then chown -h -- 0 "$path"; fi
			if [ "$A_DELETE_GROUP" = 1 ] && [ "$gid" = "$A_GID" ]; then chgrp -h -- 0 "$path"; fi
		fi
		n=$((n + 1))
	done <"$out"
	log "re-owned $n leftover path(s) of UID $A_UID / GID $A_GID (listed in $out; nothing deleted)"
	mkdir -p -- "$STATE"
	touch "$STATE/retired-ids"
	if ! awk -F'\t' -v u="$A_UID" -v n="$A_NAME" '$1 == u && $3 == n { f = 1 } END { exit !f }' "$STATE/retired-ids"; then
		printf '%s\t%s\t%s\t%s\t%s\n' "$A_UID" "$A_GID" "$A_NAME" "${A_DROPIN_UNITS[*]}" "$(date -u +%Y-%m-%d)" >>"$STATE/retired-ids"
		log "UID $A_UID added to the retired-UID ledger $STATE/retired-ids"
	fi
	mark_done 3
}

undo_stage3() {
	local out uid gid mode path
	out="$(acct_dir)/stage3.manifest"
	if [ -s "$out" ]; then
		while IFS=$'\t' read -r -d '' uid gid mode path; do
			if [ -e "$path" ] || [ -L "$path" ]; then chown -h -- "$uid:$gid" "$path"; fi
		done <"$out"
		mv -f -- "$out" "$out.undone"
		log "restored the owners of the stage-3 paths"
	fi
	if [ -f "$STATE/retired-ids" ]; then
		awk -F'\t' -v u="$A_UID" -v n="$A_NAME" '!($1 == u && $3 == n)' "$STATE/retired-ids" >"$STATE/retired-ids.tmp"
		mv -f -- "$STATE/retired-ids.tmp" "$STATE/retired-ids"
	fi
	unmark_done 3
}
