//! IP flows, bounded: IPv4 fragments put back into datagrams ([`defrag`])
//! and TCP segments put back into contiguous byte streams, one per
//! direction ([`tcp`]). Every analyzer that reads beyond one packet (passive
//! DNS over TCP, TLS fingerprinting, the DNS monitor) uses these.
//!
//! Neither knows about ports or applications: the caller decides which
//! packets to hand in (all, or the flows it wants) and what to do with the
//! bytes. Both hold at most a configured number of entries (when full, the
//! stalest sixteenth is dropped at once to make room, so a flood of new
//! keys costs constant time per key) and a bounded number of bytes and pieces per
//! entry, so hostile traffic costs bounded memory; what is dropped is
//! counted. Time is passed in (seconds), never read from the clock.

pub mod defrag;
pub mod tcp;

use std::collections::HashMap;
use std::hash::Hash;

/// Makes room in a full table: drops the stalest sixteenth of its entries
/// (at least one) by `age`, in one pass, so that a flood of new keys costs
/// amortised constant time per key instead of a scan of the table each.
/// Returns how many entries were dropped.
fn make_room<K: Eq + Hash, V, T: Ord + Copy>(
    table: &mut HashMap<K, V>,
    age: impl Fn(&V) -> T,
) -> u64 {
    let n = (table.len() / 16).max(1);
    let mut ages: Vec<T> = table.values().map(&age).collect();
    if ages.is_empty() {
        return 0;
    }
    let cut = *ages.select_nth_unstable(n - 1).1;
    let mut dropped = 0;
    table.retain(|_, v| {
        let a = age(v);
        if a < cut || (a == cut && dropped < n) {
            dropped += 1;
            false
        } else {
            true
        }
    });
    dropped as u64
}

pub use defrag::{Defrag, DefragStats, FragKey};
pub use tcp::{FlowKey, TcpStats, TcpStreams};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_room_drops_the_stalest_sixteenth_at_once() {
        let mut t: HashMap<u32, u64> = (0..160).map(|k| (k, u64::from(159 - k))).collect();
        assert_eq!(make_room(&mut t, |v| *v), 10);
        assert_eq!(t.len(), 150);
        assert!(t.values().all(|v| *v >= 10), "only the stalest go");
        // Ties: exactly the sixteenth goes, not every entry of that age.
        let mut t: HashMap<u32, u64> = (0..32).map(|k| (k, 7)).collect();
        assert_eq!(make_room(&mut t, |v| *v), 2);
        // A small table loses one entry; an empty one none.
        let mut t: HashMap<u32, u64> = (0..3).map(|k| (k, u64::from(k))).collect();
        assert_eq!(make_room(&mut t, |v| *v), 1);
        assert!(!t.contains_key(&0));
        assert_eq!(make_room(&mut HashMap::<u32, u64>::new(), |v| *v), 0);
    }
}
