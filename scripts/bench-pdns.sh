#!/usr/bin/env bash
# Passive DNS end-to-end benchmark (docs/BENCHMARKS.md, "Passive DNS").
#
#   scripts/bench-pdns.sh [RECORDS] [RATE] [SECONDS]
#
# 1. ingest: RECORDS passivedns lines (default 10 M) into a fresh store, twice:
#    "distinct"  every line a new (rrname, rrtype, rdata)     -> RECORDS records
#    "repeated"  lines over RECORDS/10 records (10 sightings each, random order)
#    reported as observations per CPU-second (user+sys of the ingest process).
# 2. lookup: `pdns serve` on the "distinct" store (RECORDS records), GET
#    /query/<random stored name> at a fixed RATE (default 5000/s) for SECONDS
#    (default 30) over 16 keep-alive connections, open loop; p50/p90/p99/max;
#    after a 20 s warm-up at 3000/s; the server runs with a 4 GiB page cache.
#    The load average before each phase is printed: this machine is shared.
# 3. wildcard: GET /query/*.example.org?limit=1 (every record matches) 100 times
#    in a row, then 4 clients x 100 at once: server CPU per lookup and its RSS
#    (issue 19: a page costs its limit, not the matching set).
#
# Uses the `pdns-bench` example (the same code as `d4 pdns`, without the rest of d4).
set -euo pipefail
N=${1:-10000000}
RATE=${2:-5000}
SECS=${3:-30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
W=${BENCH_DIR:-$(mktemp -d /tmp/bench-pdns.XXXXXX)}
trap '[ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null; [ -z "${BENCH_DIR:-}" ] && rm -rf "$W"' EXIT
cargo build --release -q -p d4-pdns --example pdns-bench
B=$CARGO_TARGET_DIR/release/examples/pdns-bench
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "records: $N, rate: $RATE/s for $SECS s"

for kind in distinct repeated; do
  echo "load average before ingest $kind: $(cut -d" " -f1-3 /proc/loadavg)"
  keys=$N; [ $kind = repeated ] && keys=$((N / 10))
  "$B" gen "$N" "$keys" > "$W/$kind.txt"
  rm -f "$W/$kind.redb"
  /usr/bin/time -f "%e %U %S %M" -o "$W/time" "$B" cli ingest -s -r "$W/$kind.txt" --store "$W/$kind.redb" 2> "$W/ingest.err" || { cat "$W/ingest.err"; exit 1; }
  read -r wall user sys rss < "$W/time"
  cpu=$(echo "$user + $sys" | bc -l)
  printf 'ingest %-9s %s lines -> %s: %.1f s wall, %.1f CPU-s (user %s + sys %s), %.0f lines/CPU-s, max RSS %d MB, store %s\n' \
    "$kind" "$N" "$(grep -o '[0-9]* records stored' "$W/ingest.err")" "$wall" "$cpu" "$user" "$sys" \
    "$(echo "$N / $cpu" | bc -l)" $((rss / 1024)) "$(du -h "$W/$kind.redb" | cut -f1)"
  rm -f "$W/$kind.txt"
done

# Warm state: the file in the OS page cache, then 20 s of lookups at 3000/s to
# fill the server's own page cache (a cold 2 GB store reads from disk: see docs).
cat "$W/distinct.redb" > /dev/null
"$B" cli serve --store "$W/distinct.redb" --listen 127.0.0.1:0 --rate-limit 0 --cache-mb 4096 > "$W/serve.out" 2> "$W/serve.err" &
SERVE_PID=$!
for _ in $(seq 100); do grep -q listening "$W/serve.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/.*listening on //p' "$W/serve.out")
# warm-up (page cache), then the measured run
"$B" load "$BASE" "$N" 3000 20 8 | sed 's/^/warm-up: /'
echo "load average before lookup: $(cut -d" " -f1-3 /proc/loadavg)"
T0=$(awk '{print $14 + $15}' /proc/$SERVE_PID/stat)
"$B" load "$BASE" "$N" "$RATE" "$SECS" 16 | sed 's/^/lookup: /'
T1=$(awk '{print $14 + $15}' /proc/$SERVE_PID/stat)
echo "lookup: server CPU $(echo "($T1 - $T0) / $(getconf CLK_TCK)" | bc -l | xargs printf '%.1f') s for $((RATE * SECS)) requests"
rss() { awk '/VmRSS/{print int($2/1024)}' /proc/$SERVE_PID/status; }
echo "wildcard: server RSS before $(rss) MB"
T0=$(awk '{print $14 + $15}' /proc/$SERVE_PID/stat)
for _ in $(seq 100); do curl -s -o /dev/null "$BASE/query/*.example.org?limit=1"; done
T1=$(awk '{print $14 + $15}' /proc/$SERVE_PID/stat)
echo "wildcard: 100 lookups *.example.org?limit=1 in a row: server CPU $(echo "($T1 - $T0) / $(getconf CLK_TCK) / 100" | bc -l | xargs printf '%.4f') s per lookup"
T0=$T1
CLIENTS=()
for _ in 1 2 3 4; do
  (for _ in $(seq 100); do curl -s -o /dev/null "$BASE/query/*.example.org?limit=1"; done) &
  CLIENTS+=($!)
done
wait "${CLIENTS[@]}"
T1=$(awk '{print $14 + $15}' /proc/$SERVE_PID/stat)
echo "wildcard: 4 clients x 100 at once: server CPU $(echo "($T1 - $T0) / $(getconf CLK_TCK) / 400" | bc -l | xargs printf '%.4f') s per lookup; RSS after $(rss) MB"
