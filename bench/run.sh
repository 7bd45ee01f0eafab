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

tmp=$(mktemp -d /tmp/dualreg-bench.XXXXXX)
chmod 711 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$root/scripts/pg.sh" stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

url=$("$root/scripts/pg.sh" start "$tmp/pg")
export DUALREG_DATABASE_URL="$url" DUALREG_SQL_DIR="$root/sql"
"$bin/dualregctl" -c /dev/null migrate >/dev/null
psql -q "$url" -v pupils="$PUPILS" -f "$root/bench/seed.sql"
token=$("$bin/dualregctl" -c /dev/null key create --admin --name bench 2>/dev/null)
# The steady state: the daily job has already given the school that does not expect the
# pupil its derived D for each day (made here in one statement rather than day by day).
psql -q "$url" <<'SQL'
INSERT INTO marks (upn, urn, date, session, code, source)
SELECT p.upn, CASE WHEN extract(isodow FROM d) <= 3 THEN '100001' ELSE '100002' END,
       d::date, s.session, 'D', 'derived'
  FROM pupils p,
       generate_series(dualreg_today() - 150, dualreg_today() - 1, interval '1 day') d,
       (VALUES ('AM'), ('PM')) s(session)
 WHERE extract(isodow FROM d) <= 5 AND p.family_name LIKE 'Number %'
ON CONFLICT DO NOTHING;
SQL
# Statistics, as a database in service has them (autovacuum would gather them a minute
# later): without them the planner guesses the seeded tables are empty.
psql -q "$url" -c ANALYZE

port=$(( 20000 + RANDOM % 20000 ))
cat > "$tmp/dualreg.conf" <<CONF
[server]
listen = 127.0.0.1:$port
max_body_size = 4M
[database]
pool_size = 4
[log]
level = warn
access = false
[limits]
rate = 1000000
burst = 1000000
[webhooks]
max_in_flight = 16
per_subscription = 16
allow_http = true
allow_private = true
CONF
"$bin/dualregd" -c "$tmp/dualreg.conf" 2>"$tmp/dualregd.log" &
dpid=$!; pids+=("$dpid")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

# Request files, made by PostgreSQL from the seeded data: marks at the school expected
# each session, 500 per batch, every (pupil, day, session) once.
psql -qAt "$url" -v batches="$BATCHES" > "$tmp/marks.txt" <<'SQL'
WITH slots AS (
  SELECT p.upn, d::date AS date, s.session,
         CASE WHEN extract(isodow FROM d) <= 3 THEN '100002' ELSE '100001' END AS urn,
         row_number() OVER (ORDER BY d, p.upn, s.session) - 1 AS n
    FROM pupils p,
         generate_series(dualreg_today() - 150, dualreg_today() - 1, interval '1 day') d,
         (VALUES ('AM'), ('PM')) s(session)
   WHERE extract(isodow FROM d) <= 5 AND p.family_name LIKE 'Number %'
)
SELECT 'POST /v1/marks ' || json_build_object('marks', json_agg(json_build_object(
         'upn', upn, 'urn', urn, 'date', date, 'session', session,
         'code', CASE WHEN session = 'AM' THEN '/' ELSE E'\\' END) ORDER BY n))
  FROM slots WHERE n < :batches * 500 GROUP BY n / 500 ORDER BY n / 500;
SQL
psql -qAt "$url" -v batches="$BATCHES" > "$tmp/rows.txt" <<'SQL'
WITH slots AS (
  SELECT p.upn, d::date AS date, s.session,
         row_number() OVER (ORDER BY d, p.upn, s.session) - 1 AS n
    FROM pupils p,
         generate_series(dualreg_today() - 150, dualreg_today() - 1, interval '1 day') d,
         (VALUES ('AM'), ('PM')) s(session)
   WHERE extract(isodow FROM d) <= 5 AND p.family_name LIKE 'Number %'
)
SELECT string_agg(upn || ',' || date || ',' || session || ',' ||
                  CASE WHEN session = 'AM' THEN '/' ELSE E'\\' END, ';' ORDER BY n)
  FROM slots WHERE n < :batches * 500 GROUP BY n / 500 ORDER BY n / 500;
