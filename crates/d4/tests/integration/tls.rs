//! Passive SSL through the real binary: `d4 tls ingest -r` the example
//! sessions of docs/TLS-LOOKUP.md, `d4 tls serve` on an ephemeral port
//! answers lookups, and one SIGTERM ends it cleanly; and the whole chain:
//! a capture → `d4 tls fingerprint` → `d4 client` (type 254 `ja3-jl`) →
//! `d4 server` → `d4 tls ingest -u` → lookups.

use std::process::Command;

use serde_json::Value;

use crate::harness::{shared, Sensor, Server, D4};
use crate::pdns::{sigterm, spawn_listening};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/examples/tls-sessions.jsonl"
);

/// Kills the server if the test fails before its SIGTERM.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn ingest_serve_lookups_and_one_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tls.redb");
    let store = store.to_str().unwrap();
    let o = Command::new(D4)
        .args(["tls", "ingest", "-r", EXAMPLE, "--store", store, "-s"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("5 sessions stored, 1 bad records skipped"),
        "{err}"
    );
    assert!(err.contains("bad record skipped: ServerIP"), "{err}");

    let (child, base) = spawn_listening(
        &["tls", "serve", "--listen", "127.0.0.1:0", "--store", store],
        "d4 tls serve",
    );
    let mut child = Reap(child);
    let get = |p: &str| -> (u16, Value) {
        let r = reqwest::blocking::get(format!("{base}{p}")).unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    };
    let (code, v) = get("/api/v1/ja3/cd08e31494f9531f560d64c695473da9");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["fingerprint"]["count"], 3);
    let (_, v) = get("/api/v1/ip/192.0.2.0/24?limit=2");
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let next = v["next"].as_str().unwrap().to_string();
    let (_, v) = get(&format!("/api/v1/ip/192.0.2.0/24?limit=2&cursor={next}"));
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert!(v["next"].is_null());
    let (_, v) = get("/api/v1/name/*.zone1.example.com");
    assert_eq!(v["items"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(get("/api/v1/ip/10.0.0.0/33").0, 400);

    let (status, took) = sigterm(&mut child.0);
    assert!(status.success(), "{status:?}");
    assert!(took.as_secs() < 5, "{took:?}");
}

#[test]
fn tls_commands_have_examples() {
    for sub in ["ingest", "serve"] {
        let o = Command::new(D4)
            .args(["tls", sub, "--help"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("Examples:"),
            "d4 tls {sub} --help has no example"
        );
    }
    let o = Command::new(D4)
        .args(["tls", "serve", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// The acceptance chain of issue 13 over real TLS: the session of
/// `sv__tls-certs-alert.pcap` (one IPv6 handshake to example.com with a
/// 3-certificate chain) is found by its JA3, its leaf's SHA-1 and its
/// client's address after going through a sensor, the server's `ja3-jl`
/// handler (the queue item is the saved record's path) and the store.
#[test]
fn capture_to_sensor_to_server_to_store_to_lookups() {
    let Some(sh) = shared() else {
        eprintln!("SKIPPED: ../shared/data/pcap not found");
        return;
    };
    let pcap = sh.join("data/pcap/tls/sv__tls-certs-alert.pcap");
    let fp = Command::new(D4)
        .args(["tls", "fingerprint", "-r"])
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        fp.status.success(),
        "{}",
        String::from_utf8_lossy(&fp.stderr)
    );
    assert_eq!(fp.stdout.iter().filter(|&&b| b == b'\n').count(), 1);

    let s = Server::start(&[]);
    let q = s.create_queue("ja3-jl", &[]);
    let sensor = Sensor::new(&s, 254);
    sensor.set("metaheader.json", r#"{"type": "ja3-jl"}"#);
    sensor.send(&fp.stdout);
    s.wait_queue_len(&q, 1);

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("tls.redb");
    let store = store.to_str().unwrap();
    let o = s.d4(&["tls", "ingest", "-u", &q, "--once", "--store", store, "-s"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("1 sessions stored"), "{err}");
    assert_eq!(s.queue_len(&q), 0);

    let (child, base) = spawn_listening(
        &["tls", "serve", "--listen", "127.0.0.1:0", "--store", store],
        "d4 tls serve",
    );
    let mut child = Reap(child);
    let get = |p: &str| -> Value {
        let r = reqwest::blocking::get(format!("{base}{p}")).unwrap();
        assert_eq!(r.status().as_u16(), 200, "{p}");
        r.json().unwrap()
    };
    let port_of = |v: &Value| {
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{v}");
        items[0].to_string()
    };
    let by_ja3 = get("/api/v1/ja3/1fe4c7a3544eb27afec2adfb3a3dbf60");
    let by_cert = get("/api/v1/cert/7bb698386970363d2919cc5772846984ffd4a889");
    let by_ip = get("/api/v1/ip/2a03:b0c0:2:d0::bd3:4001");
    for v in [&by_ja3, &by_ip] {
        let one = port_of(v);
        assert!(
            one.contains("48106") && one.contains("example.com"),
            "{one}"
        );
    }
    let cert = by_cert.to_string();
    assert!(cert.contains("48106"), "{cert}");
    let (status, _) = sigterm(&mut child.0);
    assert!(status.success(), "{status:?}");
}
