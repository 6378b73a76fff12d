#!/usr/bin/env bash
# The ingest path, end to end on loopback, next to its baselines, in one
# command (issue 18). Prints one table:
#
#  - a plain TLS 1.3 AES-128-GCM receiver (socat, writing to the work dir)
#    taking the same bytes: the CPU floor d4's server is compared with;
#  - the d4 server taking the same capture from one `d4 client` (type 1) in
#    4 KiB frames (what the reference sensors send) and in 64 KiB frames,
#    compression off; and in 4 KiB frames with compression at the build's
#    default setting (server CPU counted until every file is compressed;
#    ratio = stored .gz bytes / bytes sent);
#  - `gzip -6` on the same capture (the ratio to match, and its CPU);
#  - every deflate backend and level of `tools/gz-bench` on the capture;
#  - the line-type workload (`scripts/bench-redis.sh`: embedded store and
#    Redis mode), unless SKIP_LINES=1.
#
# The capture is made of the real captures under /work/shared/data/pcap
# (read in place by scripts/real-pcap.py), repeated to MIB MiB.
# CPU is the receiving process's user + system time (/proc/<pid>/stat, or
# time(1) for socat) per GB sent; medians of ROUNDS rounds, the rows of one
# round run one after the other (interleaved).
#
# Usage: scripts/bench-ingest.sh [MIB=256] [ROUNDS=3]
#   BASELINE_BIN=/path/to/other/d4 adds the d4 rows of that build (e.g. the
#   commit before, built in a git worktree), interleaved, and the ratios.
#   WORK_DIR (default /dev/shm): where the capture and the data dirs go.
#   LINES_MIB (default 32): MiB of lines for the line-type workload.
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-256}
ROUNDS=${2:-3}
export WORK_DIR=${WORK_DIR:-/dev/shm}
command -v socat >/dev/null || { echo "socat is needed (apt-get install socat)" >&2; exit 1; }
. scripts/common.sh
# zlib-ng is measured too when cmake (which its build needs) is installed.
GZB_NG=()
if command -v cmake >/dev/null; then
  (cd tools/gz-bench && cargo build --release -q --features zlib-ng)
  GZB_NG=(zlib-ng:1 zlib-ng:6)
else
  echo "cmake not installed: zlib-ng not measured (apt-get install cmake)" >&2
  (cd tools/gz-bench && cargo build --release -q)
fi
GZB=$PWD/tools/gz-bench/target/release/gz-bench
W=$(mktemp -d -p "$WORK_DIR")
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

python3 scripts/real-pcap.py "$W/data.pcap" "$MIB"
BYTES=$(stat -c %s "$W/data.pcap")
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
RES=$W/results
: >"$RES"

# socat's certificate, and a client that offers TLS 1.3 AES-128-GCM only.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/k.pem" \
  -out "$W/c.pem" -days 2 -subj /CN=localhost 2>/dev/null
cat >"$W/ossl.cnf" <<'EOF'
openssl_conf = d4_bench
[d4_bench]
ssl_conf = d4_ssl
[d4_ssl]
system_default = d4_sys
[d4_sys]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256
EOF

# run_socat: receiver CPU-seconds for the capture.
run_socat() {
  local port=$((20000 + RANDOM % 20000))
  rm -f "$W/sink"
  /usr/bin/time -f "%U %S" -o "$W/rx.time" socat -d -d -u \
    "OPENSSL-LISTEN:$port,reuseaddr,cert=$W/c.pem,key=$W/k.pem,verify=0" "CREATE:$W/sink" 2>"$W/rx.log" &
  local rx=$!
  for _ in $(seq 50); do ss -ltn | grep -q ":$port " && break; sleep 0.1; done
  OPENSSL_CONF=$W/ossl.cnf socat -u "FILE:$W/data.pcap" "OPENSSL:127.0.0.1:$port,verify=0" 2>"$W/tx.log"
  wait "$rx"
  grep -q "using TLS_AES_128_GCM_SHA256" "$W/rx.log" || { echo "socat: not AES-128-GCM" >&2; cat "$W/rx.log" >&2; exit 1; }
  [ "$(stat -c %s "$W/sink")" = "$BYTES" ] || { echo "socat: short" >&2; exit 1; }
  rm -f "$W/sink"
  awk '{print $1 + $2}' "$W/rx.time"
}

