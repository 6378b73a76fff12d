//! DDoS backscatter. A host that answers SYNs it never received (SYN-ACK,
//! RST, ACK...) is the victim of a spoofed-source SYN flood; seen from a
//! darknet sensor its answers are backscatter. As the reference
//! (analyzer-d4-pibs) does, a source that sent a SYN is an initiator; any
//! other TCP packet from a source never seen sending a SYN is reported.
//! Unlike the reference, SYNs with ECN bits (SYN+ECE+CWR) are SYNs, and the
//! memory of initiators is bounded (oldest forgotten first), never an abort.

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;

use foldhash::fast::RandomState;

use d4_packet::decode::{flags, TcpFacts};

/// A reported packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Capture time, seconds.
    pub secs: u32,
    /// The answering host (a victim).
    pub src: IpAddr,
    /// TCP flags of the answer.
    pub flags: u8,
    /// Source port (the attacked service).
    pub sport: u16,
}

impl Hit {
    /// The reference CSV row: `secs,ip,flags_decimal,sport`.
    pub fn csv(&self) -> String {
        format!("{},{},{},{}", self.secs, self.src, self.flags, self.sport)
    }
}

/// The reference CSV header.
pub const CSV_HEADER: &str = "#timestamp, source IP, TCP flags, source port";

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP packets seen.
    pub tcp: u64,
    /// SYNs (initiators remembered).
    pub syns: u64,
    /// Packets reported.
    pub hits: u64,
    /// Initiators forgotten because the table was full.
    pub evicted: u64,
}

/// The detector.
#[derive(Debug)]
pub struct Detector {
    /// Seeded per process: addresses are chosen by attackers (spoofed).
    initiators: HashSet<IpAddr, RandomState>,
    order: VecDeque<IpAddr>,
    capacity: usize,
    /// Counters so far.
    pub stats: Stats,
}

/// Whether a segment opens a connection: SYN without ACK/RST/FIN (ECN bits allowed).
pub fn is_syn(f: u8) -> bool {
    f & (flags::SYN | flags::ACK | flags::RST | flags::FIN) == flags::SYN
}

