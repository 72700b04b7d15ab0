# shellcheck shell=bash
# dynmigrate 0.1.0: the library migrate.sh and rollback.sh source (they check its sha256 first).
# Plan for host web01, from a scan of samples/debian-web/root.

# ---- dynmigrate shell library (shared by migrate.sh, rollback.sh and dynmigrate-repair) ----
# Every value that came from the scanned host is single-quoted in the data section below;
# nothing here evaluates text from the host except the health probes chosen at plan time.

readonly DYN_MIN=61184
readonly DYN_MAX=65519

log() {
	local line
	line="$(date -u +%Y-%m-%dT%H:%M:%SZ) ${SCRIPT_NAME}[${STAGE:-main}]${A_NAME:+ ${A_NAME}}: $*"
	printf '%s\n' "$line" >&2
	if [ -d "$STATE" ]; then printf '%s\n' "$line" >>"$STATE/log"; fi
}

die() {
	log "ERROR: $*"
	exit 1
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
	date -u +%Y-%m-%dT%H:%M:%SZ >"$(acct_dir)/stage$1.done"
	log "stage $1 done"
}

unmark_done() {
	rm -f -- "$(acct_dir)/stage$1.done"
}

account_uid() {
	getent passwd "$1" | cut -d: -f3
}

static_user_exists() {
	# only /etc/passwd: a dynamic user resolved through nss-systemd does not count
	grep -q "^$1:" /etc/passwd
}

static_group_exists() {
	grep -q "^$1:" /etc/group
}

# Verify the files this script installs against the checksums recorded at plan time.
verify_plan_files() {
	local sum rel
	while IFS= read -r sum && IFS= read -r rel; do
		[ -f "$PLAN_DIR/$rel" ] || die "plan file missing: $rel"
		[ "$(sha256sum <"$PLAN_DIR/$rel" | cut -d' ' -f1)" = "$sum" ] || die "plan file changed since planning: $rel"
	done < <(printf '%s\n' "${PLAN_FILES[@]}")
}

# ---- health -------------------------------------------------------------------------------

unit_uids() {
	# UIDs of every process in the unit's cgroup (a master/worker daemon keeps a root master).
	# /proc/PID/cgroup works whatever the cgroup mount layout (v1, v2, inside a container).
	local cg
	cg=$(systemctl show -p ControlGroup --value "$1")
	[ -n "$cg" ] || return 0
	awk -F: -v cg="$cg" '$3 == cg { split(FILENAME, p, "/"); print p[3] }' /proc/[0-9]*/cgroup 2>/dev/null |
		sort -u | while read -r pid; do
		awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true
	done | sort -un
}

main_uid() {
	local pid
	pid=$(systemctl show -p MainPID --value "$1")
	[ -n "$pid" ] && [ "$pid" != 0 ] || return 1
	awk '/^Uid:/ { print $2 }' "/proc/$pid/status"
}

health() {
	# health UNIT PROBE: active, not restarting, and the probe (if any) answers.
	local unit=$1 probe=$2 state="" i before after
	for i in $(seq 1 "$START_TIMEOUT"); do
		state=$(systemctl is-active "$unit" || true)
		case "$state" in active | failed) break ;; esac
		sleep 1
	done
	if [ "$state" != active ]; then
		log "$unit is $state after ${i}s"
		journalctl -u "$unit" -n 20 --no-pager >&2 || true
		return 1
	fi
	before=$(systemctl show -p NRestarts --value "$unit")
	sleep "$SETTLE"
	after=$(systemctl show -p NRestarts --value "$unit")
	state=$(systemctl is-active "$unit" || true)
	if [ "$state" != active ] || [ "$before" != "$after" ]; then
		log "$unit is not stable (state $state, restarts $before -> $after)"
		journalctl -u "$unit" -n 20 --no-pager >&2 || true
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

restart_units() {
	local unit
	for unit in "${A_RUN_UNITS[@]}"; do
		log "restarting $unit"
		systemctl restart "$unit" || true
	done
}

start_units() {
	local unit
	for unit in "${A_RUN_UNITS[@]}"; do
		log "starting $unit"
		systemctl start "$unit" || true
	done
}

stop_units() {
	local unit
	for unit in "${A_RUN_UNITS[@]}"; do
		log "stopping $unit"
		systemctl stop "$unit" || die "cannot stop $unit"
	done
}

