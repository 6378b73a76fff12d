//! The aggregator's state, with no I/O and no clock (the caller passes the
//! time): the reducer windows of every monitor, filed by arrival time in
//! buckets of [`BUCKET_SECS`] seconds, and the moving spans of 1, 5 and 15
//! minutes computed from them.
//!
//! # Span arithmetic
//!
//! A span of S seconds at time `now` holds the buckets whose number is
//! greater than `now / BUCKET_SECS - S / BUCKET_SECS`: the current bucket
//! and the S/5 - 1 before it (between S - 5 and S seconds of arrivals).
//! Within a span, per monitor (`serverId`):
//!
//! - a rate (QPS, APS, PPS) is the mean of the rates of the windows received
//!   (three windows of 10, 20 and 30 QPS: 20 QPS); a monitor with no window
//!   of that reducer has none (`null`);
//! - the total rate is the sum of the monitors' rates;
//! - counts (names, qtypes, rcodes, malformed packets, clients) are summed
//!   over the windows; a name's share is its count over all the queries the
//!   name reducers counted in the span (`QueriesNameCounter`; for a bucket
//!   where a monitor sent only `TopNQ`, its top names stand in);
//! - findings (underscored names, alone packets) are the queries reported in
//!   the span, one by one.
//!
//! # Bounds
//!
//! Names come from the network: everything kept is bounded ([`Limits`],
//! defaults below), and what is past a bound is counted, never kept.
//!
//! - [`Limits::max_servers`] monitors (64); a new one past it is refused
//!   until one falls silent for 15 minutes.
//! - Distinct strings (names, clients, qtypes) held at once:
//!   [`Limits::max_names`] (100,000; at most 1 KiB each, in practice under
//!   64 bytes): interned once, released when no bucket holds them.
//! - Entries (a name, client or sender in a bucket, with its count):
//!   [`Limits::max_entries`] (1,000,000, about 64 bytes each) in all, and
//!   [`Limits::max_bucket_names`] (2,000) names per monitor and bucket. A
//!   name that finds no room is counted in its bucket's `untracked`, so
//!   totals and shares stay right while the top lists hold what fits.
//! - Findings: [`Limits::max_findings`] (50,000, about 300 bytes each), the
//!   oldest dropped first and counted.
//!
//! With the defaults the state stays under about 200 MB whatever arrives.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use super::envelope::{self, Envelope, Query, Reject, Window};

/// Seconds of arrivals per bucket.
pub const BUCKET_SECS: i64 = 5;
/// Buckets held per monitor: the longest span.
pub const HELD_BUCKETS: i64 = Span::M15.secs() / BUCKET_SECS;
/// Distinct qtypes, rcodes per bucket and monitor.
const MAX_SMALL_KEYS: usize = 64;
/// Names per client in a bucket.
const MAX_CLIENT_NAMES: usize = 256;

/// A moving span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Span {
    /// The last minute.
    M1,
    /// The last 5 minutes.
    M5,
    /// The last 15 minutes.
    M15,
}

impl Span {
    /// The spans, shortest first.
    pub const ALL: [Span; 3] = [Span::M1, Span::M5, Span::M15];

    /// `1m`, `5m`, `15m` (also `1`, `5`, `15`, `60s`, `300s`, `900s`).
    pub fn parse(s: &str) -> Option<Span> {
        match s {
            "1m" | "1" | "60s" | "60" => Some(Span::M1),
            "5m" | "5" | "300s" | "300" => Some(Span::M5),
            "15m" | "15" | "900s" | "900" => Some(Span::M15),
            _ => None,
        }
    }

    /// Its name in the API (`1m`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Span::M1 => "1m",
            Span::M5 => "5m",
            Span::M15 => "15m",
        }
    }

    /// Its length.
    pub const fn secs(self) -> i64 {
        match self {
            Span::M1 => 60,
            Span::M5 => 300,
            Span::M15 => 900,
        }
    }

    /// The first bucket number in the span at `now`.
    fn first_bucket(self, now: i64) -> i64 {
        now.div_euclid(BUCKET_SECS) - self.secs() / BUCKET_SECS + 1
    }
}

