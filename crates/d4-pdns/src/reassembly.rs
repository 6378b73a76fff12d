//! Bounded reassembly: IPv4 fragments into datagrams ([`Defrag`]) and TCP
//! byte streams into 2-byte-length-framed DNS messages ([`Streams`]).
//!
//! Both hold at most a configured number of entries (the stalest is
//! dropped to make room) and at most a fixed number of bytes per entry, so
//! hostile traffic costs bounded memory; what is dropped is counted.

use std::collections::HashMap;
use std::net::IpAddr;

use d4_packet::decode::{flags, Ipv4Fragment, TcpSegment};

/// Largest IPv4 payload (65535 minus the smallest header).
const MAX_DATAGRAM: usize = 65_515;
/// Most distinct pieces remembered per datagram.
const MAX_PIECES: usize = 128;

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

struct Pending {
    first_seen: u64,
    buf: Vec<u8>,
    /// Received byte ranges, sorted and merged.
    have: Vec<(usize, usize)>,
    total: Option<usize>,
}

type FragKey = (IpAddr, IpAddr, u16, u8);

/// IPv4 fragment reassembly.
pub struct Defrag {
    table: HashMap<FragKey, Pending>,
    max_datagrams: usize,
    timeout: u64,
    /// Counters (shared with [`Streams`] in the extractor's report).
    pub stats: ReassemblyStats,
}

impl Defrag {
    /// At most `max_datagrams` in progress, each given up `timeout` seconds
    /// after its first fragment.
    pub fn new(max_datagrams: usize, timeout: u64) -> Defrag {
        Defrag {
            table: HashMap::new(),
            max_datagrams: max_datagrams.max(1),
            timeout,
            stats: ReassemblyStats::default(),
        }
    }

    /// Adds a fragment; returns the whole upper-layer payload when this one
    /// completes its datagram.
    pub fn push(
        &mut self,
        now: u64,
        key: (IpAddr, IpAddr, u16, u8),
        frag: Ipv4Fragment,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        self.stats.fragments += 1;
        let end = frag.offset + data.len();
        if end > MAX_DATAGRAM || (frag.more && !data.len().is_multiple_of(8)) {
            if self.table.remove(&key).is_some() {
                self.stats.datagrams_dropped += 1;
            }
            return None;
        }
        if !self.table.contains_key(&key) && self.table.len() >= self.max_datagrams {
            self.expire(now);
            if self.table.len() >= self.max_datagrams {
                if let Some(k) = self
                    .table
                    .iter()
                    .min_by_key(|(_, p)| p.first_seen)
                    .map(|(k, _)| *k)
                {
                    self.table.remove(&k);
                    self.stats.datagrams_dropped += 1;
                }
            }
        }
        let p = self.table.entry(key).or_insert_with(|| Pending {
            first_seen: now,
            buf: Vec::new(),
            have: Vec::new(),
            total: None,
        });
        if !frag.more {
            if p.total.is_some_and(|t| t != end) {
                self.table.remove(&key);
                self.stats.datagrams_dropped += 1;
                return None;
            }
            p.total = Some(end);
        }
        if p.buf.len() < end {
            p.buf.resize(end, 0);
        }
        p.buf[frag.offset..end].copy_from_slice(data);
        // Merge the range in.
        p.have.push((frag.offset, end));
        p.have.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(p.have.len());
        for &(a, b) in &p.have {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        p.have = merged;
        if p.have.len() > MAX_PIECES {
            self.table.remove(&key);
            self.stats.datagrams_dropped += 1;
            return None;
        }
        let total = p.total?;
        if p.have.first() == Some(&(0, total)) {
            let mut p = self.table.remove(&key)?;
            p.buf.truncate(total);
            self.stats.datagrams += 1;
            return Some(p.buf);
        }
        None
    }

    /// Gives up datagrams older than the timeout.
    pub fn expire(&mut self, now: u64) {
        let before = self.table.len();
        let t = self.timeout;
        self.table
            .retain(|_, p| now.saturating_sub(p.first_seen) <= t);
        self.stats.datagrams_dropped += (before - self.table.len()) as u64;
    }

    /// Datagrams in progress.
    pub fn pending(&self) -> usize {
        self.table.len()
    }
}

/// A TCP flow direction: (source, source port, destination, destination port).
pub type FlowKey = (IpAddr, u16, IpAddr, u16);

struct Flow {
    next: u32,
    buf: Vec<u8>,
    /// Segments ahead of `next`: (sequence number, data).
    ahead: Vec<(u32, Vec<u8>)>,
    last_seen: u64,
}

/// Most out-of-order segments held per flow.
const MAX_AHEAD: usize = 32;

/// TCP reassembly of DNS-over-TCP messages (RFC 1035 4.2.2, RFC 7766).
pub struct Streams {
    flows: HashMap<FlowKey, Flow>,
    max_flows: usize,
    max_buffer: usize,
}

impl Streams {
    /// At most `max_flows` directions tracked, each buffering at most
    /// `max_buffer` bytes (at least one largest message, 65,537 bytes).
    pub fn new(max_flows: usize, max_buffer: usize) -> Streams {
        Streams {
            flows: HashMap::new(),
            max_flows: max_flows.max(1),
            max_buffer: max_buffer.max(65_537),
        }
    }

