#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the example's tests: on loopback, in a temp dir, trusting
# local connections, gone when stopped.
#
#   eval "$(examples/postgres/throwaway-server.sh start)"   # sets PRUN_PG_URL and PG_THROWAWAY
#   examples/postgres/throwaway-server.sh stop "$PG_THROWAWAY"
#
# Needs Debian's postgresql package (apt-get install postgresql). As root, the server runs as
# the `postgres` user, which the package creates.
set -euo pipefail

bin_dir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/pg_ctl" ]; then echo "$dir"; fi
    done | sort -V | tail -1
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
    bin="$(bin_dir)"
    [ -n "$bin" ] || { echo "no PostgreSQL server binaries: apt-get install postgresql" >&2; exit 1; }
    dir="$(mktemp -d /tmp/prun-pg-XXXXXX)"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    port="${PG_PORT:-54329}"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync >"$dir/initdb.log"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >&2
    echo "export PRUN_PG_URL='host=127.0.0.1 port=$port user=postgres'"
    echo "export PG_THROWAWAY='$dir'"
    ;;
stop)
    dir="${2:?the directory start printed}"
    as_owner "$(bin_dir)/pg_ctl" -D "$dir/data" -m immediate stop >&2 || true
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start | stop DIR" >&2
    exit 2
    ;;
esac
