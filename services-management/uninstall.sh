#!/usr/bin/env bash
# Stop and remove Exchanger's systemd units. Logs, state, /etc/exchanger and the service user stay
# unless --purge is given. Idempotent: running it again (or before any install) changes nothing.
#   services-management/uninstall.sh [--purge] [--user exchanger]
# EXCHANGER_SYSROOT (tests) puts /etc under another folder and skips the root check.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SYSROOT="${EXCHANGER_SYSROOT:-}"
UNIT_DIR="$SYSROOT/etc/systemd/system"
CONF_DIR="$SYSROOT/etc/exchanger"
SERVICE_USER=exchanger
PURGE=no
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) PURGE=yes; shift ;;
    --user) SERVICE_USER="$2"; shift 2 ;;
    *) echo "uninstall.sh: unknown argument $1 (usage: uninstall.sh [--purge] [--user NAME])"; exit 2 ;;
  esac
done
[ -n "$SYSROOT" ] || [ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: run as root"; exit 1; }

removed=no
for template in "$UNIT_DIR"/exchanger-worker@.service "$UNIT_DIR"/exchanger-worker-[2-9]@.service \
                "$UNIT_DIR"/exchanger-creator@.service "$UNIT_DIR"/exchanger-creator-[2-9]@.service \
                "$UNIT_DIR"/exchanger-sync@.service; do
  [ -f "$template" ] || continue
  prefix="$(basename "$template" .service)"  # exchanger-worker@, exchanger-worker-2@, …
  for env in prod dev; do
    unit="$prefix$env.service"
    if [ -e "$UNIT_DIR/multi-user.target.wants/$unit" ]; then
      systemctl disable --now "$unit" || true
    fi
  done
  rm -f "$template"
  removed=yes
done
[ "$removed" = no ] || [ -n "$SYSROOT" ] || systemctl daemon-reload
[ "$removed" = no ] || echo "removed the Exchanger units"

if [ "$PURGE" = yes ]; then
  rm -rf "$ROOT/logs" "$ROOT/state" "$ROOT/run" "$CONF_DIR"
  if getent passwd "$SERVICE_USER" >/dev/null; then userdel "$SERVICE_USER"; fi
  echo "purged logs, state, $CONF_DIR and the user $SERVICE_USER"
else
  echo "kept $ROOT/logs, $ROOT/state, $CONF_DIR and the user $SERVICE_USER (--purge removes them)"
fi