impl Detector {
    /// A detector remembering at most `capacity` initiators.
    pub fn new(capacity: usize) -> Detector {
        Detector {
            initiators: HashSet::default(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            stats: Stats::default(),
        }
    }

    /// Looks at one TCP segment; returns a hit if it is backscatter.
    pub fn packet(&mut self, secs: u32, t: &TcpFacts) -> Option<Hit> {
        self.stats.tcp += 1;
        if is_syn(t.flags) {
            self.stats.syns += 1;
            if self.initiators.insert(t.src) {
                self.order.push_back(t.src);
                if self.order.len() > self.capacity {
                    if let Some(old) = self.order.pop_front() {
                        self.initiators.remove(&old);
                        self.stats.evicted += 1;
                    }
                }
            }
            return None;
        }
        if self.initiators.contains(&t.src) {
            return None;
        }
        self.stats.hits += 1;
        Some(Hit {
            secs,
            src: t.src,
            flags: t.flags,
            sport: t.sport,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(src: &str, fl: u8) -> TcpFacts {
        TcpFacts {
            src: src.parse().unwrap(),
            dst: "192.0.2.1".parse().unwrap(),
            sport: 80,
            dport: 4444,
            flags: fl,
            ttl: 50,
        }
    }

    #[test]
    fn answers_without_a_syn_are_backscatter_ecn_syns_are_syns() {
        let mut d = Detector::new(10);
        assert!(d
            .packet(1, &seg("203.0.113.1", flags::SYN | flags::ACK))
            .is_some());
        assert!(d
            .packet(1, &seg("203.0.113.2", flags::SYN | flags::ECE | flags::CWR))
            .is_none());
        assert!(
            d.packet(2, &seg("203.0.113.2", flags::RST)).is_none(),
            "an initiator's RST"
        );
        let h = d
            .packet(3, &seg("2001:db8::9", flags::RST | flags::ACK))
            .unwrap();
        assert_eq!(h.csv(), "3,2001:db8::9,20,80");
        assert_eq!(
            d.stats,
            Stats {
                tcp: 4,
                syns: 1,
                hits: 2,
                evicted: 0
            }
        );
    }

    #[test]
    fn the_initiator_table_is_bounded() {
        let mut d = Detector::new(2);
        for i in 0..5 {
            d.packet(0, &seg(&format!("198.51.100.{i}"), flags::SYN));
        }
        assert_eq!(d.stats.evicted, 3);
        assert!(
            d.packet(0, &seg("198.51.100.0", flags::RST)).is_some(),
            "forgotten"
        );
        assert!(
            d.packet(0, &seg("198.51.100.4", flags::RST)).is_none(),
            "remembered"
        );
    }

    /// An IPv4 or IPv6 packet carrying a TCP segment (IPv4 with 8 bytes of
    /// options, IPv6 with a hop-by-hop extension header).
    fn ip_tcp(v6: bool, src_last: u8, fl: u8) -> Vec<u8> {
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&443u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&40000u16.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = fl;
        if v6 {
            let mut p = vec![0u8; 40];
            p[0] = 0x60;
            p[4..6].copy_from_slice(&28u16.to_be_bytes());
            p[6] = 0; // hop-by-hop options first
            p[7] = 61;
            p[8..10].copy_from_slice(&[0x20, 0x01]);
            p[10..12].copy_from_slice(&[0x0d, 0xb8]);
            p[23] = src_last;
            p[24..26].copy_from_slice(&[0x20, 0x01]);
            p[39] = 1;
            p.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // next: TCP, 8 bytes
            p.extend_from_slice(&tcp);
            p
        } else {
            let mut p = vec![0u8; 28];
            p[0] = 0x47; // 28-byte header: 8 bytes of options
            p[2..4].copy_from_slice(&48u16.to_be_bytes());
            p[8] = 57;
            p[9] = 6;
            p[12..16].copy_from_slice(&[203, 0, 113, src_last]);
            p[16..20].copy_from_slice(&[198, 51, 100, 7]);
            p[20..28].copy_from_slice(&[1, 1, 1, 1, 1, 1, 1, 0]); // NOPs, end
            p.extend_from_slice(&tcp);
            p
        }
    }

    /// The packet framed for `linktype`.
    fn framed(linktype: u32, ip: &[u8], v6: bool) -> Vec<u8> {
        let et: [u8; 2] = if v6 { [0x86, 0xdd] } else { [0x08, 0x00] };
        let mut f = Vec::new();
        match linktype {
            1 => {
                f.extend_from_slice(&[0u8; 12]);
                f.extend_from_slice(&et);
            }
            // Ethernet with QinQ (802.1ad outer tag, 802.1Q inner tag).
            1001 => {
                f.extend_from_slice(&[0u8; 12]);
                f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0, 0, 20]);
                f.extend_from_slice(&et);
            }
            113 => {
                f.extend_from_slice(&[0u8; 14]);
                f.extend_from_slice(&et);
            }
            0 => f.extend_from_slice(&(if v6 { 30u32 } else { 2 }).to_le_bytes()),
            101 | 228 | 229 => {}
            _ => unreachable!(),
        }
        f.extend_from_slice(ip);
        f
    }

    #[test]
    fn every_link_type_ipv4_with_options_and_ipv6_with_extension_headers() {
        let cases: &[(u32, bool)] = &[
            (1, false),
            (1, true),
            (1001, false),
            (1001, true),
            (113, false),
            (113, true),
            (0, false),
            (0, true),
            (101, false),
            (101, true),
            (228, false),
            (229, true),
        ];
        for &(lt, v6) in cases {
            let real_lt = if lt == 1001 { 1 } else { lt };
            let mut d = Detector::new(100);
            let syn = framed(lt, &ip_tcp(v6, 1, flags::SYN | flags::ECE | flags::CWR), v6);
            let answer = framed(lt, &ip_tcp(v6, 2, flags::SYN | flags::ACK), v6);
            let initiator_rst = framed(lt, &ip_tcp(v6, 1, flags::RST), v6);
            let mut hits = Vec::new();
            for f in [&syn, &answer, &initiator_rst] {
                let t = d4_packet::decode::tcp(real_lt, f)
                    .unwrap_or_else(|| panic!("link type {lt} v6={v6}: not decoded"));
                assert_eq!((t.sport, t.dport), (443, 40000), "link type {lt} v6={v6}");
                hits.extend(d.packet(5, &t));
            }
            assert_eq!(hits.len(), 1, "link type {lt} v6={v6}");
            let want = if v6 { "2001:db8::2" } else { "203.0.113.2" };
            assert_eq!(hits[0].src.to_string(), want, "link type {lt} v6={v6}");
            assert_eq!(hits[0].flags, flags::SYN | flags::ACK);
        }
    }
}
