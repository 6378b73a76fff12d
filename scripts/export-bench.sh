#!/usr/bin/env bash
# The exporters' cost: `d4 export udp` and `d4 export tcp` draining a queue of
# N lines (--once), next to a plain socat pipe of the same lines to the same
# kind of listener, in the same run.
#
# Usage: scripts/export-bench.sh [N]   (default 200000 lines of 80 bytes)
# Needs: socat, python3. D4_BIN: the binary (default: this tree's release build);
# EXPORT_FLAGS: more flags for both exporters (e.g. "--batch 2000").
#
# Reported per run: items/s (wall), CPU-seconds (user+sys of the sender
# alone) per million items. The exporter's figures include its API reads
# (HTTPS to the local server, 2,000 items per request by default) and acknowledgments;
# the server's own CPU is not counted. socat reads the file in 8 KiB blocks:
# over UDP it sends one datagram per block, not per line (no line mode), so
# its UDP figure is a floor that does less work per line than the exporter.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
N=${1:-200000}
command -v socat >/dev/null || { echo "socat is needed (apt-get install socat)" >&2; exit 1; }

T=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

"$D4" server --data-dir "$T/data" --listen 127.0.0.1:0 --web 127.0.0.1:0 --mode shared-secret \
  >"$T/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do [ -f "$T/data/server.json" ] && break; sleep 0.1; done
d4() { "$D4" "$@" --data-dir "$T/data"; }
QU=$(d4 queue create -t 3 --max-size $((N + 10)))
QT=$(d4 queue create -t 3 --max-size $((N + 10)))

# N lines of 80 bytes, sent once by a type-3 sensor: both queues get them all.
python3 - "$N" >"$T/lines.txt" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"2026-12-05T12:00:00 host app[{i:08d}]: an exported line of the benchmark, padded".ljust(79, "."))
PY
mkdir "$T/conf"
INGEST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ingest"])' "$T/data/server.json")
echo "$INGEST" >"$T/conf/destination"
echo 3 >"$T/conf/type"
echo "private key to change" >"$T/conf/key"   # the server's shared secret (--mode shared-secret)
cp "$T/data/tls/ca.crt" "$T/conf/rootCA.crt"
"$D4" client -c "$T/conf" <"$T/lines.txt" 2>/dev/null
for _ in $(seq 600); do
  [ "$(d4 queue show "$QT" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("length", 0))' 2>/dev/null || echo 0)" -ge "$N" ] && break
  sleep 0.2
done

TIMEFORMAT='%R %U %S'
timed() { # OUT CMD...: the command's "real user sys" into OUT
  local out=$1
  shift
  { time "$@" >/dev/null 2>"$T/err"; } 2>"$T/time" || { cat "$T/err" >&2; exit 1; }
  tail -1 "$T/time" >"$out"
}
report() { # NAME TIMEFILE RECEIVED
  python3 - "$N" "$1" "$(cat "$2")" "$3" <<'PY'
import sys
n, name, t, got = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
real, user, sys_ = map(float, t.split())
print(f"{name:28s} {n / real:10,.0f} items/s  {(user + sys_) / n * 1e6:6.2f} CPU-s per million items  (received: {got}, {real:.2f} s wall)")
PY
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# UDP: a socat receiver writing what it gets.
P=$(port)
socat -u -T 5 UDP-RECV:"$P",rcvbuf=16777216 OPEN:"$T/udp.out",creat,trunc &
PIDS+=($!)
sleep 0.3
timed "$T/t.udp" "$D4" export udp -t 3 -u "$QU" -p "$P" -n --once ${EXPORT_FLAGS:-} --data-dir "$T/data"
sleep 0.5
UDP_GOT="$(wc -l <"$T/udp.out") lines"
timed "$T/t.socat-udp" socat -u OPEN:"$T/lines.txt" UDP-SENDTO:127.0.0.1:"$P"
sleep 0.5
SOCAT_UDP_GOT="$(($(wc -l <"$T/udp.out") - ${UDP_GOT% lines})) lines"

# TCP: a socat receiver per connection.
P=$(port)
socat -u TCP-LISTEN:"$P",reuseaddr,fork OPEN:"$T/tcp.out",creat,append &
PIDS+=($!)
sleep 0.3
timed "$T/t.tcp" "$D4" export tcp -t 3 -u "$QT" -p "$P" --once ${EXPORT_FLAGS:-} --data-dir "$T/data"
sleep 0.5
TCP_GOT="$(wc -l <"$T/tcp.out") lines"
timed "$T/t.socat-tcp" socat -u OPEN:"$T/lines.txt" TCP:127.0.0.1:"$P"
sleep 0.5
SOCAT_TCP_GOT="$(($(wc -l <"$T/tcp.out") - ${TCP_GOT% lines})) lines"

echo "$N lines of 80 bytes; $(nproc) cores; $("$D4" --version)"
report "d4 export udp" "$T/t.udp" "$UDP_GOT"
report "socat file -> udp (8 KiB dgrams)" "$T/t.socat-udp" "$SOCAT_UDP_GOT"
report "d4 export tcp" "$T/t.tcp" "$TCP_GOT"
report "socat file -> tcp" "$T/t.socat-tcp" "$SOCAT_TCP_GOT"
