//! TCP reassembly: the segments of each flow direction put back in
//! sequence order, so the caller reads contiguous stream bytes. Segments
//! that arrive ahead of the stream are held until the gap fills;
//! retransmissions and overlaps are trimmed to what is new; a SYN starts
//! the direction anew, a FIN or RST ends it (after its bytes are given).
//! Without a SYN, a direction starts with the first segment that carries
//! data.
//!
//! The caller reads bytes through a callback that returns how many it
//! consumed; the rest stays buffered for the next call (a message cut
//! across segments).
//!
//! A caller done with a direction (it has read what it wanted, the rest is
//! bulk data) calls [`TcpStreams::ignore`]: its buffers are freed and its
//! later segments cost a table lookup, until a SYN starts it anew or a FIN
//! or RST ends it.
//!
//! Bounds: at most `max_flows` directions (the stalest is dropped to make
//! room), each holding at most `max_buffer` bytes not consumed, and at most
//! [`MAX_AHEAD`] segments (within `max_buffer` bytes) ahead of a gap; a
//! direction over a bound is dropped and counted.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::decode::{flags, TcpSegment};

/// Most out-of-order segments held per direction.
pub const MAX_AHEAD: usize = 32;

/// A TCP flow direction: (source, source port, destination, destination port).
pub type FlowKey = (IpAddr, u16, IpAddr, u16);

/// Counters of [`TcpStreams`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Directions dropped (table full, buffer limit, gap too large).
    pub flows_dropped: u64,
}

/// One direction.
struct Flow {
    /// The next sequence number expected.
    next: u32,
    /// Contiguous bytes not yet consumed by the caller.
    buf: Vec<u8>,
    /// Segments ahead of `next`: (sequence number, data).
    ahead: Vec<(u32, Vec<u8>)>,
    /// When a segment last came (for eviction and expiry).
    last_seen: u64,
    /// The caller wants no more of this direction ([`TcpStreams::ignore`]).
    ignored: bool,
}

/// TCP reassembly of every direction handed in.
pub struct TcpStreams {
    flows: HashMap<FlowKey, Flow>,
    max_flows: usize,
    max_buffer: usize,
    /// Counters.
    pub stats: TcpStats,
}

impl TcpStreams {
    /// At most `max_flows` directions tracked, each buffering at most
    /// `max_buffer` bytes.
    pub fn new(max_flows: usize, max_buffer: usize) -> TcpStreams {
        TcpStreams {
            flows: HashMap::new(),
            max_flows: max_flows.max(1),
            max_buffer,
            stats: TcpStats::default(),
        }
    }

