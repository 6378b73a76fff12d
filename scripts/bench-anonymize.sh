#!/usr/bin/env bash
# d4 anonymize throughput: packets/s and CPU-s per GB on a generated capture,
# next to `cat` of the same file (read baseline), in the same run.
# Usage: scripts/bench-anonymize.sh [MIB=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
# D4_BIN=/path/to/d4 measures that build instead (scripts/bench-vs.sh uses it).
if [ -z "${D4_BIN:-}" ]; then cargo build --release -q -p d4; fi
D4=${D4_BIN:-$PWD/target/release/d4}
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
python3 - "$MIB" "$PKTS" "$p" "$c" "$b" <<'PY'
import sys
mib, pkts = int(sys.argv[1]), int(sys.argv[2])
gb = mib * 1024 * 1024 / 1e9
for name, t in (("pnat", sys.argv[3]), ("crypto-pan", sys.argv[4]), ("cat (baseline)", sys.argv[5])):
    real, user, sys_ = map(float, t.split())
    cpu = user + sys_
    print(f"{name:15s} {pkts / cpu / 1e6:6.2f} M packets per CPU-s  {cpu / gb:5.2f} CPU-s/GB  ({pkts} packets, {mib} MiB, {real:.2f} s wall)")
PY
