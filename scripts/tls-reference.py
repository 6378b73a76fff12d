#!/usr/bin/env python3
"""An independent reading of TLS handshakes in a capture, for the expected
tables of crates/d4-tls/tests/fingerprint.rs: pcap/pcapng, Ethernet (VLAN),
BSD NULL, raw IP; IPv4/IPv6; each TCP direction's payload put together by
sequence number (first copy of each byte wins); TLS records -> handshake
messages -> JA3, JA3S, JA4 (FoxIO spec, written from its text) and
certificate SHA-1. Prints one line per ClientHello / ServerHello."""
import hashlib, struct, sys

def packets(path):
    b = open(path, 'rb').read()
    magic = b[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        lt = struct.unpack('<I', b[20:24])[0]; o = 24
        while o + 16 <= len(b):
            s, us, cl, _ = struct.unpack('<IIII', b[o:o+16])
            yield lt, s, b[o+16:o+16+cl]; o += 16 + cl
    elif magic == b'\x0a\x0d\x0d\x0a':
        o = 0; lts = []
        while o + 12 <= len(b):
            t, l = struct.unpack('<II', b[o:o+8])
            if t == 1: lts.append(struct.unpack('<H', b[o+8:o+10])[0])
            elif t == 6:
                iface, hi, lo, cl = struct.unpack('<IIII', b[o+8:o+24])
                yield lts[iface], ((hi << 32) | lo) // 1000000, b[o+28:o+28+cl]
            o += l

def ip_of(lt, f):
    if lt == 1:
        et, o = struct.unpack('>H', f[12:14])[0], 14
        while et == 0x8100: et, o = struct.unpack('>H', f[o+2:o+4])[0], o + 4
    elif lt == 0:
        et, o = (0x0800 if f[0] == 2 else 0x86dd), 4
    elif lt == 101:
        et, o = (0x0800 if f[0] >> 4 == 4 else 0x86dd), 0
    else: return None
    p = f[o:]
    if et == 0x0800:
        ihl = (p[0] & 15) * 4; tl = struct.unpack('>H', p[2:4])[0]
        return p[9], p[12:16], p[16:20], p[ihl:tl]
    if et == 0x86dd:
        pl = struct.unpack('>H', p[4:6])[0]
        return p[6], p[8:24], p[24:40], p[40:40+pl]

def streams(path):
    st = {}
    for lt, ts, f in packets(path):
        r = ip_of(lt, f)
        if not r or r[0] != 6: continue
        _, s, d, t = r
        sp, dp, seq = struct.unpack('>HHI', t[:8]); doff = (t[12] >> 4) * 4; fl = t[13]
        k = (s, sp, d, dp); e = st.setdefault(k, {'isn': None, 'segs': [], 'ts': {}})
        if fl & 2: e['isn'] = seq + 1
        data = t[doff:]
        if data: e['segs'].append((seq, data, ts))
    out = {}
    for k, e in st.items():
        if not e['segs']: continue
        base = e['isn'] if e['isn'] is not None else e['segs'][0][0]
        buf = {}; tsof = {}
        for seq, data, ts in e['segs']:
            off = (seq - base) % (1 << 32)
            for i, c in enumerate(data):
                if off + i not in buf: buf[off + i] = c; tsof[off + i] = ts
        n = 0
        while n in buf: n += 1
        out[k] = bytes(buf[i] for i in range(n))
    return out

GREASE = lambda v: (v & 0x0f0f) == 0x0a0a and (v >> 8) == (v & 0xff)
u16l = lambda b: [struct.unpack('>H', b[i:i+2])[0] for i in range(0, len(b), 2)]

def handshakes(data):
    hs = b''; o = 0
    while o + 5 <= len(data) and data[o] in (20, 21, 22, 23):
        ct, l = data[o], struct.unpack('>H', data[o+3:o+5])[0]
        if ct in (21, 23): break
        if ct == 22: hs += data[o+5:o+5+l]
        o += 5 + l
    o = 0
    while o + 4 <= len(hs):
        t = hs[o]; l = int.from_bytes(hs[o+1:o+4], 'big')
        if o + 4 + l > len(hs): break
        yield t, hs[o+4:o+4+l]; o += 4 + l

def client(b):
    v = struct.unpack('>H', b[:2])[0]; o = 34; o += 1 + b[o]
    cl = struct.unpack('>H', b[o:o+2])[0]; ciphers = u16l(b[o+2:o+2+cl]); o += 2 + cl
    o += 1 + b[o]; exts = []; curves = []; pf = []; sni = None; alpn = []; sv = []; sig = []
    if o < len(b):
        el = struct.unpack('>H', b[o:o+2])[0]; e = b[o+2:o+2+el]; i = 0
        while i < len(e):
            t, l = struct.unpack('>HH', e[i:i+4]); d = e[i+4:i+4+l]; i += 4 + l; exts.append(t)
            if t == 0: sni = d[5:5+struct.unpack('>H', d[3:5])[0]].decode()
            if t == 10: curves = u16l(d[2:])
            if t == 11: pf = list(d[1:])
            if t == 13: sig = u16l(d[2:])
            if t == 43: sv = u16l(d[1:])
            if t == 16:
                j = 2
                while j < len(d): alpn.append(d[j+1:j+1+d[j]].decode()); j += 1 + d[j]
    ng = lambda L: [x for x in L if not GREASE(x)]
    ja3 = '%d,%s,%s,%s,%s' % (v, '-'.join(map(str, ng(ciphers))), '-'.join(map(str, ng(exts))),
                              '-'.join(map(str, ng(curves))), '-'.join(map(str, pf)))
    ver = max(ng(sv)) if ng(sv) else v
    vs = {0x304: '13', 0x303: '12', 0x302: '11', 0x301: '10', 0x300: 's3'}.get(ver, '00')
    a = 't%s%s%02d%02d%s' % (vs, 'd' if 0 in exts else 'i', min(len(ng(ciphers)), 99),
                             min(len(ng(exts)), 99), (alpn[0][0] + alpn[0][-1]) if alpn else '00')
    h12 = lambda s: hashlib.sha256(s.encode()).hexdigest()[:12]
    bpart = h12(','.join('%04x' % c for c in sorted(ng(ciphers))))
    es = ','.join('%04x' % x for x in sorted(ng(exts)) if x not in (0, 16))
    sg = ','.join('%04x' % x for x in ng(sig))
    cpart = h12(es + ('_' + sg if sg else ''))
    return ja3, hashlib.md5(ja3.encode()).hexdigest(), a + '_' + bpart + '_' + cpart, sni, alpn

def server(b):
    v = struct.unpack('>H', b[:2])[0]; o = 34; o += 1 + b[o]
    c = struct.unpack('>H', b[o:o+2])[0]; o += 3; exts = []
    if o < len(b):
        el = struct.unpack('>H', b[o:o+2])[0]; e = b[o+2:o+2+el]; i = 0
        while i < len(e):
            t, l = struct.unpack('>HH', e[i:i+4]); i += 4 + l; exts.append(t)
    s = '%d,%d,%s' % (v, c, '-'.join(map(str, exts)))
    return s, hashlib.md5(s.encode()).hexdigest()

def certs(b):
    n = int.from_bytes(b[:3], 'big'); o = 3; out = []
    while o < 3 + n:
        l = int.from_bytes(b[o:o+3], 'big'); out.append(hashlib.sha1(b[o+3:o+3+l]).hexdigest()); o += 3 + l
    return out

if __name__ == '__main__':
    for k, data in sorted(streams(sys.argv[1]).items(), key=lambda kv: kv[0][1]):
        for t, body in handshakes(data):
            if t == 1: print('CH', k[1], k[3], *client(body))
            elif t == 2: print('SH', k[1], k[3], *server(body))
            elif t == 11: print('CERT', k[1], k[3], *certs(body))
