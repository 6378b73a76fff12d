//! The reducers (the reference's Fievel preprocessors): each sees every
//! message of a window and, at its end, gives one JSON value — the `data`
//! of its output line — and starts afresh. Their names and data shapes are
//! a contract with `d4 dns aggregate`:
//!
//! | reducer | data |
//! |---------|------|
//! | `QueriesPerSecond` | `{"qps": f64}`: queries (QR 0) per second of packet time |
//! | `AnswersPerSecond` | `{"aps": f64}`: responses (QR 1) per second |
//! | `PacketsPerSecond` | `{"pps": f64}`: DNS packets (malformed ones too) per second |
//! | `QueriesNameCounter` | `{qname: n}`: questions of queries per name |
//! | `TopNQ` | `[[qname, n], ...]`: the N most asked names, most first, ties by name |
//! | `QueriesWithUnderscoredName` | `{qname: [{"sender","server","query":{qname,qtype,qclass}}]}`: queries of A, NS, SOA or MX for a name holding `_` |
//! | `MalformedPackets` | `{"count": n, "senders": {ip: n}}` |
//! | `PacketSummary` | `{client: {qtype: [qname, ...]}}`: each client's distinct names per type, in order of first query |
//! | `AlonePackets` | `{"queries": [...], "answers": [...]}`: queries without a response in the window, responses without a query |
//! | `QtypeCounter` | `{"A": n, ...}`: questions of queries per type |
//! | `RcodeCounter` | `{"NOERROR": n, ...}`: responses per rcode |
//!
//! Rates are over the window's packet time: the count divided by the span
//! from its earliest to its latest message's timestamp; a window whose
//! span is zero (one message, or all at the same instant) gives the count
//! itself (as if over one second). Types and classes are written as
//! mnemonics (`A`, `TYPE65534`), ids in hex (`0x1a2b`). Malformed messages
//! count in `PacketsPerSecond` and `MalformedPackets` only. In
//! `AlonePackets` a query and a response match when the client (the
//! query's source, the response's destination), the server, the id and
//! the first question's name are the same, one for one in order of
//! arrival; `sender` is the client in both lists; messages without a
//! question are left out.
//!
//! Speed: names are interned once per message for all reducers (one hash
//! lookup), counters are indexed by the name's number, a query's trail in
//! `AlonePackets` is a linked list in one vector: nothing is allocated per
//! message once a window has seen its names. Memory: each window holds at
//! most `max_entries` distinct names and as many listed entries per
//! reducer; beyond, they are not recorded and are counted (`-s`).

use std::net::IpAddr;

use d4_packet::dns::text::{class_name, rcode_name, type_name};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use serde_json::{json, Map, Value};

use crate::message::{qtype, Message};

/// A reducer, by its reference name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `{"qps": f64}`.
    QueriesPerSecond,
    /// `{"aps": f64}`.
    AnswersPerSecond,
    /// `{"pps": f64}`.
    PacketsPerSecond,
    /// `{qname: n}`.
    QueriesNameCounter,
    /// `[[qname, n], ...]`.
    TopNQ,
    /// `{qname: [{"sender","server","query"}]}`.
    QueriesWithUnderscoredName,
    /// `{"count": n, "senders": {ip: n}}`.
    MalformedPackets,
    /// `{client: {qtype: [qname, ...]}}`.
    PacketSummary,
    /// `{"queries": [...], "answers": [...]}`.
    AlonePackets,
    /// `{qtype: n}`.
    QtypeCounter,
    /// `{rcode: n}`.
    RcodeCounter,
}

impl Kind {
    /// Every reducer, in the order they are written.
    pub const ALL: [Kind; 11] = [
        Kind::QueriesPerSecond,
        Kind::AnswersPerSecond,
        Kind::PacketsPerSecond,
        Kind::QueriesNameCounter,
        Kind::TopNQ,
        Kind::QueriesWithUnderscoredName,
        Kind::MalformedPackets,
        Kind::PacketSummary,
        Kind::AlonePackets,
        Kind::QtypeCounter,
        Kind::RcodeCounter,
    ];

