//! DDoS backscatter. A host that answers SYNs it never received (SYN-ACK,
//! RST, ACK...) is the victim of a spoofed-source SYN flood; seen from a
//! darknet sensor its answers are backscatter. As the reference
//! (analyzer-d4-pibs) does, a source that sent a SYN is an initiator; any
//! other TCP packet from a source never seen sending a SYN is reported.
//! Unlike the reference, SYNs with ECN bits (SYN+ECE+CWR) are SYNs, and the
//! memory of initiators is bounded (oldest forgotten first), never an abort.

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;

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
    initiators: HashSet<IpAddr>,
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
            initiators: HashSet::new(),
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
}
