#!/usr/bin/env bash
# d4 backscatter throughput on a generated darknet capture (60-byte TCP
# packets: SYNs and answers), CSV and per-victim modes, next to `cat` of
# the same file.
# Usage: scripts/bench-backscatter.sh [MIB=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
# The d4 binary ($D4_BIN when set: see scripts/bench-vs.sh).
. scripts/common.sh
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 scripts/gen-pcap.py "$W/in.pcap" "$MIB" tcp
PKTS=$(( ($(stat -c %s "$W/in.pcap") - 24) / (16 + 60) ))
cat "$W/in.pcap" >/dev/null
TIMEFORMAT='%R %U %S'
r=$( { time "$D4" backscatter -b -r "$W/in.pcap" >/dev/null; } 2>&1 )
v=$( { time "$D4" backscatter --victims --window 5m -r "$W/in.pcap" >/dev/null; } 2>&1 )
b=$( { time cat "$W/in.pcap" >/dev/null; } 2>&1 )
report_pps "$MIB" "$PKTS" "d4 backscatter -b" "$r" "--victims --window 5m" "$v" "cat (baseline)" "$b"
