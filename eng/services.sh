#!/usr/bin/env bash
# Local backing services for Pipelines development, tests and CI:
# PostgreSQL 15, RabbitMQ, a Docker engine and a tiny test image, all on loopback.
#
#   bash eng/services.sh up      install what is missing, start, wait, print settings (idempotent)
#   bash eng/services.sh down    stop what `up` started (idempotent)
#   bash eng/services.sh status  one line per service; exit 1 if any is not running
#   bash eng/services.sh env     print the settings only
#
#   eval "$(bash eng/services.sh up)"    # exports the settings into the calling shell
#
# stdout carries only the settings, as `export KEY='VALUE'` lines (quoted because the
# Npgsql connection string contains `;`, exported so that `dotnet test` sees them);
# progress and errors go to stderr. up/down need root (as on the project's machines).
#
# State and logs live in $PIPELINES_SERVICES_DIR (default /var/tmp/pipelines-services):
#   pg/ + pg.log                  project-owned PostgreSQL cluster (owned by `postgres`)
#   rabbitmq/                     config, mnesia, log/ and startup.log of the broker
#   docker/dockerd.{pid,log}      the Docker engine
# $PIPELINES_SERVICES_TIMEOUT (default 120) bounds each wait, in seconds.
#
# RabbitMQ: Debian 12 ships 3.10.8 (rabbitmq-server 3.10.8-1.1+deb12u1, Erlang/OTP 25).
# The delivery-acknowledgement timeout (`consumer_timeout`, default 1800000 ms) is a
# node-wide application setting in 3.10; per-queue `x-consumer-timeout` and the
# `consumer-timeout` policy only arrived in 3.12. A test can shorten it at runtime:
#
#   rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout, 5000).'
#   rabbitmqctl eval 'application:set_env(rabbit, channel_tick_interval, 1000).'
#
# Both lines matter (verified on 3.10.8 with a pika consumer holding one unacked delivery):
# - each channel reads consumer_timeout once, when the channel is opened: a channel
#   opened before the change kept its delivery for 90 s without being closed, while one
#   opened after it (even on a connection opened before) was closed. So change it before
#   the bus/consumer under test opens its channels.
# - a channel checks its unacked deliveries only on its tick, every channel_tick_interval
#   ms (default 60000): with the timeout alone, the channel was closed after 60 s, not 5 s;
#   with both, after 5-6 s.
# The broker then closes the channel with 406 PRECONDITION_FAILED "delivery acknowledgement
# on channel N timed out" and requeues the message. The setting is node-wide (it affects
# every test using the broker) and is lost at broker restart; restore it afterwards:
#
#   rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout, 1800000).'
#   rabbitmqctl eval 'application:set_env(rabbit, channel_tick_interval, 60000).'
set -euo pipefail

STATE_DIR=${PIPELINES_SERVICES_DIR:-/var/tmp/pipelines-services}
TIMEOUT=${PIPELINES_SERVICES_TIMEOUT:-120}

PG_BIN=/usr/lib/postgresql/15/bin
PG_DATA=$STATE_DIR/pg
PG_LOG=$STATE_DIR/pg.log
PG_SOCKET_DIR=/var/run/postgresql

RABBIT_HOME=/var/lib/rabbitmq
RABBIT_DIR=$STATE_DIR/rabbitmq
RABBIT_PID=$RABBIT_DIR/rabbitmq-server.pid
RABBIT_STARTUP_LOG=$RABBIT_DIR/startup.log

DOCKER_DIR=$STATE_DIR/docker
DOCKER_PID=$DOCKER_DIR/dockerd.pid
DOCKER_LOG=$DOCKER_DIR/dockerd.log
DOCKER_SOCKET=/var/run/docker.sock

TEST_IMAGE=pipelines-test/busybox:latest
BUSYBOX=/bin/busybox

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export DOCKER_HOST=unix://$DOCKER_SOCKET
# Any epmd that our Erlang CLI calls or the broker start listens on loopback only.
export ERL_EPMD_ADDRESS=127.0.0.1

log() { echo "services: $*" >&2; }
die() { echo "services: ERROR: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
# live_pid FILE COMM: the pid in FILE if that process is alive and is COMM (a pid file
# can outlive a reboot, and its pid be reused by another program).
live_pid() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    if pid_alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]; then
        echo "$pid"
    fi
}

