# Sourced by bench/run.sh: the figures of reads that the status cache cannot serve, of
# cached reads while uncached ones run, and of long polls across many schools. Uses
# run.sh's $bin, $url, $port, $token, $tmp, $SECONDS_STATUS, figure() and ratio().

# CPU seconds used so far by the bench cluster's server processes (the postmaster and
# every backend and worker under it), from /proc.
pg_cpu_seconds() {
  local pm ticks=0 pid f
  pm=$(head -1 "$tmp/pg/data/postmaster.pid")
  for pid in "$pm" $(pgrep -P "$pm"); do
    f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    f=${f##*) }                     # the fields after the command name
    set -- $f
    ticks=$((ticks + ${12} + ${13})) # utime and stime are fields 14 and 15
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }'
}

# Status reads of random pupil-days over every school day of the seeded placements:
# each pupil-day read once at most in the run, so the cache cannot answer them.
bench_uncached_reads() {
  psql -qAt "$url" > "$tmp/pairs.txt" <<'SQL'
SELECT p.upn || ' ' || d::date
  FROM pupils p,
       generate_series(dualreg_today() - 150, dualreg_today() - 1, interval '1 day') d
 WHERE extract(isodow FROM d) <= 5 AND p.family_name LIKE 'Number %'
 ORDER BY random();
SQL
  local days
  days=$(psql -qAt "$url" -c "SELECT count(*) FROM generate_series(dualreg_today() - 150, dualreg_today() - 1, interval '1 day') d WHERE extract(isodow FROM d) <= 5")
  awk '{ print "GET /v1/pupils/" $1 "/status?date=" $2 }' "$tmp/pairs.txt" > "$tmp/uncached.txt"
  local c0 c1 ours ceil cpu
  c0=$(pg_cpu_seconds)
  ours=$("$bin/loadgen" -p "$port" -c 50 -d "$SECONDS_STATUS" -a "Bearer $token" "$tmp/uncached.txt" || true)
  c1=$(pg_cpu_seconds)
  cpu=$(awk -v a="$c0" -v b="$c1" -v n="$(figure requests "$ours")" 'BEGIN { if (n > 0) printf "%.3f", (b - a) * 1000 / n; else print "n/a" }')
  # the ceiling reads the pupil-days in another order, so it too finds little in
  # PostgreSQL's buffers that the run before it warmed for exactly these rows
  tac "$tmp/pairs.txt" > "$tmp/pairs_rev.txt"
  ceil=$("$bin/pointread_ceiling" "$url" 50 "$SECONDS_STATUS" "$tmp/pairs_rev.txt" || true)
  echo "uncached status of random pupil-days (${days} school days x $(wc -l < "$tmp/pairs.txt" | awk -v d="$days" '{ print int($1 / d) }') pupils, 50 conns): $(figure rps "$ours") req/s p99 $(figure p99_ms "$ours") ms, PostgreSQL CPU ${cpu} ms/read   ceiling (prepared point reads: registrations + marks, 50 conns): $(figure rps "$ceil") req/s p99 $(figure p99_ms "$ceil") ms   ratio $(ratio "$(figure rps "$ours")" "$(figure rps "$ceil")") (target >= 0.5, <= 0.3 ms/read)   [errors $(figure errors "$ours")]"
}

# Cached reads (the day every poller reads) while another client sends uncached ones:
# the cached p99 against the same reads alone ($1, measured earlier in the run).
bench_mixed_reads() {
  local alone=$1 mixed bg
  "$bin/loadgen" -p "$port" -c 8 -d "$SECONDS_STATUS" -a "Bearer $token" "$tmp/uncached.txt" > "$tmp/mixed_bg.txt" 2>/dev/null &
  bg=$!
  mixed=$("$bin/loadgen" -p "$port" -c 50 -d "$SECONDS_STATUS" -a "Bearer $token" "$tmp/status.txt" || true)
  wait "$bg" || true
  echo "mixed   cached status p99 while 8 clients read uncached ($(figure rps "$(cat "$tmp/mixed_bg.txt")") req/s of them): $(figure p99_ms "$mixed") ms ($(figure rps "$mixed") req/s)   cached alone: $alone ms   ratio $(ratio "$(figure p99_ms "$mixed")" "$alone") (target <= 2)"
}

