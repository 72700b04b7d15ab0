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