# wait_for NAME LOG PID COMMAND...: retry COMMAND every second until it succeeds.
# Fails at once if PID (the process we just started; may be empty) has exited.
wait_for() {
    local name=$1 logfile=$2 pid=$3
    shift 3
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if [ -n "$pid" ] && ! pid_alive "$pid"; then
            die "$name exited while starting; see $logfile"
        fi
        ((SECONDS < deadline)) || die "$name did not answer within ${TIMEOUT}s; see $logfile"
        sleep 1
    done
}

# wait_gone PID SECONDS: true once PID has exited, false if still alive after SECONDS.
wait_gone() {
    local pid=$1 i
    for ((i = 0; i < $2; i++)); do
        pid_alive "$pid" || return 0
        sleep 1
    done
    ! pid_alive "$pid"
}

# stop_pid NAME PID: SIGTERM, then SIGKILL if still alive after 30 s.
stop_pid() {
    local name=$1 pid=$2
    pid_alive "$pid" || return 0
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    wait_gone "$pid" 30 && return 0
    log "$name did not stop in 30s; killing it"
    kill -9 "$pid" 2>/dev/null || true
}

require_root() {
    [ "$(id -u)" = 0 ] || die "'$1' must run as root (it installs packages and starts system services)"
}

# ---------------------------------------------------------------- packages

