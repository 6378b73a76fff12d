#!/usr/bin/env bash
# d4 anonymize throughput: packets/s and CPU-s per GB on a generated capture,
# next to `cat` of the same file (read baseline), in the same run.
# Usage: scripts/bench-anonymize.sh [MIB=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
# The d4 binary ($D4_BIN when set: see scripts/bench-vs.sh).
. scripts/common.sh
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 scripts/gen-pcap.py "$W/in.pcap" "$MIB"
head -c 32 /dev/urandom >"$W/key"
PKTS=$(python3 - "$W/in.pcap" <<'PY'
import struct, sys
n = 0
with open(sys.argv[1], "rb") as f:
    f.read(24)
    while True:
        h = f.read(16)
        if len(h) < 16:
            break
        f.seek(struct.unpack("<I", h[8:12])[0], 1)
        n += 1
print(n)
PY
)
cat "$W/in.pcap" >/dev/null
TIMEFORMAT='%R %U %S'
p=$( { time "$D4" anonymize --pnat 192.0.2.0/24:10.0.0.0/8 -r "$W/in.pcap" >/dev/null 2>&1; } 2>&1 )
c=$( { time "$D4" anonymize --cryptopan-key "$W/key" -r "$W/in.pcap" >/dev/null 2>&1; } 2>&1 )
b=$( { time cat "$W/in.pcap" >/dev/null; } 2>&1 )
report_pps "$MIB" "$PKTS" pnat "$p" crypto-pan "$c" "cat (baseline)" "$b"
