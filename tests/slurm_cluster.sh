#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the tests of `launcher=slurm`.
#
#   tests/slurm_cluster.sh up      # install the Debian packages when missing, start what is not running
#   tests/slurm_cluster.sh down    # cancel its jobs, stop exactly the daemons `up` started
#   tests/slurm_cluster.sh stop D  # stop one daemon (the tests stop slurmd); `up` starts it again
#   tests/slurm_cluster.sh status  # exit 0 when every daemon is running and the node answers
#   tests/slurm_cluster.sh env     # the client environment: eval "$(tests/slurm_cluster.sh env)"
#
# Everything lives in $GFVC_SLURM_DIR (default /tmp/gfvc-ctc-slurm): configs, keys, state, logs and the
# PID files `down` reads. The daemons (munged, mariadbd, slurmdbd, slurmctld, slurmd) run as root,
# started directly (no systemd), on their own ports and sockets, so a system SLURM or MariaDB on the
# same machine is left alone. Clients find the cluster through SLURM_CONF. The node is this machine as
# `slurmd -C` sees it, with half the free memory (the machine may be shared).
#
# Memory is enforced, so a job that uses more than its --mem ends OUT_OF_MEMORY: with cgroups
# (TaskPlugin=task/cgroup, ConstrainRAMSpace) where this machine lets a cgroup v1 memory limit be set,
# else by job accounting (jobacct_gather/linux with OverMemoryKill, sampled every second). `up` says
# which (`memory: ...`), and so does the line `# memory enforced by ...` in slurm.conf.
set -euo pipefail

DIR=${GFVC_SLURM_DIR:-/tmp/gfvc-ctc-slurm}
CLUSTER=gfvc
PARTITION=ctc
CTLD_PORT=${GFVC_SLURM_PORT_BASE:-16817}
SLURMD_PORT=$((CTLD_PORT + 1))
DBD_PORT=$((CTLD_PORT + 2))
MYSQL_PORT=$((CTLD_PORT + 3))
WAIT_S=${GFVC_SLURM_WAIT_S:-60}   # for each daemon to answer
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)   # in start order; `down` stops them in reverse

export SLURM_CONF=$DIR/etc/slurm.conf
MUNGE_SOCKET=$DIR/munge/munge.socket.2
MYSQL_SOCKET=$DIR/mysql/mysqld.sock

