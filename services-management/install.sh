#!/usr/bin/env bash
# Install Exchanger's systemd units for the given environments (default: prod dev), run by a dedicated
# system user, create their RabbitMQ virtual hosts, and enable the services. Run as root from a checkout:
#   services-management/install.sh [--user exchanger] [--no-start] [--instances N] [prod] [dev]
# --instances N (1..9, default 1): N camunda-workers and N task-creators per environment on this host,
# exchanger-worker@<env>, exchanger-worker-2@<env>, … (EXCHANGER_INSTANCE=n; README, "Two of each").
# Idempotent: a second run changes nothing but reinstalling the product into .venv from this checkout, which
# is the upgrade step (git pull, install.sh, exchangerctl restart). Never runs the services as root.
# EXCHANGER_SYSROOT (tests) puts /etc under another folder and skips the root check.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SYSROOT="${EXCHANGER_SYSROOT:-}"
UNIT_DIR="$SYSROOT/etc/systemd/system"
CONF_DIR="$SYSROOT/etc/exchanger"
SERVICE_USER=exchanger
START=yes
INSTANCES=1
ENVIRONMENTS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --user) SERVICE_USER="$2"; shift 2 ;;
    --no-start) START=no; shift ;;
    --instances) INSTANCES="${2:-}"; shift 2 ;;
    prod|dev) ENVIRONMENTS+=("$1"); shift ;;
    *) echo "install.sh: unknown argument $1 (usage: install.sh [--user NAME] [--no-start] [--instances N] [prod]" \
            "[dev])"; exit 2 ;;
  esac
done
case "$INSTANCES" in
  [1-9]) ;;
  *) echo "install.sh: --instances takes 1..9 (camunda-workers and task-creators per environment), not '$INSTANCES'"
     exit 2 ;;
