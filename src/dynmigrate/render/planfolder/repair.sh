# ---- dynmigrate-repair: undo what a package upgrade did to a migrated account ---------------
# Runs from the APT hook after every dpkg run, and from `dynmigrate verify --repair`.

remove_named_statoverrides() {
	command -v dpkg-statoverride >/dev/null || return 0
	local user group mode path
	while read -r user group mode path; do
		if [ "$user" = "$A_NAME" ] || { [ "$A_DELETE_GROUP" = 1 ] && [ "$group" = "$A_GROUP" ]; }; then
			printf '%s %s %s %s\n' "$user" "$group" "$mode" "$path" >>"$(acct_dir)/drift-statoverride"
			dpkg-statoverride --remove "$path"
			log "removed statoverride '$user $group $mode $path' (a package re-added it)"
		fi
	done < <(dpkg-statoverride --list 2>/dev/null || true)
}

repair_one() {
	local uid dir dyn
	dir=$(acct_dir)
	install -d -m 0700 -- "$dir"
	if ! static_user_exists "$A_NAME" && { [ "$A_DELETE_GROUP" != 1 ] || ! static_group_exists "$A_GROUP"; }; then
		if [ "$CHECK_ONLY" = 0 ]; then remove_named_statoverrides; fi
		return 0
	fi
	uid=$(passwd_field /etc/passwd "$A_NAME" 3)
	log "drift: a static $A_NAME (UID ${uid:-?}) or group $A_GROUP is back, probably recreated by a package script"
	if [ "$CHECK_ONLY" = 1 ]; then return 1; fi
	{
		awk -F: -v n="$A_NAME" '$1 == n' /etc/passwd
		awk -F: -v n="$A_GROUP" '$1 == n' /etc/group
	} >>"$dir/drift-accounts"
	dyn=$(dynamic_uids)
	stop_units
	if [ -n "$uid" ] && [ -n "$(procs_of_uid "$uid")" ]; then
		die "processes of UID $uid still run: not repaired"
	fi
	# owners and modes change only while nothing runs as the dynamic UID either
	# shellcheck disable=SC2086 # one UID per word
	no_processes_of $dyn || die "processes of the dynamic UID still run: not repaired"
	remove_named_statoverrides
	fix_files
	if static_user_exists "$A_NAME"; then userdel -- "$A_NAME" && log "deleted the recreated user $A_NAME"; fi
	if [ "$A_DELETE_GROUP" = 1 ] && static_group_exists "$A_GROUP"; then
		groupdel -- "$A_GROUP" && log "deleted the recreated group $A_GROUP"
	fi
	start_units
	check_units dynamic || die "after the repair the service does not run under a dynamic UID"
	log "repaired: $A_NAME runs under a dynamic UID again"
}

repair_main() {
	local env rc=0 self
	CHECK_ONLY=0
	while [ $# -gt 0 ]; do
		case "$1" in
		--check) CHECK_ONLY=1 ;;
		--from-apt) ;;
		--one)
			# one migrated account, in its own process so that errexit applies to every step
			[ $# -ge 2 ] || die "--one needs a record"
			# shellcheck source=/dev/null
			source "$2"
			trap on_exit EXIT
			repair_one
			return $?
			;;
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
	if ! flock -w 120 9; then
		log "another dynmigrate script holds the lock: nothing repaired now; run dynmigrate verify --repair later"
		return 0
	fi
	self=$(realpath -- "${BASH_SOURCE[0]}")
	for env in "$STATE"/migrated/*.env; do
		if [ "$CHECK_ONLY" = 1 ]; then
			"$self" --check --one "$env" || rc=1
		else
			"$self" --one "$env" || rc=1
		fi
	done
	return "$rc"
}
