#!/usr/bin/env bash
# d4 backscatter throughput on a generated darknet capture (60-byte TCP
# packets: SYNs and answers), CSV and per-victim modes, next to `cat` of
# the same file.
# Usage: scripts/bench-backscatter.sh [MIB=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
# D4_BIN=/path/to/d4 measures that build instead (scripts/bench-vs.sh uses it).
if [ -z "${D4_BIN:-}" ]; then cargo build --release -q -p d4; fi
D4=${D4_BIN:-$PWD/target/release/d4}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 scripts/gen-pcap.py "$W/in.pcap" "$MIB" tcp
PKTS=$(( ($(stat -c %s "$W/in.pcap") - 24) / (16 + 60) ))
cat "$W/in.pcap" >/dev/null
TIMEFORMAT='%R %U %S'
r=$( { time "$D4" backscatter -b -r "$W/in.pcap" >/dev/null; } 2>&1 )
v=$( { time "$D4" backscatter --victims --window 5m -r "$W/in.pcap" >/dev/null; } 2>&1 )
b=$( { time cat "$W/in.pcap" >/dev/null; } 2>&1 )
python3 - "$MIB" "$PKTS" "$r" "$v" "$b" <<'PY'
import sys
mib, pkts = int(sys.argv[1]), int(sys.argv[2])
gb = mib * 1024 * 1024 / 1e9
for name, t in (("d4 backscatter -b", sys.argv[3]), ("--victims --window 5m", sys.argv[4]), ("cat (baseline)", sys.argv[5])):
    real, user, sys_ = map(float, t.split())
    cpu = user + sys_
    print(f"{name:18s} {pkts / cpu / 1e6:6.2f} M packets per CPU-s  {cpu / gb:5.2f} CPU-s/GB  ({pkts} packets, {real:.2f} s wall)")
PY
