//! Rewriting IP addresses inside captured frames, checksums kept correct.
//!
//! Link types: Ethernet (with stacked 802.1Q/802.1ad tags and MPLS), Linux
//! cooked v1/v2, raw IP, raw IPv4/IPv6, BSD loopback (NULL). Network: IPv4
//! (header checksum recomputed; TCP/UDP checksums adjusted for the pseudo
//! header), IPv6 (extension headers walked; TCP/UDP/ICMPv6 checksums
//! adjusted), ARP (sender and target addresses, optional), and optionally
//! the A/AAAA addresses inside DNS messages over UDP (found by the lax walk
//! of [`crate::dns`], so a snaplen-cut message gives what it holds). Checksums are
//! updated incrementally (RFC 1624), so snaplen-truncated packets keep
//! checksums that are right for the original packet. A frame that cannot be
//! parsed is left unchanged and reported, never dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::dns::Message;

/// What happened to one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Addresses were rewritten (possibly to themselves).
    Rewritten,
    /// Not IP or ARP (nothing to rewrite).
    NotIp,
    /// Could not be parsed (too short, unknown link type...): left unchanged.
    Unparsed(&'static str),
}

/// Which addresses to rewrite.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    /// Source addresses.
    pub src: bool,
    /// Destination addresses.
    pub dst: bool,
    /// Addresses inside ARP packets.
    pub arp: bool,
    /// Addresses in the A and AAAA records of DNS messages (UDP port 53 or
    /// 5353, any section).
    pub dns: bool,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            src: true,
            dst: true,
            arp: true,
            dns: false,
        }
    }
}

/// Adjusts a ones'-complement checksum for `old` bytes replaced by `new`
/// (RFC 1624, eqn. 3). Both have the same even length.
fn adjust(sum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut s = u32::from(!sum);
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        s += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        s += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The ones'-complement checksum of `b` (header checksums).
fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        s += u32::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Finds the network layer in a frame: (ethertype-like protocol, offset).
/// Ethernet (any number of 802.1Q/QinQ tags, MPLS), Linux cooked v1/v2,
/// raw IP, raw IPv4/IPv6 and BSD loopback; protocol 0 when the version is
/// neither 4 nor 6.
pub fn network(linktype: u32, f: &[u8]) -> Result<(u16, usize), &'static str> {
    let by_version = |off: usize| -> Result<(u16, usize), &'static str> {
        match f.get(off).map(|b| b >> 4) {
            Some(4) => Ok((0x0800, off)),
            Some(6) => Ok((0x86dd, off)),
            Some(_) => Ok((0, off)),
            None => Err("frame too short"),
        }
    };
    match linktype {
        1 => {
            let mut off = 12;
            loop {
                let Some(t) = f.get(off..off + 2) else {
                    return Err("Ethernet frame too short");
                };
                let et = u16::from_be_bytes([t[0], t[1]]);
                match et {
                    0x8100 | 0x88a8 | 0x9100 => off += 4,
                    0x8847 | 0x8848 => {
                        // MPLS: labels until the bottom of the stack, then IP by version.
                        let mut l = off + 2;
                        loop {
                            let Some(lab) = f.get(l..l + 4) else {
                                return Err("MPLS stack too short");
                            };
                            l += 4;
                            if lab[2] & 1 == 1 {
                                break;
                            }
                        }
                        return by_version(l);
                    }
                    _ => return Ok((et, off + 2)),
                }
            }
        }
        113 => {
            let t = f.get(14..16).ok_or("Linux cooked frame too short")?;
            Ok((u16::from_be_bytes([t[0], t[1]]), 16))
        }
        276 => {
            let t = f.get(0..2).ok_or("Linux cooked v2 frame too short")?;
            Ok((u16::from_be_bytes([t[0], t[1]]), 20))
        }
        12 | 14 | 101 => by_version(0),
        228 => Ok((0x0800, 0)),
        229 => Ok((0x86dd, 0)),
        0 | 109 => {
            let fam = f.get(0..4).ok_or("loopback frame too short")?;
            let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
            let be = u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]]);
            match (le, be) {
                (2, _) | (_, 2) => Ok((0x0800, 4)),
                (24 | 28 | 30, _) | (_, 24 | 28 | 30) => Ok((0x86dd, 4)),
                _ => Ok((0, 4)),
            }
        }
        _ => Err("unsupported link type"),
    }
}