# ---- backups and manifests ----------------------------------------------------------------

manifest_paths() {
	# existing paths only, NUL-separated
	local p
	for p in "${A_MANIFEST[@]}"; do
		if [ -e "$p" ] || [ -L "$p" ]; then printf '%s\0' "$p"; fi
	done
}

write_manifest() {
	# UID GID MODE TYPE PATH, NUL-terminated records, for every path involved (recursively)
	local out=$1
	: >"$out.tmp"
	if [ "${#A_MANIFEST[@]}" -gt 0 ]; then
		manifest_paths | xargs -0 -r -I{} find {} -xdev -printf '%U\t%G\t%m\t%y\t%p\0' >>"$out.tmp"
	fi
	mv -f -- "$out.tmp" "$out"
}

restore_manifest() {
	# restore_manifest FILE: chown/chmod every recorded path that still exists (through the private/
	# symlinks); runtime directories under /run that vanished with the unit are created again
	local file=$1 uid gid mode type path
	[ -s "$file" ] || return 0
	while IFS=$'\t' read -r -d '' uid gid mode type path; do
		if [ ! -e "$path" ] && [ ! -L "$path" ] && [ "$type" = d ]; then
			case "$path" in
			/run/* | /var/run/*)
				mkdir -p -- "$path"
				log "recreated runtime directory $path"
				;;
			esac
		fi
		if [ -e "$path" ] || [ -L "$path" ]; then
			chown -h -- "$uid:$gid" "$path" || log "cannot chown $path"
			if [ ! -L "$path" ]; then chmod -- "$mode" "$path" || log "cannot chmod $path"; fi
		fi
	done <"$file"
}

data_list() {
	# relative paths of every file in the moved directories (for the "data intact" check)
	local d
	for d in "${A_MOVE[@]}"; do
		if [ -d "$d/" ]; then (cd -- "$d/" && find . -xdev -type f -print0 | sed -z "s|^\\.|$d|"); fi
	done | sort -z
}

backup_account() {
	local dir
	dir=$(acct_dir)
	install -d -m 0700 -- "$dir"
	if [ -e "$dir/backup.done" ]; then
		log "backup exists since $(cat "$dir/backup.done"): kept (never overwritten)"
		return 0
	fi
	static_user_exists "$A_NAME" || die "no static account $A_NAME to back up"
	grep "^$A_NAME:" /etc/passwd >"$dir/passwd"
	grep "^$A_NAME:" /etc/shadow >"$dir/shadow" || : >"$dir/shadow"
	grep "^$A_GROUP:" /etc/group >"$dir/group" || : >"$dir/group"
	grep "^$A_GROUP:" /etc/gshadow >"$dir/gshadow" 2>/dev/null || : >"$dir/gshadow"
	awk -F: -v u="$A_NAME" '{ n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) print $1 }' /etc/group >"$dir/member-of"
	if [ -f /var/lib/dpkg/statoverride ]; then
		awk -v u="$A_NAME" -v g="$A_GROUP" '$1 == u || $2 == g' /var/lib/dpkg/statoverride >"$dir/statoverride"
	else
		: >"$dir/statoverride"
	fi
	write_manifest "$dir/manifest"
	data_list >"$dir/data.list"
	chmod 0600 -- "$dir"/*
	date -u +%Y-%m-%dT%H:%M:%SZ >"$dir/backup.done"
	log "backed up passwd/group/shadow/gshadow lines, statoverrides and an ownership manifest of $(tr -cd '\0' <"$dir/manifest" | wc -c) paths"
}

check_data_intact() {
	local dir missing
	dir=$(acct_dir)
	[ -f "$dir/data.list" ] || return 0
	missing=$(comm -z -23 "$dir/data.list" <(data_list) | tr '\0' '\n')
	if [ -n "$missing" ]; then
		log "files missing after the move:"
		printf '%s\n' "$missing" >&2
		return 1
	fi
	log "data intact: every file recorded before the migration is still there"
}

# ---- directories --------------------------------------------------------------------------

move_into_private() {
	# systemd >= 236 does this itself at the first start; older ones need it done by hand
	local d base name
	for d in "${A_MOVE[@]}"; do
		base=${d%/*}
		name=${d##*/}
		if [ -d "$d" ] && [ ! -L "$d" ]; then
			install -d -m 0700 -- "$base/private"
			mv -T -- "$d" "$base/private/$name"
			ln -s -- "private/$name" "$d"
			log "moved $d into $base/private/$name"
		fi
	done
}

