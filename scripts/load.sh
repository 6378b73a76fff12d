#!/usr/bin/env bash
# End-to-end ingest load on loopback: SENSORS `d4 client` processes each send
# MIB MiB of type-1 pcap over TLS to one release `d4 server`.
# Prints wall MB/s, server CPU-seconds per GB and client CPU-seconds per GB.
#
# Usage: scripts/load.sh [SENSORS=1] [MIB_PER_SENSOR=512] [GZIP_LEVEL=0]
set -euo pipefail
cd "$(dirname "$0")/.."
SENSORS=${1:-1}
MIB=${2:-512}
GZIP=${3:-0}
cargo build --release -q -p d4
D4=$PWD/target/release/d4
W=$(mktemp -d)
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

python3 scripts/gen-pcap.py "$W/data.pcap" "$MIB"
BYTES=$(stat -c %s "$W/data.pcap")

"$D4" server --data-dir "$W/data" --listen 127.0.0.1:0 --web 127.0.0.1:0 \
  --mode shared-secret --gzip-level "$GZIP" --rotation-secs 3600 2>"$W/server.log" &
SPID=$!
for _ in $(seq 100); do [ -s "$W/data/server.json" ] && break; sleep 0.1; done
ING=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['ingest'])" "$W/data/server.json")

for i in $(seq "$SENSORS"); do
  c="$W/conf$i"; mkdir -p "$c"
  echo "$ING" >"$c/destination"; echo 1 >"$c/type"; echo 65535 >"$c/snaplen"
  echo "private key to change" >"$c/key"; cp "$W/data/tls/ca.crt" "$c/rootCA.crt"
  cat /proc/sys/kernel/random/uuid >"$c/uuid"
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
s0=$(ticks "$SPID")
t0=$(date +%s.%N)
pids=()
for i in $(seq "$SENSORS"); do
  "$D4" client -c "$W/conf$i" --file "$W/data.pcap" 2>"$W/client$i.log" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
t1=$(date +%s.%N)
s1=$(ticks "$SPID")
# Children's CPU (the clients) as bash accounts it.
read -r _ _ cu cs < <(times | tail -1 | tr 'ms' '  ' | awk '{print $1, $2, $3*60+$4, $5*60+$6}')
kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
STORED=$(find "$W/data/data" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')

python3 - "$SENSORS" "$BYTES" "$t0" "$t1" "$s0" "$s1" "$HZ" "$cu" "$cs" "$STORED" "$GZIP" <<'PY'
import sys
n, size, t0, t1, s0, s1, hz, cu, cs, stored, gz = sys.argv[1:]
n, size, hz = int(n), int(size), int(hz)
total = n * size
wall = float(t1) - float(t0)
server_cpu = (int(s1) - int(s0)) / hz
client_cpu = float(cu) + float(cs)
gb = total / 1e9
print(f"sensors={n} bytes={total} gzip={gz} wall={wall:.2f}s")
print(f"throughput: {total / wall / 1e6:.0f} MB/s")
print(f"server: {server_cpu:.2f} CPU-s = {server_cpu / gb:.2f} CPU-s/GB")
print(f"clients: {client_cpu:.2f} CPU-s = {client_cpu / gb:.2f} CPU-s/GB")
print(f"stored on disk: {int(stored)} bytes")
PY
