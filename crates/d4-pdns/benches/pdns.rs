//! Benchmarks: extract (packets → records), passivedns line parsing, and
//! store upserts (observations → redb). End-to-end figures (ingest
//! records per CPU-second, lookup latency at a fixed rate over 10 M
//! records) come from `scripts/bench-pdns.sh`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use d4_packet::capture::{CaptureReader, Packet};
use d4_pdns::extract::{ExtractConfig, Extractor};
use d4_pdns::record::{parse_line, Record};
use d4_pdns::store::{Pending, Store};

fn capture_packets() -> Option<Vec<Packet>> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pcap/dns/zeek__dns-edns-ecs.pcap");
    let f = std::fs::File::open(p).ok()?;
    let mut r = CaptureReader::new(f).ok()?;
    let mut v = Vec::new();
    while let Ok(Some(p)) = r.next_packet() {
        v.push(p);
    }
    Some(v)
}

fn line(i: u64) -> String {
    format!(
        "{}.{:06}||10.0.{}.{}||192.0.2.53||IN||host{}.zone{}.example.org.||A||10.{}.{}.{}||300||1",
        1_700_000_000 + i / 1000,
        i % 1_000_000,
        (i >> 8) & 255,
        i & 255,
        i / 1000,
        i % 1000,
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255
    )
}

fn bench(c: &mut Criterion) {
    if let Some(pkts) = capture_packets() {
        let mut g = c.benchmark_group("extract");
        g.throughput(Throughput::Elements(pkts.len() as u64));
        g.bench_function("zeek_dns_edns_ecs_packets", |b| {
            b.iter(|| {
                let mut x = Extractor::new(ExtractConfig::default());
                let mut n = 0usize;
                for p in &pkts {
                    x.packet(p, false, &mut |r| n += r.rdata.len());
                }
                black_box(n)
            })
        });
        g.finish();
    } else {
        eprintln!("skipped extract: ../shared not found");
    }

    let lines: Vec<String> = (0..10_000).map(line).collect();
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("parse_passivedns_line", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(parse_line(l).unwrap());
            }
        })
    });
    // The in-memory merge alone (its hash map is the ingest path's): 100k
    // observations over 50k distinct records.
    let obs: Vec<Record> = (0..100_000u64)
        .map(|i| parse_line(&line(i % 50_000)).unwrap())
        .collect();
    g.throughput(Throughput::Elements(obs.len() as u64));
    g.bench_function("pending_merge_100k_observations", |b| {
        b.iter(|| {
            let mut p = Pending::default();
            for o in &obs {
                p.add(o);
            }
            black_box(p.len())
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("bench.redb")).unwrap());
    let mut next = 0u64;
    const BATCH: u64 = 50_000;
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    g.bench_function("upsert_50k_new_records", |b| {
        b.iter_batched(
            || {
                let v: Vec<Record> = (next..next + BATCH)
                    .map(|i| parse_line(&line(i)).unwrap())
                    .collect();
                next += BATCH;
                v
            },
            |v| store.upsert(&v).unwrap(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
