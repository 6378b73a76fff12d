//! A lookup costs what its page holds, not what the query matches: over
//! 100,000 records under `*.com`, a `limit=1` wildcard page examines a
//! couple of store entries (issue 19, point 5: each such lookup read and
//! sorted every matching record, about 0.1 CPU-s per query on 200,000
//! records). The memory side is tested on the real binary
//! (`crates/d4/tests/integration/pdns.rs`).
#![allow(missing_docs, clippy::unwrap_used)]

use d4_pdns::record::Record;
use d4_pdns::serve::{lookup, Params, MAX_SKIP};
use d4_pdns::store::Store;

#[test]
fn a_wildcard_page_costs_its_limit_not_the_matching_set() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    const N: u64 = 100_000;
    let batch: Vec<Record> = (0..N)
        .map(|i| {
            Record::new(
                &format!("host{}.zone{}.example{}.com", i / 1000, i % 1000, i % 7),
                "A",
                &format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
                1_700_000_000 + i,
                1,
            )
        })
        .collect();
    store.upsert(&batch).unwrap();
    drop(batch);
    assert_eq!(store.len().unwrap(), N);

    let one = Params {
        limit: Some(1),
        ..Params::default()
    };
    let page = lookup(&store, "*.com", &one).unwrap();
    assert_eq!(page.records.len(), 1);
    assert!(page.next.is_some());
    // The record, and the next one that shows a second page.
    assert!(page.examined <= 2, "examined {}", page.examined);

    // The next page goes on from the cursor at the same cost.
    let second = Params {
        limit: Some(1),
        cursor: page.next.clone(),
        ..Params::default()
    };
    let page2 = lookup(&store, "*.com", &second).unwrap();
    assert_eq!(page2.records.len(), 1);
    assert_ne!(page2.records[0].rrname, page.records[0].rrname);
    assert!(page2.examined <= 2, "examined {}", page2.examined);

    // A filter that skips everything: the page stops at its budget and
    // says where to go on.
    let none = Params {
        limit: Some(1),
        rrtype: Some("AAAA".into()),
        ..Params::default()
    };
    let page = lookup(&store, "*.com", &none).unwrap();
    assert!(page.records.is_empty());
    assert_eq!(page.examined, 1 + MAX_SKIP as u64);
    assert!(page.next.is_some());

    // By name and by address: one record read.
    let page = lookup(&store, "host0.zone5.example5.com", &one).unwrap();
    assert_eq!((page.records.len(), page.examined), (1, 1));
    let page = lookup(&store, "10.0.0.5", &one).unwrap();
    assert_eq!((page.records.len(), page.examined), (1, 1));
}
