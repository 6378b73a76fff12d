//! The aggregator's state and queries, on hand-made windows.

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
