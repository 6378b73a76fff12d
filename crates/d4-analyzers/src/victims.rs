//! Per-victim summaries of backscatter over time windows: is there an
//! attack, its time line, which services, and infrastructure changes (a
//! victim's answers switching from SYN-ACK to RST, or its TTL changing: a
//! new middle box or mitigation device) — the questions of the seed slides.
//!
//! Windows are aligned on multiples of the window length. A window is
//! reported once a packet two windows later arrives (late packets of the
//! previous window still count) or at the end. Memory is bounded: at most
//! `capacity` (victim, window) entries; beyond, the least recently hit entry
//! is reported early, marked `partial`, never an abort. Per entry, ports and
//! destinations are counted exactly up to [`SET_CAP`] distinct values, then
//! marked `capped`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use foldhash::fast::RandomState;
use serde::Serialize;

use d4_packet::decode::{flags, TcpFacts};

/// Distinct ports and destinations counted exactly per entry.
pub const SET_CAP: usize = 1024;

/// Services listed per row (the most hit ports).
const TOP_SERVICES: usize = 10;

/// One attacked service in a row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Service {
    /// The victim's port (the source port of its answers).
    pub port: u16,
    /// Answers from it.
    pub packets: u64,
}

/// One NDJSON row: a victim's answers within one window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VictimRow {
    /// The victim (the host answering).
    pub victim: IpAddr,
    /// Window start, Unix seconds.
    pub window_start: u64,
    /// Window length, seconds.
    pub window_secs: u64,
    /// Backscatter packets.
    pub packets: u64,
    /// First packet, Unix seconds with microseconds.
    pub first_seen: f64,
    /// Last packet.
    pub last_seen: f64,
    /// Distinct attacked ports (services).
    pub distinct_ports: usize,
    /// Whether more ports were seen than counted exactly.
    pub ports_capped: bool,
    /// The most hit services.
    pub services: Vec<Service>,
    /// Packets per flag combination (`SYN+ACK`, `RST`, `RST+ACK`...).
    pub flags: BTreeMap<String, u64>,
    /// Distinct destinations (the sensor's addresses hit).
    pub distinct_destinations: usize,
    /// Whether more destinations were seen than counted exactly.
    pub destinations_capped: bool,
    /// Smallest TTL / hop limit seen.
    pub ttl_min: u8,
    /// Largest.
    pub ttl_max: u8,
    /// Reported before the window closed (the table was full).
    pub partial: bool,
}

/// A flag byte as names joined by `+`: `SYN+ACK`, `RST`, `FIN+PSH+ACK`...
pub fn flag_names(f: u8) -> String {
    const NAMES: [(u8, &str); 8] = [
        (flags::SYN, "SYN"),
        (flags::FIN, "FIN"),
        (flags::RST, "RST"),
        (flags::PSH, "PSH"),
        (flags::ACK, "ACK"),
        (flags::URG, "URG"),
        (flags::ECE, "ECE"),
        (flags::CWR, "CWR"),
    ];
    let v: Vec<&str> = NAMES
        .iter()
        .filter(|(b, _)| f & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "NONE".into()
    } else {
        v.join("+")
    }
}

#[derive(Debug)]
struct Entry {
    packets: u64,
    first: f64,
    last: f64,
    ports: HashMap<u16, u64, RandomState>,
    ports_capped: bool,
    /// (flag byte, packets): a few combinations per victim, searched linearly.
    flags: Vec<(u8, u64)>,
    dsts: HashSet<IpAddr, RandomState>,
    dsts_capped: bool,
    ttl_min: u8,
    ttl_max: u8,
    touched: u64,
}

type Key = (IpAddr, u64);

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VictimStats {
    /// Rows reported.
    pub rows: u64,
    /// Rows below the packet threshold, not reported.
    pub below_threshold: u64,
    /// Entries reported early because the table was full.
    pub partial: u64,
}

/// The aggregator.
#[derive(Debug)]
pub struct Victims {
    window: u64,
    min_packets: u64,
    capacity: usize,
    /// Seeded per process: addresses are chosen by attackers (spoofed).
    table: HashMap<Key, Entry, RandomState>,
    /// (key, touch number): the least recently touched entry is found by
    /// skipping stale pairs at the front.
    lru: VecDeque<(Key, u64)>,
    clock: u64,
    newest_window: u64,
    /// Counters so far.
    pub stats: VictimStats,
}

impl Victims {
    /// Windows of `window_secs`, rows with at least `min_packets`, at most
    /// `capacity` open entries.
    pub fn new(window_secs: u64, min_packets: u64, capacity: usize) -> Victims {
        Victims {
            window: window_secs.max(1),
            min_packets,
            capacity: capacity.max(1),
            table: HashMap::default(),
            lru: VecDeque::new(),
            clock: 0,
            newest_window: 0,
            stats: VictimStats::default(),
        }
    }