move_back_from_private() {
	# systemd moves private/X back only for directories the unit still declares (v243+);
	# the vendor unit usually declares none of them, so this is always done here.
	local d base name
	for d in "${A_MOVE[@]}" "${A_RUNTIME[@]}"; do
		base=${d%/*}
		name=${d##*/}
		if [ -L "$d" ] && [ -d "$base/private/$name" ]; then
			rm -f -- "$d"
			mv -T -- "$base/private/$name" "$d"
			log "moved $base/private/$name back to $d"
		elif [ -L "$d" ] && [ ! -e "$d" ]; then
			log "WARNING: $d is a dangling symlink; left as it is"
		fi
	done
}

# ---- files installed by the plan ----------------------------------------------------------

install_file() {
	# install_file SOURCE TARGET: idempotent copy of a plan file, mode 0644
	local src=$1 dst=$2
	if [ -f "$dst" ] && cmp -s -- "$src" "$dst"; then return 0; fi
	install -D -m 0644 -- "$src" "$dst"
	log "installed $dst"
}

remove_ours() {
	# remove_ours TARGET SOURCE: remove a file only if it is the one the plan installed
	local dst=$1 src=$2
	if [ -L "$dst" ] && [ "$(readlink -- "$dst")" = /dev/null ] && [ -z "$src" ]; then
		rm -f -- "$dst"
		log "removed mask $dst"
	elif [ -f "$dst" ] && [ -n "$src" ] && cmp -s -- "$PLAN_DIR/$src" "$dst"; then
		rm -f -- "$dst"
		log "removed $dst"
	elif [ -e "$dst" ] || [ -L "$dst" ]; then
		log "WARNING: $dst was changed after dynmigrate installed it: left in place"
	fi
}

install_dropins() {
	local i dst
	for i in "${!A_DROPIN_UNITS[@]}"; do
		dst="/etc/systemd/system/${A_DROPIN_UNITS[$i]}.d/50-dynmigrate.conf"
		install_file "$PLAN_DIR/${A_DROPIN_FILES[$i]}" "$dst"
	done
	systemctl daemon-reload
}

remove_dropins() {
	local i dst
	for i in "${!A_DROPIN_UNITS[@]}"; do
		dst="/etc/systemd/system/${A_DROPIN_UNITS[$i]}.d/50-dynmigrate.conf"
		remove_ours "$dst" "${A_DROPIN_FILES[$i]}"
		rmdir --ignore-fail-on-non-empty -- "${dst%/*}" 2>/dev/null || true
	done
	systemctl daemon-reload
}

install_overrides() {
	local i
	for i in "${!A_OVR_TARGET[@]}"; do
		if [ -z "${A_OVR_SOURCE[$i]}" ]; then
			if [ "$(readlink -- "${A_OVR_TARGET[$i]}" 2>/dev/null)" != /dev/null ]; then
				[ ! -e "${A_OVR_TARGET[$i]}" ] || die "${A_OVR_TARGET[$i]} exists: will not replace it with a mask"
				mkdir -p -- "${A_OVR_TARGET[$i]%/*}"
				ln -s /dev/null "${A_OVR_TARGET[$i]}"
				log "masked ${A_OVR_TARGET[$i]} (${A_OVR_KIND[$i]})"
			fi
		else
			if [ -e "${A_OVR_TARGET[$i]}" ] && ! cmp -s -- "$PLAN_DIR/${A_OVR_SOURCE[$i]}" "${A_OVR_TARGET[$i]}" &&
				! grep -q 'dynmigrate' "${A_OVR_TARGET[$i]}"; then
				cp -a -- "${A_OVR_TARGET[$i]}" "$(acct_dir)/override-orig.$i"
			fi
			install_file "$PLAN_DIR/${A_OVR_SOURCE[$i]}" "${A_OVR_TARGET[$i]}"
		fi
	done
}

