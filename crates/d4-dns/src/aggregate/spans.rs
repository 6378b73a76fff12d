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

/// A name, its count and share.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NameShare {
    /// The name.
    pub name: String,
    /// Queries counted for it.
    pub count: u64,
    /// Its share of the queries counted, in percent (two decimals).
    pub percent: f64,
}

/// Rates and counts over a span, in all or of one monitor.
#[derive(Clone, Debug, Serialize, PartialEq, Default)]
pub struct Totals {
    /// Queries per second (null: no window of the reducer in the span).
    pub qps: Option<f64>,
    /// Answers per second.
    pub aps: Option<f64>,
    /// Packets per second.
    pub pps: Option<f64>,
    /// Windows received.
    pub windows: u64,
    /// Queries the name reducers counted.
    pub queries: u64,
    /// Of those, the queries for names not kept (past a bound).
    pub untracked: u64,
    /// Malformed packets.
    pub malformed: u64,
}

/// One monitor over a span.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServerSummary {
    /// Its `serverId`.
    pub id: String,
    /// Its rates and counts.
    #[serde(flatten)]
    pub totals: Totals,
    /// When its last window arrived (Unix seconds).
    pub last_seen: i64,
    /// Its top names.
    pub top_names: Vec<NameShare>,
    /// Its QPS per bucket that got a window: `[bucket start, qps]`.
    pub series: Vec<(i64, f64)>,
}

/// A point of the total QPS line: null where no monitor sent a rate.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Point {
    /// The bucket's start (Unix seconds).
    pub t: i64,
    /// The sum of the monitors' QPS in the bucket.
    pub qps: Option<f64>,
    /// The sum of their APS.
    pub aps: Option<f64>,
}

/// How many findings a span holds, per kind.
#[derive(Clone, Debug, Serialize, PartialEq, Default)]
pub struct FindingCounts {
    /// Underscored-name queries.
    pub underscored: u64,
    /// Queries with no answer.
    pub alone_queries: u64,
    /// Answers with no query.
    pub alone_answers: u64,
    /// Distinct names among them.
    pub names: u64,
}

/// Everything the dashboard shows for one span.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    /// When it was computed (Unix seconds).
    pub time: i64,
    /// `1m`, `5m` or `15m`.
    pub span: &'static str,
    /// Its length.
    pub span_secs: i64,
    /// The buckets' length.
    pub bucket_secs: i64,
    /// All monitors: the rates summed, the counts summed.
    pub total: Totals,
    /// Per monitor, by id.
    pub servers: Vec<ServerSummary>,
    /// The top names over all monitors.
    pub top_names: Vec<NameShare>,
    /// Queries per type.
    pub qtypes: BTreeMap<String, u64>,
    /// Answers per rcode.
    pub rcodes: BTreeMap<String, u64>,
    /// Distinct clients (`PacketSummary`).
    pub clients: u64,
    /// The findings in the span.
    pub findings: FindingCounts,
    /// The total QPS per bucket, oldest first.
    pub series: Vec<Point>,
    /// What came in since the start.
    pub input: Counters,
}

/// A name among the findings of a span.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FindingGroup {
    /// The name.
    pub qname: String,
    /// What was seen.
    pub kind: Kind,
    /// How many times.
    pub count: u64,
    /// By which monitors.
    pub monitors: Vec<String>,
    /// From how many senders.
    pub senders: usize,
    /// With which qtypes.
    pub qtypes: Vec<String>,
    /// First and last arrival (Unix seconds).
    pub first: i64,
    /// Last arrival.
    pub last: i64,
}

/// A client over a span.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClientRow {
    /// Its address.
    pub client: String,
    /// Its queries.
    pub queries: u64,
    /// Distinct names it asked for.
    pub names: usize,
    /// Its queries per type.
    pub qtypes: BTreeMap<String, u64>,
    /// The monitors that saw it.
    pub monitors: Vec<String>,
}

