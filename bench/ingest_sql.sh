#!/usr/bin/env bash
# The rule engine's own cost, without HTTP: one dualreg_ingest_marks call per batch of
# 1, 30 and 500 new marks at the school that expects each pupil (the other school
# already holds its derived D, as in make bench), each in its own transaction (the
# commit is not counted), as the median of RUNS batches: psql's time for the statement
# and the CPU time the server process spent on it (the figure the machine's other load
# inflates least). Next to it, per batch, the CPU time of two floors: the same rows that
# ingest writes for each mark (mark, history, event, the event's filing under its two
# schools) inserted bare with every index but no trigger or foreign key, and make bench's
# ceiling, a bare upsert into a table of its own (bench/upsert_ceiling.c).
# Sets up a throw-away cluster with fsync on and make bench's data (bench/seed.sql, 150
# days of derived D), then VACUUM ANALYZE, as autovacuum keeps a database in service.
#   bench/ingest_sql.sh BUILD_DIR [RUNS]
# SQL_DIR=DIR measures another copy of sql/ (an older version, to compare with).
# Each connection first runs a few batches of each size, so that the figures are those
# of a pooled connection with its plans made. Linux only (the CPU clock of a process).
set -euo pipefail
build=${1:?usage: bench/ingest_sql.sh BUILD_DIR [RUNS]}
runs=${2:-15}
root=$(cd "$(dirname "$0")/.." && pwd)
sql_dir=${SQL_DIR:-$root/sql}

