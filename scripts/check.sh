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
# Every cluster started from here on (the shared one, and those a test starts for itself,
# such as the failover test's primary and standby) is listed in this file by pg.sh.
export PG_REGISTRY="$tmp/clusters"
: >"$PG_REGISTRY"

# Stops every registered cluster, newest first (a standby before its primary), then
# anything still holding a postmaster.pid, and removes each cluster's directory (it may
# live outside $tmp when its path was too long for a socket).
cleanup() {
  local dir pid
  [[ -n ${checker:-} ]] && kill "$checker" 2>/dev/null || true
  # The runner, its forked tests and the daemons they started share one process group.
  [[ -n ${runner:-} ]] && kill -KILL -- "-$runner" 2>/dev/null || true
  if [[ -f $PG_REGISTRY ]]; then
    while IFS= read -r dir; do
      [[ -n $dir ]] || continue
      PG_STOP_MODE=immediate "$root/scripts/pg.sh" stop "$dir" >/dev/null 2>&1 || true
      pid=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null || true)
      if [[ $pid =~ ^[0-9]+$ ]] && grep -q postgres "/proc/$pid/cmdline" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
      fi
      [[ $dir == "$tmp"/* ]] || rm -rf "$dir"
    done < <(tac "$PG_REGISTRY")
  fi
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
export DUALREG_WEB_DIR="$root/web"
[[ ${2:-} == san ]] && export DUALREG_TEST_SAN=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The contract checker: every answer the tests receive is checked against
# api/openapi.yaml (tests/th_contract.h). Needs node_modules (npm ci, done by make check).
export DUALREG_TEST_CONTRACT="$tmp/contract.sock"
node "$root/scripts/contract.mjs" serve "$DUALREG_TEST_CONTRACT" >"$tmp/contract.log" 2>&1 &
checker=$!
for _ in $(seq 300); do
  [[ -S $DUALREG_TEST_CONTRACT ]] && break
  kill -0 "$checker" 2>/dev/null || break
  sleep 0.1
done
if [[ ! -S $DUALREG_TEST_CONTRACT ]]; then
  echo "check.sh: the contract checker did not start:" >&2
  cat "$tmp/contract.log" >&2
  exit 1
fi

# In a process group of its own, waited for in the background so that an interrupt runs
# the cleanup at once (bash runs traps only between commands).
setsid "$root/$build/check_dualreg" &
runner=$!
wait "$runner"
