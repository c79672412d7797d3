#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for trying (and testing) the cluster path of collapselab.
#
#   bash scripts/slurm_local.sh start         # install when missing, start munge, MariaDB, slurmdbd, slurmctld,
#                                             # slurmd; wait until the node is idle; print the SLURM_CONF to export
#   bash scripts/slurm_local.sh status        # the daemons it started and `sinfo`
#   bash scripts/slurm_local.sh stop          # stop exactly the daemons it started (by their pid files)
#
# Run start and stop as root (sudo where you are not). Everything lives under $COLLAPSELAB_SLURM_DIR (default
# /tmp/collapselab-slurm): slurm.conf, slurmdbd.conf, the MariaDB data, spool, state, logs and pid files. No systemd is needed; Debian/Ubuntu packages (slurm-wlm
# 22.05+, munge, slurmdbd, mariadb-server) are installed with apt-get when a daemon is missing. The node is sized
# from `slurmd -C`; one partition `debug`; select/cons_tres, proctrack/linuxproc, task/none; accounting through
# slurmdbd + MariaDB (submitit reads job states with sacct: without accounting a failed job would never be seen).
set -euo pipefail

DIR=${COLLAPSELAB_SLURM_DIR:-/tmp/collapselab-slurm}
CONF=$DIR/slurm.conf
DB_PORT=${COLLAPSELAB_SLURM_DB_PORT:-3307}
CTLD_PORT=${COLLAPSELAB_SLURM_PORT:-6817}
DBD_PORT=$((CTLD_PORT + 2))
HOST=$(hostname -s)
export SLURM_CONF=$CONF

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: $*" >&2; exit 1; }
alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
pid_file() { [[ $1 == mariadb ]] && echo "$DIR/mariadb/mariadb.pid" || echo "$DIR/$1.pid"; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...
  local limit=$1 what=$2; shift 2
  for ((i = 0; i < limit * 4; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  die "$what did not come up within ${limit}s (logs: $DIR/*.log, $DIR/mariadb/mariadb.log)"
}

install_missing() {
  local need=()
  command -v munged >/dev/null || need+=(munge)
  command -v mariadbd >/dev/null || need+=(mariadb-server)
  command -v slurmdbd >/dev/null || need+=(slurmdbd)
  { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null; } || need+=(slurm-wlm)
  ((${#need[@]} == 0)) && return 0
  command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get: install SLURM, munge and MariaDB yourself"
  [[ $(id -u) == 0 ]] || die "missing ${need[*]}: run as root (e.g. sudo bash scripts/slurm_local.sh start) to install them"
  say "installing ${need[*]} (apt-get)"
  # a fresh image has no package lists yet: update them once when the first install finds nothing
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >"$DIR/apt.log" 2>&1 ||
    { say "apt-get install failed; updating the package lists and trying again" &&
      apt-get update -q >>"$DIR/apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >>"$DIR/apt.log" 2>&1; } ||
    die "apt-get install ${need[*]} failed (see $DIR/apt.log)"
}

write_configs() {
  local cpus mem
  cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' | head -1)
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
  mem=$((mem * 9 / 10))  # leave the OS some room
  cat >"$CONF" <<EOF
ClusterName=collapselab
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=$CTLD_PORT
SlurmdPort=$((CTLD_PORT + 1))
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=60
MinJobAge=300
KillWait=10
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=collapselab
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/slurmdbd.conf"
}

start_munge() {
  alive "$DIR/munged.pid" && return 0  # ours, from an earlier start
  if [[ -S /run/munge/munge.socket.2 ]] && munge -n </dev/null >/dev/null 2>&1; then
    say "munge: already running (not ours, left alone)"
    return
  fi
  mkdir -p /run/munge /var/lib/munge "$DIR/munge"
  chown munge:munge /run/munge /var/lib/munge "$DIR/munge"
  [[ -f /etc/munge/munge.key ]] || { mungekey --create 2>/dev/null || create-munge-key -f; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid --log-file="$DIR/munge/munged.log" ||
    die "munged failed to start (see $DIR/munge/munged.log)"
  cp /run/munge/munged.pid "$DIR/munged.pid"
  wait_for 10 munge munge -n
}

start_mariadb() {
  local M=$DIR/mariadb  # owned by the mysql user: data, socket, pid file, log
  mkdir -p "$M" && chown mysql:mysql "$M"
  if [[ ! -d $M/data/mysql ]]; then
    mariadb-install-db --user=mysql --datadir="$M/data" --auth-root-authentication-method=socket \
      >"$DIR/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $DIR/mariadb-install.log)"
  fi
  setsid mariadbd --user=mysql --datadir="$M/data" --socket="$M/mysql.sock" --pid-file="$M/mariadb.pid" \
    --bind-address=127.0.0.1 --port="$DB_PORT" --log-error="$M/mariadb.log" --innodb-buffer-pool-size=64M \
    </dev/null >/dev/null 2>&1 &
  wait_for 60 MariaDB mariadb --socket="$M/mysql.sock" -e "SELECT 1"
  mariadb --socket="$M/mysql.sock" <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'collapselab';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'collapselab';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
}

node_idle() { [[ $(sinfo -h -N -o %t 2>/dev/null | head -1) == idle ]]; }

start() {
  mkdir -p "$DIR"/{state,spool} && chmod 755 "$DIR"  # munge and mysql (their own users) write below it
  [[ $(id -u) == 0 ]] || die "run as root (sudo): the daemons run as root, munge and MariaDB as their own users"
  if alive "$DIR/slurmctld.pid"; then
    say "already running ($DIR); export SLURM_CONF=$CONF"
    return 0
  fi
  install_missing
  write_configs
  start_munge
  start_mariadb
  slurmdbd || die "slurmdbd failed to start (see $DIR/slurmdbd.log)"
  wait_for 60 slurmdbd sacctmgr -n list cluster
  sacctmgr -i -Q add cluster collapselab >/dev/null 2>&1 || true
  slurmctld -f "$CONF" || die "slurmctld failed to start (see $DIR/slurmctld.log)"
  slurmd -f "$CONF" || die "slurmd failed to start (see $DIR/slurmd.log)"
  wait_for 60 "the node (sinfo: idle)" node_idle
  say "one-node cluster up: $(sinfo -h -o '%P %D %c %m %t' | head -1) (partition nodes cpus mem state)"
  say "export SLURM_CONF=$CONF"
}

stop() {
  local stopped=()
  for d in slurmd slurmctld slurmdbd mariadb munged; do
    local pid_file
    pid_file=$(pid_file "$d")
    if alive "$pid_file"; then
      local pid
      pid=$(cat "$pid_file")
      kill "$pid"
      for ((i = 0; i < 120 && $(kill -0 "$pid" 2>/dev/null && echo 1 || echo 0); i++)); do sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      stopped+=("$d")
    fi
    rm -f "$pid_file"
  done
  say "stopped: ${stopped[*]:-nothing was running}"
}

status() {
  local up=0
  for d in munged mariadb slurmdbd slurmctld slurmd; do
    if alive "$(pid_file "$d")"; then echo "$d: running (pid $(cat "$(pid_file "$d")"))"; up=1; else echo "$d: not running"; fi
  done
  ((up)) && sinfo 2>/dev/null || true
  echo "export SLURM_CONF=$CONF"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) die "usage: bash scripts/slurm_local.sh start|stop|status" ;;
esac
