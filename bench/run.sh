#!/usr/bin/env bash
# make bench: dualregd's figures next to ceilings measured in the same run on the same
# machine, printed as ratios. Uses a throw-away PostgreSQL cluster WITH fsync (like
# production) and never fails the build on a figure.
#   bench/run.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: bench/run.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$build"
PUPILS=${BENCH_PUPILS:-2000}
BATCHES=${BENCH_BATCHES:-100}
SECONDS_STATUS=${BENCH_SECONDS:-8}
WRITERS=${BENCH_WRITERS:-2}
. "$root/bench/setup.sh"

make_marks 500 0 "$BATCHES"
make_marks 30 $((BATCHES * 500)) 600
make_marks 1 $((BATCHES * 500 + 18000)) 3000
psql -qAt "$url" > "$tmp/status.txt" <<'SQL'
SELECT 'GET /v1/pupils/' || upn || '/status?date=' ||
       (SELECT max(d)::date FROM generate_series(dualreg_today() - 7, dualreg_today() - 1, interval '1 day') d
         WHERE extract(isodow FROM d) <= 5)
  FROM pupils WHERE family_name LIKE 'Number %' ORDER BY upn;
SQL


echo "dualreg bench: $(nproc) cores, PostgreSQL with fsync on, ${BATCHES} batches of 500 marks, $PUPILS pupils"

# 1. Ingest: POST /v1/marks with full semantics vs a bare upsert of the same rows on as
#    many connections: 500 marks per request from 2 clients (an MIS's bulk send), 30
#    from 8 (class registers), 1 from 50 (single marks); PostgreSQL's CPU per mark from
#    /proc, and the requests' p99.
. "$root/bench/reads.sh"
ingest_figure() {
  local size=$1 clients=$2 what=$3 ceil ours c0 c1 rows
  ceil=$("$bin/upsert_ceiling" "$url" "$clients" "$tmp/rows_$size.txt")
  c0=$(pg_cpu_seconds)
  ours=$("$bin/loadgen" -1 -p "$port" -c "$clients" -a "Bearer $token" "$tmp/marks_$size.txt" || true)
  c1=$(pg_cpu_seconds)
  rows=$(awk -v r="$(figure rps "$ours")" -v s="$size" 'BEGIN { printf "%.1f", r * s }')
  echo "ingest  POST /v1/marks ($size/request, $clients clients, $what): ${rows} marks/s p99 $(figure p99_ms "$ours") ms, PostgreSQL CPU $(awk -v a="$c0" -v b="$c1" -v n="$(figure requests "$ours")" -v s="$size" 'BEGIN { if (n > 0) printf "%.0f", (b - a) * 1e6 / (n * s); else print "n/a" }') us/mark   ceiling (bare upsert, $clients conns): $(figure rows_per_s "$ceil") rows/s   ratio $(ratio "$rows" "$(figure rows_per_s "$ceil")")   [errors $(figure errors "$ours")]"
}
ingest_figure 500 "$WRITERS" "D already derived"
ingest_figure 30 8 "a class register"
ingest_figure 1 50 "one mark each"

# 2. Status reads, 50 connections, vs a minimal evhttp server with a same-size body.
size=$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port$(head -1 "$tmp/status.txt" | cut -d' ' -f2)" | wc -c)
# One pass over every pupil first: polls of unchanged pupils are answered from memory,
# and the figure is the steady state of a poller, not the first read of each pupil.
"$bin/loadgen" -1 -p "$port" -c 8 -a "Bearer $token" "$tmp/status.txt" >/dev/null || true
ours=$("$bin/loadgen" -p "$port" -c 50 -d "$SECONDS_STATUS" -a "Bearer $token" "$tmp/status.txt" || true)
cport=$((port + 1))
"$bin/evhttp_ceiling" "$cport" "$size" & cpid=$!; pids+=("$cpid")
sleep 0.3
ceil=$("$bin/loadgen" -p "$cport" -c 50 -d "$SECONDS_STATUS" "$tmp/status.txt" || true)
kill "$cpid"
echo "status  GET status (50 conns, ${size}-byte body): $(figure rps "$ours") req/s p99 $(figure p99_ms "$ours") ms   ceiling (evhttp from memory): $(figure rps "$ceil") req/s p99 $(figure p99_ms "$ceil") ms   ratio $(ratio "$(figure rps "$ours")" "$(figure rps "$ceil")")   [errors $(figure errors "$ours")]"

status_idle_p99=$(figure p99_ms "$ours")

