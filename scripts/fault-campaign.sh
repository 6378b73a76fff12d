#!/usr/bin/env bash
# The fault campaign: a paced stream keeps flowing while the server is
# attacked and broken in the ways an operator's bad day would (floods, slow
# clients, a full disk, kill -9 during rotation and compression, Redis going
# away). After each phase, everything the sensors were told was stored must
# be in the analyzer queue: "lost" must be 0.
#
# Usage: scripts/fault-campaign.sh [--short]
#   --short   the suite's form (ci.sh): smaller numbers, about a minute or two
#   (default) the full run whose figures are in docs/BENCHMARKS.md
# Environment: PHASES (default "floods kills diskfull redis"), D4_BIN (the d4 binary; default: this tree's release build, or
#   the debug build with --short), SWARM_BIN (the swarm example), WORK_DIR.
# Exit status: 0 when every phase held (lost 0, legitimate sensors and API
# calls got in); 1 otherwise, with the phase and the reason.
set -uo pipefail
cd "$(dirname "$0")/.."

SHORT=0
[ "${1:-}" = --short ] && SHORT=1
if [ "$SHORT" = 1 ]; then
  LINES=4000; FLOOD=300; WEB_FLOOD=120; KILLS=2; PACE=0.01; HOLD=8
  [ -z "${D4_BIN:-}" ] && { cargo build -q -p d4 && D4_BIN=$PWD/target/debug/d4; }
  [ -z "${SWARM_BIN:-}" ] && { cargo build -q -p d4 --example swarm && SWARM_BIN=$PWD/target/debug/examples/swarm; }
else
  LINES=40000; FLOOD=1100; WEB_FLOOD=300; KILLS=10; PACE=0.005; HOLD=20
  [ -z "${D4_BIN:-}" ] && { cargo build --release -q -p d4 && D4_BIN=$PWD/target/release/d4; }
  [ -z "${SWARM_BIN:-}" ] && { cargo build --release -q -p d4 --example swarm && SWARM_BIN=$PWD/target/release/examples/swarm; }
fi
D4=$D4_BIN
SWARM=$SWARM_BIN
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

W=$(mktemp -d -p "${WORK_DIR:-/tmp}" d4-faults.XXXXXX)
PIDS=()
MNT=
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

FAILED=0
ROWS=()
SW=()
fail() { echo "FAIL [$PHASE]: $*" >&2; FAILED=1; }
note() { echo "[$PHASE] $*"; }

# json_field FILE KEY: a string field of server.json (no jq or python needed).
json_field() { sed -n "s/.*\"$2\" *: *\"\\([^\"]*\\)\".*/\\1/p" "$1" | head -1; }

# start_server DIR [ARGS...]: starts `d4 server` with its data in DIR/data,
# sets SPID, ING (ingest address) and API (https URL).
start_server() {
  local dir=$1; shift
  mkdir -p "$dir"
  rm -f "$dir/data/server.json"
  "$D4" server --data-dir "$dir/data" --listen "${LISTEN:-127.0.0.1:0}" --web "${WEBL:-127.0.0.1:0}" \
    --mode shared-secret "$@" 2>>"$dir/server.log" &
  SPID=$!
  PIDS+=("$SPID")
  for _ in $(seq 200); do [ -s "$dir/data/server.json" ] && break; sleep 0.1; done
  [ -s "$dir/data/server.json" ] || { fail "server did not start: $(tail -3 "$dir/server.log")"; return 1; }
  ING=$(json_field "$dir/data/server.json" ingest)
  API=$(json_field "$dir/data/server.json" api)
}

