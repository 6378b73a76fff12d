#!/usr/bin/env bash
# What idle sensors cost the server (issue 19, point 9): SENSORS legitimate
# sensors (the `idle_sensors` example: a UUID each, TLS over loopback from
# 127.2.X.Y, 50 per address, one valid type-3 frame each, then quiet) held by
# one release `d4 server`. Prints the server's RSS and open file descriptors
# before and while they are held, the time one more sensor then takes to get
# in (TCP connect, TLS handshake, its first frame written), the sessions the
# server closed with an error, and RSS and fds 10 s after the sensors leave.
#
# Usage: scripts/idle-sensors.sh [SENSORS=10000] [HOLD_SECS=5]
# D4_BIN: the server to measure (default: this tree's release build); the
# sensors are always this tree's example. The fd limit of the server and
# the sensors is raised to the hard limit (`ulimit -n`), not by the server.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
HOLD=${2:-5}
. scripts/common.sh
cargo build --release -q -p d4 --example idle_sensors
EX=$PWD/target/release/examples/idle_sensors
ulimit -n "$(ulimit -Hn)"
W=$(mktemp -d -p "${WORK_DIR:-/tmp}")
SPID= EPID=
cleanup() {
  exec 3>&- 2>/dev/null || true
  [ -n "$EPID" ] && kill "$EPID" 2>/dev/null
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT

cat >"$W/server.toml" <<EOF
max_connections = 30000
max_connections_per_ip = 64
idle_timeout_secs = 3600
EOF
"$D4" server --config "$W/server.toml" --data-dir "$W/data" --listen 127.0.0.1:0 \
  --web 127.0.0.1:0 --mode shared-secret 2>"$W/server.log" &
SPID=$!
for _ in $(seq 100); do [ -s "$W/data/server.json" ] && break; sleep 0.1; done
ING=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['ingest'])" "$W/data/server.json")
CA=$W/data/tls/ca.crt
rss() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$SPID/status"; }
fds() { ls "/proc/$SPID/fd" | wc -l; }
datafds() { find "/proc/$SPID/fd" -lname "$W/data/data/*" 2>/dev/null | wc -l; }
sleep 1
RSS0=$(rss) FD0=$(fds)

mkfifo "$W/hold"
"$EX" "$ING" "$CA" "$N" 50 0 <"$W/hold" >"$W/idle.out" 2>"$W/idle.err" &
EPID=$!
exec 3>"$W/hold"
until grep -q '^in ' "$W/idle.out"; do
  kill -0 "$EPID" 2>/dev/null || { cat "$W/idle.err" >&2; exit 1; }
  sleep 0.5
done
read -r _ IN IN_MS FAILED <"$W/idle.out"
sleep "$HOLD"
RSS1=$(rss) FD1=$(fds) DFD1=$(datafds)
"$EX" "$ING" "$CA" 1 1 "$N" </dev/null >"$W/new.out" 2>"$W/new.err" || true
# `in OK MS FAILED`: OK 0 means it did not get in (60 s without an answer).
NEW_MS=$(awk '/^in / {print ($2 == 1 ? $3 " ms" : "not in (gave up after " $3 " ms)")}' "$W/new.out")

exec 3>&-
wait "$EPID" || true
EPID=
sleep 10
RSS2=$(rss) FD2=$(fds)
ERRORS=$(grep -c 'session closed: ' "$W/server.log" || true)
EMFILE=$(grep -c 'Too many open files' "$W/server.log" || true)

python3 - "$N" "$IN" "$FAILED" "$IN_MS" "$RSS0" "$FD0" "$RSS1" "$FD1" "$DFD1" "${NEW_MS:-none}" \
  "$RSS2" "$FD2" "$ERRORS" "$EMFILE" <<'PY'
import sys
n, got, failed, in_ms, rss0, fd0, rss1, fd1, dfd1, new_ms, rss2, fd2, errors, emfile = sys.argv[1:]
n, got, rss0, fd0, rss1, fd1, rss2, fd2 = map(int, (n, got, rss0, fd0, rss1, fd1, rss2, fd2))
print(f"sensors={n}: {got} in ({failed} failed) after {int(in_ms) / 1000:.1f} s")
print(f"  server before: {rss0} MB RSS, {fd0} fds")
print(f"  held: {rss1} MB RSS ({(rss1 - rss0) * 1024 / max(got, 1):.1f} KB per sensor), "
      f"{fd1} fds ({(fd1 - fd0) / max(got, 1):.2f} per sensor, {dfd1} data files open)")
print(f"  one more sensor got in after: {new_ms}")
print(f"  10 s after they left: {rss2} MB RSS, {fd2} fds")
print(f"  sessions closed with an error: {errors} ('Too many open files' in the log: {emfile})")
PY