/// Rewrites the addresses of one frame with `map`.
pub fn rewrite_frame(
    linktype: u32,
    f: &mut [u8],
    scope: Scope,
    map: &impl Fn(IpAddr) -> IpAddr,
) -> Outcome {
    let (proto, off) = match network(linktype, f) {
        Ok(x) => x,
        Err(why) => return Outcome::Unparsed(why),
    };
    let Some(p) = f.get_mut(off..) else {
        return Outcome::Unparsed("frame shorter than its link-layer header");
    };
    match proto {
        0x0800 => ipv4(p, scope, map),
        0x86dd => ipv6(p, scope, map),
        0x0806 if scope.arp => arp(p, map),
        _ => Outcome::NotIp,
    }
}

fn ipv4(p: &mut [u8], scope: Scope, map: &impl Fn(IpAddr) -> IpAddr) -> Outcome {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return Outcome::Unparsed("truncated IPv4 header");
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl < 20 || p.len() < ihl {
        return Outcome::Unparsed("bad IPv4 header length");
    }
    let old: [u8; 8] = [p[12], p[13], p[14], p[15], p[16], p[17], p[18], p[19]];
    let swap = |b: &[u8]| -> [u8; 4] {
        let a = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        match map(IpAddr::V4(a)) {
            IpAddr::V4(n) => n.octets(),
            IpAddr::V6(_) => a.octets(),
        }
    };
    if scope.src {
        let n = swap(&old[..4]);
        p[12..16].copy_from_slice(&n);
    }
    if scope.dst {
        let n = swap(&old[4..]);
        p[16..20].copy_from_slice(&n);
    }
    p[10] = 0;
    p[11] = 0;
    let c = checksum(&p[..ihl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let new: [u8; 8] = [p[12], p[13], p[14], p[15], p[16], p[17], p[18], p[19]];
    let frag_offset = u16::from_be_bytes([p[6], p[7]]) & 0x1fff;
    if frag_offset == 0 {
        let proto = p[9];
        transport(&mut p[ihl..], proto, &old, &new, false);
        if scope.dns && proto == 17 {
            dns_in_udp(&mut p[ihl..], false, map);
        }
    }
    Outcome::Rewritten
}

/// Adjusts the upper-layer checksum for the pseudo-header change.
fn transport(l4: &mut [u8], proto: u8, old: &[u8], new: &[u8], v6: bool) {
    let at = match proto {
        6 => 16,
        17 => 6,
        58 if v6 => 2,
        _ => return,
    };
    let Some(c) = l4.get(at..at + 2) else { return };
    let sum = u16::from_be_bytes([c[0], c[1]]);
    if proto == 17 && sum == 0 && !v6 {
        return; // IPv4 UDP without a checksum
    }
    let mut n = adjust(sum, old, new);
    if proto == 17 && n == 0 {
        n = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&n.to_be_bytes());
}

fn ipv6(p: &mut [u8], scope: Scope, map: &impl Fn(IpAddr) -> IpAddr) -> Outcome {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return Outcome::Unparsed("truncated IPv6 header");
    }
    let mut old = [0u8; 32];
    old.copy_from_slice(&p[8..40]);
    let swap = |b: &[u8]| -> [u8; 16] {
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        let a = Ipv6Addr::from(a);
        match map(IpAddr::V6(a)) {
            IpAddr::V6(n) => n.octets(),
            IpAddr::V4(_) => a.octets(),
        }
    };
    if scope.src {
        let n = swap(&old[..16]);
        p[8..24].copy_from_slice(&n);
    }
    if scope.dst {
        let n = swap(&old[16..]);
        p[24..40].copy_from_slice(&n);
    }
    let mut new = [0u8; 32];
    new.copy_from_slice(&p[8..40]);
    let Some((next, off)) = ipv6_upper_layer(p) else {
        return Outcome::Rewritten; // a later fragment, or cut inside the extension headers
    };
    if let Some(l4) = p.get_mut(off..) {
        transport(l4, next, &old, &new, true);
        if scope.dns && next == 17 {
            dns_in_udp(l4, true, map);
        }
    }
    Outcome::Rewritten
}

/// Walks an IPv6 packet's extension headers (hop-by-hop, routing,
/// destination options, AH, fragment) to the upper layer: its protocol
/// number and offset. `None` for a fragment other than the first (no upper
/// header) or a packet cut inside its extension headers.
pub fn ipv6_upper_layer(p: &[u8]) -> Option<(u8, usize)> {
    let mut next = *p.get(6)?;
    let mut off = 40;
    loop {
        match next {
            0 | 43 | 60 => {
                let h = p.get(off..off + 2)?;
                next = h[0];
                off += (usize::from(h[1]) + 1) * 8;
            }
            51 => {
                let h = p.get(off..off + 2)?;
                next = h[0];
                off += (usize::from(h[1]) + 2) * 4;
            }
            44 => {
                let h = p.get(off..off + 4)?;
                if u16::from_be_bytes([h[2], h[3]]) >> 3 != 0 {
                    return None;
                }
                next = h[0];
                off += 8;
            }
            _ => return Some((next, off)),
        }
    }
}

/// The (offset, length) of every A/AAAA address in a DNS message, as far
/// as the message goes (a truncated one gives what it holds: the lax walk).
fn dns_addresses(m: &[u8]) -> Vec<(usize, usize)> {
    let Ok(msg) = Message::parse_lax(m) else {
        return Vec::new();
    };
    msg.records_lax()
        .filter(|r| {
            let len = r.rdata.len();
            // The mDNS cache-flush bit is not part of the class.
            r.class & 0x7fff == 1 && ((r.rtype == 1 && len == 4) || (r.rtype == 28 && len == 16))
        })
        .map(|r| (r.rdata.start, r.rdata.len()))
        .collect()
}

/// Rewrites the A/AAAA addresses of a DNS message over UDP (port 53 or
/// 5353), adjusting the UDP checksum.
fn dns_in_udp(udp: &mut [u8], v6: bool, map: &impl Fn(IpAddr) -> IpAddr) {
    let Some(h) = udp.get(..8) else { return };
    let (sport, dport) = (
        u16::from_be_bytes([h[0], h[1]]),
        u16::from_be_bytes([h[2], h[3]]),
    );
    if ![sport, dport].iter().any(|p| *p == 53 || *p == 5353) {
        return;
    }
    let checked = v6 || h[6..8] != [0, 0];
    for (off, len) in dns_addresses(&udp[8..]) {
        let at = 8 + off;
        // The checksum runs over 16-bit words from the UDP header: adjust
        // over the even-aligned window around the address (zero-padded).
        let (start, end) = (at & !1, (at + len + 1) & !1);
        let window = |b: &[u8]| -> Vec<u8> {
            let mut w = b[start..end.min(b.len())].to_vec();
            w.resize(end - start, 0);
            w
        };
        let old = window(udp);
        let new_addr: Vec<u8> = match (len, map(addr_at(&udp[at..at + len]))) {
            (4, IpAddr::V4(n)) => n.octets().to_vec(),
            (16, IpAddr::V6(n)) => n.octets().to_vec(),
            _ => continue, // a mapping to the other family: left as it is
        };
        udp[at..at + len].copy_from_slice(&new_addr);
        if checked {
            let new = window(udp);
            let sum = u16::from_be_bytes([udp[6], udp[7]]);
            let mut n = adjust(sum, &old, &new);
            if n == 0 {
                n = 0xffff;
            }
            udp[6..8].copy_from_slice(&n.to_be_bytes());
        }
    }
}

/// The address in 4 or 16 bytes.
fn addr_at(b: &[u8]) -> IpAddr {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        IpAddr::V4(Ipv4Addr::from(a))
    } else {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[..16.min(b.len())]);
        IpAddr::V6(Ipv6Addr::from(a))
    }
}

