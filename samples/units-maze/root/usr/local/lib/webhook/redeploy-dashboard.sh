#!/bin/sh
# Called by webhook; logs into its state directory.
set -eu
echo "$(date -Is) redeploy requested" >> "${STATE_DIRECTORY:-/var/lib/webhook}/deploy.log"
