//! Captured packets → DNS records: the messages of UDP and TCP port 53
//! (`d4_packet::dns::transport`: IPv4 fragments and TCP streams
//! reassembled, several messages per segment, messages across segments),
//! then one record per answer of each response, or one record carrying the
//! rcode name for an error response.

use std::net::IpAddr;

use crate::passivedns::Select;
use crate::record::{has_names, present, rcode_name, Rec};
use d4_packet::capture::Packet;
use d4_packet::dns::transport::{Limits, Messages};
use d4_packet::dns::{Message, Section};

pub use d4_packet::dns::transport::DNS_PORT;

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
    messages: Messages,
    scratch: Scratch,
    dot: bool,
    /// Counters.
    pub stats: ExtractStats,
}

impl Extractor {
    /// A new extractor.
    pub fn new(c: ExtractConfig) -> Extractor {
        Extractor {
            messages: Messages::new(Limits {
                max_fragmented: c.max_fragmented,
                max_flows: c.max_flows,
                max_flow_buffer: c.max_flow_buffer,
            }),
            scratch: Scratch {
                select: c.passivedns,
                ..Scratch::default()
            },
            dot: c.trailing_dot,
            stats: ExtractStats::default(),
        }
    }

    /// One captured packet; `nanos` when its fraction is nanoseconds.
    pub fn packet(&mut self, p: &Packet, nanos: bool, emit: &mut dyn FnMut(&Rec<'_>)) {
        self.frame(
            p.linktype,
            u64::from(p.ts_sec),
            p.usec(nanos),
            &p.data,
            emit,
        );
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
        self.stats.packets += 1;
        let (scratch, stats, dot) = (&mut self.scratch, &mut self.stats, self.dot);
        self.messages
            .frame(linktype, sec, usec, frame, &mut |at, data| {
                // Both directions are read (queries are counted, answers come
                // from the server's side).
                message(
                    scratch, stats, dot, at.sec, at.usec, at.dst, at.src, data, emit,
                );
            });
        let t = self.messages.stats;
        self.stats.reassembly = ReassemblyStats {
            fragments: t.fragments,
            datagrams: t.datagrams,
            datagrams_dropped: t.datagrams_dropped,
            tcp_messages: t.tcp_messages,
            flows_dropped: t.flows_dropped,
        };
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
