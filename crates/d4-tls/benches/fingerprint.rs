//! Benchmarks: handshakes fingerprinted per second on a capture built here
//! (per flow: SYN, a GREASE ClientHello, ServerHello + Certificate in one
//! segment, then application data that is no longer reassembled), and the
//! ClientHello parser + JA3/JA4 alone. The end-to-end figures (CPU-seconds
//! per GB of mostly bulk TLS, next to a baseline) come from
//! `scripts/tls-bench.sh`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use d4_tls::hello::{client_hello, ClientHello};
use d4_tls::session::{Config, Fingerprinter};

fn frame(i: u32, to_server: bool, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let c = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    let s = [192, 0, 2, 10];
    let (src, dst, sp, dp) = if to_server {
        (c, s, 40000 + (i % 20000) as u16, 443u16)
    } else {
        (s, c, 443, 40000 + (i % 20000) as u16)
    };
    let total = (40 + data.len()) as u16;
    let mut f = vec![0x45, 0];
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(data);
    f
}

fn record(ct: u8, hs_type: Option<u8>, body: &[u8]) -> Vec<u8> {
    let mut inner = Vec::new();
    if let Some(t) = hs_type {
        inner.push(t);
        inner.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    }
    inner.extend_from_slice(body);
    let mut r = vec![ct, 3, 3];
    r.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    r.extend_from_slice(&inner);
    r
}

fn hello() -> ClientHello {
    ClientHello {
        version: 0x0303,
        ciphers: vec![
            0x1a1a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
            0xc014, 0x9c, 0x9d, 0x2f, 0x35,
        ],
        extensions: vec![
            0x2a2a, 0, 23, 65281, 10, 11, 35, 16, 5, 13, 18, 51, 45, 43, 27, 17513, 0x3a3a, 21,
        ],
        curves: vec![0x4a4a, 29, 23, 24],
        point_formats: vec![0],
        sni: Some("www.example.com".into()),
        alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        versions: vec![0x5a5a, 0x0304, 0x0303],
        sig_algs: vec![
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ],
    }
}

/// Frames of `n` TLS 1.2 connections, each with `bulk` application-data
/// records of 1400 bytes from the server.
fn capture(n: u32, bulk: u32) -> Vec<Vec<u8>> {
    let ch = record(22, Some(1), &hello().build());
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[9; 32]);
    sh.extend_from_slice(&[0, 0xc0, 0x2f, 0, 0, 5, 0xff, 0x01, 0, 1, 0]);
    let mut cert_body = Vec::new();
    let der: Vec<u8> = [0x30, 0x82, 0x04, 0xb0]
        .into_iter()
        .chain((0..1200).map(|i| i as u8))
        .collect();
    cert_body.extend_from_slice(&((der.len() + 3) as u32).to_be_bytes()[1..]);
    cert_body.extend_from_slice(&(der.len() as u32).to_be_bytes()[1..]);
    cert_body.extend_from_slice(&der);
    let mut server = record(22, Some(2), &sh);
    server.extend_from_slice(&record(22, Some(11), &cert_body));
    let app = record(23, None, &[0x5a; 1395]);
    let mut frames = Vec::new();
    for i in 0..n {
        frames.push(frame(i, true, 99, 0x02, &[]));
        frames.push(frame(i, true, 100, 0x18, &ch));
        frames.push(frame(i, false, 500, 0x18, &server));
        let mut seq = 500 + server.len() as u32;
        for _ in 0..bulk {
            frames.push(frame(i, false, seq, 0x18, &app));
            seq += app.len() as u32;
        }
    }
    frames
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("fingerprint");
    let n = 2000;
    for bulk in [0u32, 20] {
        let frames = capture(n, bulk);
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_function(format!("handshakes_bulk{bulk}"), |b| {
            b.iter(|| {
                let mut x = Fingerprinter::new(Config::default());
                let mut recs = 0u64;
                for (i, f) in frames.iter().enumerate() {
                    x.frame(101, 1_700_000_000, i as u32 % 1_000_000, f, &mut |_| {
                        recs += 1
                    });
                }
                x.finish(&mut |_| recs += 1);
                assert_eq!(recs, u64::from(n));
                black_box(recs)
            })
        });
    }
    let body = hello().build();
    g.throughput(Throughput::Elements(1));
    g.bench_function("client_hello_ja3_ja4", |b| {
        b.iter(|| {
            let h = client_hello(black_box(&body)).unwrap();
            black_box((h.ja3(), h.ja4()))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
