#!/usr/bin/env bash
# Passive SSL benchmark (docs/BENCHMARKS.md, "Passive SSL lookups").
#
#   scripts/tls-lookup-bench.sh [SESSIONS] [RATE] [SECONDS] [CERTS]
#
# 1. ingest: SESSIONS generated ja3-jl lines (default 1 M; 5,000 JA3s, 2,000 JA4s,
#    50,000 servers, clients in 10/8 and fd00::/16, CERTS certificates, default
#    3,000, reused) into a fresh store: records/s and CPU-s per 1 M records
#    (user+sys of the ingest process), store size.
# 2. lookups: `tls serve` on that store; a fixed RATE (default 1000/s) for
#    SECONDS (default 30) over 8 keep-alive connections, open loop, of a mix:
#    25 % JA3, 20 % certificate, 20 % address, 15 % name, 15 % CIDR /24,
#    5 % *.suffix, each limit=10; then the baseline: the same rate against the
#    static /api/v1/openapi.json. p50/p90/p99/max and the server's CPU-seconds
#    for each. A 10 s warm-up of the mix comes first.
#
# Uses the `tls-bench` example (the same code as `d4 tls`, without the rest of d4).
set -euo pipefail
N=${1:-1000000}
RATE=${2:-1000}
SECS=${3:-30}
CERTS=${4:-3000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
W=${BENCH_DIR:-$(mktemp -d /tmp/bench-tls.XXXXXX)}
trap '[ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null; [ -z "${BENCH_DIR:-}" ] && rm -rf "$W"' EXIT
cargo build --release -q -p d4-tls --example tls-bench
B=$CARGO_TARGET_DIR/release/examples/tls-bench
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "sessions: $N, certificates: $CERTS, rate: $RATE/s for $SECS s"

"$B" gen "$N" "$CERTS" "$W/hashes.txt" > "$W/sessions.jsonl"
echo "input: $(du -h "$W/sessions.jsonl" | cut -f1)"
echo "load average before ingest: $(cut -d" " -f1-3 /proc/loadavg)"
rm -f "$W/tls.redb"
/usr/bin/time -f "%e %U %S %M" -o "$W/time" "$B" cli ingest -s -r "$W/sessions.jsonl" --store "$W/tls.redb" 2> "$W/ingest.err" || { cat "$W/ingest.err"; exit 1; }
read -r wall user sys rss < "$W/time"
cpu=$(echo "$user + $sys" | bc -l)
printf 'ingest: %s; %.1f s wall, %.0f records/s, %.1f CPU-s (user %s + sys %s) = %.1f CPU-s per 1 M records, max RSS %d MB, store %s\n' \
  "$(grep -o '[0-9]* sessions stored.*not parsed)' "$W/ingest.err")" "$wall" "$(echo "$N / $wall" | bc -l)" "$cpu" "$user" "$sys" \
  "$(echo "$cpu * 1000000 / $N" | bc -l)" $((rss / 1024)) "$(du -h "$W/tls.redb" | cut -f1)"
rm -f "$W/sessions.jsonl"

cat "$W/tls.redb" > /dev/null
"$B" cli serve --store "$W/tls.redb" --listen 127.0.0.1:0 --rate-limit 0 --cache-mb 2048 > "$W/serve.out" 2> "$W/serve.err" &
SERVE_PID=$!
for _ in $(seq 100); do grep -q listening "$W/serve.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/.*listening on //p' "$W/serve.out")
cpu() { awk '{print $14 + $15}' /proc/$SERVE_PID/stat; }
"$B" load "$BASE" "$RATE" 10 8 "$W/hashes.txt" | sed 's/^/warm-up: /'
for what in mix static; do
  echo "load average before $what: $(cut -d" " -f1-3 /proc/loadavg)"
  T0=$(cpu)
  "$B" load "$BASE" "$RATE" "$SECS" 8 "$W/hashes.txt" $([ $what = static ] && echo static) | sed "s/^/$what: /"
  T1=$(cpu)
  echo "$what: server CPU $(echo "($T1 - $T0) / $(getconf CLK_TCK)" | bc -l | xargs printf '%.2f') s for $((RATE * SECS)) requests"
done
echo "server RSS $(awk '/VmRSS/{print int($2/1024)}' /proc/$SERVE_PID/status) MB"
