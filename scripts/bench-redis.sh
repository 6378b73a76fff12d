#!/usr/bin/env bash
# Queue-heavy ingest, embedded store next to Redis mode, same command: one
# `d4 client` sends MIB MiB of type-3 log lines (~100 bytes each, every line
# a queue item for one queue) to a release `d4 server` on loopback.
# Prints MB/s, lines/s, server CPU-seconds per GB and, in Redis mode, the
# redis-server's CPU-seconds per GB.
#
# Usage: scripts/bench-redis.sh [MIB=64] [ROUNDS=3]
#   BASELINE_BIN=/path/to/other/d4 adds embedded and Redis-mode rounds of
#   that build, interleaved with this one's (e.g. the previous commit, built
#   in a git worktree), for a ratio measured in the same command.
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-64}
ROUNDS=${2:-3}
command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
cargo build --release -q -p d4
D4=$PWD/target/release/d4
W=$(mktemp -d -p "${WORK_DIR:-/tmp}")
SPID= RPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; [ -n "$RPID" ] && kill "$RPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

python3 - "$W/lines.txt" "$MIB" <<'PY'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
target = mib * 1024 * 1024
with open(path, "w") as f:
    n = 0
    written = 0
    while written < target:
        line = f"2026-11-22T03:00:00 host{n % 97} sshd[{n}]: Failed password for invalid user u{n % 1000} from 192.0.2.{n % 250} port {1024 + n % 60000} ssh2\n"
        f.write(line)
        written += len(line)
        n += 1
PY
BYTES=$(stat -c %s "$W/lines.txt")
LINES=$(wc -l <"$W/lines.txt")
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # MODE BINARY -> "mbs lines_per_s server_cpu_per_gb redis_cpu_per_gb"
  local mode=$1 D4=$2
  rm -rf "$W/data"
  local store=embedded
  if [ "$mode" = redis ]; then
    local port
    port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    mkdir -p "$W/redis"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$W/redis" >/dev/null 2>&1 &
    RPID=$!
    for _ in $(seq 100); do redis-cli -p "$port" PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    store="redis://127.0.0.1:$port/0"
  fi
  "$D4" server --data-dir "$W/data" --listen 127.0.0.1:0 --web 127.0.0.1:0 \
    --mode shared-secret --gzip-level 0 --rotation-secs 3600 --store "$store" 2>"$W/server.log" &
  SPID=$!
  for _ in $(seq 100); do [ -s "$W/data/server.json" ] && break; sleep 0.1; done
  "$D4" queue create --data-dir "$W/data" -t 3 --max-size 100000 >/dev/null
  local ING c
  ING=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['ingest'])" "$W/data/server.json")
  c="$W/conf"; mkdir -p "$c"
  echo "$ING" >"$c/destination"; echo 3 >"$c/type"
  echo "private key to change" >"$c/key"; cp "$W/data/tls/ca.crt" "$c/rootCA.crt"
  cat /proc/sys/kernel/random/uuid >"$c/uuid"
  local s0 r0=0 t0 t1 s1 r1=0
  s0=$(ticks "$SPID"); [ -n "$RPID" ] && r0=$(ticks "$RPID")
  t0=$(date +%s.%N)
  "$D4" client -c "$c" --file "$W/lines.txt" 2>"$W/client.log"
  t1=$(date +%s.%N)
  sleep 0.5 # the last pushes
  s1=$(ticks "$SPID"); [ -n "$RPID" ] && r1=$(ticks "$RPID")
  kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
  if [ -n "$RPID" ]; then kill "$RPID"; wait "$RPID" 2>/dev/null || true; RPID=; rm -rf "$W/redis"; fi
  python3 -c "
import sys
b, l, hz = $BYTES, $LINES, $HZ
wall = $t1 - $t0
gb = b / 1e9
print(f'{b / wall / 1e6:.1f} {l / wall:.0f} {($s1 - $s0) / hz / gb:.2f} {($r1 - $r0) / hz / gb:.2f}')"
}

echo "lines: $LINES ($BYTES bytes), one queue of type 3, rounds: $ROUNDS"
show() { # LABEL ROUND RESULT...
  printf '  %-15s round %d: %6s MB/s  %8s lines/s  server %5s CPU-s/GB  redis-server %5s CPU-s/GB\n' "$1" "$2" "$3" "$4" "$5" "$6"
}
for round in $(seq "$ROUNDS"); do
  show embedded "$round" $(run embedded "$D4")
  if [ -n "${BASELINE_BIN:-}" ]; then
    show embedded-base "$round" $(run embedded "$BASELINE_BIN")
  fi
done
for round in $(seq "$ROUNDS"); do
  show redis "$round" $(run redis "$D4")
  if [ -n "${BASELINE_BIN:-}" ]; then
    show redis-base "$round" $(run redis "$BASELINE_BIN")
  fi
done