/// The bounds of the state (see the [module documentation](self)).
#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    /// Monitors tracked at once.
    pub max_servers: usize,
    /// Distinct strings held at once.
    pub max_names: usize,
    /// Entries in all buckets.
    pub max_entries: usize,
    /// Names per monitor and bucket.
    pub max_bucket_names: usize,
    /// Findings held.
    pub max_findings: usize,
    /// The longest message (bytes).
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_servers: 64,
            max_names: 100_000,
            max_entries: 1_000_000,
            max_bucket_names: 2_000,
            max_findings: 50_000,
            max_message_bytes: envelope::MAX_MESSAGE_BYTES,
        }
    }
}

/// An interned string.
type Name = Arc<str>;
type Map<K, V> = foldhash::HashMap<K, V>;

/// What came in, and what was refused or not kept.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counters {
    /// Messages taken.
    pub messages: u64,
    /// Messages that were not JSON or not of the contract's shapes.
    pub malformed: u64,
    /// Messages of a reducer type not known here.
    pub unknown_types: u64,
    /// Messages longer than the bound.
    pub too_large: u64,
    /// Messages of a new monitor past `max_servers`.
    pub refused_servers: u64,
    /// Names (with their counts) not kept past a bound; their counts are
    /// in the totals.
    pub untracked_names: u64,
    /// Findings not kept (past a message's bound or dropped the oldest).
    pub findings_dropped: u64,
    /// Messages taken per reducer type.
    pub by_type: BTreeMap<&'static str, u64>,
}

/// A mean of rates.
#[derive(Clone, Copy, Debug, Default)]
struct Mean {
    sum: f64,
    n: u32,
}

impl Mean {
    fn add(&mut self, v: f64) {
        self.sum += v;
        self.n += 1;
    }

    fn merge(&mut self, o: &Mean) {
        self.sum += o.sum;
        self.n += o.n;
    }

    fn get(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / f64::from(self.n))
    }
}

/// Counts per string, with what did not fit.
#[derive(Debug, Default)]
struct Tally {
    map: Map<Name, u64>,
    /// The counts of the strings not kept.
    untracked: u64,
}

impl Tally {
    fn total(&self) -> u64 {
        self.map.values().sum::<u64>() + self.untracked
    }
}

/// A client's queries in a bucket.
#[derive(Debug, Default)]
struct Client {
    queries: u64,
    /// (qtype, qname) → queries.
    names: Map<(Name, Name), u64>,
}

/// The windows of one monitor that arrived in one bucket.
#[derive(Debug, Default)]
struct Bucket {
    /// `arrival time / BUCKET_SECS`.
    index: i64,
    windows: u64,
    qps: Mean,
    aps: Mean,
    pps: Mean,
    /// From `QueriesNameCounter`.
    names: Tally,
    /// Whether a `QueriesNameCounter` window came (else `top` stands in).
    counted: bool,
    /// From `TopNQ`.
    top: Tally,
    qtypes: Tally,
    rcodes: Tally,
    malformed: u64,
    malformed_senders: Tally,
    clients: Map<Name, Client>,
    /// Entries held (toward [`Limits::max_entries`]).
    entries: usize,
}

impl Bucket {
    /// The names this bucket counts queries by.
    fn query_names(&self) -> &Tally {
        if self.counted {
            &self.names
        } else {
            &self.top
        }
    }
}

/// One monitor.
#[derive(Debug, Default)]
struct Server {
    /// Its buckets, oldest first (at most [`HELD_BUCKETS`]).
    buckets: Vec<Bucket>,
    /// When its last window arrived.
    last_seen: i64,
}

/// The kind of a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A query for a name with an underscore (`QueriesWithUnderscoredName`).
    Underscored,
    /// A query that got no answer in its window (`AlonePackets`).
    AloneQuery,
    /// An answer to no query seen (`AlonePackets`).
    AloneAnswer,
}

