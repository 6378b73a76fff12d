//! Decoding a captured frame for analyzers: the TCP facts (addresses,
//! ports, flags, TTL), and the IP layer in general ([`ip`]: addresses,
//! protocol, IPv4 fragment fields, the upper-layer bytes trimmed to the IP
//! length) with [`udp`] and [`tcp_segment`] over its payload. IPv4 options
//! and IPv6 extension headers are skipped by their lengths; fragments other
//! than the first carry no TCP header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::rewrite::network;

/// TCP flag bits.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
}

/// What an analyzer needs of a TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFacts {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Flag byte (CWR ECE URG ACK PSH RST SYN FIN).
    pub flags: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// The TCP facts of a frame, if it carries the start of a TCP segment.
pub fn tcp(linktype: u32, f: &[u8]) -> Option<TcpFacts> {
    let (proto, off) = network(linktype, f).ok()?;
    let p = f.get(off..)?;
    let (src, dst, ttl, l4) = match proto {
        0x0800 => {
            if p.len() < 20 || p[0] >> 4 != 4 || p[9] != 6 {
                return None;
            }
            if u16::from_be_bytes([p[6], p[7]]) & 0x1fff != 0 {
                return None; // not the first fragment
            }
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let src = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
            (src, dst, p[8], p.get(ihl..)?)
        }
        0x86dd => {
            if p.len() < 40 || p[0] >> 4 != 6 {
                return None;
            }
            let a = |o: usize| -> Option<IpAddr> {
                Some(IpAddr::V6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(p.get(o..o + 16)?).ok()?,
                )))
            };
            let (src, dst) = (a(8)?, a(24)?);
            let (next, o) = crate::rewrite::ipv6_upper_layer(p)?;
            if next != 6 {
                return None;
            }
            (src, dst, p[7], p.get(o..)?)
        }
        _ => return None,
    };
    let t = l4.get(..14)?;
    Some(TcpFacts {
        src,
        dst,
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        flags: t[13],
        ttl,
    })
}

/// IPv4 fragmentation fields of a packet that is a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Fragment {
    /// Identification.
    pub id: u16,
    /// Offset of this fragment's payload in the datagram, in bytes.
    pub offset: usize,
    /// More fragments follow.
    pub more: bool,
}

/// The IP layer of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPacket<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Upper-layer protocol (6 TCP, 17 UDP...).
    pub proto: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Set when this IPv4 packet is a fragment (offset non-zero or MF set).
    pub fragment: Option<Ipv4Fragment>,
    /// The upper-layer bytes (for a fragment, this fragment's part), cut to
    /// the length the IP header gives (link-layer padding dropped).
    pub payload: &'a [u8],
}

/// The IP layer of a frame of `linktype`, if it carries IPv4 or IPv6 with a
/// header that fits. IPv6 fragments other than the first give `None`.
pub fn ip(linktype: u32, f: &[u8]) -> Option<IpPacket<'_>> {
    let (proto, off) = network(linktype, f).ok()?;
    let p = f.get(off..)?;
    match proto {
        0x0800 => {
            if p.len() < 20 || p[0] >> 4 != 4 {
                return None;
            }
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
            if ihl < 20 || total < ihl {
                return None;
            }
            // A snaplen-cut packet keeps what was captured.
            let end = total.min(p.len());
            let payload = p.get(ihl..end)?;
            let fl = u16::from_be_bytes([p[6], p[7]]);
            let offset = usize::from(fl & 0x1fff) * 8;
            let more = fl & 0x2000 != 0;
            let fragment = (offset != 0 || more).then_some(Ipv4Fragment {
                id: u16::from_be_bytes([p[4], p[5]]),
                offset,
                more,
            });
            Some(IpPacket {
                src: IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15])),
                dst: IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19])),
                proto: p[9],
                ttl: p[8],
                fragment,
                payload,
            })
        }
        0x86dd => {
            if p.len() < 40 || p[0] >> 4 != 6 {
                return None;
            }
            let a = |o: usize| -> Option<IpAddr> {
                Some(IpAddr::V6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(p.get(o..o + 16)?).ok()?,
                )))
            };
            let plen = usize::from(u16::from_be_bytes([p[4], p[5]]));
            let end = if plen == 0 {
                p.len()
            } else {
                (40 + plen).min(p.len())
            };
            let (next, o) = crate::rewrite::ipv6_upper_layer(p)?;
            Some(IpPacket {
                src: a(8)?,
                dst: a(24)?,
                proto: next,
                ttl: p[7],
                fragment: None,
                payload: p.get(o..end)?,
            })
        }
        _ => None,
    }
}

/// A UDP datagram: (source port, destination port, payload cut to the UDP
/// length), from an IP payload.
pub fn udp(l4: &[u8]) -> Option<(u16, u16, &[u8])> {
    let h = l4.get(..8)?;
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    // Length 0 (jumbograms) or larger than captured: keep what is there.
    let end = if len < 8 { l4.len() } else { len.min(l4.len()) };
    Some((
        u16::from_be_bytes([h[0], h[1]]),
        u16::from_be_bytes([h[2], h[3]]),
        l4.get(8..end)?,
    ))
}