    /// Its name (the `type` of its lines).
    pub fn name(self) -> &'static str {
        match self {
            Kind::QueriesPerSecond => "QueriesPerSecond",
            Kind::AnswersPerSecond => "AnswersPerSecond",
            Kind::PacketsPerSecond => "PacketsPerSecond",
            Kind::QueriesNameCounter => "QueriesNameCounter",
            Kind::TopNQ => "TopNQ",
            Kind::QueriesWithUnderscoredName => "QueriesWithUnderscoredName",
            Kind::MalformedPackets => "MalformedPackets",
            Kind::PacketSummary => "PacketSummary",
            Kind::AlonePackets => "AlonePackets",
            Kind::QtypeCounter => "QtypeCounter",
            Kind::RcodeCounter => "RcodeCounter",
        }
    }

    /// The reducer of a name (exact).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// A comma-separated list of names, or `all`.
    pub fn parse_list(s: &str) -> Result<Vec<Kind>, String> {
        let mut v = Vec::new();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if w == "all" {
                v.extend(Kind::ALL);
                continue;
            }
            v.push(Kind::parse(w).ok_or_else(|| {
                format!(
                    "{w:?} is not a reducer ({})",
                    Kind::ALL.map(Kind::name).join(", ")
                )
            })?);
        }
        v.sort();
        v.dedup();
        if v.is_empty() {
            return Err("no reducer given".into());
        }
        Ok(v)
    }

    fn uses_names(self) -> bool {
        matches!(
            self,
            Kind::QueriesNameCounter
                | Kind::TopNQ
                | Kind::QueriesWithUnderscoredName
                | Kind::PacketSummary
                | Kind::AlonePackets
        )
    }
}

/// A name's number in the window; [`DROPPED`] past the bound.
type NameId = u32;
/// The number of a name that was not recorded (the window is full).
const DROPPED: NameId = u32::MAX;
/// The end of a list in [`Alone`].
const NONE: u32 = u32::MAX;

/// The names of a window, interned.
#[derive(Default)]
pub struct Names {
    map: HashMap<Box<str>, NameId>,
    list: Vec<Box<str>>,
    max: usize,
}

impl Names {
    fn id(&mut self, s: &str) -> NameId {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        if self.list.len() >= self.max {
            return DROPPED;
        }
        let i = self.list.len() as NameId;
        let b: Box<str> = s.into();
        self.list.push(b.clone());
        self.map.insert(b, i);
        i
    }

    fn get(&self, i: NameId) -> &str {
        self.list.get(i as usize).map_or("", |s| s)
    }

    fn clear(&mut self) {
        self.map.clear();
        self.list.clear();
    }
}

/// The time a window covers and what it saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// Earliest timestamp, microseconds.
    pub first_us: i64,
    /// Latest timestamp, microseconds.
    pub last_us: i64,
    /// Messages in it.
    pub messages: u64,
}

impl Span {
    /// `n` per second over the span (the count itself when it is zero).
    pub fn rate(&self, n: u64) -> f64 {
        let d = (self.last_us - self.first_us) as f64 / 1e6;
        if d > 0.0 {
            n as f64 / d
        } else {
            n as f64
        }
    }
}

fn mnemonic_query(name: &str, qtype: u16, qclass: u16) -> Value {
    json!({"qname": name, "qtype": type_name(qtype), "qclass": class_name(qclass)})
}

/// Bounds and options of the reducers.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// `TopNQ`'s N.
    pub top: usize,
    /// Distinct names, and listed entries per reducer, in a window.
    pub max_entries: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            top: 10,
            max_entries: 1_000_000,
        }
    }
}

/// Per-name counts of the questions of queries (`QueriesNameCounter`,
/// `TopNQ`).
#[derive(Default)]
struct NameCounts(Vec<u64>);

