//! Encode and decode throughput of the D4 codec (HMAC-SHA-256 dominates).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use d4_proto::{Decoder, FrameEncoder, Signer};
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let enc = FrameEncoder::new(
        Signer::new(b"private key to change"),
        1,
        1,
        Uuid::from_bytes([0x42; 16]),
    );
    for size in [4096usize, 65_535] {
        let payload = vec![0xa5u8; size];
        let mut g = c.benchmark_group(format!("frame_{size}"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("encode_header", |b| {
            b.iter(|| enc.header(1_704_067_200, &payload))
        });
        let mut wire = Vec::new();
        for _ in 0..64 {
            enc.encode_into(1_704_067_200, &payload, &mut wire);
        }
        let signer = Signer::new(b"private key to change");
        g.throughput(Throughput::Bytes(64 * size as u64));
        g.bench_function("decode_verify_64", |b| {
            b.iter_batched(
                || Decoder::new(1_000_000),
                |mut d| {
                    d.push(&wire);
                    let mut ok = 0;
                    while let Ok(Some(f)) = d.next_frame() {
                        ok += signer.verify(&f.header_bytes, &f.payload) as usize;
                    }
                    assert_eq!(ok, 64);
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