impl Kind {
    /// `underscored`, `alone-query`, `alone-answer`; `alone` is both alone kinds.
    pub fn parse(s: &str) -> Option<Vec<Kind>> {
        match s {
            "underscored" => Some(vec![Kind::Underscored]),
            "alone-query" => Some(vec![Kind::AloneQuery]),
            "alone-answer" => Some(vec![Kind::AloneAnswer]),
            "alone" => Some(vec![Kind::AloneQuery, Kind::AloneAnswer]),
            "" | "all" => Some(vec![Kind::Underscored, Kind::AloneQuery, Kind::AloneAnswer]),
            _ => None,
        }
    }

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Underscored => "underscored",
            Kind::AloneQuery => "alone-query",
            Kind::AloneAnswer => "alone-answer",
        }
    }
}

/// One query a reducer reported (underscored name, alone packet).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// When it arrived (Unix seconds).
    pub time: i64,
    /// The monitor that reported it.
    #[serde(serialize_with = "arc_str")]
    pub monitor: Arc<str>,
    /// What it is.
    pub kind: Kind,
    /// The question's name.
    #[serde(serialize_with = "arc_str")]
    pub qname: Arc<str>,
    /// Its type.
    pub qtype: String,
    /// Its class.
    pub qclass: String,
    /// Who sent the packet.
    pub sender: String,
    /// Who it went to.
    pub server: String,
    /// The DNS message id (alone packets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

fn arc_str<S: serde::Serializer>(a: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a)
}

/// How much of each bound is used.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Usage {
    /// Monitors tracked.
    pub servers: usize,
    /// Distinct strings held.
    pub names: usize,
    /// Entries held.
    pub entries: usize,
    /// Findings held.
    pub findings: usize,
}

/// The state. See the [module documentation](self).
#[derive(Debug)]
pub struct Aggregator {
    limits: Limits,
    servers: BTreeMap<Arc<str>, Server>,
    /// Every string a bucket holds, once.
    interned: HashSet<Name>,
    /// Entries held in all buckets.
    entries: usize,
    /// Findings, oldest first.
    findings: VecDeque<Finding>,
    counters: Counters,
    /// Bumped by every window taken (the live page pushes on change).
    generation: u64,
    /// The newest bucket pruned up to, so pruning runs once per bucket.
    pruned_at: i64,
}

/// The parts of the state a tally writes, borrowed apart from the buckets.
struct Room<'a> {
    interned: &'a mut HashSet<Name>,
    max_names: usize,
    entries: &'a mut usize,
    max_entries: usize,
    untracked: &'a mut u64,
}

impl Room<'_> {
    /// `s`, interned, if there is room for another entry.
    fn name(&mut self, s: &str) -> Option<Name> {
        if *self.entries >= self.max_entries {
            return None;
        }
        if let Some(n) = self.interned.get(s) {
            return Some(n.clone());
        }
        if self.interned.len() >= self.max_names {
            return None;
        }
        let n: Name = Arc::from(s);
        self.interned.insert(n.clone());
        Some(n)
    }

    /// Adds `n` to `s`'s count in `t`, which holds at most `cap` strings.
    fn add(&mut self, t: &mut Tally, held: &mut usize, s: &str, n: u64, cap: usize) {
        if let Some(c) = t.map.get_mut(s) {
            *c = c.saturating_add(n);
            return;
        }
        match (t.map.len() < cap).then(|| self.name(s)).flatten() {
            Some(k) => {
                t.map.insert(k, n);
                *self.entries += 1;
                *held += 1;
            }
            None => {
                t.untracked = t.untracked.saturating_add(n);
                *self.untracked += 1;
            }
        }
    }
}

impl Default for Aggregator {
    fn default() -> Aggregator {
        Aggregator::new(Limits::default())
    }
}

