//! Captured packets → DNS records: link layer, IPv4 fragment reassembly,
//! UDP and TCP (reassembled, several messages per segment, messages across
//! segments) on port 53, then one record per answer of each response, or
//! one record carrying the rcode name for an error response. Reassembly is
//! `d4_packet::flow`'s (this module hands it the port-53 flows and reads
//! the 2-byte-length-framed messages of RFC 1035 4.2.2 from the bytes).

use std::net::IpAddr;

use crate::passivedns::Select;
use crate::record::{has_names, present, rcode_name, Rec};
use d4_packet::capture::Packet;
use d4_packet::decode;
use d4_packet::dns::{Message, Section};
use d4_packet::flow::{Defrag, TcpStreams};

/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// Least bytes buffered per TCP direction: one largest message and its
/// length prefix.
const MIN_FLOW_BUFFER: usize = 65_537;

/// Counters of the reassemblers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Fragments seen.
    pub fragments: u64,
    /// Datagrams completed.
    pub datagrams: u64,
    /// Datagrams given up (timeout, table full, bad geometry).
    pub datagrams_dropped: u64,
    /// TCP messages delivered.
    pub tcp_messages: u64,
    /// TCP flows dropped (table full, buffer limit, gap).
    pub flows_dropped: u64,
}

/// What the extractor saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Packets given.
    pub packets: u64,
    /// DNS messages decoded (queries and responses).
    pub messages: u64,
    /// Responses among them.
    pub responses: u64,
    /// Records produced.
    pub records: u64,
    /// Messages skipped as malformed (bad names, pointers, counts, cuts).
    pub malformed: u64,
    /// Reassembly counters.
    pub reassembly: ReassemblyStats,
}

/// Limits and output form of an [`Extractor`].
#[derive(Clone, Copy, Debug)]
pub struct ExtractConfig {
    /// Names with a trailing dot (passivedns lines) or without (COF).
    pub trailing_dot: bool,
    /// IPv4 datagrams in reassembly at once.
    pub max_fragmented: usize,
    /// TCP flow directions tracked at once.
    pub max_flows: usize,
    /// Bytes buffered per TCP flow direction (at least 65,537: one largest
    /// message).
    pub max_flow_buffer: usize,
    /// passivedns lines as gamelinux passivedns prints them: only these
    /// record types, and one field of the rdata as the answer
    /// ([`crate::passivedns`]). `None`: every type, full presentation form.
    pub passivedns: Option<Select>,
}

impl Default for ExtractConfig {
    fn default() -> ExtractConfig {
        ExtractConfig {
            trailing_dot: true,
            max_fragmented: 4096,
            max_flows: 65_536,
            max_flow_buffer: 256 * 1024,
            passivedns: None,
        }
    }
}

/// Reusable text buffers for one record.
#[derive(Default)]
struct Scratch {
    name: String,
    rdata: String,
    select: Option<Select>,
}

/// Turns packets into records.
pub struct Extractor {
    defrag: Defrag,
    streams: TcpStreams,
    scratch: Scratch,
    dot: bool,
    last_sweep: u64,
    /// Counters.
    pub stats: ExtractStats,
}

impl Extractor {
    /// A new extractor.
    pub fn new(c: ExtractConfig) -> Extractor {
        Extractor {
            defrag: Defrag::new(c.max_fragmented, 30),
            streams: TcpStreams::new(c.max_flows, c.max_flow_buffer.max(MIN_FLOW_BUFFER)),
            scratch: Scratch {
                select: c.passivedns,
                ..Scratch::default()
            },
            dot: c.trailing_dot,
            last_sweep: 0,
            stats: ExtractStats::default(),
        }
    }

