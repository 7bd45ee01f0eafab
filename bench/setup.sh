# Sourced by bench/run.sh and bench/soak.sh (which set $root, $bin and $PUPILS): a
# throw-away PostgreSQL cluster with fsync on and the bench data (bench/seed.sql), an
# admin key ($token), a test CA's certificate for an HTTPS sink, and dualregd on a
# random port ($port, pid $dpid) with limits that do not get in a load test's way.
# Everything is removed on exit (BENCH_KEEP=DIR keeps the logs). Sets $tmp, $url,
# $pids (processes to kill on exit), make_marks(), figure() and ratio().

tmp=$(mktemp -d /tmp/dualreg-bench.XXXXXX)
chmod 711 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$root/scripts/pg.sh" stop "$tmp/pg" >/dev/null 2>&1 || true
  # BENCH_KEEP=DIR keeps the daemon's log, the sinks' arrival times and PostgreSQL's log.
  if [[ -n ${BENCH_KEEP:-} ]]; then
    mkdir -p "$BENCH_KEEP" && cp "$tmp"/*.log "$tmp"/stamps-* "$tmp"/sink-* "$tmp/pg/postgres.log" "$BENCH_KEEP"/ 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Commit times, for the delivery figures (from an event's commit to the sink).
url=$(PG_EXTRA_CONF="${PG_EXTRA_CONF:-}
track_commit_timestamp = on" "$root/scripts/pg.sh" start "$tmp/pg")
export DUALREG_DATABASE_URL="$url" DUALREG_SQL_DIR="$root/sql"
"$bin/dualregctl" -c /dev/null migrate >/dev/null
psql -q "$url" -v pupils="$PUPILS" -f "$root/bench/seed.sql"
token=$("$bin/dualregctl" -c /dev/null key create --admin --name bench 2>/dev/null)
# Statistics, as a database in service has them (autovacuum would gather them a minute
# later): without them the planner guesses the seeded tables are empty.
psql -q "$url" -c ANALYZE

# A throw-away certificate for the HTTPS sink; dualregd and curl trust it as their CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$tmp/sink.key" -out "$tmp/sink.crt" 2>/dev/null

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
[outbound]
ca_file = $tmp/sink.crt
CONF
"$bin/dualregd" -c "$tmp/dualreg.conf" 2>"$tmp/dualregd.log" &
dpid=$!; pids+=("$dpid")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done

# Request files, made by PostgreSQL from the seeded data: marks at the school expected
# each session, every (pupil, day, session) at most once over the whole run.
#   make_marks SIZE FIRST COUNT: COUNT requests of SIZE marks from slot FIRST, as
#   $tmp/marks_SIZE.txt (loadgen) and $tmp/rows_SIZE.txt (upsert_ceiling)
make_marks() {
  local slots="WITH slots AS (
  SELECT p.upn, d::date AS date, s.session,
         CASE WHEN extract(isodow FROM d) <= 3 THEN '100002' ELSE '100001' END AS urn,
         CASE WHEN s.session = 'AM' THEN '/' ELSE E'\\\\' END AS code,
         row_number() OVER (ORDER BY d, p.upn, s.session) - 1 AS n
    FROM pupils p,
         generate_series(dualreg_today() - 150, dualreg_today() - 1, interval '1 day') d,
         (VALUES ('AM'), ('PM')) s(session)
   WHERE extract(isodow FROM d) <= 5 AND p.family_name LIKE 'Number %'
), mine AS (SELECT *, (n - :first) / :size AS req FROM slots
             WHERE n >= :first AND n < :first + :size * :count)"
  psql -qAt "$url" -v size="$1" -v first="$2" -v count="$3" > "$tmp/marks_$1.txt" <<SQL
$slots
SELECT 'POST /v1/marks ' || json_build_object('marks', json_agg(json_build_object(
         'upn', upn, 'urn', urn, 'date', date, 'session', session, 'code', code) ORDER BY n))
  FROM mine GROUP BY req ORDER BY req;
SQL
  psql -qAt "$url" -v size="$1" -v first="$2" -v count="$3" > "$tmp/rows_$1.txt" <<SQL
$slots
SELECT string_agg(upn || ',' || date || ',' || session || ',' || code, ';' ORDER BY n)
  FROM mine GROUP BY req ORDER BY req;
SQL
}
figure() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