    /// Counts one backscatter packet at time `ts` (Unix seconds); rows of
    /// windows that closed are appended to `out`.
    pub fn hit(&mut self, ts: f64, t: &TcpFacts, out: &mut Vec<VictimRow>) {
        let secs = if ts.is_finite() && ts > 0.0 {
            ts as u64
        } else {
            0
        };
        let w = secs - secs % self.window;
        if w > self.newest_window {
            self.newest_window = w;
            if w >= 2 * self.window {
                self.close_before(w - self.window, out);
            }
        }
        self.clock += 1;
        let key = (t.src, w);
        let clock = self.clock;
        if !self.table.contains_key(&key) && self.table.len() >= self.capacity {
            self.evict_one(out);
        }
        let e = self.table.entry(key).or_insert_with(|| Entry {
            packets: 0,
            first: ts,
            last: ts,
            ports: HashMap::default(),
            ports_capped: false,
            flags: Vec::new(),
            dsts: HashSet::default(),
            dsts_capped: false,
            ttl_min: t.ttl,
            ttl_max: t.ttl,
            touched: clock,
        });
        e.packets += 1;
        e.first = e.first.min(ts);
        e.last = e.last.max(ts);
        let room = e.ports.len() < SET_CAP;
        match e.ports.get_mut(&t.sport) {
            Some(n) => *n += 1,
            None if room => {
                e.ports.insert(t.sport, 1);
            }
            None => e.ports_capped = true,
        }
        match e.flags.iter_mut().find(|(f, _)| *f == t.flags) {
            Some((_, n)) => *n += 1,
            None => e.flags.push((t.flags, 1)),
        }
        if !e.dsts.contains(&t.dst) {
            if e.dsts.len() < SET_CAP {
                e.dsts.insert(t.dst);
            } else {
                e.dsts_capped = true;
            }
        }
        e.ttl_min = e.ttl_min.min(t.ttl);
        e.ttl_max = e.ttl_max.max(t.ttl);
        e.touched = clock;
        self.lru.push_back((key, clock));
        if self.lru.len() > 4 * self.capacity + 1024 {
            self.compact_lru();
        }
    }

    /// Reports every open entry (end of input).
    pub fn finish(&mut self, out: &mut Vec<VictimRow>) {
        self.close_before(u64::MAX, out);
        self.lru.clear();
    }

    fn close_before(&mut self, w: u64, out: &mut Vec<VictimRow>) {
        let mut keys: Vec<Key> = self.table.keys().filter(|k| k.1 < w).copied().collect();
        keys.sort_unstable_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        for k in keys {
            if let Some(e) = self.table.remove(&k) {
                self.report(k, e, false, out);
            }
        }
    }

    fn evict_one(&mut self, out: &mut Vec<VictimRow>) {
        while let Some((k, c)) = self.lru.pop_front() {
            if self.table.get(&k).is_some_and(|e| e.touched == c) {
                if let Some(e) = self.table.remove(&k) {
                    self.stats.partial += 1;
                    self.report(k, e, true, out);
                }
                return;
            }
        }
    }

    fn compact_lru(&mut self) {
        let mut v: Vec<(Key, u64)> = self.table.iter().map(|(k, e)| (*k, e.touched)).collect();
        v.sort_unstable_by_key(|x| x.1);
        self.lru = v.into();
    }

    fn report(&mut self, k: Key, e: Entry, partial: bool, out: &mut Vec<VictimRow>) {
        if e.packets < self.min_packets {
            self.stats.below_threshold += 1;
            return;
        }
        self.stats.rows += 1;
        let mut services: Vec<Service> = e
            .ports
            .iter()
            .map(|(&port, &packets)| Service { port, packets })
            .collect();
        services.sort_unstable_by(|a, b| b.packets.cmp(&a.packets).then(a.port.cmp(&b.port)));
        services.truncate(TOP_SERVICES);
        out.push(VictimRow {
            victim: k.0,
            window_start: k.1,
            window_secs: self.window,
            packets: e.packets,
            first_seen: e.first,
            last_seen: e.last,
            distinct_ports: e.ports.len(),
            ports_capped: e.ports_capped,
            services,
            flags: e.flags.iter().map(|&(f, n)| (flag_names(f), n)).collect(),
            distinct_destinations: e.dsts.len(),
            destinations_capped: e.dsts_capped,
            ttl_min: e.ttl_min,
            ttl_max: e.ttl_max,
            partial,
        });
    }
}