impl Aggregator {
    /// An empty state with these bounds.
    pub fn new(limits: Limits) -> Aggregator {
        Aggregator {
            limits,
            servers: BTreeMap::new(),
            interned: HashSet::new(),
            entries: 0,
            findings: VecDeque::new(),
            counters: Counters::default(),
            generation: 0,
            pruned_at: i64::MIN,
        }
    }

    /// The bounds.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What came in so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How much of the bounds is used.
    pub fn usage(&self) -> Usage {
        Usage {
            servers: self.servers.len(),
            names: self.interned.len(),
            entries: self.entries,
            findings: self.findings.len(),
        }
    }

    /// Bumped by every window taken.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes one message that arrived at `now`: parsed, checked, filed; or
    /// counted as refused (the reason returned).
    pub fn take(&mut self, msg: &[u8], now: i64) -> Result<(), Reject> {
        match envelope::parse(msg, self.limits.max_message_bytes) {
            Ok(e) => self.apply(e, now),
            Err(r) => {
                self.refused(&r);
                Err(r)
            }
        }
    }

    /// Counts a message refused before it reached [`Aggregator::apply`]
    /// (e.g. cut by a reader at the size bound).
    pub fn refused(&mut self, r: &Reject) {
        let c = &mut self.counters;
        match r {
            Reject::TooLarge(_) => c.too_large += 1,
            Reject::Malformed(_) => c.malformed += 1,
            Reject::Unknown(_) => c.unknown_types += 1,
        }
    }

    /// Files a parsed window that arrived at `now`.
    pub fn apply(&mut self, e: Envelope, now: i64) -> Result<(), Reject> {
        self.prune(now);
        let index = now.div_euclid(BUCKET_SECS);
        let key: Arc<str> = match self.servers.get_key_value(e.server.as_str()) {
            Some((k, _)) => k.clone(),
            None if self.servers.len() >= self.limits.max_servers => {
                self.counters.refused_servers += 1;
                return Err(Reject::Malformed(format!(
                    "monitor {:?} past the bound of {} monitors",
                    e.server, self.limits.max_servers
                )));
            }
            None => Arc::from(e.server.as_str()),
        };
        let ty = e.window.type_name();
        self.counters.messages += 1;
        *self.counters.by_type.entry(ty).or_default() += 1;
        self.generation += 1;
        let server = self.servers.entry(key.clone()).or_default();
        server.last_seen = server.last_seen.max(now);
        // A clock that went back files into the newest bucket.
        if server.buckets.last().is_none_or(|b| b.index < index) {
            server.buckets.push(Bucket {
                index,
                ..Bucket::default()
            });
        }
        let Some(b) = server.buckets.last_mut() else {
            return Ok(());
        };
        b.windows += 1;
        let mut room = Room {
            interned: &mut self.interned,
            max_names: self.limits.max_names,
            entries: &mut self.entries,
            max_entries: self.limits.max_entries,
            untracked: &mut self.counters.untracked_names,
        };
        let cap = self.limits.max_bucket_names;
        let mut findings = Vec::new();
        match e.window {
            Window::Qps(v) => b.qps.add(v),
            Window::Aps(v) => b.aps.add(v),
            Window::Pps(v) => b.pps.add(v),
            Window::Names(c) => {
                b.counted = true;
                for (n, k) in c {
                    room.add(&mut b.names, &mut b.entries, &n, k, cap);
                }
            }
            Window::TopNames(c) => {
                for (n, k) in c {
                    room.add(&mut b.top, &mut b.entries, &n, k, cap);
                }
            }
            Window::Qtypes(c) => {
                for (n, k) in c {
                    room.add(&mut b.qtypes, &mut b.entries, &n, k, MAX_SMALL_KEYS);
                }
            }
            Window::Rcodes(c) => {
                for (n, k) in c {
                    room.add(&mut b.rcodes, &mut b.entries, &n, k, MAX_SMALL_KEYS);
                }
            }
            Window::Malformed { count, senders } => {
                b.malformed = b.malformed.saturating_add(count);
                for (n, k) in senders {
                    room.add(&mut b.malformed_senders, &mut b.entries, &n, k, cap);
                }
            }
            Window::Clients(list) => {
                for (client, qtype, qname) in list {
                    if !b.clients.contains_key(client.as_str()) {
                        match (b.clients.len() < cap)
                            .then(|| room.name(&client))
                            .flatten()
                        {
                            Some(k) => {
                                b.clients.insert(k, Client::default());
                                *room.entries += 1;
                                b.entries += 1;
                            }
                            None => {
                                *room.untracked += 1;
                                continue;
                            }
                        }
                    }
                    let Some(c) = b.clients.get_mut(client.as_str()) else {
                        continue;
                    };
                    c.queries += 1;
                    let key = (
                        room.interned.get(qtype.as_str()),
                        room.interned.get(qname.as_str()),
                    );
                    if let (Some(t), Some(n)) = key {
                        if let Some(k) = c.names.get_mut(&(t.clone(), n.clone())) {
                            *k += 1;
                            continue;
                        }
                    }
                    let key = (c.names.len() < MAX_CLIENT_NAMES)
                        .then(|| Some((room.name(&qtype)?, room.name(&qname)?)))
                        .flatten();
                    let Some(key) = key else {
                        *room.untracked += 1;
                        continue;
                    };
                    c.names.insert(key, 1);
                    *room.entries += 1;
                    b.entries += 1;
                }
            }
            Window::Underscored { queries, dropped } => {
                self.counters.findings_dropped += dropped;
                findings.extend(queries.into_iter().map(|q| (Kind::Underscored, q)));
            }
            Window::Alone {
                queries,
                answers,
                dropped,
            } => {
                self.counters.findings_dropped += dropped;
                findings.extend(queries.into_iter().map(|q| (Kind::AloneQuery, q)));
                findings.extend(answers.into_iter().map(|q| (Kind::AloneAnswer, q)));
            }
        }
        for (kind, q) in findings {
            self.add_finding(now, &key, kind, q);
        }
        Ok(())
    }