/// The names a client asked for, of one type.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClientNames {
    /// The type.
    pub qtype: String,
    /// Its queries.
    pub queries: u64,
    /// The names, most asked first.
    pub names: Vec<NameShare>,
}

/// A client in detail.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ClientDetail {
    /// Its row.
    #[serde(flatten)]
    pub row: ClientRow,
    /// Per type, the most queried first.
    pub by_qtype: Vec<ClientNames>,
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

/// Percent with two decimals.
fn percent(n: u64, of: u64) -> f64 {
    if of == 0 {
        return 0.0;
    }
    (n as f64 * 10_000.0 / of as f64).round() / 100.0
}

/// The `k` largest counts, the largest first (ties by name).
fn top(m: &Map<Name, u64>, k: usize, of: u64) -> Vec<NameShare> {
    let mut v: Vec<(&Name, u64)> = m.iter().map(|(n, c)| (n, *c)).collect();
    let by = |a: &(&Name, u64), b: &(&Name, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
    if v.len() > k && k > 0 {
        v.select_nth_unstable_by(k - 1, by);
        v.truncate(k);
    }
    v.sort_unstable_by(by);
    v.truncate(k);
    v.into_iter()
        .map(|(n, c)| NameShare {
            name: n.to_string(),
            count: c,
            percent: percent(c, of),
        })
        .collect()
}

fn add_to(m: &mut Map<Name, u64>, t: &Tally) {
    for (k, v) in &t.map {
        *m.entry(k.clone()).or_default() += v;
    }
}

fn add_small(m: &mut BTreeMap<String, u64>, t: &Tally) {
    for (k, v) in &t.map {
        *m.entry(k.to_string()).or_default() += v;
    }
    if t.untracked > 0 {
        *m.entry("OTHER".into()).or_default() += t.untracked;
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

    /// The buckets of each monitor in `span` at `now`.
    fn in_span(
        &self,
        span: Span,
        now: i64,
    ) -> impl Iterator<Item = (&Arc<str>, &Server, &[Bucket])> {
        let first = span.first_bucket(now);
        self.servers.iter().map(move |(id, s)| {
            let start = s.buckets.partition_point(|b| b.index < first);
            (id, s, &s.buckets[start..])
        })
    }

    /// The dashboard's numbers for `span` at `now`, with `k` top names.
    pub fn summary(&mut self, span: Span, now: i64, k: usize) -> Summary {
        self.prune(now);
        let first = span.first_bucket(now);
        let last = now.div_euclid(BUCKET_SECS);
        let mut total = Totals::default();
        let (mut tq, mut ta, mut tp) = (None::<f64>, None::<f64>, None::<f64>);
        let mut names: Map<Name, u64> = Map::default();
        let mut qtypes = BTreeMap::new();
        let mut rcodes = BTreeMap::new();
        let mut clients: HashSet<&Name> = HashSet::new();
        let mut series: Vec<Point> = (first..=last)
            .map(|i| Point {
                t: i * BUCKET_SECS,
                qps: None,
                aps: None,
            })
            .collect();
        let mut servers = Vec::new();
        for (id, s, buckets) in self.in_span(span, now) {
            let (mut q, mut a, mut p) = (Mean::default(), Mean::default(), Mean::default());
            let mut own: Map<Name, u64> = Map::default();
            let mut t = Totals::default();
            let mut own_series = Vec::new();
            for b in buckets {
                q.merge(&b.qps);
                a.merge(&b.aps);
                p.merge(&b.pps);
                t.windows += b.windows;
                t.malformed += b.malformed;
                let qn = b.query_names();
                t.queries += qn.total();
                t.untracked += qn.untracked;
                add_to(&mut own, qn);
                add_small(&mut qtypes, &b.qtypes);
                add_small(&mut rcodes, &b.rcodes);
                clients.extend(b.clients.keys());
                let slot = usize::try_from(b.index - first)
                    .ok()
                    .and_then(|i| series.get_mut(i));
                if let Some(pt) = slot {
                    if let Some(v) = b.qps.get() {
                        *pt.qps.get_or_insert(0.0) += v;
                        own_series.push((b.index * BUCKET_SECS, v));
                    }
                    if let Some(v) = b.aps.get() {
                        *pt.aps.get_or_insert(0.0) += v;
                    }
                }
            }
            if buckets.is_empty() {
                continue;
            }
            (t.qps, t.aps, t.pps) = (q.get(), a.get(), p.get());
            for (sum, v) in [(&mut tq, t.qps), (&mut ta, t.aps), (&mut tp, t.pps)] {
                if let Some(v) = v {
                    *sum.get_or_insert(0.0) += v;
                }
            }
            total.windows += t.windows;
            total.queries += t.queries;
            total.untracked += t.untracked;
            total.malformed += t.malformed;
            for (n, c) in &own {
                *names.entry(n.clone()).or_default() += c;
            }
            servers.push(ServerSummary {
                id: id.to_string(),
                top_names: top(&own, k.min(10), t.queries),
                totals: t,
                last_seen: s.last_seen,
                series: own_series,
            });
        }
        (total.qps, total.aps, total.pps) = (tq, ta, tp);
        let clients = clients.len() as u64;
        Summary {
            time: now,
            span: span.as_str(),
            span_secs: span.secs(),
            bucket_secs: BUCKET_SECS,
            top_names: top(&names, k, total.queries),
            total,
            servers,
            qtypes,
            rcodes,
            clients,
            findings: self.finding_counts(span, now),
            series,
            input: self.counters.clone(),
        }
    }

    /// The top `k` names of `span` at `now`, of one monitor or all, with
    /// the queries counted.
    pub fn names(
        &mut self,
        span: Span,
        now: i64,
        server: Option<&str>,
        k: usize,
    ) -> (u64, Vec<NameShare>) {
        self.prune(now);
        let mut names: Map<Name, u64> = Map::default();
        let mut total = 0;
        for (id, _, buckets) in self.in_span(span, now) {
            if server.is_some_and(|s| s != &**id) {
                continue;
            }
            for b in buckets {
                let qn = b.query_names();
                total += qn.total();
                add_to(&mut names, qn);
            }
        }
        (total, top(&names, k, total))
    }

    /// The findings in `span` at `now`, oldest first.
    fn findings_in(&self, span: Span, now: i64) -> impl Iterator<Item = &Finding> {
        let oldest = span.first_bucket(now) * BUCKET_SECS;
        let start = self.findings.partition_point(|f| f.time < oldest);
        self.findings.range(start..)
    }

    fn finding_counts(&self, span: Span, now: i64) -> FindingCounts {
        let mut c = FindingCounts::default();
        let mut names = HashSet::new();
        for f in self.findings_in(span, now) {
            match f.kind {
                Kind::Underscored => c.underscored += 1,
                Kind::AloneQuery => c.alone_queries += 1,
                Kind::AloneAnswer => c.alone_answers += 1,
            }
            names.insert(&f.qname);
        }
        c.names = names.len() as u64;
        c
    }

    /// The findings of `kinds` in `span` grouped by name and kind, the
    /// most frequent first; at most `limit`.
    pub fn findings(
        &mut self,
        span: Span,
        now: i64,
        kinds: &[Kind],
        limit: usize,
    ) -> Vec<FindingGroup> {
        self.prune(now);
        struct G<'a> {
            count: u64,
            monitors: BTreeSet<&'a str>,
            senders: HashSet<&'a str>,
            qtypes: BTreeSet<&'a str>,
            first: i64,
            last: i64,
        }
        let mut groups: Map<(&Arc<str>, Kind), G> = Map::default();
        for f in self
            .findings_in(span, now)
            .filter(|f| kinds.contains(&f.kind))
        {
            let g = groups.entry((&f.qname, f.kind)).or_insert_with(|| G {
                count: 0,
                monitors: BTreeSet::new(),
                senders: HashSet::new(),
                qtypes: BTreeSet::new(),
                first: f.time,
                last: f.time,
            });
            g.count += 1;
            g.monitors.insert(&f.monitor);
            g.senders.insert(&f.sender);
            g.qtypes.insert(&f.qtype);
            g.last = f.time;
        }
        let mut v: Vec<FindingGroup> = groups
            .into_iter()
            .map(|((n, kind), g)| FindingGroup {
                qname: n.to_string(),
                kind,
                count: g.count,
                monitors: g.monitors.into_iter().map(String::from).collect(),
                senders: g.senders.len(),
                qtypes: g.qtypes.into_iter().map(String::from).collect(),
                first: g.first,
                last: g.last,
            })
            .collect();
        v.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.qname.cmp(&b.qname))
                .then_with(|| a.kind.cmp(&b.kind))
        });
        v.truncate(limit);
        v
    }

    /// The findings for `qname` in `span`, the newest first; at most `limit`.
    pub fn finding(&mut self, span: Span, now: i64, qname: &str, limit: usize) -> Vec<Finding> {
        self.prune(now);
        let mut v: Vec<Finding> = self
            .findings_in(span, now)
            .filter(|f| &*f.qname == qname)
            .cloned()
            .collect();
        v.reverse();
        v.truncate(limit);
        v
    }

    /// The clients of `span` merged: (client → (queries, monitors,
    /// (qtype, qname) → queries)).
    #[allow(clippy::type_complexity)]
    fn clients_merged(
        &mut self,
        span: Span,
        now: i64,
        only: Option<&str>,
    ) -> Map<Name, (u64, BTreeSet<Arc<str>>, Map<(Name, Name), u64>)> {
        self.prune(now);
        let mut m: Map<Name, (u64, BTreeSet<Arc<str>>, Map<(Name, Name), u64>)> = Map::default();
        for (id, _, buckets) in self.in_span(span, now) {
            for b in buckets {
                for (ip, c) in &b.clients {
                    if only.is_some_and(|o| o != &**ip) {
                        continue;
                    }
                    let e = m.entry(ip.clone()).or_default();
                    e.0 += c.queries;
                    e.1.insert(id.clone());
                    for (k, n) in &c.names {
                        *e.2.entry(k.clone()).or_default() += n;
                    }
                }
            }
        }
        m
    }

    fn client_row(
        ip: &str,
        queries: u64,
        monitors: &BTreeSet<Arc<str>>,
        names: &Map<(Name, Name), u64>,
    ) -> ClientRow {
        let mut qtypes = BTreeMap::new();
        for ((t, _), n) in names {
            *qtypes.entry(t.to_string()).or_default() += n;
        }
        ClientRow {
            client: ip.to_string(),
            queries,
            names: names.keys().map(|(_, n)| n).collect::<HashSet<_>>().len(),
            qtypes,
            monitors: monitors.iter().map(|m| m.to_string()).collect(),
        }
    }

    /// The clients of `span`, the most active first; at most `limit`.
    pub fn clients(&mut self, span: Span, now: i64, limit: usize) -> Vec<ClientRow> {
        let m = self.clients_merged(span, now, None);
        let mut v: Vec<ClientRow> = m
            .iter()
            .map(|(ip, (q, mons, names))| Aggregator::client_row(ip, *q, mons, names))
            .collect();
        v.sort_by(|a, b| {
            b.queries
                .cmp(&a.queries)
                .then_with(|| a.client.cmp(&b.client))
        });
        v.truncate(limit);
        v
    }

    /// One client over `span`, with its names per type (at most `limit`
    /// per type); `None` if it asked nothing in the span.
    pub fn client(&mut self, span: Span, now: i64, ip: &str, limit: usize) -> Option<ClientDetail> {
        let m = self.clients_merged(span, now, Some(ip));
        let (k, (q, mons, names)) = m.iter().next()?;
        let row = Aggregator::client_row(k, *q, mons, names);
        let mut per: BTreeMap<&Name, Map<Name, u64>> = BTreeMap::new();
        for ((t, n), c) in names {
            *per.entry(t).or_default().entry(n.clone()).or_default() += c;
        }
        let mut by_qtype: Vec<ClientNames> = per
            .into_iter()
            .map(|(t, names)| {
                let queries = names.values().sum();
                ClientNames {
                    qtype: t.to_string(),
                    queries,
                    names: top(&names, limit, queries),
                }
            })
            .collect();
        by_qtype.sort_by(|a, b| {
            b.queries
                .cmp(&a.queries)
                .then_with(|| a.qtype.cmp(&b.qtype))
        });
        Some(ClientDetail { row, by_qtype })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: &str, server: &str, data: &str) -> Vec<u8> {
        format!(r#"{{"type":"{ty}","serverId":"{server}","data":{data}}}"#).into_bytes()
    }

    fn take(a: &mut Aggregator, t: i64, ty: &str, server: &str, data: &str) {
        a.take(&msg(ty, server, data), t).unwrap();
    }

    /// Two monitors, windows at known times (T0 is a bucket boundary).
    const T0: i64 = 1_700_000_000;

    fn two_monitors() -> Aggregator {
        assert_eq!(T0 % BUCKET_SECS, 0);
        let mut a = Aggregator::default();
        let mut w: Vec<(i64, &str, &str, String)> = Vec::new();
        // ns1: three rate windows; ns2: two.
        for (t, s, qps, aps) in [
            (T0, "ns1", 10.0, 8.0),
            (T0 + 200, "ns1", 20.0, 18.0),
            (T0 + 280, "ns1", 30.0, 28.0),
            (T0 + 100, "ns2", 5.0, 5.0),
            (T0 + 290, "ns2", 7.0, 6.0),
        ] {
            w.push((t, "QueriesPerSecond", s, format!(r#"{{"qps":{qps}}}"#)));
            w.push((t, "AnswersPerSecond", s, format!(r#"{{"aps":{aps}}}"#)));
        }
        for (t, ty, s, d) in [
            (
                T0,
                "QueriesNameCounter",
                "ns1",
                r#"{"a.example":30,"b.example":10}"#,
            ),
            (
                T0 + 280,
                "QueriesNameCounter",
                "ns1",
                r#"{"a.example":20,"c.example":20}"#,
            ),
            (
                T0 + 290,
                "QueriesNameCounter",
                "ns2",
                r#"{"b.example":15,"d.example":5}"#,
            ),
            (T0 + 290, "QtypeCounter", "ns2", r#"{"A":15,"AAAA":5}"#),
            (T0 + 280, "QtypeCounter", "ns1", r#"{"A":30,"MX":10}"#),
            (
                T0 + 280,
                "RcodeCounter",
                "ns1",
                r#"{"NOERROR":35,"NXDOMAIN":5}"#,
            ),
        ] {
            w.push((t, ty, s, d.to_string()));
        }
        // In arrival order.
        w.sort_by_key(|x| x.0);
        for (t, ty, s, d) in w {
            take(&mut a, t, ty, s, &d);
        }
        a
    }

    fn share(name: &str, count: u64, percent: f64) -> NameShare {
        NameShare {
            name: name.into(),
            count,
            percent,
        }
    }

    #[test]
    fn spans_average_rates_per_monitor_and_sum_them() {
        let mut a = two_monitors();
        let now = T0 + 299;
        // 15 min: every window. ns1 qps (10+20+30)/3 = 20, ns2 (5+7)/2 = 6.
        let s = a.summary(Span::M15, now, 10);
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.servers[0].id, "ns1");
        assert_eq!(s.servers[0].totals.qps, Some(20.0));
        assert_eq!(s.servers[0].totals.aps, Some(18.0));
        assert_eq!(s.servers[1].totals.qps, Some(6.0));
        assert_eq!(s.total.qps, Some(26.0));
        assert_eq!(s.total.aps, Some(18.0 + 5.5));
        assert_eq!(s.total.pps, None, "no PacketsPerSecond window");
        assert_eq!(s.servers[0].totals.windows, 3 + 3 + 2 + 1 + 1);
        // 5 min at T0+299: buckets from (T0+299)/5 - 60 + 1 = T0/5 on, so
        // the window at T0 is in.
        let s5 = a.summary(Span::M5, now, 10);
        assert_eq!(s5.servers[0].totals.qps, Some(20.0));
        // At T0+300, bucket T0/5 left the 5-minute span: ns1 (20+30)/2.
        let s5 = a.summary(Span::M5, T0 + 300, 10);
        assert_eq!(s5.servers[0].totals.qps, Some(25.0));
        assert_eq!(s5.total.qps, Some(25.0 + 6.0));
        // 1 min at T0+299: buckets from T0+240 on: ns1 30, ns2 7.
        let s1 = a.summary(Span::M1, now, 10);
        assert_eq!(s1.servers[0].totals.qps, Some(30.0));
        assert_eq!(s1.servers[1].totals.qps, Some(7.0));
        assert_eq!(s1.total.qps, Some(37.0));
        assert_eq!(s1.total.aps, Some(34.0));
        // The chart: 12 buckets of 5 s, the total where a monitor reported.
        assert_eq!(s1.series.len(), 12);
        assert_eq!(s1.series[0].t, T0 + 240);
        let pts: Vec<(i64, Option<f64>)> = s1.series.iter().map(|p| (p.t, p.qps)).collect();
        assert_eq!(pts[8], (T0 + 280, Some(30.0)));
        assert_eq!(pts[10], (T0 + 290, Some(7.0)));
        assert_eq!(pts[9], (T0 + 285, None));
        assert_eq!(s1.servers[1].series, [(T0 + 290, 7.0)]);
    }

    #[test]
    fn top_names_with_percentages_per_monitor_and_overall() {
        let mut a = two_monitors();
        // 15 min: a 50, b 25, c 20, d 5 of 100 named queries.
        let s = a.summary(Span::M15, T0 + 299, 10);
        assert_eq!(s.total.queries, 100);
        assert_eq!(
            s.top_names,
            [
                share("a.example", 50, 50.0),
                share("b.example", 25, 25.0),
                share("c.example", 20, 20.0),
                share("d.example", 5, 5.0),
            ]
        );
        // ns1: a 50 of 80 = 62.5 %, c 20 = 25 %, b 10 = 12.5 %.
        assert_eq!(
            s.servers[0].top_names,
            [
                share("a.example", 50, 62.5),
                share("c.example", 20, 25.0),
                share("b.example", 10, 12.5),
            ]
        );
        assert_eq!(s.servers[1].top_names[0], share("b.example", 15, 75.0));
        // Two at most.
        assert_eq!(a.summary(Span::M15, T0 + 299, 2).top_names.len(), 2);
        // 1 min: only the windows at T0+280 and T0+290.
        let s1 = a.summary(Span::M1, T0 + 299, 10);
        assert_eq!(s1.total.queries, 60);
        assert_eq!(s1.top_names[0], share("a.example", 20, 33.33));
        assert_eq!(
            s1.qtypes,
            BTreeMap::from([("A".into(), 45), ("AAAA".into(), 5), ("MX".into(), 10)])
        );
        assert_eq!(s1.rcodes["NXDOMAIN"], 5);
        // One monitor's names alone.
        let (n, top) = a.names(Span::M15, T0 + 299, Some("ns2"), 5);
        assert_eq!((n, top[1].clone()), (20, share("d.example", 5, 25.0)));
    }

    #[test]
    fn everything_leaves_after_fifteen_minutes_and_the_strings_are_freed() {
        let mut a = two_monitors();
        assert!(a.usage().names >= 4);
        let s = a.summary(Span::M15, T0 + 290 + 900, 10);
        assert!(s.servers.is_empty(), "{:?}", s.servers);
        assert_eq!(s.total, Totals::default());
        assert_eq!(
            a.usage(),
            Usage {
                servers: 0,
                names: 0,
                entries: 0,
                findings: 0
            }
        );
        assert_eq!(s.input.messages, 16, "the counters stay");
    }

    #[test]
    fn top_nq_stands_in_for_a_bucket_without_a_name_counter() {
        let mut a = Aggregator::default();
        take(
            &mut a,
            T0,
            "TopNQ",
            "ns1",
            r#"[["x.example",6],["y.example",2]]"#,
        );
        take(&mut a, T0 + 10, "TopNQ", "ns1", r#"[["x.example",4]]"#);
        take(
            &mut a,
            T0 + 10,
            "QueriesNameCounter",
            "ns1",
            r#"{"x.example":5,"z.example":5}"#,
        );
        let s = a.summary(Span::M1, T0 + 10, 10);
        // Bucket T0: TopNQ (8); bucket T0+10: the counter (10), not TopNQ.
        assert_eq!(s.total.queries, 18);
        assert_eq!(s.top_names[0], share("x.example", 11, 61.11));
    }

    #[test]
    fn findings_list_and_detail() {
        let mut a = Aggregator::default();
        let q = |s: &str, n: &str, t: u16| {
            format!(
                r#"{{"sender":"{s}","server":"192.0.2.53","query":{{"qname":"{n}","qtype":{t},"qclass":1}}}}"#
            )
        };
        take(
            &mut a,
            T0,
            "QueriesWithUnderscoredName",
            "ns1",
            &format!(
                r#"{{"_ldap._tcp.example":[{},{}]}}"#,
                q("10.0.0.1", "_ldap._tcp.example", 33),
                q("10.0.0.2", "_ldap._tcp.example", 33)
            ),
        );
        take(
            &mut a,
            T0 + 30,
            "QueriesWithUnderscoredName",
            "ns2",
            &format!(
                r#"{{"_ldap._tcp.example":[{}],"_x.example":[{}]}}"#,
                q("10.0.0.1", "_ldap._tcp.example", 33),
                q("10.0.0.3", "_x.example", 1)
            ),
        );
        take(
            &mut a,
            T0 + 30,
            "AlonePackets",
            "ns2",
            &format!(
                r#"{{"queries":[{}],"answers":[]}}"#,
                q("10.0.0.4", "lost.example", 28)
            ),
        );
        let g = a.findings(Span::M5, T0 + 30, &[Kind::Underscored], 10);
        assert_eq!(g.len(), 2);
        assert_eq!(
            (
                g[0].qname.as_str(),
                g[0].count,
                g[0].senders,
                g[0].monitors.clone(),
                g[0].qtypes.clone()
            ),
            (
                "_ldap._tcp.example",
                3,
                2,
                vec!["ns1".to_string(), "ns2".into()],
                vec!["SRV".to_string()]
            )
        );
        assert_eq!((g[0].first, g[0].last), (T0, T0 + 30));
        let alone = a.findings(
            Span::M5,
            T0 + 30,
            &[Kind::AloneQuery, Kind::AloneAnswer],
            10,
        );
        assert_eq!(
            (alone.len(), alone[0].kind, alone[0].qtypes[0].as_str()),
            (1, Kind::AloneQuery, "AAAA")
        );
        let d = a.finding(Span::M5, T0 + 30, "_ldap._tcp.example", 10);
        assert_eq!(d.len(), 3);
        assert_eq!(
            (d[0].time, &*d[0].monitor),
            (T0 + 30, "ns2"),
            "newest first"
        );
        let s = a.summary(Span::M1, T0 + 30, 10);
        assert_eq!(
            s.findings,
            FindingCounts {
                underscored: 4,
                alone_queries: 1,
                alone_answers: 0,
                names: 3
            }
        );
        // Past one minute, the 1-minute span holds only the later ones.
        assert_eq!(a.summary(Span::M1, T0 + 60, 10).findings.underscored, 2);
    }

    #[test]
    fn clients_list_and_detail() {
        let mut a = Aggregator::default();
        take(
            &mut a,
            T0,
            "PacketSummary",
            "ns1",
            r#"{"10.0.0.1":{"A":["a.example","a.example","b.example"],"MX":["a.example"]},"10.0.0.2":{"A":["c.example"]}}"#,
        );
        take(
            &mut a,
            T0 + 5,
            "PacketSummary",
            "ns2",
            r#"{"10.0.0.1":{"A":["a.example"]}}"#,
        );
        let c = a.clients(Span::M1, T0 + 5, 10);
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].client.as_str(), c[0].queries, c[0].names),
            ("10.0.0.1", 5, 2)
        );
        assert_eq!(
            c[0].qtypes,
            BTreeMap::from([("A".into(), 4), ("MX".into(), 1)])
        );
        assert_eq!(c[0].monitors, ["ns1", "ns2"]);
        let d = a.client(Span::M1, T0 + 5, "10.0.0.1", 10).unwrap();
        assert_eq!(d.by_qtype[0].qtype, "A");
        assert_eq!(d.by_qtype[0].names[0], share("a.example", 3, 75.0));
        assert!(a.client(Span::M1, T0 + 5, "10.9.9.9", 10).is_none());
        assert_eq!(a.summary(Span::M1, T0 + 5, 10).clients, 2);
    }

    #[test]
    fn bounds_count_what_does_not_fit() {
        let mut a = Aggregator::new(Limits {
            max_servers: 1,
            max_bucket_names: 2,
            max_findings: 2,
            ..Limits::default()
        });
        take(
            &mut a,
            T0,
            "QueriesNameCounter",
            "ns1",
            r#"{"a":5,"b":3,"c":2}"#,
        );
        let s = a.summary(Span::M1, T0, 10);
        assert_eq!(
            (s.total.queries, s.total.untracked, s.top_names.len()),
            (10, 2, 2)
        );
        assert_eq!(
            s.top_names[0],
            share("a", 5, 50.0),
            "shares count the untracked"
        );
        assert_eq!(s.input.untracked_names, 1);
        assert!(a
            .take(&msg("QueriesPerSecond", "ns2", r#"{"qps":1}"#), T0)
            .is_err());
        assert_eq!(a.counters().refused_servers, 1);
        let q = r#"{"sender":"s","server":"d","query":{"qname":"_a","qtype":1,"qclass":1}}"#;
        take(
            &mut a,
            T0,
            "QueriesWithUnderscoredName",
            "ns1",
            &format!(r#"{{"_a":[{q},{q},{q}]}}"#),
        );
        assert_eq!((a.usage().findings, a.counters().findings_dropped), (2, 1));
        // Bad messages are counted by reason.
        assert!(a.take(b"{", T0).is_err());
        assert!(a.take(&msg("Nope", "ns1", "{}"), T0).is_err());
        let mut small = Aggregator::new(Limits {
            max_message_bytes: 10,
            ..Limits::default()
        });
        assert!(small
            .take(&msg("QueriesPerSecond", "ns1", r#"{"qps":1}"#), T0)
            .is_err());
        assert_eq!(
            (
                a.counters().malformed,
                a.counters().unknown_types,
                small.counters().too_large
            ),
            (1, 1, 1)
        );
        // The entry budget: one entry left for two names.
        let mut a = Aggregator::new(Limits {
            max_entries: 1,
            ..Limits::default()
        });
        take(&mut a, T0, "QueriesNameCounter", "ns1", r#"{"a":5,"b":3}"#);
        assert_eq!(
            (
                a.usage().entries,
                a.summary(Span::M1, T0, 10).total.untracked
            ),
            (1, 3)
        );
    }

    #[test]
    fn a_clock_going_back_files_into_the_newest_bucket() {
        let mut a = Aggregator::default();
        take(&mut a, T0 + 100, "QueriesPerSecond", "ns1", r#"{"qps":4}"#);
        take(&mut a, T0 + 50, "QueriesPerSecond", "ns1", r#"{"qps":8}"#);
        let s = a.summary(Span::M1, T0 + 100, 10);
        assert_eq!(s.total.qps, Some(6.0));
    }
}
