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

use crate::message::{json_str, push_hex4, push_ip, push_u64, qtype, Message};

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

    /// The name numbers sorted by name, and each number's rank in that
    /// order: one sort per window, shared by every reducer that writes
    /// names in order.
    fn order(&self) -> (Vec<NameId>, Vec<u32>) {
        let mut order: Vec<NameId> = (0..self.list.len() as NameId).collect();
        order.sort_unstable_by(|a, b| self.get(*a).cmp(self.get(*b)));
        let mut rank = vec![0u32; order.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        (order, rank)
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

/// `{"qname":..,"qtype":..,"qclass":..}`, mnemonics.
fn write_query(out: &mut Vec<u8>, name: &str, qtype: u16, qclass: u16) {
    out.extend_from_slice(b"{\"qname\":");
    json_str(out, name);
    out.extend_from_slice(b",\"qtype\":");
    json_str(out, &type_name(qtype));
    out.extend_from_slice(b",\"qclass\":");
    json_str(out, &class_name(qclass));
    out.push(b'}');
}

/// `"<ip>"`.
fn write_ip(out: &mut Vec<u8>, a: IpAddr) {
    out.push(b'"');
    push_ip(out, a);
    out.push(b'"');
}

/// A rate as JSON (ryu's shortest form, as serde_json writes floats).
fn write_f64(out: &mut Vec<u8>, v: f64) {
    let _ = serde_json::to_writer(&mut *out, &v);
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

    /// (name, count) of the names counted, by name (`order`: the name
    /// numbers sorted by name).
    fn sorted(&mut self, order: &[NameId]) -> Vec<(NameId, u64)> {
        let v = order
            .iter()
            .filter_map(|&i| match self.0.get(i as usize) {
                Some(&n) if n > 0 => Some((i, n)),
                _ => None,
            })
            .collect();
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

    fn take(&mut self, names: &Names, out: &mut Vec<u8>) {
        for query in [true, false] {
            out.extend_from_slice(if query {
                b"{\"queries\":["
            } else {
                b"],\"answers\":["
            });
            let mut first = true;
            for p in self
                .entries
                .iter()
                .filter(|p| !p.matched && p.query == query)
            {
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(b"{\"sender\":");
                write_ip(out, p.client);
                out.extend_from_slice(b",\"server\":");
                write_ip(out, p.server);
                out.extend_from_slice(b",\"id\":\"0x");
                push_hex4(out, p.id);
                out.extend_from_slice(b"\",\"query\":");
                write_query(out, names.get(p.name), p.qtype, p.qclass);
                out.push(b'}');
            }
        }
        out.extend_from_slice(b"]}");
        self.entries.clear();
        self.open.clear();
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

    /// Ends the window: each reducer's data (JSON text), in order, and all
    /// start afresh.
    pub fn take(&mut self) -> Vec<(Kind, Vec<u8>)> {
        let span = self.span;
        let (order, rank) = if self.need_names {
            self.names.order()
        } else {
            (Vec::new(), Vec::new())
        };
        let rank_of = |i: NameId| rank.get(i as usize).copied().unwrap_or(u32::MAX);
        let mut all = Vec::with_capacity(self.active.len());
        for k in self.active.clone() {
            let mut out = Vec::new();
            let o = &mut out;
            match k {
                Kind::QueriesPerSecond | Kind::AnswersPerSecond | Kind::PacketsPerSecond => {
                    let (key, n): (&[u8], u64) = match k {
                        Kind::QueriesPerSecond => (b"{\"qps\":", self.queries),
                        Kind::AnswersPerSecond => (b"{\"aps\":", self.responses),
                        _ => (b"{\"pps\":", self.packets),
                    };
                    o.extend_from_slice(key);
                    write_f64(o, span.rate(n));
                    o.push(b'}');
                }
                Kind::QueriesNameCounter => {
                    o.push(b'{');
                    for (i, (name, n)) in self.counts.sorted(&order).into_iter().enumerate() {
                        if i > 0 {
                            o.push(b',');
                        }
                        json_str(o, self.names.get(name));
                        o.push(b':');
                        push_u64(o, n);
                    }
                    o.push(b'}');
                }
                Kind::TopNQ => {
                    let mut v = self.top.sorted(&order);
                    let n = self.opt.top.min(v.len());
                    let by_count = |a: &(NameId, u64), b: &(NameId, u64)| {
                        b.1.cmp(&a.1).then_with(|| rank_of(a.0).cmp(&rank_of(b.0)))
                    };
                    if n > 0 && n < v.len() {
                        v.select_nth_unstable_by(n - 1, by_count);
                    }
                    v.truncate(n);
                    v.sort_by(by_count);
                    o.push(b'[');
                    for (i, (name, c)) in v.into_iter().enumerate() {
                        if i > 0 {
                            o.push(b',');
                        }
                        o.push(b'[');
                        json_str(o, self.names.get(name));
                        o.push(b',');
                        push_u64(o, c);
                        o.push(b']');
                    }
                    o.push(b']');
                }
                Kind::QueriesWithUnderscoredName => {
                    let mut v = std::mem::take(&mut self.underscored);
                    // By name (stable: each name's entries in order of arrival).
                    v.sort_by_key(|u| rank_of(u.name));
                    o.push(b'{');
                    let mut last = None;
                    for u in &v {
                        let name = self.names.get(u.name);
                        if last == Some(u.name) {
                            o.push(b',');
                        } else {
                            if last.is_some() {
                                o.extend_from_slice(b"],");
                            }
                            json_str(o, name);
                            o.extend_from_slice(b":[");
                            last = Some(u.name);
                        }
                        o.extend_from_slice(b"{\"sender\":");
                        write_ip(o, u.sender);
                        o.extend_from_slice(b",\"server\":");
                        write_ip(o, u.server);
                        o.extend_from_slice(b",\"query\":");
                        write_query(o, name, u.qtype, u.qclass);
                        o.push(b'}');
                    }
                    if last.is_some() {
                        o.push(b']');
                    }
                    o.push(b'}');
                    v.clear();
                    self.underscored = v;
                }
                Kind::MalformedPackets => {
                    let mut senders: Vec<_> = self.malformed_senders.drain().collect();
                    senders.sort();
                    o.extend_from_slice(b"{\"count\":");
                    push_u64(o, self.malformed);
                    o.extend_from_slice(b",\"senders\":{");
                    for (i, (ip, n)) in senders.into_iter().enumerate() {
                        if i > 0 {
                            o.push(b',');
                        }
                        write_ip(o, ip);
                        o.push(b':');
                        push_u64(o, n);
                    }
                    o.extend_from_slice(b"}}");
                }
                Kind::PacketSummary => {
                    let mut groups: Vec<_> = self.summary.drain().collect();
                    groups.sort_by_key(|((ip, t), _)| (*ip, *t));
                    o.push(b'{');
                    let mut last = None;
                    for ((ip, t), names) in groups {
                        if last == Some(ip) {
                            o.push(b',');
                        } else {
                            if last.is_some() {
                                o.extend_from_slice(b"},");
                            }
                            write_ip(o, ip);
                            o.extend_from_slice(b":{");
                            last = Some(ip);
                        }
                        json_str(o, &type_name(t));
                        o.extend_from_slice(b":[");
                        for (i, n) in names.into_iter().enumerate() {
                            if i > 0 {
                                o.push(b',');
                            }
                            json_str(o, self.names.get(n));
                        }
                        o.push(b']');
                    }
                    if last.is_some() {
                        o.push(b'}');
                    }
                    o.push(b'}');
                    self.summary_seen.clear();
                }
                Kind::AlonePackets => self.alone.take(&self.names, o),
                Kind::QtypeCounter => {
                    let mut v: Vec<_> = self.qtypes.drain().collect();
                    v.sort();
                    o.push(b'{');
                    for (i, (t, n)) in v.into_iter().enumerate() {
                        if i > 0 {
                            o.push(b',');
                        }
                        json_str(o, &type_name(t));
                        o.push(b':');
                        push_u64(o, n);
                    }
                    o.push(b'}');
                }
                Kind::RcodeCounter => {
                    o.push(b'{');
                    let mut first = true;
                    for (r, n) in self.rcodes.iter().enumerate() {
                        if *n > 0 {
                            if !first {
                                o.push(b',');
                            }
                            first = false;
                            json_str(o, &rcode_name(r as u8));
                            o.push(b':');
                            push_u64(o, *n);
                        }
                    }
                    o.push(b'}');
                }
            }
            all.push((k, out));
        }
        self.reset();
        self.windows += 1;
        all
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
    use serde_json::{json, Value};

    fn data(v: &[(Kind, Vec<u8>)], i: usize) -> Value {
        serde_json::from_slice(&v[i].1).unwrap()
    }

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
            data(&out, 0),
            json!({"queries": [{"sender": c, "server": s, "id": "0x0001",
                   "query": {"qname": "a.example", "qtype": "A", "qclass": "IN"}}],
                   "answers": [{"sender": c, "server": s, "id": "0x0003",
                   "query": {"qname": "c.example", "qtype": "AAAA", "qclass": "IN"}}]})
        );
        // Fresh after the window.
        assert_eq!(data(&r.take(), 0), json!({"queries": [], "answers": []}));
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
        assert_eq!(data(&out, 0), json!({"a": 1, "b": 2}));
        assert_eq!(data(&out, 1), json!([["b", 2]]));
        assert_eq!(r.dropped, 1);
        assert!(Kind::parse_list("TopNQ, nope").is_err());
        assert_eq!(
            Kind::parse_list("all").map(|v| v.len()),
            Ok(Kind::ALL.len())
        );
    }
}
