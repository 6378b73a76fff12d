//! Passive SSL through the real binary: `d4 tls ingest -r` the example
//! sessions of docs/TLS-LOOKUP.md, `d4 tls serve` on an ephemeral port
//! answers lookups, and one SIGTERM ends it cleanly.

use std::process::Command;

use serde_json::Value;

use crate::harness::D4;
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