remove_overrides() {
	local i
	for i in "${!A_OVR_TARGET[@]}"; do
		remove_ours "${A_OVR_TARGET[$i]}" "${A_OVR_SOURCE[$i]}"
		if [ -e "$(acct_dir)/override-orig.$i" ] && [ ! -e "${A_OVR_TARGET[$i]}" ]; then
			cp -a -- "$(acct_dir)/override-orig.$i" "${A_OVR_TARGET[$i]}"
			log "restored the original ${A_OVR_TARGET[$i]}"
		fi
	done
}

# ---- accounts -----------------------------------------------------------------------------

fix_files() {
	local i
	for i in "${!A_FIX_PATH[@]}"; do
		if [ -e "${A_FIX_PATH[$i]}" ]; then
			chown -h -- 0:0 "${A_FIX_PATH[$i]}"
			chmod -- "${A_FIX_MODE[$i]}" "${A_FIX_PATH[$i]}"
			log "re-owned ${A_FIX_PATH[$i]} to root, mode ${A_FIX_MODE[$i]}"
		fi
	done
}

remove_statoverrides() {
	local i
	command -v dpkg-statoverride >/dev/null || return 0
	for i in "${!A_SO_PATH[@]}"; do
		if dpkg-statoverride --list "${A_SO_PATH[$i]}" >/dev/null 2>&1; then
			dpkg-statoverride --remove "${A_SO_PATH[$i]}"
			log "removed statoverride of ${A_SO_PATH[$i]} (saved in the backup)"
		fi
	done
	for i in "${!A_PIN_PATH[@]}"; do
		if ! dpkg-statoverride --list "${A_PIN_PATH[$i]}" >/dev/null 2>&1; then
			dpkg-statoverride --add root root "${A_PIN_MODE[$i]}" "${A_PIN_PATH[$i]}"
			log "pinned ${A_PIN_PATH[$i]} as root root ${A_PIN_MODE[$i]} so that package scripts skip their chown"
		fi
	done
}

restore_statoverrides() {
	local i line
	command -v dpkg-statoverride >/dev/null || return 0
	for i in "${!A_PIN_PATH[@]}"; do
		line=$(dpkg-statoverride --list "${A_PIN_PATH[$i]}" 2>/dev/null || true)
		if [ "$line" = "root root ${A_PIN_MODE[$i]} ${A_PIN_PATH[$i]}" ]; then
			dpkg-statoverride --remove "${A_PIN_PATH[$i]}"
			log "removed pin of ${A_PIN_PATH[$i]}"
		fi
	done
	for i in "${!A_SO_PATH[@]}"; do
		if ! dpkg-statoverride --list "${A_SO_PATH[$i]}" >/dev/null 2>&1; then
			dpkg-statoverride --add "${A_SO_USER[$i]}" "${A_SO_GROUP[$i]}" "${A_SO_MODE[$i]}" "${A_SO_PATH[$i]}"
			log "restored statoverride of ${A_SO_PATH[$i]}"
		fi
	done
}

procs_of_uid() {
	# PIDs and names of processes whose real or effective UID is $1 (no procps needed)
	awk -v u="$1" '/^Name:/ { n = $2 } /^Uid:/ { if ($2 == u || $3 == u) { split(FILENAME, p, "/"); print p[3], n } }' \
		/proc/[0-9]*/status 2>/dev/null || true
}

no_stray_processes() {
	local left
	left=$(procs_of_uid "$A_UID")
	if [ -n "$left" ]; then
		log "processes still run as UID $A_UID outside the stopped units:"
		printf '%s\n' "$left" >&2
		return 1
	fi
}

delete_account() {
	if static_user_exists "$A_NAME"; then
		[ "$(account_uid "$A_NAME")" = "$A_UID" ] || die "$A_NAME has UID $(account_uid "$A_NAME"), not $A_UID: refusing"
		userdel -- "$A_NAME"
		log "deleted user $A_NAME (files are never removed)"
	fi
	if [ "$A_DELETE_GROUP" = 1 ] && static_group_exists "$A_GROUP"; then
		groupdel -- "$A_GROUP"
		log "deleted group $A_GROUP"
	fi
	if command -v nscd >/dev/null; then nscd -i passwd -i group 2>/dev/null || true; fi
}