    /// Flows tracked.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Adds a segment of flow `key`; calls `out` with each DNS message it
    /// completes, in stream order.
    pub fn segment(
        &mut self,
        now: u64,
        key: FlowKey,
        seg: &TcpSegment<'_>,
        stats: &mut ReassemblyStats,
        out: &mut dyn FnMut(&[u8]),
    ) {
        let syn = seg.flags & flags::SYN != 0;
        let closing = seg.flags & (flags::FIN | flags::RST) != 0;
        if !self.flows.contains_key(&key) {
            if seg.data.is_empty() && !syn {
                return;
            }
            if self.flows.len() >= self.max_flows {
                if let Some(k) = self
                    .flows
                    .iter()
                    .min_by_key(|(_, f)| f.last_seen)
                    .map(|(k, _)| *k)
                {
                    self.flows.remove(&k);
                    stats.flows_dropped += 1;
                }
            }
            // Without the SYN, assume the stream starts with this segment.
            self.flows.insert(
                key,
                Flow {
                    next: seg.seq,
                    buf: Vec::new(),
                    ahead: Vec::new(),
                    last_seen: now,
                },
            );
        }
        let Some(f) = self.flows.get_mut(&key) else {
            return;
        };
        f.last_seen = now;
        if syn {
            f.next = seg.seq.wrapping_add(1);
            f.buf.clear();
            f.ahead.clear();
        }
        let mut ok = f.add(
            seg.seq.wrapping_add(u32::from(syn)),
            seg.data,
            self.max_buffer,
        );
        if ok {
            // Segments that now fit.
            while let Some(i) = f
                .ahead
                .iter()
                .position(|(s, _)| s.wrapping_sub(f.next) as i32 <= 0)
            {
                let (s, d) = f.ahead.swap_remove(i);
                if !f.add(s, &d, self.max_buffer) {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            self.flows.remove(&key);
            stats.flows_dropped += 1;
            return;
        }
        // Deliver whole messages.
        let mut used = 0;
        while let Some(h) = f.buf.get(used..used + 2) {
            let l = usize::from(u16::from_be_bytes([h[0], h[1]]));
            let Some(m) = f.buf.get(used + 2..used + 2 + l) else {
                break;
            };
            stats.tcp_messages += 1;
            out(m);
            used += 2 + l;
        }
        f.buf.drain(..used);
        if closing {
            self.flows.remove(&key);
        }
    }

    /// Forgets flows idle for more than `idle` seconds.
    pub fn expire(&mut self, now: u64, idle: u64) {
        self.flows
            .retain(|_, f| now.saturating_sub(f.last_seen) <= idle);
    }
}

impl Flow {
    /// Appends data at `seq` (trimming what was already seen, holding what
    /// is ahead); false when a limit is hit.
    fn add(&mut self, seq: u32, data: &[u8], max_buffer: usize) -> bool {
        if data.is_empty() {
            return true;
        }
        let d = seq.wrapping_sub(self.next) as i32;
        if d > 0 {
            let held: usize = self.ahead.iter().map(|(_, b)| b.len()).sum();
            if self.ahead.len() >= MAX_AHEAD || held + data.len() > max_buffer {
                return false;
            }
            self.ahead.push((seq, data.to_vec()));
            return true;
        }
        let skip = d.unsigned_abs() as usize;
        if skip >= data.len() {
            return true; // a retransmission of what we have
        }
        let new = &data[skip..];
        if self.buf.len() + new.len() > max_buffer {
            return false;
        }
        self.buf.extend_from_slice(new);
        self.next = self.next.wrapping_add(new.len() as u32);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn fragments_in_any_order_and_overlapping() {
        let data: Vec<u8> = (0..100u8).collect();
        let key = (a("10.0.0.1"), a("10.0.0.2"), 7, 17);
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
            let mut d = Defrag::new(4, 30);
            let pieces = [(0, 48, true), (40, 88, true), (88, 100, false)];
            let mut got = None;
            for i in order {
                let (s, e, more) = pieces[i];
                let f = Ipv4Fragment {
                    id: 7,
                    offset: s,
                    more,
                };
                if let Some(v) = d.push(1, key, f, &data[s..e]) {
                    got = Some(v);
                }
            }
            assert_eq!(got.unwrap(), data);
            assert_eq!(d.pending(), 0);
        }
        // A missing piece never completes; the table stays bounded.
        let mut d = Defrag::new(2, 30);
        for id in 0..10u16 {
            let f = Ipv4Fragment {
                id,
                offset: 0,
                more: true,
            };
            assert!(d
                .push(u64::from(id), (key.0, key.1, id, 17), f, &data[..8])
                .is_none());
        }
        assert_eq!(d.pending(), 2);
        assert_eq!(d.stats.datagrams_dropped, 8);
        // Beyond 64 KiB is refused.
        let f = Ipv4Fragment {
            id: 1,
            offset: 65_512,
            more: false,
        };
        assert!(d.push(1, key, f, &data[..20]).is_none());
    }

    #[test]
    fn tcp_messages_across_and_within_segments() {
        let mut stream = Vec::new();
        for m in [&b"hello"[..], b"", b"dns message two"] {
            stream.extend_from_slice(&(m.len() as u16).to_be_bytes());
            stream.extend_from_slice(m);
        }
        let key = (a("10.0.0.1"), 53, a("10.0.0.2"), 4000);
        for cut in 1..stream.len() {
            let mut s = Streams::new(4, 1 << 20);
            let mut st = ReassemblyStats::default();
            let mut got: Vec<Vec<u8>> = Vec::new();
            let syn = TcpSegment {
                sport: 53,
                dport: 4000,
                seq: u32::MAX,
                flags: flags::SYN,
                data: &[],
            };
            s.segment(0, key, &syn, &mut st, &mut |m| got.push(m.to_vec()));
            // Second part first (out of order), then the first, then a duplicate.
            let second = TcpSegment {
                sport: 53,
                dport: 4000,
                seq: (cut as u32).wrapping_sub(0),
                flags: 0x18,
                data: &stream[cut..],
            };
            let first = TcpSegment {
                sport: 53,
                dport: 4000,
                seq: 0,
                flags: 0x18,
                data: &stream[..cut],
            };
            s.segment(1, key, &second, &mut st, &mut |m| got.push(m.to_vec()));
            s.segment(1, key, &first, &mut st, &mut |m| got.push(m.to_vec()));
            s.segment(1, key, &first, &mut st, &mut |m| got.push(m.to_vec()));
            assert_eq!(
                got,
                vec![b"hello".to_vec(), vec![], b"dns message two".to_vec()],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn flow_table_and_buffers_are_bounded() {
        let mut s = Streams::new(3, 0);
        let mut st = ReassemblyStats::default();
        for p in 0..10u16 {
            let seg = TcpSegment {
                sport: 53,
                dport: p,
                seq: 0,
                flags: 0x18,
                data: &[0xff, 0xff, 1],
            };
            s.segment(
                u64::from(p),
                (a("::1"), 53, a("::2"), p),
                &seg,
                &mut st,
                &mut |_| {},
            );
        }
        assert_eq!(s.flows(), 3);
        assert_eq!(st.flows_dropped, 7);
        // A gap larger than the buffer drops the flow.
        let big = vec![0u8; 70_000];
        let seg = TcpSegment {
            sport: 53,
            dport: 9,
            seq: 100,
            flags: 0x18,
            data: &big,
        };
        s.segment(11, (a("::1"), 53, a("::2"), 9), &seg, &mut st, &mut |_| {});
        assert_eq!(s.flows(), 2);
    }
}