impl NameCounts {
    fn add(&mut self, m: &Message, ids: &[NameId]) {
        if m.is_response() {
            return;
        }
        for &i in ids {
            if i == DROPPED {
                continue;
            }
            let i = i as usize;
            if i >= self.0.len() {
                self.0.resize(i + 1, 0);
            }
            self.0[i] += 1;
        }
    }

    /// (name, count) of the names counted, by name.
    fn sorted<'a>(&mut self, names: &'a Names) -> Vec<(&'a str, u64)> {
        let mut v: Vec<(&str, u64)> = self
            .0
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (names.get(i as NameId), *n))
            .collect();
        v.sort_unstable();
        self.0.clear();
        v
    }
}

/// `QueriesWithUnderscoredName` entries.
struct Underscored {
    name: NameId,
    sender: IpAddr,
    server: IpAddr,
    qtype: u16,
    qclass: u16,
}

/// One message waiting for its match in `AlonePackets`.
struct Pending {
    query: bool,
    matched: bool,
    client: IpAddr,
    server: IpAddr,
    id: u16,
    name: NameId,
    qtype: u16,
    qclass: u16,
    /// The next unmatched one of the same key.
    next: u32,
}

type AloneKey = (IpAddr, IpAddr, u16, NameId);

/// The unmatched messages of one key (all queries, or all responses), a
/// queue through [`Pending::next`].
#[derive(Clone, Copy)]
struct Queue {
    query: bool,
    head: u32,
    tail: u32,
}

#[derive(Default)]
struct Alone {
    entries: Vec<Pending>,
    open: HashMap<AloneKey, Queue>,
}

impl Alone {
    fn add(&mut self, m: &Message, ids: &[NameId], max: usize, dropped: &mut u64) {
        let (Some(q), Some(&name)) = (m.first_query(), ids.first()) else {
            return;
        };
        if name == DROPPED {
            *dropped += 1;
            return;
        }
        let query = !m.is_response();
        let (client, server) = if query {
            (m.source, m.dest)
        } else {
            (m.dest, m.source)
        };
        let key = (client, server, m.id, name);
        if let Some(qu) = self.open.get_mut(&key) {
            if qu.query != query {
                // Matches the oldest of the other kind.
                let h = qu.head as usize;
                self.entries[h].matched = true;
                qu.head = self.entries[h].next;
                if qu.head == NONE {
                    self.open.remove(&key);
                }
                return;
            }
        }
        if self.entries.len() >= max {
            *dropped += 1;
            return;
        }
        let at = self.entries.len() as u32;
        self.entries.push(Pending {
            query,
            matched: false,
            client,
            server,
            id: m.id,
            name,
            qtype: q.qtype,
            qclass: q.qclass,
            next: NONE,
        });
        match self.open.get_mut(&key) {
            Some(qu) => {
                self.entries[qu.tail as usize].next = at;
                qu.tail = at;
            }
            None => {
                self.open.insert(
                    key,
                    Queue {
                        query,
                        head: at,
                        tail: at,
                    },
                );
            }
        }
    }

    fn take(&mut self, names: &Names) -> Value {
        let (mut qs, mut rs) = (Vec::new(), Vec::new());
        for p in self.entries.iter().filter(|p| !p.matched) {
            let v = json!({
                "sender": p.client.to_string(),
                "server": p.server.to_string(),
                "id": format!("0x{:04x}", p.id),
                "query": mnemonic_query(names.get(p.name), p.qtype, p.qclass),
            });
            if p.query { &mut qs } else { &mut rs }.push(v);
        }
        self.entries.clear();
        self.open.clear();
        json!({"queries": qs, "answers": rs})
    }
}

