# ---- dynmigrate-repair: undo what a package upgrade did to a migrated account ---------------
# Runs from the APT hook after every dpkg run, and from `dynmigrate verify --repair`.

remove_named_statoverrides() {
	command -v dpkg-statoverride >/dev/null || return 0
	local user group mode path
	while read -r user group mode path; do
		if [ "$user" = "$A_NAME" ] || { [ "$A_DELETE_GROUP" = 1 ] && [ "$group" = "$A_GROUP" ]; }; then
			printf '%s %s %s %s\n' "$user" "$group" "$mode" "$path" >>"$(acct_dir)/drift-statoverride"
			dpkg-statoverride --remove "$path" || true
			log "removed statoverride '$user $group $mode $path' (a package re-added it)"
		fi
	done < <(dpkg-statoverride --list 2>/dev/null || true)
}

repair_one() {
	local uid dir
	dir=$(acct_dir)
	install -d -m 0700 -- "$dir"
	if ! static_user_exists "$A_NAME" && { [ "$A_DELETE_GROUP" != 1 ] || ! static_group_exists "$A_GROUP"; }; then
		if [ "$CHECK_ONLY" = 0 ]; then remove_named_statoverrides; fi
		return 0
	fi
	uid=$(account_uid "$A_NAME" || true)
	log "drift: a static $A_NAME (UID ${uid:-?}) or group $A_GROUP is back, probably recreated by a package script"
	if [ "$CHECK_ONLY" = 1 ]; then return 1; fi
	{ grep "^$A_NAME:" /etc/passwd || true; grep "^$A_GROUP:" /etc/group || true; } >>"$dir/drift-accounts"
	stop_units
	if [ -n "$uid" ] && [ -n "$(procs_of_uid "$uid")" ]; then
		log "processes of UID $uid still run: not repaired"
		start_units
		return 1
	fi
	remove_named_statoverrides
	fix_files
	if static_user_exists "$A_NAME"; then userdel -- "$A_NAME" && log "deleted the recreated user $A_NAME"; fi
	if [ "$A_DELETE_GROUP" = 1 ] && static_group_exists "$A_GROUP"; then
		groupdel -- "$A_GROUP" && log "deleted the recreated group $A_GROUP"
	fi
	start_units
	if ! check_units dynamic; then
		log "after the repair the service does not run under a dynamic UID"
		return 1
	fi
	log "repaired: $A_NAME runs under a dynamic UID again"
}

repair_main() {
	local env rc=0
	CHECK_ONLY=0
	while [ $# -gt 0 ]; do
		case "$1" in
		--check) CHECK_ONLY=1 ;;
		--from-apt) ;;
		-h | --help)
			echo "usage: dynmigrate-repair [--check]"
			return 0
			;;
		*) die "unknown argument: $1" ;;
		esac
		shift
	done
	need_root
	[ -d "$STATE/migrated" ] || return 0
	# set by migrate.sh/rollback.sh around their own apt runs (they hold the lock)
	[ -z "${DYNMIGRATE_SKIP_REPAIR:-}" ] || return 0
	exec 9>"$STATE/lock"
	flock -w 600 9 || die "another dynmigrate script holds the lock"
	for env in "$STATE"/migrated/*.env; do
		# shellcheck source=/dev/null
		source "$env"
		repair_one || rc=1
	done
	return "$rc"
}