/// Parses a window length: `300`, `300s`, `5m`, `1h`, `1d`.
pub fn parse_window(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: a window is a number with s, m, h or d (e.g. 5m)"))?;
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?}: the unit is s, m, h or d (e.g. 5m)")),
    };
    match n.checked_mul(mul) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("{s:?}: a window is at least one second")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(src: &str, dst: &str, sport: u16, fl: u8, ttl: u8) -> TcpFacts {
        TcpFacts {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            sport,
            dport: 4444,
            flags: fl,
            ttl,
        }
    }

    const SA: u8 = flags::SYN | flags::ACK;

    #[test]
    fn windows_count_packets_services_flags_destinations_and_ttls() {
        let mut v = Victims::new(300, 1, 100);
        let mut out = Vec::new();
        // Window 0 (0..300): a web server answers with SYN-ACK, then RST (a mitigation box).
        v.hit(10.5, &seg("203.0.113.7", "10.0.0.1", 80, SA, 50), &mut out);
        v.hit(11.0, &seg("203.0.113.7", "10.0.0.2", 443, SA, 50), &mut out);
        v.hit(
            12.0,
            &seg("203.0.113.7", "10.0.0.2", 80, flags::RST, 244),
            &mut out,
        );
        v.hit(20.0, &seg("2001:db8::1", "10.0.0.3", 22, SA, 60), &mut out);
        // Window 300: still open windows 0 (late packets) — nothing reported.
        v.hit(301.0, &seg("203.0.113.7", "10.0.0.1", 80, SA, 50), &mut out);
        v.hit(299.0, &seg("203.0.113.7", "10.0.0.9", 80, SA, 50), &mut out);
        assert!(out.is_empty());
        // Window 600 closes window 0.
        v.hit(
            600.0,
            &seg("198.51.100.1", "10.0.0.1", 25, flags::RST | flags::ACK, 30),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        let r = &out[0];
        assert_eq!(r.victim.to_string(), "203.0.113.7");
        assert_eq!((r.window_start, r.packets), (0, 4));
        assert_eq!((r.first_seen, r.last_seen), (10.5, 299.0));
        assert_eq!(r.distinct_ports, 2);
        assert_eq!(
            r.services,
            vec![
                Service {
                    port: 80,
                    packets: 3
                },
                Service {
                    port: 443,
                    packets: 1
                }
            ]
        );
        assert_eq!(r.flags.get("SYN+ACK"), Some(&3));
        assert_eq!(r.flags.get("RST"), Some(&1));
        assert_eq!(r.distinct_destinations, 3);
        assert_eq!((r.ttl_min, r.ttl_max), (50, 244));
        assert_eq!(out[1].victim.to_string(), "2001:db8::1");
        v.finish(&mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(out[2].window_start, 300);
        assert_eq!(out[3].flags.get("RST+ACK"), Some(&1));
        assert!(out.iter().all(|r| !r.partial));
    }

    #[test]
    fn threshold_and_a_full_table_report_early_never_abort() {
        let mut v = Victims::new(60, 2, 2);
        let mut out = Vec::new();
        for i in 0..10u8 {
            for _ in 0..3 {
                v.hit(
                    1.0,
                    &seg(&format!("192.0.2.{i}"), "10.0.0.1", 80, SA, 9),
                    &mut out,
                );
            }
        }
        v.hit(1.0, &seg("192.0.2.200", "10.0.0.1", 80, SA, 9), &mut out);
        v.finish(&mut out);
        assert_eq!(v.stats.partial, 9, "{out:?}");
        assert_eq!(v.stats.below_threshold, 1);
        assert_eq!(out.len(), 10);
        assert!(out.iter().all(|r| r.packets == 3));
        assert_eq!(out.iter().filter(|r| r.partial).count(), 9);
    }

    #[test]
    fn sets_are_capped() {
        let mut v = Victims::new(60, 1, 10);
        let mut out = Vec::new();
        for p in 0..(SET_CAP as u16 + 5) {
            let dst = format!("10.{}.{}.1", p / 256, p % 256);
            v.hit(1.0, &seg("192.0.2.1", &dst, p, SA, 9), &mut out);
        }
        v.finish(&mut out);
        assert!(out[0].ports_capped && out[0].destinations_capped);
        assert_eq!(out[0].distinct_ports, SET_CAP);
        assert_eq!(out[0].packets, SET_CAP as u64 + 5);
    }

    #[test]
    fn window_lengths_and_flag_names() {
        assert_eq!(parse_window("5m"), Ok(300));
        assert_eq!(parse_window("300"), Ok(300));
        assert_eq!(parse_window("1h"), Ok(3600));
        assert!(parse_window("0s").is_err());
        assert!(parse_window("5x").is_err());
        assert!(parse_window("").is_err());
        assert_eq!(flag_names(0x12), "SYN+ACK");
        assert_eq!(flag_names(0x14), "RST+ACK");
        assert_eq!(flag_names(0), "NONE");
    }
}