/// Every active reducer over one window at a time.
pub struct Reducers {
    active: Vec<Kind>,
    opt: Options,
    names: Names,
    need_names: bool,
    ids: Vec<NameId>,
    span: Span,
    queries: u64,
    responses: u64,
    packets: u64,
    counts: NameCounts,
    top: NameCounts,
    underscored: Vec<Underscored>,
    malformed: u64,
    malformed_senders: HashMap<IpAddr, u64>,
    summary: HashMap<(IpAddr, u16), Vec<NameId>>,
    summary_seen: HashSet<(IpAddr, u16, NameId)>,
    alone: Alone,
    qtypes: HashMap<u16, u64>,
    rcodes: [u64; 16],
    /// Names and entries not recorded (a window over `max_entries`).
    pub dropped: u64,
    /// Windows emitted.
    pub windows: u64,
    /// Messages seen.
    pub messages: u64,
}

impl Reducers {
    /// The reducers `active` (each once) with `opt`.
    pub fn new(active: &[Kind], opt: Options) -> Reducers {
        let mut active = active.to_vec();
        active.sort();
        active.dedup();
        Reducers {
            need_names: active.iter().any(|k| k.uses_names()),
            active,
            opt,
            names: Names {
                max: opt.max_entries,
                ..Names::default()
            },
            ids: Vec::new(),
            span: Span::default(),
            queries: 0,
            responses: 0,
            packets: 0,
            counts: NameCounts::default(),
            top: NameCounts::default(),
            underscored: Vec::new(),
            malformed: 0,
            malformed_senders: HashMap::new(),
            summary: HashMap::new(),
            summary_seen: HashSet::new(),
            alone: Alone::default(),
            qtypes: HashMap::new(),
            rcodes: [0; 16],
            dropped: 0,
            windows: 0,
            messages: 0,
        }
    }

    /// The reducers, in order.
    pub fn active(&self) -> &[Kind] {
        &self.active
    }

    /// The current window's span.
    pub fn span(&self) -> Span {
        self.span
    }

    fn on(&self, k: Kind) -> bool {
        self.active.binary_search(&k).is_ok()
    }

