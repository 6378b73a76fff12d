#!/usr/bin/env bash
# d4 maltrail match throughput on a generated mixed capture (TCP data
# segments of 1,400 bytes, SYNs, HTTP requests (one in two split over two
# segments), DNS queries and answers (one in four queries over TCP)) with
# 100,000 trails (IPs, networks, domains, URLs), next to `d4 pdns extract`
# and `cat` of the same file. A baseline build's figures in the same run
# with BASELINE_BIN=path/to/older/d4 (it skips the trails it cannot read).
# Usage: scripts/bench-maltrail.sh [MIB=1024]
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-1024}
# The d4 binary ($D4_BIN when set: see scripts/bench-vs.sh).
. scripts/common.sh
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 - "$W/in.pcap" "$MIB" "$W/trails.csv" <<'PY'
import random, struct, sys
path, mib, trails = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rnd = random.Random(4)
def frame(proto, src, dst, l4):
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, bytes(src), bytes(dst))
    return b"\0" * 12 + b"\x08\x00" + ip + l4
def tcp(sp, dp, flags, p=b"", seq=1):
    return struct.pack(">HHIIBBHHH", sp, dp, seq, 0, 0x50, flags, 65535, 0, 0) + p
def udp(sp, dp, p):
    return struct.pack(">HHHH", sp, dp, 8 + len(p), 0) + p
def name(i):
    return f"host{i}.domain{i % 997}.example"
def dns(i, resp):
    q = b"".join(bytes([len(l)]) + l.encode() for l in name(i).split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    h = struct.pack(">HHHHHH", i & 0xFFFF, 0x8180 if resp else 0x0100, 1, 1 if resp else 0, 0, 0)
    a = struct.pack(">HHHIH4s", 0xC00C, 1, 1, 300, 4, bytes([198, 18, i & 0xFF, 1])) if resp else b""
    return h + q + a
# (frame, stride): a frame with a stride is a TCP segment whose sequence
# number advances by its stride at each pass over the pool (one more
# request or query in the same connection, not a retransmission).
pool = []
for i in range(4096):
    c, s = [10, 0, (i >> 8) & 0xFF, i & 0xFF], [198, 18, i & 0xFF, 1]
    k = i % 20
    if k < 2 and i % 8 == 0:
        q, a = dns(i, False), dns(i, True)
        q, a = struct.pack(">H", len(q)) + q, struct.pack(">H", len(a)) + a
        pool.append((frame(6, c, [9, 9, 9, 9], tcp(1024 + i, 53, 0x18, q)), len(q)))
        pool.append((frame(6, [9, 9, 9, 9], c, tcp(53, 1024 + i, 0x18, a)), len(a)))
    elif k < 2:
        pool.append((frame(17, c, [9, 9, 9, 9], udp(1024 + i, 53, dns(i, False))), 0))
        pool.append((frame(17, [9, 9, 9, 9], c, udp(53, 1024 + i, dns(i, True))), 0))
    elif k == 2:
        pool.append((frame(6, c, s, tcp(1024 + i, 443, 0x02)), 0))
    elif k == 3:
        r = f"GET /path{i}/file{i}.php?id={i} HTTP/1.1\r\nHost: {name(i)}\r\nUser-Agent: bench\r\n\r\n"
        r = r.encode()
        if i % 2:
            pool.append((frame(6, c, s, tcp(1024 + i, 80, 0x18, r)), len(r)))
        else:
            pool.append((frame(6, c, s, tcp(1024 + i, 80, 0x18, r[:20])), len(r)))
            pool.append((frame(6, c, s, tcp(1024 + i, 80, 0x18, r[20:], seq=21)), len(r)))
    else:
        pool.append((frame(6, s, c, tcp(443, 1024 + i, 0x10, bytes(1400))), 0))
target, written, n = mib * 1024 * 1024, 24, 0
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    chunk = []
    while written < target:
        p, stride = pool[n % len(pool)]
        if stride:
            # The sequence number (Ethernet 14 + IPv4 20 + 4).
            seq = struct.unpack_from(">I", p, 38)[0] + stride * (n // len(pool))
            p = p[:38] + struct.pack(">I", seq & 0xFFFFFFFF) + p[42:]
        chunk.append(struct.pack("<IIII", 1700000000 + n // 10000, n % 1000000, len(p), len(p)) + p)
        written += 16 + len(p)
        n += 1
        if len(chunk) >= 4096:
            f.write(b"".join(chunk))
            chunk = []
    f.write(b"".join(chunk))
print(n, file=open(path + ".count", "w"))
with open(trails, "w") as f:
    for i in range(100000):
        k = i % 4
        if k == 0 and i % 8 == 4:
            # 12,500 networks of 5 prefix lengths (/20 to /28), none hit.
            bits = 4 + (i >> 3) % 5 * 2
            a = (100 << 24) + ((i >> 3) << bits)
            f.write(f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}/{32 - bits},scanner network,(bench)\n")
        elif k == 0:
            f.write(f"203.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255},known attacker,(bench)\n")
        elif k == 1:
            f.write(f"bad{i}.example,malware,(bench)\n")
        elif k == 2:
            f.write(f"bad{i}.example/gate.php,c2,(bench)\n")
        else:
            f.write(f"/p{i}/x.exe,dropper,(bench)\n")
    # A few that hit: one domain, one URL path.
    f.write("domain7.example,planted,(bench)\n/path11,planted,(bench)\n")
PY
PKTS=$(cat "$W/in.pcap.count")
cat "$W/in.pcap" >/dev/null
TIMEFORMAT='%R %U %S'
m=$( { time "$D4" maltrail match --trails "$W/trails.csv" --sensor bench -r "$W/in.pcap" >/dev/null; } 2>&1 )
m0=$( { time "$D4" maltrail match --trails "$W/trails.csv" --sensor bench --throttle 0 -r "$W/in.pcap" >/dev/null; } 2>&1 )
p=$( { time "$D4" pdns extract -r "$W/in.pcap" >/dev/null; } 2>&1 )
b=$( { time cat "$W/in.pcap" >/dev/null; } 2>&1 )
runs=("d4 maltrail match" "$m" "  --throttle 0" "$m0")
if [ -n "${BASELINE_BIN:-}" ]; then
  o=$( { time "$BASELINE_BIN" maltrail match --trails "$W/trails.csv" --sensor bench -r "$W/in.pcap" >/dev/null 2>&1; } 2>&1 )
  o0=$( { time "$BASELINE_BIN" maltrail match --trails "$W/trails.csv" --sensor bench --throttle 0 -r "$W/in.pcap" >/dev/null 2>&1; } 2>&1 )
  runs+=("BASELINE_BIN match" "$o" "  --throttle 0" "$o0")
fi
"$D4" maltrail match --trails "$W/trails.csv" --sensor bench -s -r "$W/in.pcap" 2>&1 >/dev/null | tail -n 1
report_pps "$MIB" "$PKTS" "${runs[@]}" "d4 pdns extract" "$p" "cat (baseline)" "$b"