say() { echo "slurm_cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

install_packages() {
    local missing=() package
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return
    command -v apt-get >/dev/null || die "the packages ${missing[*]} are missing and there is no apt-get"
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # another apt-get may hold the dpkg lock: wait for it rather than fail
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Wait up to WAIT_S seconds for a command to succeed; say what is being waited for.
wait_for() {
    local what=$1 log=$2 deadline=$((SECONDS + WAIT_S))
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            say "$what did not come up within ${WAIT_S}s; the end of $log:"
            tail -n 20 "$log" >&2 || true
            exit 1
        fi
        sleep 0.5
    done
}

# The PID of one of our daemons: the one its PID file names, only while that process runs this cluster's
# config (our directory on its command line or, for the SLURM daemons, SLURM_CONF in its environment).
pid_of() {
    local pidfile=$DIR/run/$1.pid pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -r "/proc/$pid/cmdline" ] || return 1
    [ "$(basename "$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)")" = "$1" ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -F -- "$DIR" >/dev/null \
        || tr '\0' '\n' <"/proc/$pid/environ" | grep -xF -- "SLURM_CONF=$SLURM_CONF" >/dev/null || return 1
    echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

# Whether a cgroup v1 memory limit can be set here (the kernel enforces it: task/cgroup can use it).
cgroup_memory_works() {
    local probe=/sys/fs/cgroup/memory/gfvc-ctc-probe-$$ ok=1
    [ -d /sys/fs/cgroup/memory ] && mkdir "$probe" 2>/dev/null || return 1
    echo 64M >"$probe/memory.limit_in_bytes" 2>/dev/null \
        && [ "$(cat "$probe/memory.limit_in_bytes")" = 67108864 ] && ok=0
    rmdir "$probe"
    return $ok
}

# The slurm.conf lines that make SLURM enforce each job's memory (and cgroup.conf when cgroups do it).
memory_enforcement() {
    if cgroup_memory_works; then
        printf '%s\n' "CgroupPlugin=cgroup/v1" "CgroupMountpoint=/sys/fs/cgroup" "ConstrainRAMSpace=yes" \
            "ConstrainSwapSpace=yes" "AllowedSwapSpace=0" >"$DIR/etc/cgroup.conf"
        printf '%s\n' "# memory enforced by cgroups (cgroup.conf: ConstrainRAMSpace)" \
            "ProctrackType=proctrack/cgroup" "TaskPlugin=task/cgroup" \
            "JobAcctGatherType=jobacct_gather/linux" "JobAcctGatherFrequency=task=1"
    else
        printf '%s\n' "# memory enforced by job accounting (OverMemoryKill: no cgroup memory limit here)" \
            "ProctrackType=proctrack/linuxproc" "TaskPlugin=task/none" \
            "JobAcctGatherType=jobacct_gather/linux" "JobAcctGatherFrequency=task=1" \
            "JobAcctGatherParams=OverMemoryKill"
    fi
}

write_configs() {
    mkdir -p "$DIR"/{etc,run,log,munge,mysql,state/ctld,state/d}
    chmod 700 "$DIR" "$DIR/munge"
    if [ ! -s "$DIR/munge/munge.key" ]; then
        dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$DIR/munge/munge.key"
    fi
    [ -s "$DIR/etc/db.pass" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9' >"$DIR/etc/db.pass")
    local node memory_mb
    # this machine's CPU layout as slurmd sees it; half the memory that is free now
    node=$(slurmd -C | head -n 1 | sed 's/ RealMemory=[0-9]*//')
    memory_mb=$(awk '/MemAvailable/ {print int($2 / 1024 / 2)}' /proc/meminfo)
    cat >"$SLURM_CONF" <<EOF
# written by tests/slurm_cluster.sh
ClusterName=$CLUSTER
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$DIR/state/ctld
SlurmdSpoolDir=$DIR/state/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
$(memory_enforcement)
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# for slurmdbd connections the munge socket is given here (slurm.conf(5), AccountingStoragePass)
AccountingStoragePass=$MUNGE_SOCKET
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# a stopped slurmd marks the node down within seconds (the tests stop one)
SlurmdTimeout=10
KillWait=5
InactiveLimit=0
$node RealMemory=$memory_mb NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    (umask 077; cat >"$DIR/etc/slurmdbd.conf" <<EOF
# written by tests/slurm_cluster.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=$(cat "$DIR/etc/db.pass")
StorageLoc=slurm_acct_db
EOF
    )
}

mysql_client() { mariadb --no-defaults --socket="$MYSQL_SOCKET" -u root "$@"; }

start_munged() {
    munged --force --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    wait_for munged "$DIR/log/munged.log" sh -c "munge -n --socket='$MUNGE_SOCKET' | unmunge --socket='$MUNGE_SOCKET'"
}

start_mariadbd() {
    if [ ! -d "$DIR/mysql/data/mysql" ]; then
        mariadb-install-db --no-defaults --user=root --datadir="$DIR/mysql/data" --skip-test-db \
            --auth-root-authentication-method=socket >"$DIR/log/mariadb-install.log" 2>&1 \
            || die "mariadb-install-db failed; see $DIR/log/mariadb-install.log"
    fi
    setsid mariadbd --no-defaults --user=root --datadir="$DIR/mysql/data" --socket="$MYSQL_SOCKET" \
        --port="$MYSQL_PORT" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$DIR/run/mariadbd.pid" \
        --log-error="$DIR/log/mariadbd.log" --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
    wait_for mariadbd "$DIR/log/mariadbd.log" mysql_client -e "SELECT 1"
    wait_for "mariadbd's PID file" "$DIR/log/mariadbd.log" running mariadbd
    mysql_client -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$DIR/etc/db.pass")';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_slurmdbd() {
    slurmdbd
    wait_for slurmdbd "$DIR/log/slurmdbd.log" sacctmgr -n list cluster
    sacctmgr -n list cluster format=cluster | grep -w "$CLUSTER" >/dev/null || sacctmgr -i add cluster "$CLUSTER" >/dev/null
}

start_slurmctld() {
    slurmctld
    wait_for slurmctld "$DIR/log/slurmctld.log" scontrol ping
}

node_ready() { sinfo -h -N -o %T | grep -xE 'idle|mixed|allocated' >/dev/null; }

start_slurmd() {
    slurmd
    wait_for "the node (slurmd)" "$DIR/log/slurmd.log" node_ready
}

up() {
    install_packages
    local daemon fresh=
    for daemon in "${DAEMONS[@]}"; do running "$daemon" || fresh=1; done
    if [ -n "$fresh" ]; then
        running munged || running slurmctld || write_configs  # never rewrite a config a daemon is using
        for daemon in "${DAEMONS[@]}"; do
            running "$daemon" && continue
            say "starting $daemon"
            "start_$daemon"
        done
    fi
    # a node left down by an earlier stop of slurmd comes back as soon as its slurmd does
    node_ready || scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    wait_for "the node" "$DIR/log/slurmctld.log" node_ready
    say "up: $(sinfo -h -N -o '%N %T, %c CPUs, %m MB') (SLURM_CONF=$SLURM_CONF)"
    say "memory: $(grep -m 1 '^# memory enforced by' "$SLURM_CONF" | cut -c 3-)"
}

stop() {  # one daemon, by the PID in its PID file
    local daemon=$1 pid deadline
    pid=$(pid_of "$daemon") || return 0
    say "stopping $daemon ($pid)"
    kill "$pid"
    deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            say "$daemon ($pid) did not stop within 30 s: killing it"
            kill -9 "$pid"
            break
        fi
        sleep 0.2
    done
    rm -f "$DIR/run/$daemon.pid"
}

down() {
    local index deadline
    if running slurmctld && running slurmd; then  # the jobs' processes (slurmstepd, tasks) end with the jobs
        scancel --full --partition="$PARTITION" >/dev/null 2>&1 || true
        deadline=$((SECONDS + 30))
        while [ -n "$(squeue -h -o %A 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
    fi
    for ((index = ${#DAEMONS[@]} - 1; index >= 0; index--)); do stop "${DAEMONS[index]}"; done
}

status() {
    local daemon ok=0
    for daemon in "${DAEMONS[@]}"; do
        if running "$daemon"; then echo "$daemon: running ($(pid_of "$daemon"))"; else echo "$daemon: stopped"; ok=1; fi
    done
    [ $ok -eq 0 ] && node_ready
}

case ${1:-} in
    up) up ;;
    down) down ;;
    stop) [[ " ${DAEMONS[*]} " == *" ${2:-} "* ]] || { echo "usage: $0 stop ${DAEMONS[*]}" >&2; exit 2; }
          stop "$2" ;;
    status) status ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) echo "usage: $0 up|down|stop DAEMON|status|env" >&2; exit 2 ;;
esac