    /// One captured packet; `nanos` when its fraction is nanoseconds.
    pub fn packet(&mut self, p: &Packet, nanos: bool, emit: &mut dyn FnMut(&Rec<'_>)) {
        self.stats.packets += 1;
        let usec = if nanos { p.ts_frac / 1000 } else { p.ts_frac };
        self.frame(p.linktype, u64::from(p.ts_sec), usec, &p.data, emit);
    }

    /// One frame of `linktype` captured at `sec`.`usec`.
    pub fn frame(
        &mut self,
        linktype: u32,
        sec: u64,
        usec: u32,
        frame: &[u8],
        emit: &mut dyn FnMut(&Rec<'_>),
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
        match ip.fragment {
            None => self.l4(sec, usec, ip.src, ip.dst, ip.proto, ip.payload, emit),
            Some(f) => {
                let key = (ip.src, ip.dst, f.id, ip.proto);
                let whole = self.defrag.push(sec, key, f, ip.payload);
                let d = self.defrag.stats;
                let r = &mut self.stats.reassembly;
                (r.fragments, r.datagrams, r.datagrams_dropped) =
                    (d.fragments, d.datagrams, d.datagrams_dropped);
                if let Some(d) = whole {
                    self.l4(sec, usec, ip.src, ip.dst, ip.proto, &d, emit);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn l4(
        &mut self,
        sec: u64,
        usec: u32,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        l4: &[u8],
        emit: &mut dyn FnMut(&Rec<'_>),
    ) {
        let (scratch, stats, dot) = (&mut self.scratch, &mut self.stats, self.dot);
        if proto == 17 {
            let Some((sport, dport, data)) = decode::udp(l4) else {
                return;
            };
            if sport == DNS_PORT || dport == DNS_PORT {
                message(scratch, stats, dot, sec, usec, dst, src, data, emit);
            }
        } else {
            let Some(seg) = decode::tcp_segment(l4) else {
                return;
            };
            // Both directions are followed (queries are counted, answers
            // come from the server's side).
            if seg.sport != DNS_PORT && seg.dport != DNS_PORT {
                return;
            }
            let key = (src, seg.sport, dst, seg.dport);
            self.streams.segment(sec, key, &seg, &mut |b| {
                // Whole 2-byte-length-framed messages; the rest waits.
                let mut used = 0;
                while let Some(h) = b.get(used..used + 2) {
                    let l = usize::from(u16::from_be_bytes([h[0], h[1]]));
                    let Some(m) = b.get(used + 2..used + 2 + l) else {
                        break;
                    };
                    stats.reassembly.tcp_messages += 1;
                    message(scratch, stats, dot, sec, usec, dst, src, m, emit);
                    used += 2 + l;
                }
                used
            });
            stats.reassembly.flows_dropped = self.streams.stats.flows_dropped;
        }
    }
}

/// One DNS message from `server` to `client`.
#[allow(clippy::too_many_arguments)]
fn message(
    s: &mut Scratch,
    stats: &mut ExtractStats,
    dot: bool,
    sec: u64,
    usec: u32,
    client: IpAddr,
    server: IpAddr,
    data: &[u8],
    emit: &mut dyn FnMut(&Rec<'_>),
) {
    let m = match Message::parse(data) {
        Ok(m) => m,
        Err(_) => {
            stats.malformed += 1;
            return;
        }
    };
    stats.messages += 1;
    if !m.header.is_response() {
        return;
    }
    stats.responses += 1;
    if m.header.opcode() != 0 {
        return;
    }
    // The whole message must walk cleanly before anything is emitted.
    if m.questions().any(|r| r.is_err()) || m.records().any(|r| r.is_err()) {
        stats.malformed += 1;
        return;
    }
    // Names inside the answers' rdata too.
    let bad_rdata = m.records().flatten().any(|r| {
        r.section == Section::Answer && has_names(r.rtype) && {
            s.rdata.clear();
            present(&m, r.rtype, r.rdata, &mut s.rdata, dot).is_err()
        }
    });
    if bad_rdata {
        stats.malformed += 1;
        return;
    }
    let rcode = m.header.rcode();
    let mut rec = |name: &str, rtype, class, ttl, rdata: &str| {
        stats.records += 1;
        emit(&Rec {
            ts_sec: sec,
            ts_usec: usec,
            client,
            server,
            class,
            rrname: name,
            rrtype: rtype,
            rdata,
            ttl,
        });
    };
    if rcode != 0 {
        let Some(Ok(q)) = m.questions().next() else {
            return;
        };
        s.name.clear();
        q.name.write_to(&mut s.name, true);
        if dot && s.name != "." {
            s.name.push('.');
        }
        rec(&s.name, q.qtype, q.qclass, 0, &rcode_name(rcode));
        return;
    }
    for r in m.records().flatten() {
        if r.section != Section::Answer {
            break;
        }
        // Meta types are no data.
        if matches!(r.rtype, 41 | 249 | 250) || s.select.is_some_and(|x| !x.contains(r.rtype)) {
            continue;
        }
        s.name.clear();
        r.name.write_to(&mut s.name, true);
        if dot && s.name != "." {
            s.name.push('.');
        }
        s.rdata.clear();
        if present(&m, r.rtype, r.rdata.clone(), &mut s.rdata, dot).is_err() {
            continue; // checked above
        }
        let answer = match s.select {
            Some(_) => crate::passivedns::answer(r.rtype, &s.rdata),
            None => &s.rdata,
        };
        rec(&s.name, r.rtype, r.class, r.ttl, answer);
    }
}
