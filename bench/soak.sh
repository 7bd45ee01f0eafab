#!/usr/bin/env bash
# make soak: dualregd under a mixed load for SOAK_SECONDS (default 600), its memory
# sampled every 10 s. The load, all at once on the bench data (bench/setup.sh): marks
# (30 per request, 4 clients; every slot once, then the same again, which changes
# nothing), cached and uncached status reads, long polls of 100 schools answered by
# marks one at a time, and every event delivered as a webhook to a local sink. Prints
# the resident set after the first minute (warm), at the end, the peak, and the growth
# over the rest of the run; never fails the build on a figure, only on errors.
#   bench/soak.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: bench/soak.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$build"
PUPILS=${BENCH_PUPILS:-2000}
SOAK=${SOAK_SECONDS:-600}
SECONDS_STATUS=$SOAK
. "$root/bench/setup.sh"
. "$root/bench/reads.sh"

# every slot of the seeded placements in requests of 30 (about 14 000 requests)
make_marks 30 0 15000
psql -qAt "$url" > "$tmp/status.txt" <<'SQL'
SELECT 'GET /v1/pupils/' || upn || '/status?date=' || (dualreg_today() - 1)
  FROM pupils WHERE family_name LIKE 'Number %' ORDER BY upn;
SQL
psql -qAt "$url" > "$tmp/uncached.txt" <<'SQL'
SELECT 'GET /v1/pupils/' || p.upn || '/status?date=' || d::date
  FROM pupils p, generate_series(dualreg_today() - 150, dualreg_today() - 1, interval '1 day') d
 WHERE extract(isodow FROM d) <= 5 AND p.family_name LIKE 'Number %' ORDER BY random();
SQL
sport=$((port + 2))
"$bin/evhttp_ceiling" "$sport" 2 & pids+=("$!")
sleep 0.3
psql -qAt "$url" -c "INSERT INTO subscriptions (urn, url, events, secret) VALUES ('100001', 'http://127.0.0.1:$sport/hook', '{*}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'), ('100002', 'http://127.0.0.1:$sport/hook', '{*}', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')" >/dev/null

rss_kb() { awk '/VmRSS/ { print $2 }' "/proc/$dpid/status"; }
echo "dualreg soak: $(nproc) cores, $PUPILS pupils, ${SOAK} s of mixed load"
end=$(( $(date +%s) + SOAK ))
load=()
"$bin/loadgen" -p "$port" -c 4 -d "$SOAK" -a "Bearer $token" "$tmp/marks_30.txt" > "$tmp/soak-marks.txt" 2>&1 & load+=("$!")
"$bin/loadgen" -p "$port" -c 16 -d "$SOAK" -a "Bearer $token" "$tmp/status.txt" > "$tmp/soak-cached.txt" 2>&1 & load+=("$!")
"$bin/loadgen" -p "$port" -c 4 -d "$SOAK" -a "Bearer $token" "$tmp/uncached.txt" > "$tmp/soak-uncached.txt" 2>&1 & load+=("$!")
pids+=("${load[@]}")
# long polls: rounds of 100 marks to 100 waiting schools until the time is up
( while (( $(date +%s) < end - 15 )); do
    BENCH_LONGPOLL_MARKS=100 bench_long_polls 100 >> "$tmp/soak-polls.txt" 2>&1 || true
    sleep 2
  done ) & load+=("$!"); pids+=("$!")

warm="" peak=0 samples=0
while (( $(date +%s) < end )); do
  sleep 10
  kb=$(rss_kb)
  samples=$((samples + 1))
  (( kb > peak )) && peak=$kb
  [[ -z $warm && $samples -ge 6 ]] && warm=$kb
done
wait "${load[@]}" 2>/dev/null || true
last=$(rss_kb)
hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$dpid/status")
delivered=$(psql -qAt "$url" -c "SELECT count(*) FROM deliveries WHERE status = 'delivered'")
pending=$(psql -qAt "$url" -c "SELECT count(*) FROM deliveries WHERE status = 'pending'")
echo "load    marks: $(figure requests "$(cat "$tmp/soak-marks.txt")") requests of 30 [errors $(figure errors "$(cat "$tmp/soak-marks.txt")")]; status: $(figure requests "$(cat "$tmp/soak-cached.txt")") cached, $(figure requests "$(cat "$tmp/soak-uncached.txt")") uncached [errors $(( $(figure errors "$(cat "$tmp/soak-cached.txt")") + $(figure errors "$(cat "$tmp/soak-uncached.txt")") ))]; long-poll rounds: $(grep -c '^longpoll' "$tmp/soak-polls.txt" || true); webhooks delivered: $delivered (pending at the end: $pending)"
echo "memory  dualregd resident: ${warm:-?} kB after the first minute, $last kB at the end, peak $hwm kB   growth $(( (last - ${warm:-$last}) / 1024 )) MB (target: none; peak <= 64 MB)"