stop_server() { kill -TERM "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; }

# sensor_conf DIR TYPE: a reference-layout sensor configuration for the server in $SDIR.
sensor_conf() {
  mkdir -p "$1"
  echo "$ING" >"$1/destination"; echo "$2" >"$1/type"
  echo "private key to change" >"$1/key"; cp "$SDIR/data/tls/ca.crt" "$1/rootCA.crt"
  cat /proc/sys/kernel/random/uuid >"$1/uuid"
}

# paced_lines N: "line 1" .. "line N", 100 lines every $PACE seconds.
paced_lines() {
  local i=1
  while [ "$i" -le "$1" ]; do
    seq -f "line %.0f" "$i" "$((i + 99 > $1 ? $1 : i + 99))"
    i=$((i + 100))
    sleep "$PACE"
  done
}

# stream_lines CONF N: the paced stream through `d4 client` (retries forever,
# ends only once the server confirmed); sets STREAM_PID.
stream_lines() {
  paced_lines "$2" | "$D4" client -c "$1" --max-backoff 1 2>"$1/client.log" &
  STREAM_PID=$!
  PIDS+=("$STREAM_PID")
}

# wait_stream SECONDS: the stream's sensor must exit 0 (everything confirmed) in time.
wait_stream() {
  local end=$((SECONDS + $1))
  while kill -0 "$STREAM_PID" 2>/dev/null; do
    [ "$SECONDS" -ge "$end" ] && { fail "the stream's sensor did not finish in $1 s: $(tail -2 "$CONF/client.log")"; kill "$STREAM_PID"; return 1; }
    sleep 0.2
  done
  wait "$STREAM_PID" || { fail "the stream's sensor exited non-zero: $(tail -3 "$CONF/client.log")"; return 1; }
}

# count_lost QUEUE N: pops the queue, counts "line K" items; sets LOST, DUP.
count_lost() {
  "$D4" stdout -t 3 -u "$1" -n --once --data-dir "$SDIR/data" >"$W/drained" 2>>"$W/stdout.log" \
    || { fail "d4 stdout failed: $(tail -2 "$W/stdout.log")"; LOST=$2; DUP=0; return; }
  local uniq total
  uniq=$(grep -c . <(grep '^line ' "$W/drained" | sort -u))
  total=$(grep -c '^line ' "$W/drained")
  LOST=$(($2 - uniq))
  DUP=$((total - uniq))
  [ "$LOST" -gt 0 ] && fail "$LOST of $2 lines the sensor was told were stored are not in the queue"
  [ "${NO_DUP:-0}" = 1 ] && [ "$DUP" -gt 0 ] && fail "$DUP lines queued twice"
  return 0
}

# since T0: seconds elapsed, two decimals.
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

# metric NAME: its value in /metrics (needs curl; empty otherwise).
metric() {
  command -v curl >/dev/null 2>&1 || return 0
  curl -sk -H "Authorization: $(json_field "$SDIR/data/server.json" token)" "$API/metrics" 2>/dev/null \
    | awk -v n="$1" '$1 == n { print $2 }'
}

# new_sensor_gets_in: a fresh sensor's 10 lines are confirmed in time; sets GETIN (seconds).
new_sensor_gets_in() {
  local c="$W/newcomer.$RANDOM" t0
  sensor_conf "$c" 3
  t0=$(date +%s.%N)
  if seq -f "newcomer %.0f" 1 10 | timeout 30 "$D4" client -c "$c" --max-retries 5 --max-backoff 1 2>"$c/log"; then
    GETIN=$(since "$t0")
  else
    GETIN=never
    fail "a new sensor could not get in during the flood: $(tail -2 "$c/log")"
  fi
}

# api_answers: an authenticated API call answers in time; sets APIT.
api_answers() {
  local t0; t0=$(date +%s.%N)
  if timeout 20 "$D4" queue list --data-dir "$SDIR/data" >/dev/null 2>"$W/api.log"; then
    APIT=$(since "$t0")
  else
    APIT=never
    fail "the API did not answer an authenticated call during the flood: $(tail -2 "$W/api.log")"
  fi
}

row() { ROWS+=("$(printf '%-26s %-52s %8s %5s %5s' "$PHASE" "$1" "$2" "$LOST" "$DUP")"); }

PHASES=${PHASES:-floods kills diskfull redis}
want() { case " $PHASES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

echo "fault campaign ($([ "$SHORT" = 1 ] && echo short || echo full)): $D4"

# ---------------------------------------------------------------- floods
PHASE="floods and slow clients"
SDIR=$W/floods
if want floods && start_server "$SDIR"; then
  Q=$("$D4" queue create -t 3 --max-size $((LINES * 2)) --data-dir "$SDIR/data" 2>>"$W/stdout.log")
  CONF=$W/floods/stream; sensor_conf "$CONF" 3
  stream_lines "$CONF" "$LINES"
  WEB=${API#https://}; WEB=${WEB%%/*}
  "$SWARM" tls-idle --server "$ING" --count "$FLOOD" --from 127.0.0.2-127.0.0.18 --hold "$HOLD" >"$W/swarm1.json" 2>>"$W/swarm.log" & PIDS+=($!); SW+=($!)
  "$SWARM" tcp-idle --server "$WEB" --count "$WEB_FLOOD" --from 127.0.0.30 --hold "$HOLD" >"$W/swarm2.json" 2>>"$W/swarm.log" & PIDS+=($!); SW+=($!)
  "$SWARM" slow-post --server "$WEB" --count "$WEB_FLOOD" --from 127.0.0.31-127.0.0.34 --hold "$HOLD" >"$W/swarm3.json" 2>>"$W/swarm.log" & PIDS+=($!); SW+=($!)
  sleep $((HOLD / 3))
  new_sensor_gets_in
  api_answers
  wait_stream 300
  for p in "${SW[@]}"; do wait "$p" 2>/dev/null; done
  note "flood: $(cat "$W/swarm1.json" "$W/swarm2.json" "$W/swarm3.json" 2>/dev/null | tr '\n' ' ')"
  count_lost "$Q" "$LINES"
  row "$FLOOD TLS idle, $WEB_FLOOD TCP idle, $WEB_FLOOD slow POST; sensor in ${GETIN}s, API ${APIT}s" "$LINES" 
  stop_server
fi

# ----------------------------------------------------- kill -9 during rotation and gzip
PHASE="kill -9 (rotation, gzip)"
SDIR=$W/kills
if want kills && start_server "$SDIR" --rotation-secs 1 --gzip-level 9; then
  Q=$("$D4" queue create -t 3 --max-size $((LINES * 2)) --data-dir "$SDIR/data" 2>>"$W/stdout.log")
  CONF=$W/kills/stream; sensor_conf "$CONF" 3
  stream_lines "$CONF" "$LINES"
  for k in $(seq "$KILLS"); do
    sleep "0.$((RANDOM % 9 + 1))"
    kill -KILL "$SPID"; wait "$SPID" 2>/dev/null
    WA=${API#https://}; LISTEN=$ING WEBL=${WA%%/*} start_server "$SDIR" --rotation-secs 1 --gzip-level 9 || break
    sleep 1
  done
  wait_stream 300
  # Every stored file is whole: gzip files test clean, no temporary left over.
  bad=$(find "$SDIR/data/data" -name '*.gz' -exec sh -c 'gzip -t "$1" 2>/dev/null || echo "$1"' _ {} \; | head -3)
  [ -n "$bad" ] && fail "damaged files after kill -9: $bad"
  count_lost "$Q" "$LINES"
  row "$KILLS x kill -9 while rotating every second, gzip -9" "$LINES"
  stop_server
fi

# ------------------------------------------------------------------ disk full
PHASE="disk full"
if ! want diskfull; then :
elif [ "$(id -u)" = 0 ] && MNT=$W/tmpfs && mkdir -p "$MNT" && mount -t tmpfs -o size=24m tmpfs "$MNT" 2>/dev/null; then
  SDIR=$MNT/server
  if start_server "$SDIR" --rotation-secs 2; then
    Q=$("$D4" queue create -t 3 --max-size $((LINES * 2)) --data-dir "$SDIR/data" 2>>"$W/stdout.log")
    CONF=$W/diskfull-stream; sensor_conf "$CONF" 3
    stream_lines "$CONF" "$LINES"
    sleep 1
    # Fill what is left; hold it; give it back.
    dd if=/dev/zero of="$MNT/filler" bs=64k 2>/dev/null
    sleep "$((HOLD / 2))"
    note "while full: d4_store_writable=$(metric d4_store_writable) d4_items_waiting=$(metric d4_items_waiting)"
    rm -f "$MNT/filler"
    wait_stream 300
    count_lost "$Q" "$LINES"
    code=$("$D4" queue create -t 3 --max-size $((LINES * 2)) --data-dir "$SDIR/data" >/dev/null 2>&1 && echo ok || echo refused)
    [ "$code" = ok ] || fail "queue creation still refused after space came back (no recovery without restart)"
    row "tmpfs 24 MB filled for $((HOLD / 2)) s, then freed" "$LINES"
    stop_server
  fi
  umount "$MNT" 2>/dev/null; MNT=
else
  MNT=
  echo "[disk full] skipped: needs root to mount a tmpfs"
fi

# ----------------------------------------------------------------- Redis stop
PHASE="Redis stopped"
if ! want redis; then :
elif command -v redis-server >/dev/null 2>&1; then
  RD=$W/redis; mkdir -p "$RD"
  RPORT=$((20000 + RANDOM % 20000))
  redis_up() { redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$RD" --save "" --appendonly yes --daemonize no >"$RD/log" 2>&1 & RPID=$!; PIDS+=("$RPID"); for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done; }
  redis_up
  SDIR=$W/redisrun
  if start_server "$SDIR" --store "redis://127.0.0.1:$RPORT"; then
    Q=$("$D4" queue create -t 3 --max-size $((LINES * 2)) --data-dir "$SDIR/data" 2>>"$W/stdout.log")
    CONF=$W/redis-stream; sensor_conf "$CONF" 3
    stream_lines "$CONF" "$LINES"
    sleep 1
    redis-cli -p "$RPORT" shutdown >/dev/null 2>&1; wait "$RPID" 2>/dev/null
    sleep "$((HOLD / 2))"
    redis_up
    wait_stream 300
    sleep 2
    NO_DUP=1 count_lost "$Q" "$LINES"
    row "redis-server stopped for $((HOLD / 2)) s under the stream" "$LINES"
    stop_server
  fi
  kill "$RPID" 2>/dev/null
else
  echo "[Redis stopped] skipped: redis-server not installed"
fi

echo
printf '%-26s %-52s %8s %5s %5s\n' phase "faults" sent lost dup
for r in "${ROWS[@]}"; do echo "$r"; done
if [ "$FAILED" = 0 ]; then echo "fault campaign: held"; else echo "fault campaign: FAILED"; fi
exit "$FAILED"