tmp=$(mktemp -d /tmp/dualreg-ingest.XXXXXX)
chmod 711 "$tmp"
cleanup() {
  "$root/scripts/pg.sh" stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

url=$("$root/scripts/pg.sh" start "$tmp/pg")
export DUALREG_DATABASE_URL="$url" DUALREG_SQL_DIR="$sql_dir"
"$root/$build/dualregctl" -c /dev/null migrate >/dev/null
psql -q "$url" -v pupils="${BENCH_PUPILS:-2000}" -f "$root/bench/seed.sql"
psql -q "$url" <<'SQL'
-- Every session a mark may be posted for, numbered; batches take consecutive slots.
CREATE TABLE bench_slots AS
SELECT p.upn, d::date AS date, s.session,
       CASE WHEN extract(isodow FROM d) <= 3 THEN '100002' ELSE '100001' END AS urn,
       row_number() OVER (ORDER BY d, p.upn, s.session) - 1 AS n
  FROM pupils p,
       generate_series(dualreg_today() - 150, dualreg_today() - 1, interval '1 day') d,
       (VALUES ('AM'), ('PM')) s(session)
 WHERE extract(isodow FROM d) <= 5 AND p.family_name LIKE 'Number %';
CREATE UNIQUE INDEX ON bench_slots (n);
-- The ceiling: make bench's bare upsert (bench/upsert_ceiling.c), into a table of its own.
CREATE TABLE bench_marks (upn text, date date, session text, code text,
                          recorded_at timestamptz DEFAULT now(),
                          PRIMARY KEY (upn, date, session));
INSERT INTO api_keys (name, role, token_hash, prefix)
VALUES ('bench', 'admin', repeat('0', 64), 'bench');
SQL
# As autovacuum would have it in service: statistics, and the visibility map that
# index-only scans need.
psql -q "$url" -c 'VACUUM ANALYZE'

# The CPU time the server process serving a session has used, in ms (Linux's per-process
# CPU clock of another process).
cat > "$tmp/cpu.py" <<'PY'
import sys, time
pid = int(sys.argv[1])
print("C %.3f" % (time.clock_gettime(((~pid) << 3) | 2) * 1000.0))
PY

# One psql session per size: $2 warm-up batches then $runs measured ones, each in its
# own transaction; prints each measured batch's wall time and server CPU time in ms.
# $3: 'ingest', 'writes' or 'upsert'; $4: the first slot.
measure() {
  local size=$1 warm=$2 what=$3 first=$4
  local script="$tmp/run.sql"
  printf '%s\n' 'SELECT pg_backend_pid() AS pid \gset' '\setenv DR_PID :pid' > "$script"
  if [[ $what == writes ]]; then
    # Triggers and foreign keys off for this session; the statement planned once.
    cat >> "$script" <<'SQL'
SET session_replication_role = replica;
PREPARE bench_writes(text[], text[], date[], text[], text[]) AS
WITH m AS (
  INSERT INTO marks (upn, urn, date, session, code, source, key_id)
  SELECT u.upn, u.urn, u.date, u.session, u.code, 'api',
         (SELECT id FROM api_keys WHERE name = 'bench')
    FROM unnest($1, $2, $3, $4, $5) AS u(upn, urn, date, session, code)
  RETURNING upn, urn, date, session, code, key_id
), h AS (
  INSERT INTO mark_history (upn, urn, date, session, new_code, new_source, key_id,
                            key_name, changed_at)
  SELECT upn, urn, date, session, code, 'api', key_id, 'bench', now() FROM m
), e AS (
  INSERT INTO events (type, upn, urns, data, occurred_at)
  SELECT 'mark.recorded', upn, ARRAY['100001', '100002'],
         jsonb_build_object('upn', upn, 'urn', urn, 'date', date, 'session', session,
                            'code', code, 'source', 'api'), now()
    FROM m
  RETURNING id, tx, urns
)
INSERT INTO event_schools (urn, tx, event_id) SELECT u, e.tx, e.id FROM e, unnest(e.urns) u;
SQL
  fi
  local i
  for ((i = 0; i < warm + runs; i++)); do
    local from=$((first + i * size))
    cat >> "$script" <<SQL
SELECT jsonb_agg(jsonb_build_object('upn', upn, 'urn', urn, 'date', date,
         'session', session, 'code', CASE WHEN session = 'AM' THEN '/' ELSE E'\\\\' END)
         ORDER BY n) AS items,
       array_agg(upn ORDER BY n) AS upns, array_agg(date ORDER BY n) AS dates,
       array_agg(urn ORDER BY n) AS urns,
       array_agg(session ORDER BY n) AS sessions,
       array_agg(CASE WHEN session = 'AM' THEN '/' ELSE E'\\\\' END ORDER BY n) AS codes
  FROM bench_slots WHERE n >= $from AND n < $((from + size)) \gset
BEGIN;
\\echo $( ((i >= warm)) && echo M || echo W)
\\! python3 $tmp/cpu.py \$DR_PID
SQL
    if [[ $what == ingest ]]; then
      cat >> "$script" <<'SQL'
\timing on
SELECT length(dualreg_ingest_marks(:'items'::jsonb,
         (SELECT id FROM api_keys WHERE name = 'bench'), 'bench', NULL, 'api')::text) \g /dev/null
\timing off
SQL
    elif [[ $what == writes ]]; then
      cat >> "$script" <<'SQL'
\timing on
EXECUTE bench_writes(:'upns', :'urns', :'dates', :'sessions', :'codes');
\timing off
SQL
    else
      cat >> "$script" <<'SQL'
\timing on
INSERT INTO bench_marks (upn, date, session, code)
SELECT * FROM unnest(:'upns'::text[], :'dates'::date[], :'sessions'::text[], :'codes'::text[])
ON CONFLICT (upn, date, session) DO UPDATE SET code = excluded.code, recorded_at = now();
\timing off
SQL
    fi
    echo "\\! python3 $tmp/cpu.py \$DR_PID" >> "$script"
    echo 'COMMIT;' >> "$script"
  done
  psql -qAt "$url" -v ON_ERROR_STOP=1 -f "$script" 2>&1 |
    awk '/^M$/ { m = 1; n = 0 } /^W$/ { m = 0 } /Time:/ { t = $2 }
         /^C / && m { if (++n == 1) c = $2; else printf "%s %.3f\n", t, $2 - c }'
}

col() { awk -v k="$1" '{ print $k }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR) printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "dualreg_ingest_marks, median of $runs batches of new marks (SQL $sql_dir), in ms:"
echo "(wall: psql's time for the statement; cpu: the server process's CPU time for it;"
echo " writes: the rows ingest writes per mark (mark, history, event, its two filings)"
echo " inserted bare, indexes kept, triggers and foreign keys off: the floor of full"
echo " semantics; upsert: make bench's ceiling, a bare upsert into a table of its own)"
printf '%-6s %9s %9s %9s %9s %11s %11s %12s\n' marks "wall" "cpu" "writes" "upsert" \
  "writes/cpu" "upsert/cpu" "cpu/mark"
# Slots used: ingest from 0, the writes floor from 300000 (other sessions, still new).
next=0
next_w=300000
next_up=0
for size in 1 30 500; do
  warm=3
  measure "$size" "$warm" ingest "$next" > "$tmp/in.txt"
  next=$((next + (warm + runs) * size))
  measure "$size" "$warm" writes "$next_w" > "$tmp/w.txt"
  next_w=$((next_w + (warm + runs) * size))
  measure "$size" "$warm" upsert "$next_up" > "$tmp/up.txt"
  next_up=$((next_up + (warm + runs) * size))
  t_in=$(col 1 < "$tmp/in.txt" | median); c_in=$(col 2 < "$tmp/in.txt" | median)
  c_w=$(col 2 < "$tmp/w.txt" | median); c_up=$(col 2 < "$tmp/up.txt" | median)
  printf '%-6s %9s %9s %9s %9s %11s %11s %12s\n' "$size" "$t_in" "$c_in" "$c_w" "$c_up" \
    "$(awk -v a="$c_in" -v b="$c_w" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "n/a" }')" \
    "$(awk -v a="$c_in" -v b="$c_up" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "n/a" }')" \
    "$(awk -v a="$c_in" -v n="$size" 'BEGIN { printf "%.1f us", a * 1000 / n }')"
done