recreate_account() {
	local dir hash grp
	dir=$(acct_dir)
	[ -s "$dir/passwd" ] || die "no backup of $A_NAME in $dir: cannot recreate it"
	if [ "$A_DELETE_GROUP" = 1 ] && ! static_group_exists "$A_GROUP"; then
		if getent group "$A_GID" | grep -v "^$A_GROUP:" >/dev/null; then die "GID $A_GID is taken: $(getent group "$A_GID")"; fi
		groupadd -g "$A_GID" -- "$A_GROUP"
		log "recreated group $A_GROUP with GID $A_GID"
	fi
	if ! static_user_exists "$A_NAME"; then
		if getent passwd "$A_UID" | grep -v "^$A_NAME:" >/dev/null; then die "UID $A_UID is taken: $(getent passwd "$A_UID" | cut -d: -f1)"; fi
		useradd -r -M -u "$A_UID" -g "$A_GID" -d "$A_HOME" -s "$A_SHELL" -c "$A_GECOS" -- "$A_NAME"
		hash=$(cut -d: -f2 "$dir/shadow")
		if [ -n "$hash" ]; then usermod -p "$hash" -- "$A_NAME"; fi
		log "recreated user $A_NAME with UID $A_UID and GID $A_GID"
	fi
	while read -r grp; do
		if [ -n "$grp" ] && static_group_exists "$grp"; then usermod -a -G "$grp" -- "$A_NAME"; fi
	done <"$dir/member-of"
	[ "$(account_uid "$A_NAME")" = "$A_UID" ] || die "recreated $A_NAME does not have UID $A_UID"
}

nss_ok() {
	grep -Eq '^passwd:.*[[:space:]]systemd([[:space:]]|$)' /etc/nsswitch.conf &&
		grep -Eq '^group:.*[[:space:]]systemd([[:space:]]|$)' /etc/nsswitch.conf &&
		{ ldconfig -p 2>/dev/null | grep 'libnss_systemd\.so\.2' >/dev/null; }
}

ensure_nss_systemd() {
	if nss_ok; then return 0; fi
	install -d -m 0700 -- "$STATE"
	if [ ! -e "$STATE/nsswitch.conf.orig" ]; then
		cp -a /etc/nsswitch.conf "$STATE/nsswitch.conf.orig"
		log "saved /etc/nsswitch.conf"
	fi
	if ! ldconfig -p 2>/dev/null | grep 'libnss_systemd\.so\.2' >/dev/null; then
		local deb
		deb=$(find /var/cache/apt/archives -maxdepth 1 -name 'libnss-systemd_*.deb' -print -quit 2>/dev/null || true)
		if [ -n "$deb" ]; then
			log "installing libnss-systemd from the local apt cache: $deb"
			DEBIAN_FRONTEND=noninteractive dpkg -i -- "$deb" >&2 || die "dpkg -i $deb failed"
		else
			log "installing libnss-systemd with apt-get"
			DYNMIGRATE_SKIP_REPAIR=1 DEBIAN_FRONTEND=noninteractive apt-get install -y libnss-systemd >&2 ||
				die "cannot install libnss-systemd"
		fi
		touch "$STATE/nss-installed-by-dynmigrate"
	fi
	if ! grep -Eq '^passwd:.*[[:space:]]systemd([[:space:]]|$)' /etc/nsswitch.conf ||
		! grep -Eq '^group:.*[[:space:]]systemd([[:space:]]|$)' /etc/nsswitch.conf; then
		sed -i -E '/^(passwd|group):/ { / systemd( |$)/! s/[[:space:]]*$/ systemd/ }' /etc/nsswitch.conf
		log "added systemd to the passwd and group lines of /etc/nsswitch.conf"
	fi
	nss_ok || die "nss-systemd is still not usable"
}

restore_nss() {
	if [ -e "$STATE/nsswitch.conf.orig" ]; then
		cp -a -- "$STATE/nsswitch.conf.orig" /etc/nsswitch.conf
		rm -f -- "$STATE/nsswitch.conf.orig"
		log "restored /etc/nsswitch.conf (libnss-systemd stays installed; it is harmless)"
	fi
}

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