# Long polls: one waiting GET /v1/changes per school for $1 schools, each with a pupil
# on its roll alone; marks are recorded one at a time for random schools, and the time
# from each mark's reply to its school's poll answering is measured. Only the school a
# mark concerns should query again: the daemon's requery counter says how many did.
bench_long_polls() {
  local n=$1 marks=${BENCH_LONGPOLL_MARKS:-300}
  # the schools, pupils and keys are made once per run (a later call reuses them)
  if [[ ! -s $tmp/waiter_keys.txt || $(wc -l < "$tmp/waiter_keys.txt") -ne $n ]]; then
    waiters_setup "$n"
  fi
  local r0 r1 out
  r0=$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" | awk '/^dualreg_changes_requeries_total/ { print $2 }')
  out=$("$bin/waiters" -p "$port" -a "$token" -n "$marks" -d "$tmp/waiter_dates.txt" -s "$tmp/waiter_state.txt" "$tmp/waiter_keys.txt" || true)
  r1=$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" | awk '/^dualreg_changes_requeries_total/ { print $2 }')
  echo "longpoll mark -> its school's long poll answered ($n schools waiting, $(figure marks "$out") marks one at a time): p50 $(figure p50_ms "$out") ms p99 $(figure p99_ms "$out") ms max $(figure max_ms "$out") ms (target p99 <= 50 ms)   re-queries per mark $(awk -v a="${r0:-0}" -v b="${r1:-0}" -v m="$(figure marks "$out")" 'BEGIN { if (m > 0) printf "%.2f", (b - a) / m; else print "n/a" }') (1 = only the school concerned)   other schools' polls woken $(figure woken_other "$out")"
}

# $1 schools, each with one pupil on its roll alone and a key: $tmp/waiter_keys.txt
# ("TOKEN UPN URN"), and the school days to mark them on: $tmp/waiter_dates.txt.
waiters_setup() {
  local n=$1
  psql -q "$url" -v n="$n" -f "$root/bench/upn.sql" -f - <<'SQL'
\set ON_ERROR_STOP on
INSERT INTO schools (urn, name, kind)
SELECT (300000 + i)::text, 'Waiting School ' || i, 'mainstream' FROM generate_series(1, :n) i
ON CONFLICT DO NOTHING;
INSERT INTO pupils (upn, given_name, family_name, date_of_birth)
SELECT pg_temp.upn('8013000' || lpad(i::text, 5, '0')), 'Waiter', 'Pupil ' || i, '2012-01-01'
  FROM generate_series(1, :n) i
ON CONFLICT DO NOTHING;
INSERT INTO registrations (upn, urn, role, start_date)
SELECT p.upn, (300000 + substr(p.family_name, 7)::int)::text, 'main', dualreg_today() - 200
  FROM pupils p WHERE p.given_name = 'Waiter'
ON CONFLICT DO NOTHING;
SQL
  : > "$tmp/waiter_keys.txt"
  local urn upn key
  while read -r urn upn; do
    key=$("$bin/dualregctl" -c /dev/null key create --school "$urn" --name "waiter-$urn" 2>/dev/null)
    echo "$key $upn $urn" >> "$tmp/waiter_keys.txt"
  done < <(psql -qAt -F' ' "$url" -c "SELECT g.urn, g.upn FROM registrations g JOIN pupils p USING (upn) WHERE p.given_name = 'Waiter' ORDER BY g.urn")
  psql -qAt "$url" -c "SELECT d::date FROM generate_series(dualreg_today() - 199, dualreg_today() - 1, interval '1 day') d WHERE extract(isodow FROM d) <= 5 ORDER BY d" > "$tmp/waiter_dates.txt"
  rm -f "$tmp/waiter_state.txt"
}
