#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, from Debian's packages, for tests and for trying
# `--executor slurm` before a real cluster:
#
#   sudo bash scripts/slurm-local.sh start    # idempotent; returns once `sinfo` shows the node idle
#   bash scripts/slurm-local.sh status        # daemons, node state, queue
#   sudo bash scripts/slurm-local.sh stop
#
# Needs: apt-get install slurm-wlm munge slurmdbd mariadb-server (scripts/install.sh does it).
# What runs (all as root, no systemd, no cgroups; state under $SLURM_LOCAL_STATE):
#   munged       authentication between Slurm's daemons and commands
#   mariadbd     the accounting database, on 127.0.0.1:$SLURM_LOCAL_DB_PORT only
#   slurmdbd     accounting daemon: `sacct` (and so submitit, which polls job states with it) needs it;
#                Slurm 22.05 has no file-based accounting that sacct reads any more
#   slurmctld    the controller;  slurmd  the node, with this machine's CPUs and memory (`slurmd -C`)
# Configuration goes to /etc/slurm/{slurm,slurmdbd}.conf, where every Slurm command looks; a file there
# that this script did not write is never overwritten.
set -euo pipefail

STATE=${SLURM_LOCAL_STATE:-/var/lib/massive-sft-slurm}
DB_PORT=${SLURM_LOCAL_DB_PORT:-16819}
CONF_DIR=/etc/slurm
MARKER="# written by massive-sft scripts/slurm-local.sh"
CLUSTER=massive-sft-local
PARTITION=debug
WAIT_S=${SLURM_LOCAL_WAIT_S:-120}
DB_PASSWORD=massive-sft-local  # reachable on 127.0.0.1 only, for a throwaway accounting database

die() {
  echo "slurm-local: $*" >&2
  exit 2
}

log() { echo "slurm-local: $*"; }

require_root() {
  [ "$(id -u)" = 0 ] || die "starting or stopping the daemons needs root; run: sudo bash $0 $1"
}

