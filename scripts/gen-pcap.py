#!/usr/bin/env python3
"""Writes a synthetic pcap of about MIB MiB: Ethernet/IPv4/UDP packets of 60-1514 bytes,
or with a third argument `tcp`, small Ethernet/IPv4/TCP packets (SYNs from 1,000 sources,
SYN-ACK/RST answers from 1,000 others) as a darknet sees backscatter."""
import struct
import sys

path, mib = sys.argv[1], int(sys.argv[2])
tcp = len(sys.argv) > 3 and sys.argv[3] == "tcp"
target = mib * 1024 * 1024
with open(path, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    # A pool of packets of varied sizes, reused: the content does not matter to ingest.
    pool = []
    for i in range(2000 if tcp else 0):
        src = bytes([203, 0, (i >> 8) & 0xFF, i & 0xFF]) if i < 1000 else bytes([198, 18, (i >> 8) & 0xFF, i & 0xFF])
        flags = 0x02 if i < 1000 else (0x12 if i % 3 else 0x04)
        eth = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00"
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 40, i, 0, 64, 6, 0, src, bytes([192, 0, 2, 1]))
        tcph = struct.pack(">HHIIBBHHH", 80, 1024 + i, 0, 0, 0x50, flags, 1024, 0, 0)
        pool.append(eth + ip + tcph + b"\x00" * 6)
    for i in range(0 if tcp else 64):
        size = 60 + (i * 97) % 1455
        eth = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00"
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, size - 14, i, 0, 64, 17, 0, bytes([192, 0, 2, i]), bytes([198, 51, 100, 1]))
        udp = struct.pack(">HHHH", 1024 + i, 53, size - 34, 0)
        body = bytes((i + j) & 0xFF for j in range(size - 42))
        pool.append(eth + ip + udp + body)
    written, n = 24, 0
    chunk = []
    while written < target:
        p = pool[n % len(pool)]
        chunk.append(struct.pack("<IIII", 1700000000 + n // 1000, n % 1000000, len(p), len(p)) + p)
        written += 16 + len(p)
        n += 1
        if len(chunk) >= 4096:
            f.write(b"".join(chunk))
            chunk = []
    f.write(b"".join(chunk))
