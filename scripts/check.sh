#!/usr/bin/env bash
# Runs the test suite against a throw-away PostgreSQL cluster in a fresh temporary
# directory (no TCP port, so concurrent runs cannot collide). The cluster and the
# directory are removed on every exit path: success, failure or interruption.
#   scripts/check.sh BUILD_DIR [san]
set -euo pipefail
build=${1:?usage: check.sh BUILD_DIR [san]}
root=$(cd "$(dirname "$0")/.." && pwd)

tmp=$(mktemp -d /tmp/dualreg-check.XXXXXX)
chmod 711 "$tmp"   # the server user must be able to reach its directory inside
cleanup() {
  "$root/scripts/pg.sh" stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

url=$(PG_FSYNC=off "$root/scripts/pg.sh" start "$tmp/pg")

export DUALREG_TEST_DATABASE_URL="$url"
export DUALREG_TEST_PGDIR="$tmp/pg"
export DUALREG_TEST_TMP="$tmp"
export DUALREG_TEST_BIN="$root/$build"
export DUALREG_TEST_ROOT="$root"
export DUALREG_SQL_DIR="$root/sql"
[[ ${2:-} == san ]] && export DUALREG_TEST_SAN=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

"$root/$build/check_dualreg"
