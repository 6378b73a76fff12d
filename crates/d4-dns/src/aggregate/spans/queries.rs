//! What the aggregator tells: the dashboard's summary of a span, the top
//! names, the findings and the clients, computed from the buckets of the
//! [state](super) at the time the caller passes.

use super::*;

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

impl Aggregator {
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