# ---- data: written by dynmigrate at plan time; every value is quoted ----
# Values are literal on purpose: '$' and backticks inside single quotes must not expand
# (hence the shellcheck directives SC2016/SC1003 below).
# shellcheck disable=SC2016,SC1003
ACCOUNTS=(memcache postgres redis shortlink)
NSS_ACTION=none
# sha256 and path of every plan file this script installs
# shellcheck disable=SC2016,SC1003
PLAN_FILES=(
	6d6435164795ebbcf595a8618df1ace1d0e502162948dd9739fbccf8f6a1cf0c files/80dynmigrate-repair
	11b1fe9206de1044b89711ff2ada67b6ac10d58ee3eb05db195a1d0903e2787e files/dynmigrate-repair
	231ace1d824107e81c593297a64952a0dfe96887f25b786b7b3e3d5441728e33 files/memcache/override-0
	7fdc83a912ce556d049b7947cb326fe9ee3975eaaf00a7af3c90327bf79a1ef2 files/postgres/override-0
	7383940705d9c3c8af3c4c410ef699c199a08cfeba92a70b72ea8373a86491a5 files/postgres/override-1
	29f68c666ffa7af684dd4daf2f7232d85779212bb29bf3f57ef1d406c87333b8 units/memcached.service/50-dynmigrate.conf
	06d6f6bfe2a64fac9cde0cea0b53f30369ec2202a01603a84d7977ea0c54670e units/postgresql.service/50-dynmigrate.conf
	d94b7e86d645f1528a269e56aec4d038c853c74d55f23b524b233c85a865fc74 units/postgresql@.service/50-dynmigrate.conf
	7bbdc015e1c1570cb298bae6cecf4375bdc8fb765d3fe3f0e4c675a10553b3db units/redis-server.service/50-dynmigrate.conf
	981f9bd53438171734f90e8810481e882117570093a99f5ae605dcc4a30b44b6 units/redis-server@.service/50-dynmigrate.conf
	2a11d9dee10ad258e2cd8399d86f1b1a78a0701932234ff5f2a64b9e2ce9e3fc units/shortlink.service/50-dynmigrate.conf
)

