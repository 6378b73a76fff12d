//! DNS messages out of captured frames: UDP and TCP on port 53, over IPv4
//! (fragments reassembled by [`crate::flow::Defrag`]) or IPv6, on any link
//! type [`crate::decode`] reads; TCP streams reassembled by
//! [`crate::flow::TcpStreams`] and cut at the 2-byte length prefix of
//! RFC 1035 4.2.2 (several messages in a segment, a message across
//! segments). Each message is handed over as bytes with where and when it
//! was seen; walking it is [`crate::dns::Message`]'s job.
//!
//! Shared by passive DNS (`d4 pdns extract`) and the DNS monitor (`d4 dns`),
//! so that both see the same messages in a capture. Bounded as the flow
//! layer is; time is the packets' own.

use std::net::IpAddr;

use crate::capture::Packet;
use crate::decode;
use crate::flow::{Defrag, TcpStreams};

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// Least bytes buffered per TCP direction: one largest message and its
/// length prefix.
const MIN_FLOW_BUFFER: usize = 65_537;

/// Bounds of the reassemblers.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// IPv4 datagrams in reassembly at once.
    pub max_fragmented: usize,
    /// TCP flow directions tracked at once.
    pub max_flows: usize,
    /// Bytes buffered per TCP flow direction (at least 65,537: one largest
    /// message).
    pub max_flow_buffer: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_fragmented: 4096,
            max_flows: 65_536,
            max_flow_buffer: 256 * 1024,
        }
    }
}

/// Counters of the reassemblers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// IPv4 fragments seen (of UDP or TCP).
    pub fragments: u64,
    /// Datagrams completed.
    pub datagrams: u64,
    /// Datagrams given up (timeout, table full, bad geometry).
    pub datagrams_dropped: u64,
    /// Messages read from TCP streams.
    pub tcp_messages: u64,
    /// TCP flows dropped (table full, buffer limit, gap).
    pub flows_dropped: u64,
}

/// Where and when a message was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Capture time, seconds.
    pub sec: u64,
    /// Capture time, microseconds.
    pub usec: u32,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Carried by TCP (else UDP).
    pub tcp: bool,
}

/// Turns frames into DNS messages.
pub struct Messages {
    defrag: Defrag,
    streams: TcpStreams,
    last_sweep: u64,
    /// Counters.
    pub stats: TransportStats,
}

impl Messages {
    /// A new reader within `l`.
    pub fn new(l: Limits) -> Messages {
        Messages {
            defrag: Defrag::new(l.max_fragmented, 30),
            streams: TcpStreams::new(l.max_flows, l.max_flow_buffer.max(MIN_FLOW_BUFFER)),
            last_sweep: 0,
            stats: TransportStats::default(),
        }
    }

    /// The DNS messages of one captured packet; `nanos` when its fraction
    /// is nanoseconds.
    pub fn packet(&mut self, p: &Packet, nanos: bool, emit: &mut dyn FnMut(&Seen, &[u8])) {
        self.frame(
            p.linktype,
            u64::from(p.ts_sec),
            p.usec(nanos),
            &p.data,
            emit,
        );
    }

    /// The DNS messages of one frame of `linktype` captured at
    /// `sec`.`usec`.
    pub fn frame(
        &mut self,
        linktype: u32,
        sec: u64,
        usec: u32,
        frame: &[u8],
        emit: &mut dyn FnMut(&Seen, &[u8]),
    ) {
        if sec > self.last_sweep + 60 {
            self.defrag.expire(sec);
            self.streams.expire(sec, 300);
            self.last_sweep = sec;
        }
        let Some(ip) = decode::ip(linktype, frame) else {
            return;
        };
        if ip.proto != 17 && ip.proto != 6 {
            return;
        }
        let at = Seen {
            sec,
            usec,
            src: ip.src,
            dst: ip.dst,
            sport: 0,
            dport: 0,
            tcp: ip.proto == 6,
        };
        match ip.fragment {
            None => self.l4(at, ip.payload, emit),
            Some(f) => {
                let key = (ip.src, ip.dst, f.id, ip.proto);
                let whole = self.defrag.push(sec, key, f, ip.payload);
                let d = self.defrag.stats;
                let s = &mut self.stats;
                (s.fragments, s.datagrams, s.datagrams_dropped) =
                    (d.fragments, d.datagrams, d.datagrams_dropped);
                if let Some(d) = whole {
                    self.l4(at, &d, emit);
                }
            }
        }
    }

    fn l4(&mut self, mut at: Seen, l4: &[u8], emit: &mut dyn FnMut(&Seen, &[u8])) {
        if !at.tcp {
            let Some((sport, dport, data)) = decode::udp(l4) else {
                return;
            };
            if sport == DNS_PORT || dport == DNS_PORT {
                (at.sport, at.dport) = (sport, dport);
                emit(&at, data);
            }
            return;
        }
        let Some(seg) = decode::tcp_segment(l4) else {
            return;
        };
        if seg.sport != DNS_PORT && seg.dport != DNS_PORT {
            return;
        }
        (at.sport, at.dport) = (seg.sport, seg.dport);
        let key = (at.src, seg.sport, at.dst, seg.dport);
        let stats = &mut self.stats;
        self.streams.segment(at.sec, key, &seg, &mut |b| {
            // Whole 2-byte-length-framed messages; the rest waits.
            let mut used = 0;
            while let Some(h) = b.get(used..used + 2) {
                let l = usize::from(u16::from_be_bytes([h[0], h[1]]));
                let Some(m) = b.get(used + 2..used + 2 + l) else {
                    break;
                };
                stats.tcp_messages += 1;
                emit(&at, m);
                used += 2 + l;
            }
            used
        });
        self.stats.flows_dropped = self.streams.stats.flows_dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::build::{dns, ipv4, ipv6, tcp, udp};

    #[test]
    fn udp_tcp_and_ipv6_messages() {
        let mut m = Messages::new(Limits::default());
        let mut got = Vec::new();
        let q = dns(7, "example.com", 1, false);
        let c = [192, 0, 2, 1];
        let s = [198, 51, 100, 1];
        m.frame(
            1,
            10,
            5,
            &ipv4(17, c, s, &udp(4000, 53, &q)),
            &mut |at, b| got.push((*at, b.to_vec())),
        );
        // Not DNS: another port.
        m.frame(
            1,
            10,
            6,
            &ipv4(17, c, s, &udp(4000, 54, &q)),
            &mut |_, _| panic!("not port 53"),
        );
        // TCP: two messages in one segment, each with its length prefix.
        let mut stream = Vec::new();
        for _ in 0..2 {
            stream.extend_from_slice(&u16::try_from(q.len()).unwrap_or(0).to_be_bytes());
            stream.extend_from_slice(&q);
        }
        m.frame(
            1,
            11,
            0,
            &ipv4(6, c, s, &tcp(4001, 53, 0x18, &stream)),
            &mut |at, b| got.push((*at, b.to_vec())),
        );
        let v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        m.frame(
            1,
            12,
            0,
            &ipv6(17, v6, v6, &udp(53, 53, &q)),
            &mut |at, b| got.push((*at, b.to_vec())),
        );
        assert_eq!(got.len(), 4);
        assert!(got.iter().all(|(_, b)| *b == q));
        assert_eq!((got[0].0.sec, got[0].0.usec, got[0].0.tcp), (10, 5, false));
        assert!(got[1].0.tcp && got[2].0.tcp);
        assert_eq!(m.stats.tcp_messages, 2);
        assert!(got[3].0.src.is_ipv6());
    }
}