# 3. Webhook deliveries/s to a local sink (http, then https with a test CA) vs a plain
#    curl-multi client posting the same bodies with the same concurrency (16) to the
#    same sink. N events are committed in one transaction; the figure runs from that
#    commit (its commit timestamp) to the sink's arrival of the last delivery.
N=${BENCH_DELIVERIES:-5000}
body='{"type":"mark.recorded","timestamp":"2026-11-25T09:00:00.000Z","data":{"upn":"B801200005001","urn":"100001","date":"2026-11-25","session":"AM","code":"/","previous_code":null,"source":"api"}}'
psql -qAt "$url" -c "INSERT INTO subscriptions (urn, url, events, secret) VALUES ('100001', 'http://127.0.0.1:9/hook', '{*}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')"
# A database in service has delivered webhooks before, and statistics on them (as for
# the seeded tables above): yesterday's 20 000 deliveries, all delivered.
psql -q "$url" <<'SQL'
WITH e AS (
  INSERT INTO events (type, upn, urns, data, occurred_at)
  SELECT 'mark.recorded', 'Y' || lpad(i::text, 12, '0'), ARRAY['100002'], '{}'::jsonb,
         now() - interval '1 day'
    FROM generate_series(1, 20000) i
  RETURNING id, upn, occurred_at)
INSERT INTO deliveries (subscription_id, event_id, upn, status, attempts, next_attempt_at,
                        last_attempt_at, last_status, delivered_at, created_at)
SELECT (SELECT min(id) FROM subscriptions), id, upn, 'delivered', 1, occurred_at,
       occurred_at, 200, occurred_at, occurred_at
  FROM e;
ANALYZE deliveries;
ANALYZE events;
SQL
# deliver SCHEME PORT PREFIX [tls CERT KEY]: prints "per_s=R" for N deliveries.
deliver() {
  local scheme=$1 sport=$2 prefix=$3; shift 3
  "$bin/evhttp_ceiling" "$sport" 2 "$@" stamps "$tmp/stamps-$prefix.txt" > "$tmp/sink-$prefix.out" &
  local spid=$!; pids+=("$spid")
  sleep 0.3
  psql -qAt "$url" -c "UPDATE subscriptions SET url = '$scheme://127.0.0.1:$sport/hook'" >/dev/null
  local before
  before=$(psql -qAt "$url" -c "SELECT coalesce(max(id), 0) FROM deliveries")
  psql -qAt "$url" -c "SELECT count(dualreg_emit('mark.recorded', '$prefix' || lpad(i::text, 12, '0'), ARRAY['100001'], '{\"upn\": \"B801200005001\", \"urn\": \"100001\", \"date\": \"2026-11-25\", \"session\": \"AM\", \"code\": \"/\"}'::jsonb)) FROM generate_series(1, $N) i" >/dev/null
  local committed done_n=0
  committed=$(psql -qAt "$url" -c "SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM deliveries WHERE id > $before ORDER BY id LIMIT 1")
  for _ in $(seq 1200); do
    done_n=$(psql -qAt "$url" -c "SELECT count(*) FROM deliveries WHERE id > $before AND status = 'delivered'")
    [[ $done_n -ge $N ]] && break
    sleep 0.05
  done
  kill "$spid"; wait "$spid" 2>/dev/null || true
  local last
  last=$(sed -n 's/.*last=\([0-9.]*\).*/\1/p' "$tmp/sink-$prefix.out")
  awk -v n="$done_n" -v a="$committed" -v b="$last" 'BEGIN { if (b > a) printf "per_s=%.1f\n", n / (b - a); else print "per_s=0" }'
}
sport=$((port + 2))
"$bin/evhttp_ceiling" "$sport" 2 & spid=$!; pids+=("$spid")
sleep 0.3
ceil=$("$bin/curl_ceiling" "http://127.0.0.1:$sport/hook" "$N" 16 "$body")
kill "$spid"; wait "$spid" 2>/dev/null || true
ours=$(deliver http "$sport" W)
echo "deliver webhooks ($N, 16 at once, signed, outbox in PostgreSQL): $(figure per_s "$ours")/s   ceiling (plain curl multi, same sink): $(figure per_s "$ceil")/s   ratio $(ratio "$(figure per_s "$ours")" "$(figure per_s "$ceil")")"

tport=$((port + 4))
"$bin/evhttp_ceiling" "$tport" 2 tls "$tmp/sink.crt" "$tmp/sink.key" & spid=$!; pids+=("$spid")
sleep 0.3
ceil=$("$bin/curl_ceiling" "https://127.0.0.1:$tport/hook" "$N" 16 "$body" "$tmp/sink.crt")
kill "$spid"; wait "$spid" 2>/dev/null || true
ours=$(deliver https "$tport" S tls "$tmp/sink.crt" "$tmp/sink.key")
echo "deliver webhooks over https ($N, 16 at once, test CA): $(figure per_s "$ours")/s   ceiling (plain curl multi, same sink): $(figure per_s "$ceil")/s   ratio $(ratio "$(figure per_s "$ours")" "$(figure per_s "$ceil")")"