# run_d4 BIN SNAPLEN GZIP(default|N): server CPU-seconds and stored bytes.
run_d4() {
  local bin=$1 snap=$2 gz=$3 gzflag=()
  [ "$gz" != default ] && gzflag=(--gzip-level "$gz")
  rm -rf "$W/data" "$W/conf"
  "$bin" server --data-dir "$W/data" --listen 127.0.0.1:0 --web 127.0.0.1:0 \
    --mode shared-secret "${gzflag[@]}" --rotation-secs 3600 2>"$W/server.log" &
  SPID=$!
  for _ in $(seq 100); do [ -s "$W/data/server.json" ] && break; sleep 0.1; done
  local ing
  ing=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['ingest'])" "$W/data/server.json")
  local c=$W/conf
  mkdir -p "$c"
  echo "$ing" >"$c/destination"; echo 1 >"$c/type"; echo "$snap" >"$c/snaplen"
  echo "private key to change" >"$c/key"; cp "$W/data/tls/ca.crt" "$c/rootCA.crt"
  cat /proc/sys/kernel/random/uuid >"$c/uuid"
  local s0 s1
  s0=$(ticks "$SPID")
  "$bin" client -c "$c" --file "$W/data.pcap" 2>"$W/client.log"
  # Compression runs in the background: wait until every file is compressed.
  for _ in $(seq 3000); do
    find "$W/data/data" -type f \( -name '*.cap' -o -name '*.part' \) | grep -q . || break
    [ "$gz" = 0 ] && break
    sleep 0.1
  done
  s1=$(ticks "$SPID")
  kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
  local stored
  stored=$(find "$W/data/data" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
  if [ "$gz" = 0 ] && [ "$stored" -lt "$BYTES" ]; then
    echo "d4 ($bin, snaplen $snap): only $stored of $BYTES bytes stored" >&2; exit 1
  fi
  if [ "$gz" != 0 ]; then
    # Every byte is back out of the .gz files (what zcat reads).
    local back
    back=$(find "$W/data/data" -type f -name '*.gz' -print0 | sort -z | xargs -0 zcat | wc -c)
    [ "$back" -ge "$BYTES" ] || { echo "d4 gzip: $back of $BYTES bytes back" >&2; exit 1; }
  fi
  echo "$(( s1 - s0 )) $stored" | awk -v hz="$HZ" '{print $1 / hz, $2}'
}

# The rows, as "key|label|binary|snaplen|gzip".
rows=("socat|TLS 1.3 AES-128-GCM receiver (socat) -> $WORK_DIR|||")
for b in this ${BASELINE_BIN:+baseline}; do
  bin=$D4; [ "$b" = baseline ] && bin=$BASELINE_BIN
  rows+=("$b-4k|d4 server ($b), 4 KiB frames, gzip off|$bin|4096|0")
  rows+=("$b-64k|d4 server ($b), 64 KiB frames, gzip off|$bin|65535|0")
  rows+=("$b-gz|d4 server ($b), 4 KiB frames, gzip default|$bin|4096|default")
done

for round in $(seq "$ROUNDS"); do
  for r in "${rows[@]}"; do
    IFS='|' read -r key label bin snap gz <<<"$r"
    if [ "$key" = socat ]; then
      echo "$key $(run_socat) $BYTES" >>"$RES"
    else
      echo "$key $(run_d4 "$bin" "$snap" "$gz")" >>"$RES"
    fi
  done
  t=$( { /usr/bin/time -f "%U %S" gzip -6 -c "$W/data.pcap" | wc -c >"$W/gz6.size"; } 2>&1 | tail -1)
  echo "gzip6 $(echo "$t" | awk '{print $1 + $2}') $(cat "$W/gz6.size")" >>"$RES"
done

printf '%s\n' "${rows[@]}" >"$W/labels"
echo "gzip6|gzip -6 (GNU gzip, system zlib-class encoder) on the capture|||" >>"$W/labels"
GZB_LINES=$(GZ_BENCH_REPS=$ROUNDS "$GZB" "$W/data.pcap" \
  miniz:1 miniz:6 zlib-rs:1 zlib-rs:6 "${GZB_NG[@]}" libdeflate:1 libdeflate:2 libdeflate:4 libdeflate:6)

python3 - "$BYTES" "$RES" "$W/labels" "$(git rev-parse --short HEAD)" "$ROUNDS" "$GZB_LINES" <<'PY'
import statistics, sys, datetime
size, res, labels, commit, rounds, gzb = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
gb = size / 1e9
runs = {}
for line in open(res):
    k, cpu, stored = line.split()
    runs.setdefault(k, []).append((float(cpu), int(stored)))
order = [l.split("|")[:2] for l in open(labels).read().splitlines()]
med = {k: statistics.median(c for c, _ in v) / gb for k, v in runs.items()}
gz6 = statistics.median(s for _, s in runs["gzip6"]) / size
print(f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}, {size} bytes of real captures, {rounds} rounds, medians")
print()
print("| receiver | CPU-s/GB (rounds) | vs socat | ratio (stored/sent) |")
print("|---|---:|---:|---:|")
for k, label in order:
    v = runs[k]
    cpus = ", ".join(f"{c / gb:.2f}" for c, _ in v)
    ratio = statistics.median(s for _, s in v) / size
    rs = f"{ratio:.3f}" if (k.endswith("-gz") or k == "gzip6") else "—"
    print(f"| {label} | **{med[k]:.2f}** ({cpus}) | {med[k] / med['socat']:.2f}× | {rs} |")
if "baseline-4k" in med:
    print()
    for s in ("4k", "64k", "gz"):
        print(f"this / baseline, {s}: {med['this-' + s] / med['baseline-' + s]:.2f}× CPU per GB")
print()
print(f"Deflate encoders on the same capture (tools/gz-bench, in memory, best of {rounds}); gzip -6 ratio {gz6:.3f}:")
print()
print("| backend | level | CPU-s/GB | ratio | vs gzip -6 ratio |")
print("|---|---:|---:|---:|---:|")
for l in gzb.splitlines():
    name, level, cpu, ratio = l.split()
    print(f"| {name} | {level} | {float(cpu):.2f} | {float(ratio):.3f} | {float(ratio) / gz6 - 1:+.1%} |")
PY

if [ "${SKIP_LINES:-0}" != 1 ]; then
  echo
  echo "Line types (scripts/bench-redis.sh ${LINES_MIB:-32} $ROUNDS):"
  scripts/bench-redis.sh "${LINES_MIB:-32}" "$ROUNDS"
fi
