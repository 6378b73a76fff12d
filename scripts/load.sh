#!/usr/bin/env bash
# End-to-end ingest load on loopback: SENSORS `d4 client` processes each send
# MIB MiB of type-1 pcap over TLS to one release `d4 server`.
# Prints wall MB/s, server CPU-seconds per GB and client CPU-seconds per GB.
#
# Usage: scripts/load.sh [SENSORS=1] [MIB_PER_SENSOR=512] [GZIP_LEVEL=0] [ROUNDS=3] [SNAPLEN=65535]
set -euo pipefail
cd "$(dirname "$0")/.."
SENSORS=${1:-1}
MIB=${2:-512}
GZIP=${3:-0}
ROUNDS=${4:-3}
SNAPLEN=${5:-65535}
# The d4 binary ($D4_BIN when set: see scripts/bench-vs.sh).
. scripts/common.sh
W=$(mktemp -d -p "${WORK_DIR:-/tmp}")
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

python3 scripts/gen-pcap.py "$W/data.pcap" "$MIB"
BYTES=$(stat -c %s "$W/data.pcap")

# Client CPU: `times` (this shell's finished children) before and after, run in this shell.
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

results=()
for round in $(seq "$ROUNDS"); do
  rm -rf "$W/data"
  "$D4" server --data-dir "$W/data" --listen 127.0.0.1:0 --web 127.0.0.1:0 \
    --mode shared-secret --gzip-level "$GZIP" --rotation-secs 3600 2>"$W/server.log" &
  SPID=$!
  for _ in $(seq 100); do [ -s "$W/data/server.json" ] && break; sleep 0.1; done
  ING=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['ingest'])" "$W/data/server.json")
  for i in $(seq "$SENSORS"); do
    c="$W/conf$i"; mkdir -p "$c"
    echo "$ING" >"$c/destination"; echo 1 >"$c/type"; echo "$SNAPLEN" >"$c/snaplen"
    echo "private key to change" >"$c/key"; cp "$W/data/tls/ca.crt" "$c/rootCA.crt"
    cat /proc/sys/kernel/random/uuid >"$c/uuid"
  done
  sync
  times >"$W/times"; c0=$(tail -1 "$W/times" | tr 'ms' '  ' | awk '{print $1*60+$2+$3*60+$4}')
  s0=$(ticks "$SPID")
  t0=$(date +%s.%N)
  pids=()
  for i in $(seq "$SENSORS"); do
    "$D4" client -c "$W/conf$i" --file "$W/data.pcap" ${CLIENT_ARGS:-} 2>"$W/client$i.log" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  t1=$(date +%s.%N)
  if [ "$GZIP" != 0 ]; then
    # Compression runs in the background: count the server's CPU once every file is compressed.
    while find "$W/data/data" -type f ! -name '*.gz' | grep -q .; do sleep 0.2; done
  fi
  s1=$(ticks "$SPID")
  times >"$W/times"; c1=$(tail -1 "$W/times" | tr 'ms' '  ' | awk '{print $1*60+$2+$3*60+$4}')
  kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
  STORED=$(find "$W/data/data" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
  if [ "$GZIP" = 0 ] && [ "$STORED" -lt "$((BYTES * SENSORS))" ]; then
    echo "round $round: only $STORED bytes stored" >&2; exit 1
  fi
  results+=("$t0 $t1 $s0 $s1 $c0 $c1")
done

python3 - "$SENSORS" "$BYTES" "$HZ" "$GZIP" "$SNAPLEN" "${results[@]}" <<'PY'
import statistics, sys
n, size, hz, gz, snap = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
total = n * size
gb = total / 1e9
rows = []
for r in sys.argv[6:]:
    t0, t1, s0, s1, c0, c1 = map(float, r.split())
    wall = t1 - t0
    rows.append((total / wall / 1e6, (s1 - s0) / hz / gb, (c1 - c0) / gb))
print(f"sensors={n} snaplen={snap} gzip={gz} bytes per round={total} rounds={len(rows)}")
for i, (mbs, scpu, ccpu) in enumerate(rows, 1):
    print(f"  round {i}: {mbs:6.0f} MB/s  server {scpu:.2f} CPU-s/GB  clients {ccpu:.2f} CPU-s/GB")
med = lambda k: statistics.median(x[k] for x in rows)
print(f"median: {med(0):.0f} MB/s, server {med(1):.2f} CPU-s/GB, clients {med(2):.2f} CPU-s/GB")
PY
