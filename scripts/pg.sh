#!/usr/bin/env bash
# A throwaway PostgreSQL 16 + pgvector on loopback for tests, CI and benches, from the binaries
# the PyPI package `pgserver` ships (Debian's postgresql here has no pgvector).
#
#   scripts/pg.sh start [DIR]   initdb (first time) and start; prints the database URL
#   scripts/pg.sh url   [DIR]   print the URL of the running server
#   scripts/pg.sh stop  [DIR]   stop it (data kept; `rm -rf DIR` to discard)
#
# DIR defaults to .pg/ in the repository. PostgreSQL refuses to run as root, so as root the
# server runs as the unprivileged `nobody` user. Durability is switched off (fsync, full page
# writes): this server is for tests and benches, never for data you want to keep.
# PG_SHARED_BUFFERS (default 256MB) sizes its buffer cache: benches at 300k papers want 2GB.
set -euo pipefail
cd "$(dirname "$0")/.."
CMD="${1:-start}"
DIR="$(realpath -m "${2:-.pg}")"
PY="${PYTHON:-.venv/bin/python}"
# find_spec, not import: importing pgserver has side effects (runtime dirs, warnings).
BIN="$("$PY" -c 'import importlib.util as u; print(u.find_spec("pgserver").submodule_search_locations[0] + "/pginstall/bin")')"
DATA="$DIR/data"

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
  else
    "$@"
  fi
}

url() {
  local port
  port="$(sed -n 4p "$DATA/postmaster.pid" 2>/dev/null || true)"
  [ -n "$port" ] || { echo "no PostgreSQL running in $DIR (run: scripts/pg.sh start)" >&2; exit 1; }
  echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

case "$CMD" in
  start)
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown nobody:nogroup "$DIR"
    if [ ! -f "$DATA/PG_VERSION" ]; then
      as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
        >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 1; }
    fi
    if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
      url
      exit 0
    fi
    PORT="${PGPORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 start -o \
      "-h 127.0.0.1 -p $PORT -c unix_socket_directories= -c fsync=off -c full_page_writes=off \
       -c synchronous_commit=off -c max_connections=300 -c shared_buffers=${PG_SHARED_BUFFERS:-256MB}" >/dev/null \
      || { tail -20 "$DIR/server.log" >&2; exit 1; }
    url
    ;;
  url) url ;;
  stop)
    if [ -f "$DATA/postmaster.pid" ]; then
      as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    fi
    ;;
  *) echo "usage: scripts/pg.sh start|url|stop [DIR]" >&2; exit 2 ;;
esac