require_packages() {
  local missing=()
  for binary in munged slurmctld slurmd slurmdbd sinfo sacct mariadbd mariadb-install-db; do
    command -v "$binary" >/dev/null 2>&1 || missing+=("$binary")
  done
  [ ${#missing[@]} = 0 ] ||
    die "missing ${missing[*]}; install: apt-get install slurm-wlm munge slurmdbd mariadb-server"
}

# ------------------------------------------------------------------------------------------ processes

pid_alive() { # pidfile
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() { # description, command...
  local description=$1
  shift
  for _ in $(seq "$WAIT_S"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "$description did not come up within ${WAIT_S}s; see the logs in $STATE/log"
}

stop_pidfile() { # name, pidfile
  local name=$1 pidfile=$2 pid
  pid_alive "$pidfile" || return 0
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
  rm -f "$pidfile"
  log "stopped $name"
}

# ------------------------------------------------------------------------------------------ config

write_config() { # path, content: refuses to replace a file this script did not write
  local path=$1 content=$2
  if [ -f "$path" ] && ! grep -qF "$MARKER" "$path"; then
    die "$path exists and was not written by this script; move it away to use the local cluster"
  fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n%s\n' "$MARKER" "$content" >"$path.tmp"
  chmod 600 "$path.tmp"
  mv "$path.tmp" "$path"
}

node_line() {
  # slurmd -C prints what slurmd will report at registration; a configuration claiming more would
  # drain the node ("Low RealMemory"), so the node line is exactly that.
  slurmd -C | head -n 1
}

slurm_conf() {
  local host
  host=$(hostname -s)
  cat <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job (preempted, node failure, time limit via submitit) waits cred_expire seconds before it
# may start again: 120 s by default, 10 s on this one machine.
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups and no systemd here: processes are tracked through /proc, tasks are not confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobRequeue=1
# Job history for sacct (and submitit's job states) through slurmdbd.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
# Short timers: a single machine answers fast, and tests should not wait on defaults meant for clusters.
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=30
# A killed job's processes get SIGKILL this long after SIGTERM (which submitit ignores).
KillWait=2
Waittime=0
$(node_line) State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

slurmdbd_conf() {
  cat <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
EOF
}

# ------------------------------------------------------------------------------------------ daemons

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  install -d -o munge -g munge -m 700 /var/log/munge /var/lib/munge
  runuser -u munge -- munged
  wait_for munged sh -c 'munge -n | unmunge'
  log "started munged"
}

mariadb() { command mariadb --socket="$STATE/run/mysqld.sock" "$@"; }

start_database() {
  local pidfile=$STATE/run/mariadbd.pid
  if ! pid_alive "$pidfile"; then
    if [ ! -d "$STATE/mysql/mysql" ]; then
      mariadb-install-db --user=root --datadir="$STATE/mysql" --auth-root-authentication-method=socket \
        >"$STATE/log/mariadb-install.log" 2>&1
    fi
    nohup mariadbd --user=root --datadir="$STATE/mysql" --socket="$STATE/run/mysqld.sock" \
      --pid-file="$pidfile" --port="$DB_PORT" --bind-address=127.0.0.1 \
      --log-error="$STATE/log/mariadb.log" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
    wait_for mariadbd mariadb -e 'SELECT 1'
    log "started mariadbd on 127.0.0.1:$DB_PORT"
  fi
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurmdbd() {
  pid_alive "$STATE/run/slurmdbd.pid" && return 0
  slurmdbd
  wait_for slurmdbd sacctmgr --immediate show cluster
  log "started slurmdbd"
}

register_cluster() {
  # slurmctld only sends accounting to a cluster the database knows.
  if ! sacctmgr --noheader --parsable2 show cluster format=cluster | grep -qx "$CLUSTER"; then
    sacctmgr --immediate add cluster "$CLUSTER" >/dev/null
  fi
}

start_slurmctld() {
  pid_alive "$STATE/run/slurmctld.pid" && return 0
  slurmctld
  wait_for slurmctld scontrol ping
  log "started slurmctld"
}

start_slurmd() {
  pid_alive "$STATE/run/slurmd.pid" && return 0
  slurmd
  log "started slurmd"
}

node_state() { sinfo --noheader --nodes="$(hostname -s)" --format=%T 2>/dev/null | head -n 1; }

wait_node_idle() {
  local state
  for _ in $(seq "$WAIT_S"); do
    state=$(node_state)
    case "$state" in
    idle | mixed | allocated) return 0 ;;
    down* | drain* | fail*)
      # A node that went away with the machine (stop, reboot) comes back marked down: it is healthy now.
      scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
      ;;
    esac
    sleep 1
  done
  die "node $(hostname -s) is '$state', not idle, after ${WAIT_S}s; reason: $(sinfo -R --noheader); \
debug with: slurmd -D -vvv (logs in $STATE/log)"
}

start() {
  require_root start
  require_packages
  mkdir -p "$STATE"/{ctld,d,log,run,mysql}
  chmod 755 "$STATE"
  write_config "$CONF_DIR/slurm.conf" "$(slurm_conf)"
  chmod 644 "$CONF_DIR/slurm.conf" # every user's commands read it
  write_config "$CONF_DIR/slurmdbd.conf" "$(slurmdbd_conf)"
  start_munge
  start_database
  start_slurmdbd
  register_cluster
  start_slurmctld
  start_slurmd
  wait_node_idle
  log "cluster $CLUSTER up: partition '$PARTITION' on $(hostname -s) ($(node_line | grep -o 'CPUs=[0-9]*'))"
}

stop() {
  require_root stop
  stop_pidfile slurmd "$STATE/run/slurmd.pid"
  stop_pidfile slurmctld "$STATE/run/slurmctld.pid"
  stop_pidfile slurmdbd "$STATE/run/slurmdbd.pid"
  stop_pidfile mariadbd "$STATE/run/mariadbd.pid"
  # munged is shared with anything else using munge on this machine: left running.
}

status() {
  local code=0 name
  for name in mariadbd slurmdbd slurmctld slurmd; do
    if pid_alive "$STATE/run/$name.pid"; then
      echo "$name: running (pid $(cat "$STATE/run/$name.pid"))"
    else
      echo "$name: stopped"
      code=3
    fi
  done
  if [ $code = 0 ]; then
    sinfo
    squeue
  fi
  return $code
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
restart)
  stop
  start
  ;;
*) die "usage: $0 start|stop|status|restart" ;;
esac
