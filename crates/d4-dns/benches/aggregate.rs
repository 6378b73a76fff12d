//! Benchmarks of `d4 dns aggregate`'s state: envelopes taken per second
//! (parsed and filed into the buckets) in steady state — 16 monitors, one
//! window of each of the 11 reducers per monitor per second, names drawn
//! from 20,000, the state holding its full 15 minutes — and the cost of a
//! summary over that state (what each live page costs once a second, and
//! each API call). Before criterion runs, the CPU seconds of taking one
//! million envelopes are printed (utime + stime of this process, from
//! /proc/self/stat), for docs/BENCHMARKS.md.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use d4_dns::aggregate::envelope;
use d4_dns::aggregate::spans::{Aggregator, Span};
use serde_json::{json, Value};

const MONITORS: usize = 16;
const NAMES: usize = 20_000;

/// A cheap deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Skewed towards small numbers (popular names).
    fn name(&mut self) -> String {
        let r = self.next() % NAMES as u64;
        let k = (r * r) / NAMES as u64;
        format!("host{k}.zone{}.example", k % 97)
    }
}

fn env(ty: &str, server: &str, data: Value) -> Vec<u8> {
    json!({"type": ty, "serverId": server, "data": data})
        .to_string()
        .into_bytes()
}

/// One second of the windows of every monitor: 11 envelopes each.
fn second(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for m in 0..MONITORS {
        let s = format!("ns-{m:02}");
        let qps = 100.0 + (rng.next() % 1000) as f64 / 10.0;
        out.push(env("QueriesPerSecond", &s, json!({"qps": qps})));
        out.push(env("AnswersPerSecond", &s, json!({"aps": qps - 1.0})));
        out.push(env("PacketsPerSecond", &s, json!({"pps": 2.0 * qps})));
        let mut names = serde_json::Map::new();
        for _ in 0..100 {
            names.insert(rng.name(), json!(1 + rng.next() % 20));
        }
        let top: Vec<Value> = names.iter().take(10).map(|(k, v)| json!([k, v])).collect();
        out.push(env("QueriesNameCounter", &s, Value::Object(names)));
        out.push(env("TopNQ", &s, Value::Array(top)));
        out.push(env(
            "QtypeCounter",
            &s,
            json!({"A": 70, "AAAA": 25, "MX": 2, "TXT": 2, "PTR": 1}),
        ));
        out.push(env(
            "RcodeCounter",
            &s,
            json!({"NOERROR": 95, "NXDOMAIN": 5}),
        ));
        let mut clients = serde_json::Map::new();
        for c in 0..20 {
            clients.insert(
                format!("10.{m}.{}.{}", c / 250, c % 250 + (rng.next() % 3) as usize),
                json!({"A": [rng.name(), rng.name()], "AAAA": [rng.name()]}),
            );
        }
        out.push(env("PacketSummary", &s, Value::Object(clients)));
        let q = |n: &str| {
            json!({"sender": "10.0.0.1", "server": "192.0.2.53", "id": "0x1234",
                   "query": {"qname": n, "qtype": 1, "qclass": 1}})
        };
        out.push(env(
            "QueriesWithUnderscoredName",
            &s,
            json!({"_ldap._tcp.example": [q("_ldap._tcp.example")]}),
        ));
        out.push(env(
            "AlonePackets",
            &s,
            json!({"queries": [q("lost.example")], "answers": []}),
        ));
        out.push(env(
            "MalformedPackets",
            &s,
            json!({"count": 1, "senders": {"203.0.113.9": 1}}),
        ));
    }
    out
}

/// `seconds` seconds of windows.
fn feed(seconds: usize) -> Vec<Vec<Vec<u8>>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..seconds).map(|_| second(&mut rng)).collect()
}

/// A state holding 15 minutes of `feed`, and the time after it.
fn steady(f: &[Vec<Vec<u8>>]) -> (Aggregator, i64) {
    let mut a = Aggregator::default();
    let mut t = 1_700_000_000;
    for s in f.iter().cycle().take(900) {
        for m in s {
            a.take(m, t).unwrap();
        }
        t += 1;
    }
    (a, t)
}

/// utime + stime of this process, in seconds.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the file; 12 and 13 after the name's ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn report_cpu() {
    let f = feed(60);
    let per_second: usize = f[0].len();
    let bytes: usize = f.iter().flatten().map(Vec::len).sum::<usize>() / f.len();
    let (mut a, mut t) = steady(&f);
    let target = 1_000_000;
    let (mut n, start) = (0usize, cpu_seconds());
    while n < target {
        for s in &f {
            for m in s {
                a.take(m, t).unwrap();
            }
            n += s.len();
            t += 1;
        }
    }
    let cpu = cpu_seconds() - start;
    println!(
        "take: {n} envelopes ({per_second} a second of feed, {bytes} bytes a second) in {cpu:.2} CPU-s: {:.0} envelopes/CPU-s, {:.2} CPU-s per million",
        n as f64 / cpu,
        cpu * 1e6 / n as f64
    );
    let start = cpu_seconds();
    for _ in 0..20 {
        black_box(a.summary(Span::M15, t, 20));
    }
    println!(
        "summary 15m over a full state ({:?}): {:.1} CPU-ms each",
        a.usage(),
        (cpu_seconds() - start) * 1000.0 / 20.0
    );
}

fn bench(c: &mut Criterion) {
    let f = feed(60);
    let one: Vec<Vec<u8>> = f[0].clone();
    let mut g = c.benchmark_group("aggregate");
    g.throughput(Throughput::Elements(one.len() as u64));
    g.bench_function("parse_one_second_of_16_monitors", |b| {
        b.iter(|| {
            for m in &one {
                black_box(envelope::parse(m, envelope::MAX_MESSAGE_BYTES).unwrap());
            }
        })
    });
    let (mut a, mut t) = steady(&f);
    let mut i = 0;
    g.bench_function("take_one_second_of_16_monitors_steady", |b| {
        b.iter(|| {
            for m in &f[i % f.len()] {
                a.take(m, t).unwrap();
            }
            i += 1;
            t += 1;
        })
    });
    g.throughput(Throughput::Elements(1));
    for span in [Span::M1, Span::M15] {
        g.bench_function(format!("summary_{}_full_state", span.as_str()), |b| {
            b.iter_batched(
                || (),
                |()| black_box(a.summary(span, t, 20)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    report_cpu();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
