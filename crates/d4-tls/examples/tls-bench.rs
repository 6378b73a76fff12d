//! Benchmark helpers for `scripts/tls-lookup-bench.sh`.
//!
//! - `tls-bench cli ARGS...`: the `d4 tls` commands without the rest of
//!   `d4` (same code: [`d4_tls::run`]).
//! - `tls-bench gen SESSIONS CERTS HASHES`: SESSIONS ja3-jl lines on stdout
//!   (5,000 JA3s, 200 JA3Ss, 2,000 JA4s, clients in 10.0.0.0/8 and
//!   fd00::/16, 50,000 servers, SNI `host<k>.zone<z>.example.com`), each
//!   with one of CERTS certificates (rcgen, one key pair for all: made once,
//!   reused), whose SHA-1s are written to the file HASHES.
//! - `tls-bench load BASE RATE SECONDS CONNS HASHES [static]`: a mix of
//!   lookups (JA3, certificate, address, name, CIDR /24, *.suffix) at a
//!   fixed total rate (`d4_api::loadgen`); with `static`, only
//!   `/api/v1/openapi.json` (the baseline).
#![allow(clippy::unwrap_used)]

use std::io::{BufWriter, Write};

use base64::Engine;
use clap::Parser;
use d4_api::loadgen::mix;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: d4_tls::TlsCmd,
}

const JA3S: u64 = 5000;
const SERVERS: u64 = 50_000;

fn ja3(k: u64) -> String {
    format!("{:032x}", mix(k % JA3S) as u128 * 0x1_0000_0001)
}

fn client(i: u64) -> String {
    let k = mix(i ^ 0x5555);
    if k.is_multiple_of(5) {
        format!("fd00::{:x}:{:x}", (k >> 16) & 0xffff, k & 0xffff)
    } else {
        format!("10.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255)
    }
}

fn server(s: u64) -> String {
    format!("198.{}.{}.{}", 18 + (s >> 16) % 2, (s >> 8) & 255, s & 255)
}

fn gen(sessions: u64, certs: u64, hashes: &str) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut ders = Vec::new();
    let mut h = BufWriter::new(std::fs::File::create(hashes).unwrap());
    for c in 0..certs {
        let names = vec![
            format!("*.zone{c}.example.com"),
            format!("zone{c}.example.com"),
        ];
        let mut p = rcgen::CertificateParams::new(names).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("zone{c}.example.com"));
        let der = p.self_signed(&key).unwrap().der().to_vec();
        writeln!(h, "{}", d4_tls::cert::hex(&d4_tls::cert::sha1(&der))).unwrap();
        ders.push(b64.encode(&der));
    }
    h.flush().unwrap();
    let out = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, out.lock());
    for i in 0..sessions {
        let k = mix(i);
        let s = k % SERVERS;
        let c = s % certs;
        let t = 1_700_000_000 + i / 10;
        let ts = chrono::DateTime::from_timestamp(t as i64, 0)
            .unwrap()
            .to_rfc3339();
        writeln!(
            w,
            r#"{{"ServerIP":"{}","ServerPort":"443","ClientIP":"{}","ClientPort":"{}","TLSH":"","Timestamp":"{ts}","JA3":"771,4865-{},0-10,29,0","JA3Digest":"{}","JA3S":"771,4865,43","JA3SDigest":"{:032x}","JA4":"t13d1516h2_{:012x}_b186095e22b6","SNI":"host{}.zone{c}.example.com","Certificates":[{{"CertHash":"","Raw":"{}"}}]}}"#,
            server(s),
            client(i),
            1024 + k % 60000,
            k % JA3S,
            ja3(k),
            k % 200,
            k % 2000,
            s,
            ders[c as usize],
        )
        .unwrap();
    }
    w.flush().unwrap();
}

fn load(base: &str, rate: f64, secs: f64, conns: usize, hashes: &str, baseline: bool) {
    let certs: Vec<String> = std::fs::read_to_string(hashes)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    d4_api::loadgen::run(base, rate, secs, conns, move |i| {
        if baseline {
            return "/api/v1/openapi.json".into();
        }
        let k = mix(i ^ 0xabcdef);
        let s = k % SERVERS;
        let z = s % certs.len() as u64;
        match i % 20 {
            0..=4 => format!("/api/v1/ja3/{}?limit=10", ja3(k)),
            5..=8 => format!(
                "/api/v1/cert/{}?limit=10",
                certs[(k % certs.len() as u64) as usize]
            ),
            9..=12 => format!("/api/v1/ip/{}?limit=10", client(k % 1_000_000)),
            13..=15 => format!("/api/v1/name/host{s}.zone{z}.example.com?limit=10"),
            16..=18 => format!("/api/v1/ip/{}/24?limit=10", server(s)),
            _ => format!("/api/v1/name/*.zone{z}.example.com?limit=10"),
        }
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
                Cli::parse_from(std::iter::once("tls".to_string()).chain(a[2..].iter().cloned()));
            if let Err(e) = d4_tls::run(cli.cmd, d4_tls::cli::Shutdown::new()) {
                eprintln!("tls: error: {e:#}");
                std::process::exit(1);
            }
        }
        Some("gen") => gen(a[2].parse().unwrap(), a[3].parse().unwrap(), &a[4]),
        Some("load") => load(
            &a[2],
            a[3].parse().unwrap(),
            a[4].parse().unwrap(),
            a[5].parse().unwrap(),
            &a[6],
            a.get(7).map(String::as_str) == Some("static"),
        ),
        _ => {
            eprintln!("usage: tls-bench cli ARGS | gen SESSIONS CERTS HASHES | load BASE RATE SECONDS CONNS HASHES [static]");
            std::process::exit(2);
        }
    }
}
