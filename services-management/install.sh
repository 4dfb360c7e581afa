#!/usr/bin/env bash
# Install Exchanger's systemd units for the given environments (default: prod dev), create their
# RabbitMQ virtual hosts, and enable the services. Run as root from a checkout:
#   services-management/install.sh [--user exchanger] [prod] [dev]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SERVICE_USER="${SUDO_USER:-root}"
if [ "${1:-}" = "--user" ]; then SERVICE_USER="$2"; shift 2; fi
ENVIRONMENTS=("${@:-prod dev}")
# shellcheck disable=SC2206
ENVIRONMENTS=(${ENVIRONMENTS[*]})

[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (it writes /etc/systemd/system)"; exit 1; }
make -C "$ROOT" venv

for unit in exchanger-worker@.service exchanger-creator@.service; do
  sed -e "s#@ROOT@#$ROOT#g" -e "s#@USER@#$SERVICE_USER#g" "$ROOT/services-management/$unit" > "/etc/systemd/system/$unit"
done
mkdir -p /etc/exchanger && chmod 700 /etc/exchanger
systemctl daemon-reload

for env in "${ENVIRONMENTS[@]}"; do
  [ -f "$ROOT/.env.$env" ] || { echo "install.sh: $ROOT/.env.$env is missing"; exit 1; }
  vhost=$(grep -E '^RABBITMQ_VIRTUAL_HOST=' "$ROOT/.env.$env" | cut -d= -f2- || true)
  if [ -n "$vhost" ] && command -v rabbitmqctl >/dev/null; then
    rabbitmqctl -q add_vhost "$vhost" 2>/dev/null || true
    rabbitmqctl -q set_permissions -p "$vhost" "${RABBITMQ_USERNAME:-guest}" '.*' '.*' '.*'
  fi
  touch "/etc/exchanger/$env.env" && chmod 600 "/etc/exchanger/$env.env"
  systemctl enable --now "exchanger-worker@$env" "exchanger-creator@$env"
  echo "installed $env: systemctl status exchanger-worker@$env exchanger-creator@$env"
done