esac
[ ${#ENVIRONMENTS[@]} -gt 0 ] || ENVIRONMENTS=(prod dev)

[ -n "$SYSROOT" ] || [ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (it writes /etc/systemd/system)"; exit 1; }
if [ "$SERVICE_USER" = root ]; then
  echo "install.sh: the services do not run as root; use the default dedicated user or --user NAME"; exit 2
fi
for env in "${ENVIRONMENTS[@]}"; do
  [ -f "$ROOT/.env.$env" ] || { echo "install.sh: $ROOT/.env.$env is missing"; exit 1; }
done

# the dedicated user: no login, no home, its own group
if ! getent passwd "$SERVICE_USER" >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SERVICE_USER"
  echo "created system user $SERVICE_USER"
fi
SERVICE_GROUP="$(id -gn "$SERVICE_USER" 2>/dev/null || echo "$SERVICE_USER")"

# .venv holds the product only, non-editable (Makefile, server-venv): the units run what this script installed
# last; `make venv` (the sandbox and the test tools, for development) is not for a server. umask 022: the service
# user reads it, whatever root's umask
(umask 022 && make -s -C "$ROOT" server-venv)

# what the service may write: logs, the instance lock, camunda-sync's state; the env files it may read
for dir in logs run state; do
  mkdir -p "$ROOT/$dir"
  chown -R "$SERVICE_USER:$SERVICE_GROUP" "$ROOT/$dir"
  chmod 750 "$ROOT/$dir"
done
for env in "${ENVIRONMENTS[@]}"; do
  chown "root:$SERVICE_GROUP" "$ROOT/.env.$env"
  chmod 640 "$ROOT/.env.$env"
done

case "$ROOT/" in
  /home/*|/root/*|/run/user/*) PROTECT_HOME=read-only ;;
  *) PROTECT_HOME=yes ;;
esac

instance_unit() {  # <daemon> <n>: the template unit of instance n (exchanger-worker@, exchanger-worker-2@, …)
  if [ "$2" = 1 ]; then echo "exchanger-$1@.service"; else echo "exchanger-$1-$2@.service"; fi
}
component() {
  case "$1" in worker) echo camunda-worker ;; creator) echo task-creator ;; sync) echo camunda-sync ;; esac
}

mkdir -p "$UNIT_DIR"
changed=no
for daemon in worker creator sync; do
  count=$INSTANCES
  [ "$daemon" != sync ] || count=1  # camunda-sync runs once per environment
  for n in $(seq 1 "$count"); do
    unit="$(instance_unit "$daemon" "$n")"
    name="$(component "$daemon")"
    [ "$n" = 1 ] || name="$name-$n"
    rendered="$(sed -e "s#@ROOT@#$ROOT#g" -e "s#@USER@#$SERVICE_USER#g" -e "s#@GROUP@#$SERVICE_GROUP#g" \
                    -e "s#@PROTECT_HOME@#$PROTECT_HOME#g" -e "s#@NAME@#$name#g" -e "s#@INSTANCE@#$n#g" \
                    "$ROOT/services-management/exchanger-$daemon@.service")"
    if [ ! -f "$UNIT_DIR/$unit" ] || [ "$(cat "$UNIT_DIR/$unit")" != "$rendered" ]; then
      printf '%s\n' "$rendered" > "$UNIT_DIR/$unit"
      chmod 644 "$UNIT_DIR/$unit"
      changed=yes
    fi
  done
done
[ "$changed" = no ] || [ -n "$SYSROOT" ] || systemctl daemon-reload

mkdir -p "$CONF_DIR"
chmod 700 "$CONF_DIR"

# Exchanger.py's units: with Restart=always (and its own start_services.sh) they would come back and
# fetch and consume next to Exchanger. Stop, disable and mask every one this machine has; migrate their
# in-flight work with `exchanger migrate from-exchanger-py` (README, "Switching from Exchanger.py").
for old in exchanger-camunda-worker-prod exchanger-task-creator-prod exchanger-camunda-worker-dev \
           exchanger-task-creator-dev exchanger-camunda-worker exchanger-task-creator; do
  case "$(systemctl show -p LoadState --value "$old.service" 2>/dev/null || true)" in
    ""|not-found|masked) continue ;;
  esac
  systemctl stop "$old.service" || true
  systemctl disable "$old.service" || true
  systemctl mask "$old.service"
  echo "stopped, disabled and masked Exchanger.py's $old"
done

configured() {  # <env> <variable>: set to a non-empty value in the repository env file or the secrets file
  grep -Eqs "^$2=.+" "$ROOT/.env.$1" "$CONF_DIR/$1.env"
}

for env in "${ENVIRONMENTS[@]}"; do
  daemons=(worker creator)
  # camunda-sync only where it can work: built, and a StormBPMN key configured for this environment
  if [ -x "$ROOT/.venv/bin/exchanger-sync" ] && configured "$env" STORMBPMN_API_KEY; then
    daemons+=(sync)
  else
    echo "$env: camunda-sync not enabled (set STORMBPMN_API_KEY in $CONF_DIR/$env.env and run install.sh again)"
  fi
  vhost=$(grep -E '^RABBITMQ_VIRTUAL_HOST=' "$ROOT/.env.$env" | cut -d= -f2- || true)
  if [ -n "$vhost" ] && command -v rabbitmqctl >/dev/null; then
    rabbitmqctl -q list_vhosts 2>/dev/null | grep -qx "$vhost" || rabbitmqctl -q add_vhost "$vhost"
    rabbitmqctl -q set_permissions -p "$vhost" "${RABBITMQ_USERNAME:-guest}" '.*' '.*' '.*'
  fi
  [ -f "$CONF_DIR/$env.env" ] || install -m 600 /dev/null "$CONF_DIR/$env.env"
  units=()
  for daemon in "${daemons[@]}"; do
    units+=("exchanger-$daemon@$env")
    if [ "$daemon" != sync ]; then
      for n in $(seq 2 "$INSTANCES"); do units+=("exchanger-$daemon-$n@$env"); done
    fi
  done
  if [ "$START" = yes ]; then
    systemctl enable --now "${units[@]}"
  else
    systemctl enable "${units[@]}"
  fi
  echo "installed $env: ${units[*]} as $SERVICE_USER (services-management/exchangerctl status)"
done
