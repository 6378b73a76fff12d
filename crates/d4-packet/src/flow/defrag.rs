//! IPv4 fragment reassembly (RFC 791): fragments in any order, overlapping
//! or repeated, into the datagram's upper-layer payload.
//!
//! Bounds: at most `max_datagrams` datagrams in progress (the oldest is
//! given up to make room), each given up `timeout` seconds after its first
//! fragment, at most [`MAX_DATAGRAM`] bytes and [`MAX_PIECES`] separate
//! pieces; a fragment past 64 KiB or a non-final one whose length is not a
//! multiple of 8 gives the datagram up.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::decode::Ipv4Fragment;

/// Largest IPv4 payload (65535 minus the smallest header).
pub const MAX_DATAGRAM: usize = 65_515;
/// Most distinct pieces remembered per datagram.
pub const MAX_PIECES: usize = 128;

/// A datagram: (source, destination, identification, protocol).
pub type FragKey = (IpAddr, IpAddr, u16, u8);

/// Counters of [`Defrag`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Fragments seen.
    pub fragments: u64,
    /// Datagrams completed.
    pub datagrams: u64,
    /// Datagrams given up (timeout, table full, bad geometry).
    pub datagrams_dropped: u64,
}

/// A datagram in reassembly.
struct Pending {
    /// When its first fragment came (for the timeout and eviction).
    first_seen: u64,
    /// The payload so far, holes zero-filled.
    buf: Vec<u8>,
    /// Received byte ranges, sorted and merged.
    have: Vec<(usize, usize)>,
    /// The payload's length, once the last fragment came.
    total: Option<usize>,
}

/// IPv4 fragment reassembly.
pub struct Defrag {
    table: HashMap<FragKey, Pending>,
    max_datagrams: usize,
    timeout: u64,
    /// Counters.
    pub stats: DefragStats,
}

impl Defrag {
    /// At most `max_datagrams` in progress, each given up `timeout` seconds
    /// after its first fragment.
    pub fn new(max_datagrams: usize, timeout: u64) -> Defrag {
        Defrag {
            table: HashMap::new(),
            max_datagrams: max_datagrams.max(1),
            timeout,
            stats: DefragStats::default(),
        }
    }

    /// Adds a fragment; returns the whole upper-layer payload when this one
    /// completes its datagram.
    pub fn push(
        &mut self,
        now: u64,
        key: FragKey,
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
                self.stats.datagrams_dropped += super::make_room(&mut self.table, |p| p.first_seen);
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
}