SQL
psql -qAt "$url" > "$tmp/status.txt" <<'SQL'
SELECT 'GET /v1/pupils/' || upn || '/status?date=' ||
       (SELECT max(d)::date FROM generate_series(dualreg_today() - 7, dualreg_today() - 1, interval '1 day') d
         WHERE extract(isodow FROM d) <= 5)
  FROM pupils WHERE family_name LIKE 'Number %' ORDER BY upn;
SQL

figure() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "dualreg bench: $(nproc) cores, PostgreSQL with fsync on, ${BATCHES} batches of 500 marks, $PUPILS pupils"

# 1. Ingest: POST /v1/marks with full semantics vs a bare 500-row upsert.
ceil=$("$bin/upsert_ceiling" "$url" "$WRITERS" "$tmp/rows.txt")
ours=$("$bin/loadgen" -1 -p "$port" -c "$WRITERS" -a "Bearer $token" "$tmp/marks.txt" || true)
ours_rows=$(awk -v r="$(figure rps "$ours")" 'BEGIN { printf "%.1f", r * 500 }')
echo "ingest  POST /v1/marks (500/request, $WRITERS clients, D already derived): ${ours_rows} marks/s   ceiling (bare upsert, $WRITERS conns): $(figure rows_per_s "$ceil") rows/s   ratio $(ratio "$ours_rows" "$(figure rows_per_s "$ceil")")   [errors $(figure errors "$ours")]"

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

# 3. Webhook deliveries/s to a local sink vs a plain curl-multi client posting the same
#    bodies with the same concurrency (16) to the same sink.
sport=$((port + 2))
"$bin/evhttp_ceiling" "$sport" 2 & spid=$!; pids+=("$spid")
sleep 0.3
N=${BENCH_DELIVERIES:-5000}
body='{"type":"mark.recorded","timestamp":"2026-11-25T09:00:00.000Z","data":{"upn":"B801200005001","urn":"100001","date":"2026-11-25","session":"AM","code":"/","previous_code":null,"source":"api"}}'
ceil=$("$bin/curl_ceiling" "http://127.0.0.1:$sport/hook" "$N" 16 "$body")
psql -qAt "$url" -c "INSERT INTO subscriptions (urn, url, events, secret) VALUES ('100001', 'http://127.0.0.1:$sport/hook', '{*}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')"
t0=$(date +%s.%N)
psql -qAt "$url" -c "SELECT count(dualreg_emit('mark.recorded', 'W' || lpad(i::text, 12, '0'), ARRAY['100001'], '{\"upn\": \"B801200005001\", \"urn\": \"100001\", \"date\": \"2026-11-25\", \"session\": \"AM\", \"code\": \"/\"}'::jsonb)) FROM generate_series(1, $N) i" >/dev/null
for _ in $(seq 600); do
  done_n=$(psql -qAt "$url" -c "SELECT count(*) FROM deliveries WHERE status = 'delivered'")
  [[ $done_n -ge $N ]] && break
  sleep 0.1
done
t1=$(date +%s.%N)
ours_d=$(awk -v n="$done_n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
kill "$spid"
echo "deliver webhooks ($N, 16 at once, signed, outbox in PostgreSQL): $ours_d/s   ceiling (plain curl multi, same sink): $(figure per_s "$ceil")/s   ratio $(ratio "$ours_d" "$(figure per_s "$ceil")")"

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

rss=$(awk '/VmHWM/ {print $2}' "/proc/$dpid/status")
echo "memory  dualregd peak RSS over all the loads above: $((rss / 1024)) MB (target <= 64 MB)"
kill -TERM "$dpid"; wait "$dpid" 2>/dev/null || true
