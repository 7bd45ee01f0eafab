#!/usr/bin/env bash
# Runs the libFuzzer harnesses built by `make fuzz` (tests/fuzz/fuzz_<name>.c), one
# after the other on one core.
#   tests/fuzz/run.sh BUILD_DIR SECONDS NAME...   fuzz each NAME for SECONDS
#   tests/fuzz/run.sh --merge BUILD_DIR NAME...   add what the runs found to the corpora
# A run starts from tests/fuzz/corpus/NAME (read only) and writes what it finds to
# BUILD_DIR/corpus/NAME, never into the repository; a crash, a leak or a broken
# promise of a harness is saved as BUILD_DIR/crashes/NAME-* and fails the run. --merge
# copies into tests/fuzz/corpus/NAME only the inputs that reach code (edges, not hit
# counts, which keeps the corpora small) that its corpus does not (libFuzzer's
# -merge=1). Prints each harness's executions and seconds.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
max_len=4096

if [[ ${1:-} == --merge ]]; then
  build=${2:?usage: run.sh --merge BUILD_DIR NAME...}
  shift 2
  for name in "$@"; do
    [[ -d $build/corpus/$name ]] || continue
    "$build/fuzzer-$name" -merge=1 -use_counters=0 -max_len=$max_len \
      "$root/tests/fuzz/corpus/$name" "$build/corpus/$name" >"$build/merge-$name.log" 2>&1 ||
      { cat "$build/merge-$name.log" >&2; exit 1; }
    echo "fuzz: $name: $(ls "$root/tests/fuzz/corpus/$name" | wc -l) corpus files"
  done
  exit 0
fi

build=${1:?usage: run.sh BUILD_DIR SECONDS NAME...}
seconds=${2:?usage: run.sh BUILD_DIR SECONDS NAME...}
shift 2
mkdir -p "$build/crashes"
failed=()
total=0
printf '%-12s %12s %8s  %s\n' harness executions seconds result
for name in "$@"; do
  mkdir -p "$build/corpus/$name"
  log="$build/fuzz-$name.log"
  start=$SECONDS
  "$build/fuzzer-$name" -max_total_time="$seconds" -print_final_stats=1 -max_len=$max_len \
    -timeout=10 -artifact_prefix="$build/crashes/$name-" \
    "$build/corpus/$name" "$root/tests/fuzz/corpus/$name" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  execs=${execs:-0}
  total=$((total + execs))
  result=ok
  if ((rc != 0)); then
    result="FAILED (exit $rc; see $log)"
    failed+=("$name")
  fi
  printf '%-12s %12s %8s  %s\n' "$name" "$execs" "$((SECONDS - start))" "$result"
done
printf '%-12s %12s\n' total "$total"
if ((${#failed[@]} > 0)); then
  echo "fuzz: failed: ${failed[*]}; inputs in $build/crashes" >&2
  exit 1
fi
