#!/usr/bin/env python3
"""Writes OUT: MIB MiB of pcap made of the real captures under
/work/shared/data/pcap (read in place), repeated.

Every packet record of every well-formed capture (classic pcap, and the
enhanced packet blocks of pcapng files; `malformed/` left out) is taken once
per pass, in file order, and written as a little-endian microsecond pcap
record after one global header (link type 1, snaplen 65535). The captures'
link types differ (Ethernet, raw IP, Linux cooked...): the stream is for
measuring bytes (ingest, compression), not for decoding.

Usage: scripts/real-pcap.py OUT MIB [DIR=/work/shared/data/pcap]
"""
import glob
import os
import struct
import sys


def pcap_records(b):
    magic = b[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    o = 24
    while o + 16 <= len(b):
        ts, frac, cl, ol = struct.unpack(e + "IIII", b[o : o + 16])
        if o + 16 + cl > len(b):
            return
        yield ts, frac // 1000 if nano else frac, ol, b[o + 16 : o + 16 + cl]
        o += 16 + cl


def pcapng_records(b):
    o, e = 0, "<"
    while o + 12 <= len(b):
        ty = struct.unpack(e + "I", b[o : o + 4])[0]
        if ty == 0x0A0D0D0A:
            e = "<" if b[o + 8 : o + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        ln = struct.unpack(e + "I", b[o + 4 : o + 8])[0]
        if ln < 12 or o + ln > len(b):
            return
        if ty == 6:
            _, hi, lo, cl, ol = struct.unpack(e + "IIIII", b[o + 8 : o + 28])
            t = (hi << 32) | lo  # microseconds unless the IDB says otherwise
            yield t // 1_000_000, t % 1_000_000, ol, b[o + 28 : o + 28 + cl]
        o += ln


def main():
    out, mib = sys.argv[1], int(sys.argv[2])
    root = sys.argv[3] if len(sys.argv) > 3 else "/work/shared/data/pcap"
    recs = []
    for f in sorted(glob.glob(os.path.join(root, "*", "*"))):
        if "/malformed/" in f:
            continue
        b = open(f, "rb").read()
        it = pcapng_records(b) if f.endswith(".pcapng") else pcap_records(b)
        for ts, us, ol, data in it:
            data = data[:65535]
            recs.append(struct.pack("<IIII", ts, us, len(data), max(ol, len(data))) + data)
    one = b"".join(recs)
    want = mib * 1024 * 1024
    with open(out, "wb") as w:
        w.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        n = 24
        while n < want:
            w.write(one)
            n += len(one)
    print(f"{out}: {n} bytes, {len(recs)} records of real captures per pass", file=sys.stderr)


main()
