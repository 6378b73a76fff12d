//! The reducers on pre-parsed messages (messages per second): all of them
//! at once, then each alone; and the walk + JSON encoding of the
//! serializer per message, for scale.
//!
//! `cargo bench -p d4-dns --bench reducers`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use d4_dns::message::{Message, Sections};
use d4_dns::reduce::reducers::{Kind, Options, Reducers};
use d4_packet::testdata::build::dns;

/// 10,000 messages: 5,000 queries and their responses (one in 25 without)
/// over 2,000 names, 250 clients, one name in 50 with a `_`, one message
/// in 500 malformed.
fn messages() -> Vec<Message> {
    let mut v = Vec::new();
    for i in 0u32..10_000 {
        let j = i / 2;
        let name = if j % 50 == 0 {
            format!("_srv{}.example.org", j % 2000)
        } else {
            format!("host{}.domain{}.example", j % 2000, j % 97)
        };
        let resp = i % 2 == 1;
        let id = if resp && j % 25 == 0 { j + 1 } else { j };
        let wire = dns(id as u16, &name, [1, 28, 15, 6][j as usize % 4], resp);
        let mut m = Message::new();
        if i % 500 == 0 {
            let _ = m.decode(&wire[..5], Sections::QUERIES);
        } else {
            let _ = m.decode(&wire, Sections::QUERIES);
        }
        let client = format!("10.0.0.{}", j % 250);
        let (c, s) = (
            client.parse().unwrap_or(m.source),
            "192.0.2.53".parse().unwrap_or(m.source),
        );
        (m.source, m.dest) = if resp { (s, c) } else { (c, s) };
        m.time_us = 1_700_000_000_000_000 + i64::from(i) * 100;
        v.push(m);
    }
    v
}

fn bench(c: &mut Criterion) {
    let msgs = messages();
    let mut g = c.benchmark_group("reduce");
    g.throughput(Throughput::Elements(msgs.len() as u64));
    let mut sets: Vec<(String, Vec<Kind>)> = vec![("all".into(), Kind::ALL.to_vec())];
    sets.extend(Kind::ALL.iter().map(|k| (k.name().to_string(), vec![*k])));
    for (name, kinds) in sets {
        g.bench_function(&name, |b| {
            b.iter_batched_ref(
                || Reducers::new(&kinds, Options::default()),
                |r| {
                    for m in &msgs {
                        r.add(m);
                    }
                    r.take()
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
    // The serializer's per-message work: walk the wire, write the JSON.
    let wires: Vec<Vec<u8>> = (0u32..10_000)
        .map(|i| {
            dns(
                i as u16,
                &format!("host{}.example", i % 2000),
                1,
                i % 2 == 1,
            )
        })
        .collect();
    let mut g = c.benchmark_group("serialize");
    g.throughput(Throughput::Elements(wires.len() as u64));
    g.bench_function("decode+json", |b| {
        let mut m = Message::new();
        let mut out = Vec::with_capacity(1 << 20);
        b.iter(|| {
            out.clear();
            for w in &wires {
                let _ = m.decode(w, Sections::DEFAULT);
                m.write_json(&mut out);
            }
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