    /// Directions tracked.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Adds a segment of direction `key`. When it makes new bytes
    /// contiguous, calls `read` with every byte not yet consumed (in stream
    /// order); `read` returns how many of them it consumed.
    pub fn segment(
        &mut self,
        now: u64,
        key: FlowKey,
        seg: &TcpSegment<'_>,
        read: &mut dyn FnMut(&[u8]) -> usize,
    ) {
        let syn = seg.flags & flags::SYN != 0;
        let closing = seg.flags & (flags::FIN | flags::RST) != 0;
        if !self.flows.contains_key(&key) {
            if seg.data.is_empty() && !syn {
                return;
            }
            if self.flows.len() >= self.max_flows {
                self.stats.flows_dropped += super::make_room(&mut self.flows, |f| f.last_seen);
            }
            self.flows.insert(
                key,
                Flow {
                    next: seg.seq,
                    buf: Vec::new(),
                    ahead: Vec::new(),
                    last_seen: now,
                    ignored: false,
                },
            );
        }
        let Some(f) = self.flows.get_mut(&key) else {
            return;
        };
        f.last_seen = now;
        if f.ignored && !syn {
            if closing {
                self.flows.remove(&key);
            }
            return;
        }
        if syn {
            f.next = seg.seq.wrapping_add(1);
            f.buf.clear();
            f.ahead.clear();
            f.ignored = false;
        }
        let before = f.buf.len();
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
            self.stats.flows_dropped += 1;
            return;
        }
        if f.buf.len() > before {
            let used = read(&f.buf).min(f.buf.len());
            f.buf.drain(..used);
        }
        if closing {
            self.flows.remove(&key);
        }
    }

    /// Stops reassembling direction `key`: its buffered bytes are dropped
    /// and its later segments ignored (a SYN starts it anew; a FIN or RST,
    /// or expiry, forgets it). Without a SYN, a direction is not recreated
    /// by its next data segment, which is the point.
    pub fn ignore(&mut self, key: &FlowKey) {
        if let Some(f) = self.flows.get_mut(key) {
            f.ignored = true;
            f.buf = Vec::new();
            f.ahead = Vec::new();
        }
    }

    /// Whether direction `key` is tracked (ignored directions included): a
    /// caller that hands in only some segments (those that start something
    /// it reads) hands in the rest of the directions it already follows.
    pub fn tracks(&self, key: &FlowKey) -> bool {
        self.flows.contains_key(key)
    }

    /// Forgets direction `key` at once (its buffered bytes dropped): unlike
    /// [`TcpStreams::ignore`], its next data segment starts it anew, for a
    /// caller that reads what starts at some segments (a request) and
    /// nothing in between.
    pub fn forget(&mut self, key: &FlowKey) {
        self.flows.remove(key);
    }

    /// Forgets directions idle for more than `idle` seconds.
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
    use proptest::prelude::*;

    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn seg(seq: u32, flags: u8, data: &[u8]) -> TcpSegment<'_> {
        TcpSegment {
            sport: 53,
            dport: 4000,
            seq,
            flags,
            data,
        }
    }

    /// A reader of 2-byte-length-framed messages (DNS over TCP).
    fn framed(got: &mut Vec<Vec<u8>>) -> impl FnMut(&[u8]) -> usize + '_ {
        move |b: &[u8]| {
            let mut used = 0;
            while let Some(h) = b.get(used..used + 2) {
                let l = usize::from(u16::from_be_bytes([h[0], h[1]]));
                let Some(m) = b.get(used + 2..used + 2 + l) else {
                    break;
                };
                got.push(m.to_vec());
                used += 2 + l;
            }
            used
        }
    }

    #[test]
    fn messages_across_and_within_segments() {
        let mut stream = Vec::new();
        for m in [&b"hello"[..], b"", b"dns message two"] {
            stream.extend_from_slice(&(m.len() as u16).to_be_bytes());
            stream.extend_from_slice(m);
        }
        let key = (a("10.0.0.1"), 53, a("10.0.0.2"), 4000);
        for cut in 1..stream.len() {
            let mut s = TcpStreams::new(4, 1 << 20);
            let mut got: Vec<Vec<u8>> = Vec::new();
            s.segment(
                0,
                key,
                &seg(u32::MAX, flags::SYN, &[]),
                &mut framed(&mut got),
            );
            // Second part first (out of order), then the first, then a duplicate.
            let second = seg(cut as u32, 0x18, &stream[cut..]);
            let first = seg(0, 0x18, &stream[..cut]);
            s.segment(1, key, &second, &mut framed(&mut got));
            s.segment(1, key, &first, &mut framed(&mut got));
            s.segment(1, key, &first, &mut framed(&mut got));
            assert_eq!(
                got,
                vec![b"hello".to_vec(), vec![], b"dns message two".to_vec()],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn flow_table_and_buffers_are_bounded() {
        let mut s = TcpStreams::new(3, 65_537);
        for p in 0..10u16 {
            let sg = TcpSegment {
                sport: 53,
                dport: p,
                seq: 0,
                flags: 0x18,
                data: &[0xff, 0xff, 1],
            };
            s.segment(u64::from(p), (a("::1"), 53, a("::2"), p), &sg, &mut |_| 0);
        }
        assert_eq!(s.flows(), 3);
        assert_eq!(s.stats.flows_dropped, 7);
        // A gap larger than the buffer drops the flow.
        let big = vec![0u8; 70_000];
        let sg = TcpSegment {
            sport: 53,
            dport: 9,
            seq: 100,
            flags: 0x18,
            data: &big,
        };
        s.segment(11, (a("::1"), 53, a("::2"), 9), &sg, &mut |_| 0);
        assert_eq!(s.flows(), 2);
    }

    #[test]
    fn an_ignored_direction_gives_nothing_until_a_syn() {
        let key = (a("10.0.0.1"), 1000, a("10.0.0.2"), 443);
        let mut s = TcpStreams::new(4, 1 << 20);
        let mut got = Vec::new();
        let mut read = |b: &[u8]| {
            got.extend_from_slice(b);
            b.len()
        };
        s.segment(0, key, &seg(9, flags::SYN, &[]), &mut read);
        s.segment(0, key, &seg(10, 0x18, b"hello"), &mut read);
        // Ignoring an unknown direction does nothing.
        s.ignore(&(a("10.0.0.9"), 1, a("10.0.0.2"), 2));
        s.ignore(&key);
        s.segment(1, key, &seg(15, 0x18, b"bulk"), &mut read);
        s.segment(1, key, &seg(25, 0x18, b"ahead"), &mut read);
        assert_eq!(s.flows(), 1, "still tracked, so not recreated");
        s.segment(2, key, &seg(100, flags::SYN, &[]), &mut read);
        s.segment(2, key, &seg(101, 0x18, b"again"), &mut read);
        s.ignore(&key);
        s.segment(3, key, &seg(106, flags::FIN, &[]), &mut read);
        assert_eq!(s.flows(), 0, "a FIN forgets it");
        assert_eq!(got, b"helloagain");
    }

    #[test]
    fn a_forgotten_direction_starts_anew_with_its_next_data() {
        let key = (a("10.0.0.1"), 1000, a("10.0.0.2"), 80);
        let mut s = TcpStreams::new(4, 1 << 20);
        let mut got = Vec::new();
        let mut read = |b: &[u8]| {
            got.push(b.to_vec());
            0
        };
        assert!(!s.tracks(&key));
        s.segment(0, key, &seg(9, flags::SYN, &[]), &mut read);
        assert!(s.tracks(&key), "a SYN starts it");
        s.segment(0, key, &seg(10, 0x18, b"GET"), &mut read);
        s.forget(&key);
        assert!(!s.tracks(&key));
        // Not a continuation of the bytes held before: a new start.
        s.segment(1, key, &seg(500, 0x18, b"POST"), &mut read);
        assert!(s.tracks(&key));
        s.forget(&(a("10.0.0.9"), 1, a("10.0.0.2"), 2));
        assert_eq!(got, [b"GET".to_vec(), b"POST".to_vec()]);
    }

    proptest! {
        /// Segments in any order, some sent twice, some overlapping: the
        /// reader gets the stream's bytes once each, in order.
        #[test]
        fn out_of_order_and_retransmitted_segments_give_the_stream(
            len in 1usize..2000,
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
            order in any::<prop::sample::Index>(),
            dups in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            isn: u32,
        ) {
            let stream: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(len)).collect();
            at.push(0);
            at.push(len);
            at.sort_unstable();
            at.dedup();
            // Pieces, each overlapping the previous by up to 3 bytes.
            let mut pieces: Vec<(usize, usize)> = at
                .windows(2)
                .map(|w| (w[0].saturating_sub(3), w[1]))
                .collect();
            for d in &dups {
                let p = pieces[d.index(pieces.len())];
                pieces.push(p);
            }
            let n = pieces.len();
            pieces.rotate_left(order.index(n));
            prop_assume!(pieces.iter().filter(|p| p.0 > 0).count() <= MAX_AHEAD);
            let key = (a("10.0.0.1"), 1000, a("10.0.0.2"), 443);
            let mut s = TcpStreams::new(4, 1 << 20);
            let mut got = Vec::new();
            s.segment(0, key, &seg(isn, flags::SYN, &[]), &mut |_| 0);
            for (a, b) in pieces {
                let sg = seg(isn.wrapping_add(1).wrapping_add(a as u32), 0x18, &stream[a..b]);
                s.segment(1, key, &sg, &mut |b: &[u8]| {
                    got.extend_from_slice(b);
                    b.len()
                });
            }
            prop_assert_eq!(got, stream);
        }
    }
}
