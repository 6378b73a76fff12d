#!/bin/sh
# d4 tls fingerprint on a generated capture of mostly bulk TLS (>= 500 MB):
# CPU-seconds per GB and handshakes per CPU-second, next to baselines over
# the same file (tcpdump reading it, d4 pdns extract reading it).
#
# usage: scripts/tls-bench.sh [FLOWS] [BULK_BYTES_PER_FLOW]   (defaults 4000, 131072)
# env: D4=path to the d4 binary (default target/release/d4), WORK=scratch dir.
set -eu
cd "$(dirname "$0")/.."
D4=${D4:-target/release/d4}
WORK=${WORK:-$(mktemp -d)}
FLOWS=${1:-4000}
BULK=${2:-131072}
CAP="$WORK/tls-bulk.pcap"
[ -x "$D4" ] || cargo build --release -p d4
[ -f "$CAP" ] || python3 scripts/tls-gen.py "$CAP" "$FLOWS" "$BULK"
BYTES=$(stat -c %s "$CAP")
cat "$CAP" > /dev/null # warm the page cache
cpu() { # command... -> "user+sys" seconds
    /usr/bin/time -f '%U %S' -o "$WORK/time" "$@" > /dev/null 2> "$WORK/stderr" || true
    awk '{printf "%.2f", $1 + $2}' "$WORK/time"
}
T_TLS=$(cpu "$D4" tls fingerprint -r "$CAP" -s)
HS=$(sed -n 's/.* \([0-9]*\) records.*/\1/p' "$WORK/stderr")
STATS=$(cat "$WORK/stderr")
T_PDNS=$(cpu "$D4" pdns extract -r "$CAP")
T_TCPDUMP=$(cpu tcpdump -r "$CAP" -w /dev/null)
echo "capture: $CAP, $BYTES bytes, $FLOWS flows"
echo "d4 tls fingerprint -s: $STATS"
awk -v b="$BYTES" -v hs="$HS" -v t1="$T_TLS" -v t2="$T_PDNS" -v t3="$T_TCPDUMP" 'BEGIN {
    gb = b / 1e9
    printf "%-34s %10s %12s %18s\n", "command", "CPU s", "CPU s / GB", "handshakes / CPU s"
    printf "%-34s %10.2f %12.2f %18.0f\n", "d4 tls fingerprint -r FILE", t1, t1 / gb, (t1 > 0 ? hs / t1 : 0)
    printf "%-34s %10.2f %12.2f %18s\n", "d4 pdns extract -r FILE", t2, t2 / gb, "-"
    printf "%-34s %10.2f %12.2f %18s\n", "tcpdump -r FILE -w /dev/null", t3, t3 / gb, "-"
}'
