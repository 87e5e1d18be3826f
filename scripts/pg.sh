#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and the cluster demo: Debian's `postgresql` package, its own data directory,
# a loopback TCP port, trust authentication on loopback only, fsync off (nothing here outlives the run).
#
#   scripts/pg.sh start [DIR] [PORT]   installs postgresql if missing, initialises DIR, starts the server, waits
#                                      until it accepts connections, prints the URL (postgres://…) on stdout
#   scripts/pg.sh stop  [DIR]          stops it (fast shutdown)
#   scripts/pg.sh crash [DIR]          stops it as a crash would (immediate shutdown: no checkpoint, sessions cut)
#   scripts/pg.sh resume [DIR] [PORT]  starts DIR's existing cluster again (after stop or crash), keeping its data
#   scripts/pg.sh url   [DIR] [PORT]   prints the URL
#
# FRESHLINE_PG_DURABLE=1 (start, resume) keeps every acknowledged commit across a crash of the server process
# (synchronous_commit on; fsync stays off, as the machine itself does not crash): for tests that crash it.
#
# DIR defaults to /tmp/freshline-pg-PORT (outside the checkout: the server user must reach it), PORT to 55432.
# `postgres` user the package creates.
set -euo pipefail
cmd=${1:-}
port=${3:-55432}
dir=$(realpath -m "${2:-${TMPDIR:-/tmp}/freshline-pg-$port}")

url() { echo "postgres://freshline@127.0.0.1:${port}/freshline?sslmode=disable"; }

bindir() {
  local pgconfig
  for pgconfig in /usr/lib/postgresql/*/bin/pg_ctl; do
    [ -x "$pgconfig" ] && { dirname "$pgconfig"; return; }
  done
  return 1
}

install() {
  if bindir >/dev/null 2>&1; then return; fi
  echo "installing postgresql (Debian package)" >&2
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Starts the cluster in $dir/data on $port and waits until it accepts connections.
serve() {
  as_owner "$1/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off \
        -c synchronous_commit=$([ "${FRESHLINE_PG_DURABLE:-0}" = 1 ] && echo on || echo off) -c full_page_writes=off -c max_connections=300 -c shared_buffers=256MB" >&2 ||
    { cat "$dir/server.log" >&2; exit 1; }
}

case "$cmd" in
  start)
    install
    bin=$(bindir)
    if [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      url; exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U freshline --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    serve "$bin"
    as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U freshline freshline
    url
    ;;
  stop)
    bin=$(bindir) || exit 0
    [ -d "$dir/data" ] || exit 0
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    ;;
  crash)
    bin=$(bindir)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >&2
    ;;
  resume)
    bin=$(bindir)
    [ -f "$dir/data/PG_VERSION" ] || { echo "no cluster in $dir to resume (scripts/pg.sh start makes one)" >&2; exit 1; }
    serve "$bin"
    url
    ;;
  url) url ;;
  *) echo "usage: scripts/pg.sh start|stop|crash|resume|url [DIR] [PORT]" >&2; exit 2 ;;
esac
