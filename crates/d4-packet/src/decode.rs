//! Decoding the TCP facts of a captured frame (for analyzers): addresses,
//! ports, flags, TTL. IPv4 options and IPv6 extension headers are skipped
//! by their lengths; fragments other than the first carry no TCP header.

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
}
