#!/usr/bin/env python3
"""Writes a pcap of mostly bulk TLS for scripts/tls-bench.sh: FLOWS TLS 1.2
connections over Ethernet/IPv4, CONCURRENT at a time (their packets
interleaved), each a SYN / SYN-ACK, a ClientHello with GREASE and SNI, a
ServerHello + 3-certificate chain (about 4 KB, in 1448-byte segments), then
BULK bytes of application data from the server in 16 KiB records cut into
1448-byte segments, and a FIN.

usage: tls-gen.py OUT.pcap [FLOWS] [BULK_BYTES] [CONCURRENT]"""
import os, struct, sys

out = sys.argv[1]
flows = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
bulk = int(sys.argv[3]) if len(sys.argv) > 3 else 128 * 1024
conc = int(sys.argv[4]) if len(sys.argv) > 4 else 64
MSS = 1448

def rec(ct, body):
    return bytes([ct, 3, 3]) + struct.pack('>H', len(body)) + body

def hs(t, body):
    return bytes([t]) + struct.pack('>I', len(body))[1:] + body

def v16(b): return struct.pack('>H', len(b)) + b
def v8(b): return bytes([len(b)]) + b

def ext(t, d): return struct.pack('>HH', t, len(d)) + d

def client_hello(i):
    sni = b'host%d.example.com' % (i % 1000)
    ciphers = b''.join(struct.pack('>H', c) for c in
                       [0x1a1a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x9c, 0x9d, 0x2f, 0x35])
    e = (ext(0x2a2a, b'') + ext(0, v16(b'\x00' + v16(sni))) + ext(23, b'') + ext(65281, b'\x00')
         + ext(10, v16(b'\x4a\x4a\x00\x1d\x00\x17\x00\x18')) + ext(11, v8(b'\x00')) + ext(35, b'')
         + ext(16, v16(v8(b'h2') + v8(b'http/1.1'))) + ext(13, v16(b'\x04\x03\x08\x04\x04\x01\x05\x03'))
         + ext(43, v8(b'\x3a\x3a\x03\x04\x03\x03')) + ext(45, v8(b'\x01')) + ext(51, v16(b'\x00\x1d' + v16(os.urandom(32)))))
    body = b'\x03\x03' + os.urandom(32) + v8(os.urandom(32)) + v16(ciphers) + v8(b'\x00') + v16(e)
    return rec(22, hs(1, body))

CERTS = [b'\x30\x82' + struct.pack('>H', n) + os.urandom(n) for n in (1400, 1200, 900)]

def server_flight():
    sh = b'\x03\x03' + os.urandom(32) + v8(b'') + b'\xc0\x2f\x00' + v16(ext(65281, b'\x00') + ext(11, v8(b'\x00')) + ext(16, v16(v8(b'h2'))))
    chain = b''.join(struct.pack('>I', len(c))[1:] + c for c in CERTS)
    cert = struct.pack('>I', len(chain))[1:] + chain
    return rec(22, hs(2, sh) + hs(11, cert) + hs(14, b''))

def bulk_stream():
    r = rec(23, os.urandom(16384 + 24))
    s = r * (bulk // len(r) + 1)
    return s[:bulk]

BULK = bulk_stream()
ETH = b'\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00'

def frame(i, to_server, seq, ack, flags, data):
    c = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    s = bytes([192, 0, 2, 10 + (i % 100)])
    cp = 1024 + (i % 60000)
    src, dst, sp, dp = (c, s, cp, 443) if to_server else (s, c, 443, cp)
    ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 40 + len(data), 0, 0x4000, 64, 6, 0, src, dst)
    tcp = struct.pack('>HHIIBBHHH', sp, dp, seq & 0xffffffff, ack & 0xffffffff, 0x50, flags, 65535, 0, 0)
    return ETH + ip + tcp + data

def flow_packets(i):
    cs, ss = 1000, 5000000
    yield frame(i, True, cs, 0, 0x02, b'')
    yield frame(i, False, ss, cs + 1, 0x12, b'')
    ch = client_hello(i)
    yield frame(i, True, cs + 1, ss + 1, 0x18, ch)
    stream = server_flight() + BULK
    for o in range(0, len(stream), MSS):
        yield frame(i, False, ss + 1 + o, cs + 1 + len(ch), 0x18, stream[o:o + MSS])
    yield frame(i, False, ss + 1 + len(stream), cs + 1 + len(ch), 0x11, b'')

with open(out, 'wb') as f:
    f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    t = 1_700_000_000 * 1_000_000
    nxt = 0
    active = []
    while nxt < flows or active:
        while len(active) < conc and nxt < flows:
            active.append(flow_packets(nxt)); nxt += 1
        keep = []
        for g in active:
            p = next(g, None)
            if p is None:
                continue
            keep.append(g)
            t += 7
            f.write(struct.pack('<IIII', t // 1_000_000, t % 1_000_000, len(p), len(p)) + p)
        active = keep