/// A TCP segment from an IP payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Flag byte.
    pub flags: u8,
    /// Segment data.
    pub data: &'a [u8],
}

/// The TCP segment in an IP payload, if its header fits.
pub fn tcp_segment(l4: &[u8]) -> Option<TcpSegment<'_>> {
    let h = l4.get(..20)?;
    let doff = usize::from(h[12] >> 4) * 4;
    if doff < 20 {
        return None;
    }
    Some(TcpSegment {
        sport: u16::from_be_bytes([h[0], h[1]]),
        dport: u16::from_be_bytes([h[2], h[3]]),
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        flags: h[13],
        data: l4.get(doff..)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(opts: usize, fl: u8) -> Vec<u8> {
        let ihl = 20 + opts;
        let mut f = vec![0u8; 14 + ihl + 20];
        f[12] = 8;
        f[14] = 0x40 | (ihl / 4) as u8;
        f[14 + 8] = 57;
        f[14 + 9] = 6;
        f[14 + 12..14 + 16].copy_from_slice(&[203, 0, 113, 5]);
        f[14 + 16..14 + 20].copy_from_slice(&[198, 51, 100, 7]);
        let t = 14 + ihl;
        f[t..t + 2].copy_from_slice(&443u16.to_be_bytes());
        f[t + 2..t + 4].copy_from_slice(&40000u16.to_be_bytes());
        f[t + 13] = fl;
        f
    }

    #[test]
    fn ipv4_with_options_vlan_and_ipv6() {
        let f = ipv4_tcp(8, flags::SYN | flags::ACK);
        let t = tcp(1, &f).unwrap();
        assert_eq!((t.sport, t.dport, t.flags, t.ttl), (443, 40000, 0x12, 57));
        assert_eq!(t.src, "203.0.113.5".parse::<IpAddr>().unwrap());
        let mut v = f[..12].to_vec();
        v.extend_from_slice(&[0x81, 0, 0, 5]);
        v.extend_from_slice(&f[12..]);
        assert_eq!(tcp(1, &v).unwrap().flags, 0x12);
        let mut p6 = vec![0u8; 40 + 20];
        p6[0] = 0x60;
        p6[6] = 6;
        p6[7] = 64;
        p6[8] = 0x20;
        p6[40..42].copy_from_slice(&80u16.to_be_bytes());
        p6[53] = flags::RST;
        let t = tcp(229, &p6).unwrap();
        assert_eq!((t.sport, t.flags, t.ttl), (80, flags::RST, 64));
        assert!(tcp(1, &f[..40]).is_none());
        assert!(tcp(276, &[0, 8]).is_none());
    }

    #[test]
    fn ip_layer_udp_fragment_and_padding() {
        // IPv4/UDP with 4 bytes of Ethernet padding after the datagram.
        let mut f = vec![0u8; 14 + 20 + 8 + 3 + 4];
        f[12] = 8;
        f[14] = 0x45;
        f[14 + 2..14 + 4].copy_from_slice(&31u16.to_be_bytes());
        f[14 + 4..14 + 6].copy_from_slice(&0x1234u16.to_be_bytes());
        f[14 + 8] = 64;
        f[14 + 9] = 17;
        f[34..36].copy_from_slice(&53u16.to_be_bytes());
        f[36..38].copy_from_slice(&5353u16.to_be_bytes());
        f[38..40].copy_from_slice(&11u16.to_be_bytes());
        f[42..45].copy_from_slice(b"abc");
        let p = ip(1, &f).unwrap();
        assert_eq!((p.proto, p.ttl, p.fragment), (17, 64, None));
        assert_eq!(udp(p.payload).unwrap(), (53, 5353, &b"abc"[..]));
        // Same with MF set: a first fragment.
        f[14 + 6] = 0x20;
        let p = ip(1, &f).unwrap();
        assert_eq!(
            p.fragment,
            Some(Ipv4Fragment {
                id: 0x1234,
                offset: 0,
                more: true
            })
        );
        // Fragment offset 3 (24 bytes), last fragment.
        f[14 + 6..14 + 8].copy_from_slice(&3u16.to_be_bytes());
        let p = ip(1, &f).unwrap();
        assert_eq!(p.fragment.unwrap().offset, 24);
        assert!(!p.fragment.unwrap().more);
        // Header longer than the packet.
        f[14 + 2..14 + 4].copy_from_slice(&10u16.to_be_bytes());
        assert!(ip(1, &f).is_none());
        assert!(udp(&[0; 7]).is_none());
        let mut t = [0u8; 24];
        t[12] = 0x50;
        t[13] = flags::PSH | flags::ACK;
        t[4..8].copy_from_slice(&7u32.to_be_bytes());
        let s = tcp_segment(&t).unwrap();
        assert_eq!((s.seq, s.flags, s.data.len()), (7, 0x18, 4));
        t[12] = 0x40;
        assert!(tcp_segment(&t).is_none());
    }
}