    /// One message into the current window.
    pub fn add(&mut self, m: &Message) {
        self.messages += 1;
        let s = &mut self.span;
        if s.messages == 0 {
            (s.first_us, s.last_us) = (m.time_us, m.time_us);
        } else {
            s.first_us = s.first_us.min(m.time_us);
            s.last_us = s.last_us.max(m.time_us);
        }
        s.messages += 1;
        self.packets += 1;
        if m.malformed {
            self.malformed += 1;
            if self.on(Kind::MalformedPackets) {
                let n = self.malformed_senders.len();
                match self.malformed_senders.get_mut(&m.source) {
                    Some(c) => *c += 1,
                    None if n < self.opt.max_entries => {
                        self.malformed_senders.insert(m.source, 1);
                    }
                    None => self.dropped += 1,
                }
            }
            return;
        }
        self.ids.clear();
        if self.need_names {
            for q in m.queries() {
                let i = self.names.id(q.qname);
                if i == DROPPED {
                    self.dropped += 1;
                }
                self.ids.push(i);
            }
        }
        let response = m.is_response();
        if response {
            self.responses += 1;
            self.rcodes[usize::from(m.rcode())] += 1;
        } else {
            self.queries += 1;
        }
        for k in 0..self.active.len() {
            match self.active[k] {
                Kind::QueriesNameCounter => self.counts.add(m, &self.ids),
                Kind::TopNQ => self.top.add(m, &self.ids),
                Kind::QueriesWithUnderscoredName if !response => {
                    for (q, &name) in m.queries().zip(&self.ids) {
                        if matches!(q.qtype, qtype::A | qtype::NS | qtype::SOA | qtype::MX)
                            && q.qname.contains('_')
                            && name != DROPPED
                        {
                            if self.underscored.len() >= self.opt.max_entries {
                                self.dropped += 1;
                                continue;
                            }
                            self.underscored.push(Underscored {
                                name,
                                sender: m.source,
                                server: m.dest,
                                qtype: q.qtype,
                                qclass: q.qclass,
                            });
                        }
                    }
                }
                Kind::PacketSummary if !response => {
                    for (q, &name) in m.queries().zip(&self.ids) {
                        if name == DROPPED {
                            continue;
                        }
                        if self.summary_seen.len() >= self.opt.max_entries {
                            self.dropped += 1;
                            continue;
                        }
                        if self.summary_seen.insert((m.source, q.qtype, name)) {
                            self.summary
                                .entry((m.source, q.qtype))
                                .or_default()
                                .push(name);
                        }
                    }
                }
                Kind::AlonePackets => {
                    self.alone
                        .add(m, &self.ids, self.opt.max_entries, &mut self.dropped)
                }
                Kind::QtypeCounter if !response => {
                    for q in m.queries() {
                        *self.qtypes.entry(q.qtype).or_insert(0) += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether the current window has seen a message.
    pub fn is_empty(&self) -> bool {
        self.span.messages == 0
    }

    /// Ends the window: each reducer's data, in order, and all start
    /// afresh.
    pub fn take(&mut self) -> Vec<(Kind, Value)> {
        let span = self.span;
        let mut out = Vec::with_capacity(self.active.len());
        for k in self.active.clone() {
            let v = match k {
                Kind::QueriesPerSecond => json!({"qps": span.rate(self.queries)}),
                Kind::AnswersPerSecond => json!({"aps": span.rate(self.responses)}),
                Kind::PacketsPerSecond => json!({"pps": span.rate(self.packets)}),
                Kind::QueriesNameCounter => {
                    let mut m = Map::new();
                    for (name, n) in self.counts.sorted(&self.names) {
                        m.insert(name.to_string(), n.into());
                    }
                    Value::Object(m)
                }
                Kind::TopNQ => {
                    let mut v = self.top.sorted(&self.names);
                    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                    v.truncate(self.opt.top);
                    Value::Array(v.into_iter().map(|(n, c)| json!([n, c])).collect())
                }
                Kind::QueriesWithUnderscoredName => {
                    let mut m = Map::new();
                    let mut v = std::mem::take(&mut self.underscored);
                    // By name, each name's entries in order of arrival.
                    v.sort_by(|a, b| self.names.get(a.name).cmp(self.names.get(b.name)));
                    for u in v {
                        let name = self.names.get(u.name);
                        let e = json!({
                            "sender": u.sender.to_string(),
                            "server": u.server.to_string(),
                            "query": mnemonic_query(name, u.qtype, u.qclass),
                        });
                        match m.get_mut(name) {
                            Some(Value::Array(a)) => a.push(e),
                            _ => {
                                m.insert(name.to_string(), Value::Array(vec![e]));
                            }
                        }
                    }
                    Value::Object(m)
                }
                Kind::MalformedPackets => {
                    let mut senders: Vec<_> = self.malformed_senders.drain().collect();
                    senders.sort();
                    let mut m = Map::new();
                    for (ip, n) in senders {
                        m.insert(ip.to_string(), n.into());
                    }
                    json!({"count": self.malformed, "senders": m})
                }
                Kind::PacketSummary => {
                    let mut groups: Vec<_> = self.summary.drain().collect();
                    groups.sort_by_key(|((ip, t), _)| (*ip, *t));
                    let mut m = Map::new();
                    for ((ip, t), names) in groups {
                        let names: Vec<Value> = names
                            .iter()
                            .map(|&i| Value::from(self.names.get(i)))
                            .collect();
                        let e = m
                            .entry(ip.to_string())
                            .or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(o) = e {
                            o.insert(type_name(t).into_owned(), Value::Array(names));
                        }
                    }
                    self.summary_seen.clear();
                    Value::Object(m)
                }
                Kind::AlonePackets => self.alone.take(&self.names),
                Kind::QtypeCounter => {
                    let mut v: Vec<_> = self.qtypes.drain().collect();
                    v.sort();
                    let mut m = Map::new();
                    for (t, n) in v {
                        m.insert(type_name(t).into_owned(), n.into());
                    }
                    Value::Object(m)
                }
                Kind::RcodeCounter => {
                    let mut m = Map::new();
                    for (r, n) in self.rcodes.iter().enumerate() {
                        if *n > 0 {
                            m.insert(rcode_name(r as u8).into_owned(), (*n).into());
                        }
                    }
                    Value::Object(m)
                }
            };
            out.push((k, v));
        }
        self.reset();
        self.windows += 1;
        out
    }

    fn reset(&mut self) {
        self.span = Span::default();
        (self.queries, self.responses, self.packets) = (0, 0, 0);
        self.counts.0.clear();
        self.top.0.clear();
        self.underscored.clear();
        self.malformed = 0;
        self.malformed_senders.clear();
        self.summary.clear();
        self.summary_seen.clear();
        self.alone.entries.clear();
        self.alone.open.clear();
        self.qtypes.clear();
        self.rcodes = [0; 16];
        self.names.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: i64, src: &str, dst: &str, id: u16, resp: bool, q: &[(&str, u16)]) -> Message {
        let mut m = Message::new();
        m.time_us = t;
        m.source = src.parse().unwrap_or(m.source);
        m.dest = dst.parse().unwrap_or(m.dest);
        m.id = id;
        m.flags = if resp { 0x8183 } else { 0x0100 };
        m.has_header = true;
        for (n, t) in q {
            m.push_query(n, *t, 1);
        }
        m
    }

    #[test]
    fn alone_matches_one_for_one_either_order() {
        let mut r = Reducers::new(&[Kind::AlonePackets], Options::default());
        let c = "192.0.2.1";
        let s = "198.51.100.53";
        // Two queries of the same key, one answer: one query alone.
        r.add(&msg(0, c, s, 1, false, &[("a.example", 1)]));
        r.add(&msg(1, c, s, 1, false, &[("a.example", 1)]));
        r.add(&msg(2, s, c, 1, true, &[("a.example", 1)]));
        // The answer before its query: matched.
        r.add(&msg(3, s, c, 2, true, &[("b.example", 1)]));
        r.add(&msg(4, c, s, 2, false, &[("b.example", 1)]));
        // Another id: alone.
        r.add(&msg(5, s, c, 3, true, &[("c.example", 28)]));
        let out = r.take();
        assert_eq!(
            out[0].1,
            json!({"queries": [{"sender": c, "server": s, "id": "0x0001",
                   "query": {"qname": "a.example", "qtype": "A", "qclass": "IN"}}],
                   "answers": [{"sender": c, "server": s, "id": "0x0003",
                   "query": {"qname": "c.example", "qtype": "AAAA", "qclass": "IN"}}]})
        );
        // Fresh after the window.
        assert_eq!(r.take()[0].1, json!({"queries": [], "answers": []}));
    }

    #[test]
    fn rates_and_bounds() {
        let s = Span {
            first_us: 1_000_000,
            last_us: 3_000_000,
            messages: 5,
        };
        assert_eq!(s.rate(4), 2.0);
        assert_eq!(Span::default().rate(3), 3.0);
        let mut r = Reducers::new(
            &[Kind::QueriesNameCounter, Kind::TopNQ],
            Options {
                top: 1,
                max_entries: 2,
            },
        );
        for n in ["a", "b", "c", "b"] {
            r.add(&msg(0, "10.0.0.1", "10.0.0.2", 1, false, &[(n, 1)]));
        }
        let out = r.take();
        assert_eq!(out[0].1, json!({"a": 1, "b": 2}));
        assert_eq!(out[1].1, json!([["b", 2]]));
        assert_eq!(r.dropped, 1);
        assert!(Kind::parse_list("TopNQ, nope").is_err());
        assert_eq!(
            Kind::parse_list("all").map(|v| v.len()),
            Ok(Kind::ALL.len())
        );
    }
}
