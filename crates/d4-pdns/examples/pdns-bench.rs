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

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: d4_pdns::PdnsCmd,
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

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

/// One keep-alive GET; returns when the whole body is read.
fn get(r: &mut BufReader<TcpStream>, host: &str, path: &str) -> std::io::Result<u16> {
    write!(
        r.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n"
    )?;
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line
            .to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().to_string())
        {
            len = v.parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(status)
}

fn load(base: &str, keys: u64, rate: f64, secs: f64, conns: usize) {
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let per = rate / conns as f64;
    let n = (per * secs) as u64;
    let start = Instant::now() + Duration::from_millis(200);
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let host = host.clone();
            std::thread::spawn(move || {
                let s = TcpStream::connect(&host).unwrap();
                s.set_nodelay(true).unwrap();
                let mut r = BufReader::new(s);
                let mut lat = Vec::with_capacity(n as usize);
                let mut errors = 0u64;
                for i in 0..n {
                    let due =
                        start + Duration::from_secs_f64((i as f64 + c as f64 / conns as f64) / per);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let k = mix(i * conns as u64 + c as u64) % keys;
                    let path = format!("/query/host{}.zone{}.example.org", k / 1000, k % 1000);
                    match get(&mut r, &host, &path) {
                        Ok(200) => {}
                        _ => errors += 1,
                    }
                    lat.push((
                        due.elapsed().as_micros() as u64,
                        due.duration_since(start).as_millis() as u64,
                    ));
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut slow = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.join().unwrap();
        for (us, at) in l {
            all.push(us);
            if us >= 50_000 {
                slow.push(at);
            }
        }
        errors += e;
    }
    slow.sort_unstable();
    let took = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let q = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0;
    println!(
        "{} requests in {took:.1} s ({:.0}/s achieved, {rate:.0}/s asked), {errors} errors; latency ms: p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}",
        all.len(),
        all.len() as f64 / took,
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
    if let (Some(a), Some(b)) = (slow.first(), slow.last()) {
        println!(
            "{} requests over 50 ms, scheduled between {:.1} s and {:.1} s",
            slow.len(),
            *a as f64 / 1000.0,
            *b as f64 / 1000.0
        );
    }
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