# shellcheck disable=SC2016,SC1003
load_account() {
	case "$1" in
	memcache)
		A_NAME=memcache A_UID=104 A_GID=106 A_GROUP=memcache A_DELETE_GROUP=1
		A_HOME=/nonexistent A_SHELL=/bin/false A_GECOS=Memcached,,,
		A_DROPIN_UNITS=(memcached.service)
		A_DROPIN_FILES=(units/memcached.service/50-dynmigrate.conf)
		A_RUN_UNITS=(memcached.service)
		A_RUN_PROBES=('exec 3<>/dev/tcp/127.0.0.1/11211 && printf '"'"'version\r\n'"'"' >&3 && timeout 5 head -n1 <&3 | grep -q '"'"'^VERSION'"'"'')
		A_MOVE=()
		A_RUNTIME=(/run/memcached)
		A_FIX_PATH=()
		A_FIX_MODE=()
		A_OVR_TARGET=(/etc/tmpfiles.d/memcached.conf)
		A_OVR_SOURCE=(files/memcache/override-0)
		A_OVR_KIND=(tmpfiles-override)
		A_SO_USER=()
		A_SO_GROUP=()
		A_SO_MODE=()
		A_SO_PATH=()
		A_PIN_PATH=()
		A_PIN_MODE=()
		A_MANUAL=(DM110-memcache DM201-memcache)
		A_MANIFEST=()
		;;
	postgres)
		A_NAME=postgres A_UID=102 A_GID=104 A_GROUP=postgres A_DELETE_GROUP=1
		A_HOME=/var/lib/postgresql A_SHELL=/bin/bash A_GECOS='PostgreSQL administrator,,,'
		A_DROPIN_UNITS=(postgresql.service postgresql@.service)
		A_DROPIN_FILES=(units/postgresql.service/50-dynmigrate.conf units/postgresql@.service/50-dynmigrate.conf)
		A_RUN_UNITS=(postgresql.service postgresql@15-main.service)
		A_RUN_PROBES=('pg_isready -q' 'pg_isready -q')
		A_MOVE=(/var/lib/postgresql /var/log/postgresql)
		A_RUNTIME=(/run/postgresql)
		A_FIX_PATH=(/etc/postgresql /etc/postgresql/15 /etc/postgresql/15/main /etc/postgresql/15/main/conf.d /etc/postgresql/15/main/environment /etc/postgresql/15/main/pg_ctl.conf /etc/postgresql/15/main/pg_hba.conf /etc/postgresql/15/main/pg_ident.conf /etc/postgresql/15/main/postgresql.conf /etc/postgresql/15/main/start.conf)
		A_FIX_MODE=(0755 0755 0755 0755 0644 0644 0644 0644 0644 0644)
		A_OVR_TARGET=(/etc/cron.d/pg-backup /etc/tmpfiles.d/postgresql-common.conf)
		A_OVR_SOURCE=(files/postgres/override-0 files/postgres/override-1)
		A_OVR_KIND=(cron-override tmpfiles-override)
		A_SO_USER=()
		A_SO_GROUP=()
		A_SO_MODE=()
		A_SO_PATH=()
		A_PIN_PATH=()
		A_PIN_MODE=()
		A_MANUAL=(DM103-postgres DM104-postgres DM110-postgres DM213-postgres DM301-postgres DM401-postgres)
		A_MANIFEST=(/etc/postgresql /etc/postgresql/15 /etc/postgresql/15/main /etc/postgresql/15/main/conf.d /etc/postgresql/15/main/environment /etc/postgresql/15/main/pg_ctl.conf /etc/postgresql/15/main/pg_hba.conf /etc/postgresql/15/main/pg_ident.conf /etc/postgresql/15/main/postgresql.conf /etc/postgresql/15/main/start.conf /var/backups/postgresql /var/lib/postgresql /var/log/postgresql)
		;;
	redis)
		A_NAME=redis A_UID=103 A_GID=105 A_GROUP=redis A_DELETE_GROUP=1
		A_HOME=/var/lib/redis A_SHELL=/usr/sbin/nologin A_GECOS=''
		A_DROPIN_UNITS=(redis-server.service redis-server@.service)
		A_DROPIN_FILES=(units/redis-server.service/50-dynmigrate.conf units/redis-server@.service/50-dynmigrate.conf)
		A_RUN_UNITS=(redis-server.service)
		A_RUN_PROBES=('redis-cli -h 127.0.0.1 ping | grep -qx PONG')
		A_MOVE=(/var/lib/redis /var/log/redis)
		A_RUNTIME=(/run/redis)
		A_FIX_PATH=(/etc/redis /etc/redis/redis.conf)
		A_FIX_MODE=(0755 0644)
		A_OVR_TARGET=()
		A_OVR_SOURCE=()
		A_OVR_KIND=()
		A_SO_USER=(redis)
		A_SO_GROUP=(redis)
		A_SO_MODE=(640)
		A_SO_PATH=(/etc/redis/redis.conf)
		A_PIN_PATH=(/etc/redis /etc/redis/redis.conf /var/lib/redis /var/log/redis)
		A_PIN_MODE=(755 644 755 755)
		A_MANUAL=(DM110-redis DM208-redis)
		A_MANIFEST=(/etc/redis /etc/redis/redis.conf /var/lib/redis /var/log/redis)
		;;
	shortlink)
		A_NAME=shortlink A_UID=106 A_GID=109 A_GROUP=shortlink A_DELETE_GROUP=1
		A_HOME=/var/lib/shortlink A_SHELL=/usr/sbin/nologin A_GECOS=''
		A_DROPIN_UNITS=(shortlink.service)
		A_DROPIN_FILES=(units/shortlink.service/50-dynmigrate.conf)
		A_RUN_UNITS=(shortlink.service)
		A_RUN_PROBES=('')
		A_MOVE=(/var/lib/shortlink)
		A_RUNTIME=()
		A_FIX_PATH=()
		A_FIX_MODE=()
		A_OVR_TARGET=()
		A_OVR_SOURCE=()
		A_OVR_KIND=()
		A_SO_USER=()
		A_SO_GROUP=()
		A_SO_MODE=()
		A_SO_PATH=()
		A_PIN_PATH=()
		A_PIN_MODE=()
		A_MANUAL=()
		A_MANIFEST=(/var/lib/shortlink)
		;;
	*) die "no such account in this plan: $1" ;;
	esac
}

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
	install -d -m 0700 -- "$STATE" "$STATE/accounts"
	verify_plan_files
	exec 9>"$STATE/lock"
	flock -n 9 || die "another dynmigrate script is running (lock $STATE/lock)"
	STAGE=$stage
	for acct in "${selected[@]}"; do
		load_account "$acct"
		install -d -m 0700 -- "$(acct_dir)"
		log "$action $stage"
		"${prefix}_$stage"
	done
	A_NAME=""
	log "$action $stage finished for: ${selected[*]}"
}
