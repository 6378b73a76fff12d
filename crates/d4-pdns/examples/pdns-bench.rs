//! Benchmark helpers for `scripts/bench-pdns.sh`.
//!
//! - `pdns-bench cli ARGS...`: the `d4 pdns` commands without the rest of
//!   `d4` (same code: [`d4_pdns::run`]), so the benchmark needs no full build.
//! - `pdns-bench gen LINES KEYS`: passivedns lines for KEYS distinct
//!   records (`host<k/1000>.zone<k%1000>.example.org A 10.x.y.z`), each line
//!   a pseudo-random one of them.
//! - `pdns-bench load BASE KEYS RATE SECONDS CONNS`: GET `/query/<name>`
//!   of random stored names at a fixed total RATE over CONNS keep-alive
//!   connections (open loop: latency counted from each request's scheduled
//!   time, so a stall is not hidden), then p50/p90/p99/max.
#![allow(clippy::unwrap_used)]

use std::io::{BufWriter, Write};

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: d4_pdns::PdnsCmd,
}

use d4_api::loadgen::mix;

fn gen(lines: u64, keys: u64) {
    let out = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, out.lock());
    for i in 0..lines {
        let k = if keys >= lines { i } else { mix(i) % keys };
        writeln!(
            w,
            "{}.{:06}||10.0.0.{}||192.0.2.53||IN||host{}.zone{}.example.org.||A||10.{}.{}.{}||300||1",
            1_700_000_000 + i / 10_000,
            i % 1_000_000,
            i % 250,
            k / 1000,
            k % 1000,
            (k >> 16) & 255,
            (k >> 8) & 255,
            k & 255
        )
        .unwrap();
    }
    w.flush().unwrap();
}

fn load(base: &str, keys: u64, rate: f64, secs: f64, conns: usize) {
    d4_api::loadgen::run(base, rate, secs, conns, move |i| {
        let k = mix(i) % keys;
        format!("/query/host{}.zone{}.example.org", k / 1000, k % 1000)
    })
    .unwrap();
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("cli") => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
                )
                .with_writer(std::io::stderr)
                .init();
            let cli =
                Cli::parse_from(std::iter::once("pdns".to_string()).chain(a[2..].iter().cloned()));
            // No signal handling: the script ends `serve` with a plain kill.
            if let Err(e) = d4_pdns::run(cli.cmd, d4_pdns::cli::Shutdown::new()) {
                eprintln!("pdns: error: {e:#}");
                std::process::exit(1);
            }
        }
        Some("gen") => gen(a[2].parse().unwrap(), a[3].parse().unwrap()),
        Some("load") => load(
            &a[2],
            a[3].parse().unwrap(),
            a[4].parse().unwrap(),
            a[5].parse().unwrap(),
            a[6].parse().unwrap(),
        ),
        _ => {
            eprintln!(
                "usage: pdns-bench cli ARGS | gen LINES KEYS | load BASE KEYS RATE SECONDS CONNS"
            );
            std::process::exit(2);
        }
    }
}
