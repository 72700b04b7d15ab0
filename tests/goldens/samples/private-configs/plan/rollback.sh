#!/bin/bash
# shellcheck source-path=SCRIPTDIR
# dynmigrate 0.1.0: rollback script for host vault01 (accounts: Debian-snmp, _chrony, knot, ledger, nslcd).
# Generated from a scan of samples/private-configs/root; review REPORT.md before running anything.
#
#   rollback.sh [--account NAME]... [--dry-run] STAGE
#
# Stages: stage0 (preflight), stage1 (sandbox), stage2 (release the account), stage3 (cleanup).
# Every stage is idempotent: after an interruption, run it again. --dry-run prints every command
# that would change the host, in order and with its values, and changes nothing.
set -euo pipefail
shopt -s nullglob
umask 077
export LC_ALL=C
SCRIPT_NAME=rollback.sh
STATE=${DYNMIGRATE_STATE:-/var/lib/dynmigrate}
PLAN_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
START_TIMEOUT=${DYNMIGRATE_START_TIMEOUT:-60}
SETTLE=${DYNMIGRATE_SETTLE:-5}
PROBE_TIMEOUT=${DYNMIGRATE_PROBE_TIMEOUT:-30}
STAGE=""
A_NAME=""
declare -A CONFIRMED=()

LIB="$PLAN_DIR/lib/dynmigrate.sh"
LIB_SHA256=33ba14155f53f62cbc23b18012c870b290d643ab8650a514cebd792281fcb810
if [ ! -f "$LIB" ] || [ "$(sha256sum <"$LIB" | cut -d' ' -f1)" != "$LIB_SHA256" ]; then
	echo "$SCRIPT_NAME: $LIB is missing or changed since planning: refusing to run" >&2
	exit 1
fi
PLAN_ID=$LIB_SHA256
# shellcheck source=lib/dynmigrate.sh
source "$LIB"
trap on_exit EXIT
dynmigrate_main undo 'rolling back' "$@"
