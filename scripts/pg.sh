#!/usr/bin/env bash
# A private PostgreSQL 15 cluster in a directory of its own: no TCP port, one Unix socket,
# trust authentication for the role `dualreg` and a database of the same name.
#
#   scripts/pg.sh start DIR   initialise on first use, start, print the libpq conninfo
#   scripts/pg.sh stop DIR    stop it (fast shutdown, or PG_STOP_MODE=immediate); a stopped
#                             cluster is not an error
#   scripts/pg.sh url DIR     print the conninfo without starting anything
#   scripts/pg.sh standby PRIMARY_DIR DIR
#                             make DIR a streaming standby of the running cluster in
#                             PRIMARY_DIR (pg_basebackup), start it, print its conninfo
#   scripts/pg.sh promote DIR promote the standby in DIR to a primary
#
# Layout: DIR/data (the cluster), DIR/run (the socket), DIR/postgres.log.
# PG_FSYNC=off starts it without fsync (throw-away test clusters only).
# PG_EXTRA_CONF: lines added to a new cluster's postgresql.conf (make bench's statistics).
# PG_REGISTRY=FILE: before a server starts, its directory is appended to FILE, so that
# whoever owns FILE (scripts/check.sh) can stop every cluster a test started, even when
# the test failed or was killed before its own teardown.
# When run as root the server runs as the `postgres` user (initdb refuses root); if that
# user cannot reach DIR, or the socket path would be too long for a Unix socket, the
# cluster lives in /tmp/dualreg-pg-<hash> and DIR becomes a symlink to it.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:?usage: pg.sh start|stop|url|standby|promote DIR}
if [[ $cmd == standby ]]; then
  primary=${2:?usage: pg.sh standby PRIMARY_DIR DIR}
  dir=${3:?usage: pg.sh standby PRIMARY_DIR DIR}
else
  dir=${2:?usage: pg.sh start|stop|url|promote DIR}
fi

# Commands run as the server user start in / : the caller's working directory may be one
# that user cannot enter (a clone under /root, a mode-700 mktemp -d), and every path
# given to them is absolute.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# Resolve DIR to a directory the server user can use, creating it if needed.
resolve_dir() {
  if [[ -L $dir || -d $dir ]]; then
    dir=$(cd "$dir" && pwd -P)
    return
  fi
  mkdir -p "$dir"
  local abs; abs=$(cd "$dir" && pwd -P)
  local usable=1
  ((${#abs} + 20 > 100)) && usable=0
  if [[ $(id -u) -eq 0 ]] && ! as_owner test -x "$abs"; then usable=0; fi
  if ((usable)); then
    dir=$abs
  else
    local alt; alt=/tmp/dualreg-pg-$(printf '%s' "$abs" | sha1sum | cut -c1-12)
    mkdir -p "$alt"
    rmdir "$abs"
    ln -s "$alt" "$abs"
    dir=$alt
  fi
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
  chmod 700 "$dir"
}

conninfo() { echo "host=$dir/run dbname=dualreg user=dualreg"; }

register() {
  [[ -n ${PG_REGISTRY:-} ]] || return 0
  grep -qxF "$dir" "$PG_REGISTRY" 2>/dev/null || printf '%s\n' "$dir" >>"$PG_REGISTRY"
}

case $cmd in
  url)
    [[ -e $dir ]] && dir=$(cd "$dir" && pwd -P)
    conninfo ;;
  start)
    resolve_dir
    if [[ ! -f $dir/data/PG_VERSION ]]; then
      as_owner mkdir -p "$dir/run"
      as_owner "$PG_BIN/initdb" -D "$dir/data" -U dualreg --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
      {
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$dir/run'"
        echo "unix_socket_permissions = 0700"
        echo "max_connections = 200"
        echo "timezone = 'UTC'"
        if [[ ${PG_FSYNC:-on} == off ]]; then
          echo "fsync = off"; echo "synchronous_commit = off"; echo "full_page_writes = off"
        fi
        if [[ -n ${PG_EXTRA_CONF:-} ]]; then printf '%s\n' "$PG_EXTRA_CONF"; fi
      } | as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
    fi
    if ! as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      register
      as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
        || { tail -20 "$dir/postgres.log" >&2; exit 1; }
    fi
    if ! "$PG_BIN/psql" -h "$dir/run" -U dualreg -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'dualreg'" | grep -q 1; then
      "$PG_BIN/createdb" -h "$dir/run" -U dualreg dualreg
    fi
    conninfo ;;
  stop)
    [[ -e $dir ]] || exit 0
    dir=$(cd "$dir" && pwd -P)
    [[ -f $dir/data/PG_VERSION ]] || exit 0
    if as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m "${PG_STOP_MODE:-fast}" -w -t 60 stop >/dev/null
    fi ;;
  standby)
    primary=$(cd "$primary" && pwd -P)
    resolve_dir
    as_owner mkdir -p "$dir/run"
    as_owner "$PG_BIN/pg_basebackup" -h "$primary/run" -U dualreg -D "$dir/data" -R -X stream \
      >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; exit 1; }
    echo "unix_socket_directories = '$dir/run'" | as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
    register
    as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null \
      || { tail -20 "$dir/postgres.log" >&2; exit 1; }
    conninfo ;;
  promote)
    dir=$(cd "$dir" && pwd -P)
    as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null ;;
  *) echo "pg.sh: unknown command $cmd" >&2; exit 2 ;;
esac