# Latency on an idle system: marks posted one at a time, from each event's commit
# (PostgreSQL's commit timestamp) to its first arrival at the sink (the sink's clock);
# against one plain POST to the same sink.
lport=$((port + 5))
"$bin/evhttp_ceiling" "$lport" 2 stamps "$tmp/stamps-L.txt" > "$tmp/sink-L.out" & lpid=$!; pids+=("$lpid")
sleep 0.3
psql -qAt "$url" -c "UPDATE subscriptions SET url = 'http://127.0.0.1:$lport/hook'" >/dev/null
lceil=$("$bin/curl_ceiling" "http://127.0.0.1:$lport/hook" 200 1 "$body")
LAT=${BENCH_LATENCY_MARKS:-200}
# New marks (a first mark for each pupil on the last Thursday or Friday, at the school
# that expects them then), each one event.
psql -qAt "$url" -v n="$LAT" > "$tmp/lat-marks.txt" <<'SQL'
SELECT json_build_object('marks', json_build_array(json_build_object(
         'upn', upn, 'urn', '100001', 'session', 'AM', 'code', 'V',
         'date', (SELECT max(d)::date FROM generate_series(dualreg_today() - 14, dualreg_today() - 1, interval '1 day') d
                   WHERE extract(isodow FROM d) IN (4, 5)))))
  FROM pupils WHERE family_name LIKE 'Number %' ORDER BY upn DESC LIMIT :n;
SQL
lmin=$(psql -qAt "$url" -c "SELECT coalesce(max(id), 0) FROM events")
while read -r m; do
  curl -s -o /dev/null -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    --data "$m" "http://127.0.0.1:$port/v1/marks"
  sleep 0.03
done < "$tmp/lat-marks.txt"
sleep 0.5
kill "$lpid"; wait "$lpid" 2>/dev/null || true
lat=$(psql -qAt "$url" <<SQL
CREATE TEMP TABLE arrivals (id text, t double precision);
\copy arrivals FROM '$tmp/stamps-L.txt' WITH (DELIMITER ' ')
SELECT format('n=%s p50_ms=%s p99_ms=%s', count(*),
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1))
  FROM (SELECT (min(a.t) - extract(epoch FROM pg_xact_commit_timestamp(e.xmin))) * 1000 AS ms
          FROM arrivals a JOIN events e ON a.id = 'evt_' || e.id
         WHERE e.id > $lmin GROUP BY e.id, e.xmin) x;
SQL
)
lceil_ms=$(awk -v r="$(figure per_s "$lceil")" 'BEGIN { if (r > 0) printf "%.2f", 1000 / r; else print "n/a" }')
echo "latency mark committed -> webhook received (idle, $(figure n "$lat") events of $LAT marks posted one at a time): p50 $(figure p50_ms "$lat") ms p99 $(figure p99_ms "$lat") ms   ceiling (one plain POST, same sink): $lceil_ms ms   (target p50 <= 20 ms, p99 <= 100 ms)"

# 4. Status p99 while every webhook sink hangs (the dispatcher holds 16 hanging
#    transfers) against the idle figure above.
hport=$((port + 3))
"$bin/evhttp_ceiling" "$hport" 2 hang & hpid=$!; pids+=("$hpid")
sleep 0.3
psql -qAt "$url" -c "UPDATE subscriptions SET url = 'http://127.0.0.1:$hport/hook'" >/dev/null
psql -qAt "$url" -c "SELECT count(dualreg_emit('mark.recorded', 'H' || lpad(i::text, 12, '0'), ARRAY['100001'], '{}'::jsonb)) FROM generate_series(1, 500) i" >/dev/null
sleep 2
"$bin/loadgen" -1 -p "$port" -c 8 -a "Bearer $token" "$tmp/status.txt" >/dev/null || true
hung=$("$bin/loadgen" -p "$port" -c 50 -d "$SECONDS_STATUS" -a "Bearer $token" "$tmp/status.txt" || true)
inflight=$(psql -qAt "$url" -c "SELECT count(*) FROM deliveries WHERE lease_until > now()")
echo "hang    status p99 with every sink hanging ($inflight deliveries in flight): $(figure p99_ms "$hung") ms ($(figure rps "$hung") req/s)   idle sinks: $status_idle_p99 ms   ratio $(ratio "$(figure p99_ms "$hung")" "$status_idle_p99") (target <= 1.5)"
kill "$hpid"

# 5. Reads the status cache cannot serve; cached reads beside them; long polls of many
#    schools (bench/reads.sh).
bench_uncached_reads
bench_mixed_reads "$status_idle_p99"
bench_long_polls "${BENCH_WAITERS:-1000}"

rss=$(awk '/VmHWM/ {print $2}' "/proc/$dpid/status")
echo "memory  dualregd peak RSS over all the loads above: $((rss / 1024)) MB (target <= 64 MB)"
kill -TERM "$dpid"; wait "$dpid" 2>/dev/null || true
