#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, for the tests of the slurm launcher.
#
#   .ci/slurm-cluster.sh start    write slurm.conf (if it is ours or absent), start slurmctld +
#                                 slurmd, wait until the node is idle. Idempotent: a cluster
#                                 that already answers is left alone.
#   .ci/slurm-cluster.sh stop     stop the daemons this script started (by their pid files)
#   .ci/slurm-cluster.sh status   exit 0 iff the cluster answers with a usable node
#
# Needs Debian's `slurm-wlm` (bookworm: SLURM 22.05) and root (the daemons run as root and so do
# the jobs). Authentication is `auth/none` + `cred/none`: no munge daemon, nothing to configure;
# fine for a private test node, never for a shared machine.
#
# Environment: ADLAB_SLURM_STATE (state, spool, logs and pid files; default
# /var/spool/adlab-slurm), SLURM_CONF (default /etc/slurm/slurm.conf — where sbatch looks).
set -euo pipefail

STATE=${ADLAB_SLURM_STATE:-/var/spool/adlab-slurm}
CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
MARKER="# written by adlab .ci/slurm-cluster.sh"
TIMEOUT=${ADLAB_SLURM_START_TIMEOUT:-60}

die() {
    echo "slurm-cluster: $*" >&2
    exit 1
}

# The node's state as sinfo reports it (idle, mix, alloc, down*, drain, ...), or nothing.
node_state() {
    timeout 10 sinfo --noheader --Node --format='%t' 2>/dev/null | head -n 1 || true
}

usable() {
    case "$(node_state)" in
    idle | mix | mixed | alloc | allocated | comp | completing) return 0 ;;
    *) return 1 ;;
    esac
}

write_conf() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    # slurmd drains a node whose configured memory exceeds what it measures: stay below it.
    mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
    mkdir -p "$(dirname "$CONF")" "$STATE/ctld" "$STATE/spool"
    cat >"$CONF.tmp" <<EOF
$MARKER
# A one-node test cluster on localhost. Remove this file (and run \`.ci/slurm-cluster.sh stop\`)
# to get rid of it.
ClusterName=adlab
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ReturnToService=2
MaxArraySize=10001
MaxJobCount=100000
# Cancelled tasks get SIGTERM, then SIGKILL this many seconds later.
KillWait=5
MinJobAge=60
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    mv "$CONF.tmp" "$CONF"
}

# Whether the process in a pid file is alive.
alive() {
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

start() {
    if usable; then
        echo "slurm-cluster: already up ($(node_state))"
        return 0
    fi
    if ! { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null; }; then
        # A fresh machine has only Rust: as root with apt, install the packages so that a plain
        # `cargo test` works; anywhere else say what is missing.
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
            echo "slurm-cluster: installing slurm-wlm" >&2
            export DEBIAN_FRONTEND=noninteractive
            flock /var/lock/adlab-slurm-apt.lock sh -c \
                'command -v slurmd >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm >/dev/null; }' ||
                die "installing slurm-wlm failed"
        else
            die "slurmctld/slurmd/sinfo not found: install Debian's slurm-wlm (apt-get install slurm-wlm)"
        fi
    fi
    [[ $(id -u) == 0 ]] || die "must run as root (the daemons and the test jobs run as root)"
    if [[ -e $CONF ]] && ! head -n 1 "$CONF" | grep -qF "$MARKER"; then
        die "$CONF exists and was not written by this script, yet no cluster answers; not touching it"
    fi
    write_conf
    if ! alive "$STATE/slurmctld.pid"; then
        slurmctld -i || die "slurmctld did not start; see $STATE/slurmctld.log"
    fi
    if ! alive "$STATE/slurmd.pid"; then
        slurmd || die "slurmd did not start; see $STATE/slurmd.log"
    fi
    local deadline=$((SECONDS + TIMEOUT)) state
    while ((SECONDS < deadline)); do
        state=$(node_state)
        case "$state" in
        idle | mix | mixed | alloc | allocated)
            echo "slurm-cluster: up, node $(hostname -s) $state"
            return 0
            ;;
        down* | drain* | drng* | fail*)
            # A node restarted after an unclean stop comes back down; it is ours, resume it.
            scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
            ;;
        esac
        sleep 0.5
    done
    echo "slurm-cluster: node not idle after ${TIMEOUT}s (state: '${state:-no answer}')" >&2
    tail -n 20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 2>/dev/null || true
    exit 1
}

stop() {
    local f pid
    for f in slurmd slurmctld; do
        if alive "$STATE/$f.pid"; then
            pid=$(cat "$STATE/$f.pid")
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            echo "slurm-cluster: stopped $f ($pid)"
        fi
    done
}

cmd=${1:-}
case "$cmd" in
start | stop)
    # Tests start the cluster from parallel threads: one starter at a time.
    mkdir -p "$STATE"
    exec 9>"$STATE/lock"
    flock 9
    "$cmd"
    ;;
status) usable ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
