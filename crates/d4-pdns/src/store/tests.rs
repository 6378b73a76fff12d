use super::*;

fn obs(n: &str, t: &str, d: &str, time: u64, sensor: &str) -> Record {
    let mut o = Record::new(n, t, d, time, 1);
    o.sensors.push(sensor.into());
    o
}

#[test]
fn upserts_merge_per_name_type_rdata() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("pdns.redb")).unwrap();
    let st = s
        .upsert(&[
            obs("WWW.example.com.", "A", "192.0.2.1", 100, "s1"),
            obs("www.example.com", "A", "192.0.2.1", 50, "s2"),
            obs("www.example.com", "AAAA", "2001:db8::1", 70, "s1"),
            obs("mail.example.com", "A", "192.0.2.1", 10, "s1"),
            obs("example.com", "NS", "ns.example.net.", 10, "s1"),
            obs("wwwx.example.com", "A", "192.0.2.9", 10, "s1"),
        ])
        .unwrap();
    assert_eq!(
        st,
        UpsertStats {
            created: 5,
            updated: 0
        }
    );
    s.upsert(&[obs("www.example.com", "A", "192.0.2.1", 200, "s1")])
        .unwrap();
    let r = s.by_name("www.example.com", false, 100).unwrap();
    assert_eq!(r.len(), 2);
    let a = r.iter().find(|r| r.rrtype == "A").unwrap();
    assert_eq!((a.time_first, a.time_last, a.count), (50, 200, 3));
    assert_eq!(a.sensors, ["s1", "s2"]);
    let aaaa = r.iter().find(|r| r.rrtype == "AAAA").unwrap();
    assert_eq!((aaaa.time_first, aaaa.time_last, aaaa.count), (70, 70, 1));
    // Suffix: every name under example.com, not example.com itself.
    let mut w: Vec<_> = s
        .by_name("example.com", true, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.rrname)
        .collect();
    w.sort();
    w.dedup();
    assert_eq!(
        w,
        ["mail.example.com", "www.example.com", "wwwx.example.com"]
    );
    // Reverse index.
    let mut ip: Vec<_> = s
        .by_rdata("192.0.2.1", 100)
        .unwrap()
        .into_iter()
        .map(|r| (r.rrname, r.count))
        .collect();
    ip.sort();
    assert_eq!(
        ip,
        [
            ("mail.example.com".into(), 1),
            ("www.example.com".into(), 3)
        ]
    );
    assert_eq!(
        s.by_rdata("ns.example.net", 10).unwrap()[0].rrname,
        "example.com"
    );
    assert_eq!(s.len().unwrap(), 5);
    // Expiry of A records older than 100 s at t=205.
    let p = Policy {
        expiry: HashMap::from([("A".to_string(), 100)]),
        excluded: vec![],
    };
    assert_eq!(s.expire(&p, 205).unwrap(), 2);
    assert!(s.by_rdata("192.0.2.9", 10).unwrap().is_empty());
    assert_eq!(s.len().unwrap(), 3);
}

/// Every page of a scan, followed by its cursors.
fn all_pages(
    s: &Store,
    sel: &Select<'_>,
    f: &Filter,
    limit: usize,
    max_skip: usize,
) -> Vec<Record> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    for _ in 0..10_000 {
        let page = s.scan(sel, f, after.as_deref(), limit, max_skip).unwrap();
        assert!(page.records.len() <= limit);
        assert!(page.examined as usize <= limit + max_skip);
        out.extend(page.records);
        match page.next {
            Some(k) => after = Some(k),
            None => return out,
        }
    }
    panic!("the cursors never end");
}

#[test]
fn scan_pages_give_every_match_once_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("pdns.redb")).unwrap();
    let mut batch = Vec::new();
    for i in 0..300u64 {
        let name = format!("h{}.z{}.example.com", i % 37, i % 5);
        let (t, d) = match i % 4 {
            0 => ("AAAA", format!("2001:db8::{}", i % 7)),
            1 => ("CNAME", format!("t{}.example.net", i % 3)),
            _ => ("A", format!("192.0.2.{}", i % 11)),
        };
        batch.push(obs(&name, t, &d, 1000 + i, "s"));
    }
    batch.push(obs("example.com", "A", "192.0.2.1", 5, "s"));
    batch.push(obs("example.community", "A", "192.0.2.1", 5, "s"));
    s.upsert(&batch).unwrap();
    let everything: Vec<Record> = s.by_name("com", true, usize::MAX).unwrap();
    let filters = [
        Filter::default(),
        Filter {
            rrtype: Some("CNAME".into()),
            ..Filter::default()
        },
        Filter {
            time_first_after: Some(1100),
            time_last_before: Some(1250),
            ..Filter::default()
        },
        Filter {
            rrtype: Some("MX".into()),
            ..Filter::default()
        },
    ];
    let sels = [
        Select::Suffix("example.com"),
        Select::Suffix("z3.example.com"),
        Select::Name("h4.z4.example.com"),
        Select::Rdata("192.0.2.1"),
        Select::Rdata("t1.example.net"),
    ];
    for sel in &sels {
        for f in &filters {
            let matches = |r: &Record| {
                let sel_ok = match sel {
                    Select::Suffix(x) => r.rrname.ends_with(&format!(".{x}")),
                    Select::Name(x) => r.rrname == *x,
                    Select::Rdata(x) => r.rdata == *x,
                };
                sel_ok
                    && f.rrtype.as_ref().is_none_or(|t| &r.rrtype == t)
                    && f.time_first_after.is_none_or(|t| r.time_first > t)
                    && f.time_last_before.is_none_or(|t| r.time_last < t)
            };
            let mut want: Vec<_> = everything
                .iter()
                .chain(&s.by_rdata("192.0.2.1", usize::MAX).unwrap())
                .filter(|r| matches(r))
                .map(|r| (r.rrname.clone(), r.rrtype.clone(), r.rdata.clone()))
                .collect();
            want.sort();
            want.dedup();
            for (limit, skip) in [(1, 0), (1, 3), (4, 1), (7, 50), (1000, 10_000)] {
                let got: Vec<_> = all_pages(&s, sel, f, limit, skip)
                    .into_iter()
                    .map(|r| (r.rrname, r.rrtype, r.rdata))
                    .collect();
                let mut sorted = got.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(sorted.len(), got.len(), "{sel:?} {f:?}: a record twice");
                assert_eq!(sorted, want, "{sel:?} {f:?} limit {limit} skip {skip}");
            }
        }
    }
    // A cursor of another lookup is refused.
    let page = s
        .scan(
            &Select::Suffix("example.com"),
            &Filter::default(),
            None,
            1,
            0,
        )
        .unwrap();
    let other = s.scan(
        &Select::Rdata("192.0.2.1"),
        &Filter::default(),
        page.next.as_deref(),
        1,
        0,
    );
    assert!(matches!(other, Err(ScanError::Cursor)));
}

#[test]
fn exclusions_match_whole_labels() {
    let p = Policy {
        expiry: HashMap::new(),
        excluded: vec!["in-addr.arpa".into()],
    };
    assert!(p.excluded("1.2.3.4.in-addr.arpa"));
    assert!(p.excluded("in-addr.arpa"));
    assert!(!p.excluded("xin-addr.arpa"));
    assert_eq!(reverse_name("www.example.com"), "com.example.www");
    assert_eq!(reverse_name(&reverse_name("a.b.c")), "a.b.c");
}