    fn add_finding(&mut self, now: i64, monitor: &Arc<str>, kind: Kind, q: Query) {
        if self.limits.max_findings == 0 {
            self.counters.findings_dropped += 1;
            return;
        }
        while self.findings.len() >= self.limits.max_findings {
            self.findings.pop_front();
            self.counters.findings_dropped += 1;
        }
        self.findings.push_back(Finding {
            time: now,
            monitor: monitor.clone(),
            kind,
            qname: Arc::from(q.qname),
            qtype: q.qtype,
            qclass: q.qclass,
            sender: q.sender,
            server: q.server,
            id: q.id,
        });
    }

    /// Drops what left the longest span at `now` (once per bucket).
    pub fn prune(&mut self, now: i64) {
        let index = now.div_euclid(BUCKET_SECS);
        if index <= self.pruned_at {
            return;
        }
        self.pruned_at = index;
        let first = Span::M15.first_bucket(now);
        let mut freed = 0;
        for s in self.servers.values_mut() {
            let gone = s.buckets.partition_point(|b| b.index < first);
            freed += s.buckets.drain(..gone).map(|b| b.entries).sum::<usize>();
        }
        self.servers.retain(|_, s| !s.buckets.is_empty());
        let oldest = first * BUCKET_SECS;
        while self.findings.front().is_some_and(|f| f.time < oldest) {
            self.findings.pop_front();
        }
        if freed > 0 {
            self.entries = self.entries.saturating_sub(freed);
            // Strings no bucket holds any more (only the set's own reference).
            self.interned.retain(|n| Arc::strong_count(n) > 1);
        }
    }
}

mod queries;

pub use queries::{
    ClientDetail, ClientNames, ClientRow, FindingCounts, FindingGroup, NameShare, Point,
    ServerSummary, Summary, Totals,
};

#[cfg(test)]
mod tests;