fn arp(p: &mut [u8], map: &impl Fn(IpAddr) -> IpAddr) -> Outcome {
    // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
    if p.len() < 28 || p[0..6] != [0, 1, 8, 0, 6, 4] {
        return Outcome::NotIp;
    }
    for at in [14, 24] {
        let a = Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]);
        if let IpAddr::V4(n) = map(IpAddr::V4(a)) {
            p[at..at + 4].copy_from_slice(&n.octets());
        }
    }
    Outcome::Rewritten
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Full checksum over pseudo header + segment, computed from scratch
    /// (independently of the incremental update under test).
    fn l4_sum(src: &[u8], dst: &[u8], proto: u8, seg: &[u8]) -> u16 {
        let mut b = Vec::new();
        b.extend_from_slice(src);
        b.extend_from_slice(dst);
        if src.len() == 4 {
            b.extend_from_slice(&[0, proto]);
            b.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        } else {
            b.extend_from_slice(&(seg.len() as u32).to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, proto]);
        }
        b.extend_from_slice(seg);
        checksum(&b)
    }

    fn eth_ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4len: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + l4len];
        f[12] = 8;
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4len) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let c = checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        for (i, b) in ip[20..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let at = if proto == 6 { 16 } else { 6 };
        ip[20 + at] = 0;
        ip[21 + at] = 0;
        if proto == 17 {
            ip[24..26].copy_from_slice(&(l4len as u16).to_be_bytes());
        }
        let c = l4_sum(&src, &dst, proto, &ip[20..]);
        ip[20 + at..22 + at].copy_from_slice(&c.to_be_bytes());
        f
    }

    fn verify_ipv4(f: &[u8], proto: u8) {
        let ip = &f[14..];
        assert_eq!(checksum(&ip[..20]), 0, "IPv4 header checksum");
        assert_eq!(
            l4_sum(&ip[12..16], &ip[16..20], proto, &ip[20..]),
            0,
            "L4 checksum"
        );
    }

    fn pnat(a: IpAddr) -> IpAddr {
        let rules = crate::anon::PnatRule::parse_list(
            "10.1.0.0/16:192.168.0.0/16,[fd00::/16]:[2001:db8::/32]",
        )
        .unwrap();
        crate::anon::pnat(&rules, a)
    }

    #[test]
    fn ipv4_tcp_and_udp_checksums_stay_right() {
        for proto in [6u8, 17] {
            for len in [20usize, 33, 100] {
                let mut f = eth_ipv4(proto, [10, 1, 2, 3], [10, 1, 250, 9], len);
                verify_ipv4(&f, proto);
                assert_eq!(
                    rewrite_frame(1, &mut f, Scope::default(), &pnat),
                    Outcome::Rewritten
                );
                assert_eq!(&f[26..34], &[192, 168, 2, 3, 192, 168, 250, 9]);
                verify_ipv4(&f, proto);
            }
        }
    }

    #[test]
    fn vlan_stack_and_crypto_pan() {
        let inner = eth_ipv4(6, [10, 1, 2, 3], [172, 16, 0, 1], 40);
        let mut f = inner[..12].to_vec();
        f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20]);
        f.extend_from_slice(&inner[12..]);
        let c = crate::anon::CryptoPan::new(&[7u8; 32]).unwrap();
        assert_eq!(
            rewrite_frame(1, &mut f, Scope::default(), &|a| c.ip(a)),
            Outcome::Rewritten
        );
        let ip = &f[22..];
        assert_eq!(checksum(&ip[..20]), 0);
        assert_eq!(l4_sum(&ip[12..16], &ip[16..20], 6, &ip[20..]), 0);
        assert_ne!(&ip[12..16], &[10, 1, 2, 3]);
    }

    #[test]
    fn ipv6_udp_and_icmpv6_behind_an_extension_header() {
        for proto in [17u8, 58] {
            let src: [u8; 16] = "fd00:1::5".parse::<Ipv6Addr>().unwrap().octets();
            let dst: [u8; 16] = "fd00:2::9".parse::<Ipv6Addr>().unwrap().octets();
            let l4len = 24;
            let mut p = vec![0u8; 40 + 8 + l4len];
            p[0] = 0x60;
            p[4..6].copy_from_slice(&((8 + l4len) as u16).to_be_bytes());
            p[6] = 0; // hop-by-hop first
            p[7] = 64;
            p[8..24].copy_from_slice(&src);
            p[24..40].copy_from_slice(&dst);
            p[40] = proto;
            p[41] = 0;
            for (i, b) in p[48..].iter_mut().enumerate() {
                *b = i as u8 ^ 0x5a;
            }
            let at = if proto == 17 { 6 } else { 2 };
            p[48 + at] = 0;
            p[49 + at] = 0;
            if proto == 17 {
                p[52..54].copy_from_slice(&(l4len as u16).to_be_bytes());
            }
            let c = l4_sum(&src, &dst, proto, &p[48..]);
            p[48 + at..50 + at].copy_from_slice(&c.to_be_bytes());
            assert_eq!(
                rewrite_frame(229, &mut p, Scope::default(), &pnat),
                Outcome::Rewritten
            );
            assert_eq!(
                Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap()),
                "2001:db8::5".parse::<Ipv6Addr>().unwrap()
            ); // the /32 keeps bits 32.. of fd00:1::5
            assert_eq!(
                l4_sum(&p[8..24], &p[24..40], proto, &p[48..]),
                0,
                "proto {proto}"
            );
        }
    }

    #[test]
    fn other_link_types_arp_and_garbage() {
        // Linux cooked, raw IP, NULL loopback.
        let e = eth_ipv4(17, [10, 1, 0, 1], [10, 1, 0, 2], 30);
        let mut sll = vec![0u8; 16];
        sll[14] = 8;
        sll.extend_from_slice(&e[14..]);
        assert_eq!(
            rewrite_frame(113, &mut sll, Scope::default(), &pnat),
            Outcome::Rewritten
        );
        assert_eq!(&sll[28..32], &[192, 168, 0, 1]);
        let mut raw = e[14..].to_vec();
        let scope = Scope {
            src: false,
            ..Scope::default()
        };
        assert_eq!(
            rewrite_frame(101, &mut raw, scope, &pnat),
            Outcome::Rewritten
        );
        assert_eq!(&raw[12..20], &[10, 1, 0, 1, 192, 168, 0, 2]);
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&e[14..]);
        assert_eq!(
            rewrite_frame(0, &mut null, Scope::default(), &pnat),
            Outcome::Rewritten
        );
        // ARP request.
        let mut arp = vec![0u8; 14 + 28];
        arp[12] = 8;
        arp[13] = 6;
        arp[14..20].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
        arp[28..32].copy_from_slice(&[10, 1, 9, 9]);
        arp[38..42].copy_from_slice(&[10, 1, 9, 1]);
        assert_eq!(
            rewrite_frame(1, &mut arp, Scope::default(), &pnat),
            Outcome::Rewritten
        );
        assert_eq!(&arp[28..32], &[192, 168, 9, 9]);
        // Garbage is reported, never a panic.
        for n in 0..70 {
            let mut g: Vec<u8> = (0..n).map(|i| (i * 31) as u8).collect();
            for lt in [0, 1, 12, 101, 113, 228, 229, 276, 999] {
                let _ = rewrite_frame(lt, &mut g, Scope::default(), &pnat);
            }
        }
        assert!(matches!(
            rewrite_frame(999, &mut [0u8; 40], Scope::default(), &pnat),
            Outcome::Unparsed(_)
        ));
    }

    /// A DNS response: question `a.example.` A, then answers whose owners
    /// are compression pointers: A 10.1.2.3, a CNAME, AAAA fd00::7, and in
    /// the additional section an mDNS-style A with the cache-flush bit; the
    /// question name has an odd length so the addresses sit at odd offsets.
    fn dns_response() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 1];
        m.extend_from_slice(b"\x01a\x07example\x00");
        m.extend_from_slice(&[0, 1, 0, 1]);
        let rr = |m: &mut Vec<u8>, ty: u16, class: u16, rdata: &[u8]| {
            m.extend_from_slice(&[0xc0, 12]);
            m.extend_from_slice(&ty.to_be_bytes());
            m.extend_from_slice(&class.to_be_bytes());
            m.extend_from_slice(&300u32.to_be_bytes());
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        };
        rr(&mut m, 1, 1, &[10, 1, 2, 3]);
        rr(&mut m, 5, 1, b"\x01b\xc0\x0e");
        rr(
            &mut m,
            28,
            1,
            &"fd00::7".parse::<Ipv6Addr>().unwrap().octets(),
        );
        rr(&mut m, 1, 0x8001, &[10, 1, 9, 9]);
        m
    }

    #[test]
    fn dns_answers_rewritten_with_the_udp_checksum_right() {
        let msg = dns_response();
        for (sport, dns, want) in [
            (53u16, true, true),
            (5353, true, true),
            (53, false, false),
            (8053, true, false),
        ] {
            let mut f = eth_ipv4(17, [10, 1, 0, 53], [10, 1, 0, 1], 8 + msg.len());
            f[42..].copy_from_slice(&msg);
            f[34..36].copy_from_slice(&sport.to_be_bytes());
            f[40] = 0;
            f[41] = 0;
            let c = l4_sum(&f[26..30], &f[30..34], 17, &f[34..]);
            f[40..42].copy_from_slice(&c.to_be_bytes());
            verify_ipv4(&f, 17);
            let scope = Scope {
                dns,
                ..Scope::default()
            };
            assert_eq!(rewrite_frame(1, &mut f, scope, &pnat), Outcome::Rewritten);
            verify_ipv4(&f, 17);
            let out = &f[42..];
            let addrs = dns_addresses(out);
            assert_eq!(addrs.len(), 3, "A, AAAA and the cache-flush A");
            assert!(addrs.iter().any(|(o, _)| o % 2 == 1), "odd offsets covered");
            let a = |i: usize| addr_at(&out[addrs[i].0..addrs[i].0 + addrs[i].1]).to_string();
            if want {
                assert_eq!(a(0), "192.168.2.3");
                assert_eq!(a(1), "2001:db8::7");
                assert_eq!(a(2), "192.168.9.9");
            } else {
                assert_eq!(
                    (a(0), a(1), a(2)),
                    ("10.1.2.3".into(), "fd00::7".into(), "10.1.9.9".into())
                );
            }
            // The CNAME's rdata (a pointer) is untouched.
            assert_eq!(out[..addrs[0].0], msg[..addrs[0].0]);
        }
    }

    /// The walker the rewriter had before the lax DNS walk, kept as the
    /// oracle that the rewriting did not change.
    fn old_dns_addresses(m: &[u8]) -> Vec<(usize, usize)> {
        fn skip_name(m: &[u8], mut o: usize) -> Option<usize> {
            for _ in 0..128 {
                let l = *m.get(o)?;
                match l >> 6 {
                    0 if l == 0 => return Some(o + 1),
                    0 => o += 1 + usize::from(l),
                    3 => return (o + 2 <= m.len()).then_some(o + 2),
                    _ => return None,
                }
            }
            None
        }
        let mut out = Vec::new();
        let Some(h) = m.get(..12) else { return out };
        let count = |i: usize| usize::from(u16::from_be_bytes([h[i], h[i + 1]]));
        let mut o = 12;
        for _ in 0..count(4) {
            match skip_name(m, o) {
                Some(e) if e + 4 <= m.len() => o = e + 4,
                _ => return out,
            }
        }
        for _ in 0..count(6) + count(8) + count(10) {
            let Some(e) = skip_name(m, o) else { return out };
            let Some(f) = m.get(e..e + 10) else {
                return out;
            };
            let ty = u16::from_be_bytes([f[0], f[1]]);
            let class = u16::from_be_bytes([f[2], f[3]]) & 0x7fff;
            let len = usize::from(u16::from_be_bytes([f[8], f[9]]));
            let rdata = e + 10;
            if rdata + len > m.len() {
                return out;
            }
            if class == 1 && ((ty == 1 && len == 4) || (ty == 28 && len == 16)) {
                out.push((rdata, len));
            }
            o = rdata + len;
        }
        out
    }

    proptest::proptest! {
        /// The lax walk finds exactly the addresses the old walker found,
        /// on the sample response with bytes changed and cut anywhere.
        #[test]
        fn dns_addresses_as_before(
            edits in proptest::collection::vec((0usize..200, proptest::num::u8::ANY), 0..4),
            cut in 0usize..200,
        ) {
            let mut m = dns_response();
            for (at, b) in edits {
                let i = at % m.len();
                m[i] = b;
            }
            let m = &m[..cut.min(m.len())];
            proptest::prop_assert_eq!(dns_addresses(m), old_dns_addresses(m));
        }

        #[test]
        fn dns_addresses_as_before_on_any_bytes(
            m in proptest::collection::vec(proptest::num::u8::ANY, 0..120),
        ) {
            proptest::prop_assert_eq!(dns_addresses(&m), old_dns_addresses(&m));
        }
    }

    #[test]
    fn dns_walker_stops_on_truncated_and_hostile_messages() {
        let msg = dns_response();
        for cut in 0..msg.len() {
            let found = dns_addresses(&msg[..cut]);
            assert!(found.len() <= 3);
            assert!(found.iter().all(|(o, l)| o + l <= cut));
        }
        // Absurd counts, a label running off the end, reserved label types.
        let mut m = vec![
            0, 0, 0x81, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        m.extend_from_slice(&[63, b'a']);
        assert!(dns_addresses(&m).is_empty());
        m[12] = 0x80;
        assert!(dns_addresses(&m).is_empty());
        assert!(dns_addresses(&[0u8; 12]).is_empty());
    }
}