missing_packages() {
    [ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/psql" ] || echo postgresql-15
    command -v rabbitmq-server >/dev/null || echo rabbitmq-server
    command -v dockerd >/dev/null && command -v docker >/dev/null || echo docker.io
    # The image needs the static build: the dynamic `busybox` package would not run
    # inside an image without libc.
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || echo busybox-static
}

install_missing() {
    local pkgs
    pkgs=$(missing_packages | paste -sd ' ')
    [ -n "$pkgs" ] || return 0
    log "installing: $pkgs"
    (
        # The packages' maintainer scripts would start system-wide services listening on
        # all interfaces (and PostgreSQL's main cluster would take port 5432); this script
        # starts its own loopback-only ones, so forbid service starts during the install.
        local policy=/usr/sbin/policy-rc.d
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy"
            chmod 755 "$policy"
            trap 'rm -f "$policy"' EXIT
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get -q update >&2
        # shellcheck disable=SC2086
        apt-get -q install -y --no-install-recommends $pkgs >&2
    )
}

# ---------------------------------------------------------------- PostgreSQL

as_postgres() { runuser -u postgres -- "$@"; }

pg_psql() {
    PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -w -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 "$@"
}

pg_accepts_pipelines() { pg_psql -U pipelines -d pipelines -c 'select 1' >/dev/null 2>&1; }

pg_ours_running() {
    [ -f "$PG_DATA/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

pg_init() {
    [ -f "$PG_DATA/PG_VERSION" ] && return 0
    log "postgres: initdb $PG_DATA"
    install -d -o postgres -g postgres -m 700 "$PG_DATA"
    as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C --auth=trust >&2
    echo "include_if_exists = 'pipelines.conf'" | as_postgres tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

# Rewritten on every start, so edits here reach existing clusters at their next start.
pg_write_conf() {
    as_postgres tee "$PG_DATA/pipelines.conf" >/dev/null <<EOF
# Written by eng/services.sh; edit there.
listen_addresses = '127.0.0.1'
port = 5432
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 300
# Durability is part of what the project benchmarks: never trade it for speed here.
fsync = on
synchronous_commit = on
EOF
    as_postgres tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# Written by eng/services.sh; edit there. Loopback only, no passwords.
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
}

pg_create_role_and_database() {
    pg_psql -U postgres -d postgres >/dev/null <<'SQL'
SELECT 'CREATE ROLE pipelines LOGIN SUPERUSER'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pipelines') \gexec
SELECT 'CREATE DATABASE pipelines OWNER pipelines'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'pipelines') \gexec
SQL
}

postgres_up() {
    if pg_accepts_pipelines; then
        log "postgres: already answering on 127.0.0.1:5432"
        return 0
    fi
    if ! pg_ours_running; then
        if port_open 5432; then
            die "postgres: something else listens on 127.0.0.1:5432 but does not let user" \
                "'pipelines' into database 'pipelines' without a password; stop it" \
                "(e.g. pg_ctlcluster 15 main stop) and run this again"
        fi
        pg_init
        pg_write_conf
        install -d -o postgres -g postgres -m 2775 "$PG_SOCKET_DIR"
        [ -f "$PG_LOG" ] || install -o postgres -g postgres -m 640 /dev/null "$PG_LOG"
        log "postgres: starting cluster $PG_DATA"
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" start >&2 ||
            die "postgres did not start within ${TIMEOUT}s; see $PG_LOG"
    fi
    pg_create_role_and_database || die "postgres: could not create role/database pipelines; see $PG_LOG"
    pg_accepts_pipelines || die "postgres does not accept user pipelines; see $PG_LOG"
    log "postgres: ready"
}

postgres_down() {
    if pg_ours_running; then
        log "postgres: stopping cluster $PG_DATA"
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >&2
    fi
}

postgres_status() {
    if pg_accepts_pipelines; then echo "postgres: running"; else echo "postgres: not running"; fi
}

# ---------------------------------------------------------------- RabbitMQ

# Asks epmd only: unlike the rabbitmq CLI, this never starts an Erlang node or an epmd.
rabbit_registered() { epmd -names 2>/dev/null | grep -q '^name rabbit at port'; }

rabbit_answers() { rabbit_registered && rabbitmq-diagnostics -q ping >/dev/null 2>&1; }

rabbit_write_conf() {
    install -d -o rabbitmq -g rabbitmq -m 750 "$RABBIT_DIR" "$RABBIT_DIR/mnesia" "$RABBIT_DIR/log"
    cat >"$RABBIT_DIR/rabbitmq.conf" <<'EOF'
# Written by eng/services.sh; edit there. AMQP listens on 127.0.0.1 via RABBITMQ_NODE_IP_ADDRESS.
management.tcp.ip = 127.0.0.1
management.tcp.port = 15672
# The node runs in the foreground of a background job: keep its stdout (startup.log) for
# boot errors only; the log proper is in log/.
log.console = false
EOF
    chmod 644 "$RABBIT_DIR/rabbitmq.conf"
}

rabbit_enable_management() {
    if ! grep -qs rabbitmq_management /etc/rabbitmq/enabled_plugins; then
        log "rabbitmq: enabling the management plugin"
        rabbitmq-plugins enable --offline rabbitmq_management >&2
    fi
}

rabbit_start() {
    rabbit_write_conf
    rabbit_enable_management
    : >"$RABBIT_STARTUP_LOG"
    log "rabbitmq: starting"
    # Run in the foreground of a background job rather than with -detached, so that we
    # know its pid (to notice an early exit) and keep boot errors in startup.log.
    (
        cd "$RABBIT_HOME"
        exec setsid nohup runuser -u rabbitmq -- env \
            RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
            RABBITMQ_NODE_PORT=5672 \
            RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq.conf" \
            RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia" \
            RABBITMQ_LOG_BASE="$RABBIT_DIR/log" \
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}' \
            /usr/lib/rabbitmq/bin/rabbitmq-server
    ) >>"$RABBIT_STARTUP_LOG" 2>&1 </dev/null &
    echo $! >"$RABBIT_PID"
}

rabbitmq_up() {
    local pid=""
    if rabbit_answers; then
        log "rabbitmq: node already running"
    else
        pid=$(live_pid "$RABBIT_PID" runuser)
        if [ -z "$pid" ]; then
            rabbit_start
            pid=$(cat "$RABBIT_PID")
        fi
        wait_for rabbitmq "$RABBIT_STARTUP_LOG and $RABBIT_DIR/log/" "$pid" rabbit_answers
    fi
    timeout "$TIMEOUT" rabbitmqctl -q await_startup >&2 ||
        die "rabbitmq did not finish booting within ${TIMEOUT}s; see $RABBIT_DIR/log/"
    if ! port_open 15672; then
        # A node started by someone else, without the management plugin.
        log "rabbitmq: enabling the management plugin on the running node"
        rabbitmq-plugins enable rabbitmq_management >&2
    fi
    wait_for "rabbitmq (AMQP port 5672)" "$RABBIT_DIR/log/" "" port_open 5672
    wait_for "rabbitmq management (port 15672)" "$RABBIT_DIR/log/" "" port_open 15672
    log "rabbitmq: ready"
}

rabbitmq_down() {
    local pid
    pid=$(live_pid "$RABBIT_PID" runuser)
    # Stops the local node even if another tool started it: there is one per machine.
    if rabbit_answers; then
        log "rabbitmq: stopping"
        rabbitmqctl -q shutdown >&2 || true
        wait_gone "$pid" 10 || true
    fi
    stop_pid rabbitmq "$pid"
    rm -f "$RABBIT_PID"
    # The broker leaves its epmd behind; stop it unless another Erlang node still uses it.
    if command -v epmd >/dev/null && epmd -names >/dev/null 2>&1 &&
        ! epmd -names 2>/dev/null | grep -q '^name '; then
        epmd -kill >/dev/null 2>&1 || true
    fi
}

rabbitmq_status() {
    if rabbit_answers; then echo "rabbitmq: running"; else echo "rabbitmq: not running"; fi
}

# ---------------------------------------------------------------- Docker

docker_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

docker_up() {
    if docker_answers; then
        log "docker: engine already answering on $DOCKER_SOCKET"
        return 0
    fi
    local pid
    pid=$(live_pid "$DOCKER_PID" dockerd)
    if [ -z "$pid" ]; then
        install -d -m 755 "$DOCKER_DIR"
        rm -f "$DOCKER_PID"
        log "docker: starting dockerd"
        # No iptables and no bridge: containers get only their loopback interface, and
        # the engine changes nothing on the host's network.
        setsid nohup dockerd --iptables=false --bridge=none --pidfile "$DOCKER_PID" \
            >>"$DOCKER_LOG" 2>&1 </dev/null &
        pid=$!
    fi
    wait_for docker "$DOCKER_LOG" "$pid" docker_answers
    log "docker: ready"
}

docker_down() {
    # Only the dockerd this script started, never a system one.
    stop_pid dockerd "$(live_pid "$DOCKER_PID" dockerd)"
    rm -f "$DOCKER_PID"
}

docker_status() {
    if docker_answers; then echo "docker: running"; else echo "docker: not running"; fi
}

# ---------------------------------------------------------------- test image

image_id() { docker image inspect --format '{{.Id}}' "$TEST_IMAGE" 2>/dev/null; }

# A root filesystem of Debian's static busybox: every applet as a symlink in /bin,
# /tmp, and root plus nobody (65534) in /etc/passwd and /etc/group.
image_build_rootfs() {
    local root=$1 applet
    install -d -m 755 "$root/bin" "$root/etc" "$root/root" "$root/proc" "$root/sys" "$root/dev"
    install -d -m 1777 "$root/tmp"
    cp "$BUSYBOX" "$root/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
        'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' >"$root/etc/group"
}

image_up() {
    if [ -z "$(image_id)" ]; then
        local root
        root=$(mktemp -d "$STATE_DIR/rootfs.XXXXXX")
        chmod 755 "$root" # becomes the image's /
        image_build_rootfs "$root"
        log "image: importing $TEST_IMAGE"
        tar -C "$root" --numeric-owner -c . |
            docker import --change 'CMD ["/bin/sh"]' - "$TEST_IMAGE" >/dev/null
        rm -rf "$root"
    fi
    local id
    id=$(image_id) || die "image $TEST_IMAGE missing after import; see $DOCKER_LOG"
    log "image: $TEST_IMAGE is $id"
}

image_status() {
    local id
    if ! docker_answers; then
        echo "test-image: unknown (docker not running)"
    elif id=$(image_id); then echo "test-image: present ($id)"; else echo "test-image: missing"; fi
}

# ---------------------------------------------------------------- commands

print_env() {
    cat <<EOF
export PIPELINES_POSTGRES='Host=127.0.0.1;Port=5432;Username=pipelines;Database=pipelines'
export PIPELINES_RABBITMQ='amqp://guest:guest@127.0.0.1:5672/'
export PIPELINES_RABBITMQ_MANAGEMENT='http://127.0.0.1:15672'
export DOCKER_HOST='unix://$DOCKER_SOCKET'
export PIPELINES_TEST_IMAGE='$TEST_IMAGE'
EOF
}

cmd_up() {
    require_root up
    install -d -m 755 "$STATE_DIR"
    install_missing
    postgres_up
    rabbitmq_up
    docker_up
    image_up
    print_env
}

cmd_down() {
    require_root down
    postgres_down
    rabbitmq_down
    docker_down
    log "stopped"
}

cmd_status() {
    local out
    out=$(postgres_status; rabbitmq_status; docker_status; image_status)
    echo "$out"
    ! grep -qE 'not running|missing' <<<"$out"
}

usage() {
    echo "usage: bash eng/services.sh up|down|status|env" >&2
    exit 2
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) print_env ;;
    *) usage ;;
esac
