#!/usr/bin/env bash
# The DNS monitor's throughput on one generated capture of DNS only
# (queries and their responses over UDP, 1 in 20 over TCP, 20,000 names,
# 2,000 clients, answers with an NS authority section), in DNS messages per
# CPU-second (user + sys: the machine may be busy, wall time is noise):
# `d4 dns serialize` (worker pool, and --threads 1), `d4 dns reduce` from
# the capture and from the serialized messages, and `d4 pdns extract`, in
# the same run.
# Usage: scripts/bench-dns.sh [MIB=256]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-256}
# The d4 binary ($D4_BIN when set: see scripts/bench-vs.sh).
. scripts/common.sh
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 - "$W/in.pcap" "$MIB" <<'PY'
import random, struct, sys
path, mib = sys.argv[1], int(sys.argv[2])
rnd = random.Random(15)
def frame(proto, src, dst, l4):
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, bytes(src), bytes(dst))
    return b"\0" * 12 + b"\x08\x00" + ip + l4
def udp(sp, dp, p):
    return struct.pack(">HHHH", sp, dp, 8 + len(p), 0) + p
def tcp(sp, dp, p):
    return struct.pack(">HHIIBBHHH", sp, dp, 1, 0, 0x50, 0x19, 65535, 0, 0) + struct.pack(">H", len(p)) + p
def qname(i):
    n = f"host{i}.domain{i % 997}.example" if i % 40 else f"_svc{i}._tcp.example.org"
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"
def dns(i, resp):
    qt = [1, 28, 1, 15, 6, 16][i % 6]
    q = qname(i) + struct.pack(">HH", qt, 1)
    if not resp:
        return struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + q
    rcode = 3 if i % 10 == 0 else 0
    h = struct.pack(">HHHHHH", i & 0xFFFF, 0x8180 | rcode, 1, 0 if rcode else 1, 2, 0)
    a = b"" if rcode else struct.pack(">HHHIH4s", 0xC00C, 1, 1, 300, 4, bytes([198, 18, i & 0xFF, 1]))
    ns = b"".join(struct.pack(">HHHIH", 0xC00C, 2, 1, 3600, 6) + bytes([3]) + n + b"\xc0\x0c" for n in (b"ns1", b"ns2"))
    return h + q + a + ns
pool = []
for i in range(20000):
    c = [10, 0, (i % 2000) >> 8, (i % 2000) & 0xFF]
    s = [192, 0, 2, 53]
    if i % 20 == 0:
        pool.append(frame(6, c, s, tcp(1024 + i % 60000, 53, dns(i, False))))
        pool.append(frame(6, s, c, tcp(53, 1024 + i % 60000, dns(i, True))))
    else:
        pool.append(frame(17, c, s, udp(1024 + i % 60000, 53, dns(i, False))))
        pool.append(frame(17, s, c, udp(53, 1024 + i % 60000, dns(i, True))))
target, written, n = mib * 1024 * 1024, 24, 0
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    chunk = []
    while written < target:
        p = pool[n % len(pool)]
        chunk.append(struct.pack("<IIII", 1700000000 + n // 20000, (n % 20000) * 50, len(p), len(p)) + p)
        written += 16 + len(p)
        n += 1
        if len(chunk) >= 4096:
            f.write(b"".join(chunk))
            chunk = []
    f.write(b"".join(chunk))
print(n, file=open(path + ".count", "w"))
PY
MSGS=$(cat "$W/in.pcap.count")
cat "$W/in.pcap" >/dev/null
# Serialized once, outside the timing, for the reduce-from-messages run.
"$D4" dns serialize -r "$W/in.pcap" >"$W/in.msgs"
TIMEFORMAT='%R %U %S'
s=$( { time "$D4" dns serialize -r "$W/in.pcap" >/dev/null; } 2>&1 )
s1=$( { time "$D4" dns serialize --threads 1 -r "$W/in.pcap" >/dev/null; } 2>&1 )
r=$( { time "$D4" dns reduce -r "$W/in.pcap" --window-secs 1 >/dev/null; } 2>&1 )
rm_=$( { time "$D4" dns reduce -r "$W/in.msgs" --window-secs 1 >/dev/null; } 2>&1 )
p=$( { time "$D4" pdns extract -r "$W/in.pcap" >/dev/null; } 2>&1 )
python3 - "$MIB" "$MSGS" "$(stat -c %s "$W/in.msgs")" \
  "d4 dns serialize" "$s" "  --threads 1" "$s1" \
  "d4 dns reduce (pcap)" "$r" "d4 dns reduce (msgs)" "$rm_" "d4 pdns extract" "$p" <<'PY'
import sys
mib, msgs, ser = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f"capture: {mib} MiB, {msgs} DNS messages; serialized: {ser / 2**20:.0f} MiB")
runs = sys.argv[4:]
for name, t in zip(runs[::2], runs[1::2]):
    real, user, sys_ = map(float, t.split())
    cpu = user + sys_
    print(f"{name:22s} {msgs / cpu / 1e6:5.2f} M messages per CPU-s  ({cpu:6.2f} CPU-s: user {user:.2f} sys {sys_:.2f}; {real:.2f} s wall)")
PY
