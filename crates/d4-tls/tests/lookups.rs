//! Every lookup of `d4 tls serve` over HTTP on loopback, on a store filled
//! from hand-written ja3-jl records.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{cert, digest, line, serve, sha1};
use d4_tls::ingest::Ingester;
use d4_tls::store::Store;
use serde_json::Value;

const JA4: &str = "t13d1516h2_8daaf6152771_b186095e22b6";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    base: String,
    a: Vec<u8>,
    b: Vec<u8>,
    input: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("tls.redb")).unwrap());
    let a = cert(&["www.example.org", "*.example.org"], false);
    let b = cert(&["api.example.net"], true);
    let bad = b"not a certificate".to_vec();
    let (j1, j2, j3, s1, s2) = (
        digest('a'),
        digest('b'),
        digest('c'),
        digest('d'),
        digest('e'),
    );
    let mut input = String::new();
    for l in [
        line(
            ("192.0.2.10", 50000),
            ("198.51.100.1", 443),
            &j1,
            &s1,
            JA4,
            "www.example.org",
            &[&a],
            "2024-03-01T10:00:00Z",
        ),
        line(
            ("2001:db8::10", 50001),
            ("2001:db8:1::1", 443),
            &j1,
            &s2,
            "",
            "api.example.net",
            &[&b],
            "2024-03-02T10:00:00.5+01:00",
        ),
        line(
            ("192.0.2.11", 50002),
            ("198.51.100.2", 8443),
            &j2,
            &s2,
            "",
            "mail.example.org",
            &[&bad],
            "2024-03-03T10:00:00Z",
        ),
        line(
            ("192.0.2.12", 50003),
            ("198.51.100.3", 443),
            &j2,
            &s2,
            "",
            "<b>x</b>",
            &[],
            "2024-03-04T10:00:00Z",
        ),
    ] {
        input.push_str(&l);
        input.push('\n');
    }
    for i in 0..250u32 {
        input.push_str(&line(
            (&format!("10.1.{}.{}", i / 200, i % 200), 40000),
            ("203.0.113.5", 443),
            &j3,
            &s1,
            "",
            "",
            &[&a],
            "2024-04-01T00:00:00Z",
        ));
        input.push('\n');
    }
    // Bad records: skipped and counted.
    input.push_str("garbage\n");
    input.push_str(&line(
        ("999.1.1.1", 1),
        ("192.0.2.1", 443),
        &j1,
        &s1,
        "",
        "",
        &[],
        "2024-03-01T10:00:00Z",
    ));
    input.push('\n');
    input.push_str(&line(
        ("192.0.2.1", 1),
        ("192.0.2.2", 443),
        "xyz",
        &s1,
        "",
        "",
        &[],
        "2024-03-01T10:00:00Z",
    ));
    input.push('\n');
    input.push_str(&line(
        ("192.0.2.1", 1),
        ("192.0.2.2", 443),
        &j1,
        &s1,
        "",
        "",
        &[],
        "yesterday",
    ));
    input.push('\n');
    let mut ing = Ingester::new(store.clone(), 64);
    ing.reader(input.as_bytes(), "fixture").unwrap();
    ing.flush().unwrap();
    assert_eq!(ing.stats.sessions, 254);
    assert_eq!(ing.stats.bad, 4);
    assert_eq!((ing.stats.new_certs, ing.stats.unparsed_certs), (3, 1));
    let base = serve(store.clone(), 0.0);
    Fixture {
        _dir: dir,
        store,
        base,
        a,
        b,
        input,
    }
}

fn get(url: &str) -> (u16, Value) {
    let r = reqwest::blocking::get(url).unwrap();
    let code = r.status().as_u16();
    (code, r.json().unwrap_or(Value::Null))
}

fn ok(url: &str) -> Value {
    let (code, v) = get(url);
    assert_eq!(code, 200, "{url}: {v}");
    v
}

fn ids(v: &Value) -> Vec<u64> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn every_lookup_kind() {
    let f = fixture();
    let u = |p: &str| format!("{}/api/v1/{p}", f.base);
    // Fingerprints.
    let v = ok(&u(&format!("ja3/{}", digest('A'))));
    assert_eq!(v["fingerprint"]["count"], 2);
    assert_eq!(
        v["fingerprint"]["string"],
        format!("771,4865-{}", digest('a'))
    );
    assert_eq!(v["fingerprint"]["first_seen"], 1_709_287_200);
    assert_eq!(ids(&v), [1, 2]);
    assert!(v["next"].is_null());
    assert_eq!(
        ids(&ok(&u(&format!("ja3s/{}?limit=1000", digest('d'))))).len(),
        251
    );
    let v = ok(&u(&format!("ja4/{JA4}")));
    assert_eq!(ids(&v), [1]);
    assert_eq!(v["items"][0]["sni"], "www.example.org");
    // Certificates, by SHA-1 and SHA-256, with their parsed fields.
    let v = ok(&u(&format!("cert/{}", sha1(&f.a))));
    let c = &v["certificate"];
    assert_eq!(c["parsed"], true);
    assert_eq!(c["subject_cn"], "www.example.org");
    assert_eq!(
        c["sans"],
        serde_json::json!(["www.example.org", "*.example.org"])
    );
    assert_eq!(
        (c["not_before"].as_i64(), c["not_after"].as_i64()),
        (Some(1_704_153_600), Some(1_735_776_000))
    );
    assert_eq!(
        (c["key_type"].as_str(), c["key_bits"].as_u64()),
        (Some("EC"), Some(256))
    );
    assert_eq!(c["count"], 251);
    assert_eq!(v["items"].as_array().unwrap().len(), 100);
    let by256 = ok(&u(&format!("cert/{}", c["sha256"].as_str().unwrap())));
    assert_eq!(by256["certificate"]["sha1"], sha1(&f.a));
    let b = ok(&u(&format!("cert/{}", sha1(&f.b))));
    assert_eq!(b["certificate"]["key_type"], "Ed25519");
    // Addresses: one, CIDR v4, CIDR v6 (both ends inside: given once).
    assert_eq!(ids(&ok(&u("ip/198.51.100.1"))), [1]);
    assert_eq!(ids(&ok(&u("ip/192.0.2.0/24"))), [1, 3, 4]);
    assert_eq!(ids(&ok(&u("ip/2001:db8::/32"))), [2]);
    assert_eq!(ids(&ok(&u("ip/2001:db8:1::1"))), [2]);
    assert_eq!(ids(&ok(&u("ip/203.0.113.0/24?limit=1000"))).len(), 250);
    // Names: SNI and SAN, exact and *.suffix (wildcard SANs too).
    let v = ok(&u("name/www.example.org"));
    let kinds: BTreeSet<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["san".to_string(), "sni".to_string()])
    );
    let v = ok(&u("name/*.example.org"));
    let names: Vec<_> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_string(),
                h["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(&("*.example.org".into(), "san".into())));
    assert!(names.contains(&("mail.example.org".into(), "sni".into())));
    assert_eq!(
        ok(&u("name/API.example.net."))["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(ok(&u("name/*.example.com"))["items"]
        .as_array()
        .unwrap()
        .is_empty());
    // The certificate that does not parse is kept by hash.
    let v = ok(&u(&format!("cert/{}", sha1(b"not a certificate"))));
    assert_eq!(v["certificate"]["parsed"], false);
    assert_eq!(ids(&v), [3]);
    // Info.
    let v = ok(&u("info"));
    assert_eq!(v["stats"]["sessions"], 254);
    assert_eq!(v["stats"]["certificates"], 3);
}

#[test]
fn pages_have_every_session_once_and_ndjson_on_request() {
    let f = fixture();
    let mut seen = Vec::new();
    let mut url = format!("{}/api/v1/ja3/{}?limit=7", f.base, digest('c'));
    let mut pages = 0;
    loop {
        let v = ok(&url);
        pages += 1;
        assert!(v["items"].as_array().unwrap().len() <= 7);
        seen.extend(ids(&v));
        match v["next"].as_str() {
            Some(c) => url = format!("{}/api/v1/ja3/{}?limit=7&cursor={c}", f.base, digest('c')),
            None => break,
        }
    }
    assert_eq!(pages, 36);
    assert_eq!(seen.len(), 250);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 250);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    // CIDR pages too.
    let mut seen = BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let v = ok(&format!(
            "{}/api/v1/ip/10.1.0.0/16?limit=33{cursor}",
            f.base
        ));
        for i in ids(&v) {
            assert!(seen.insert(i), "{i} twice");
        }
        match v["next"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 250);
    // NDJSON: the items, one a line; the cursor in a header.
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/ja3/{}?limit=10", f.base, digest('c')))
        .header("Accept", "application/x-ndjson")
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    assert!(r.headers().get("x-d4-cursor").is_some());
    let body = r.text().unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10);
    assert_eq!(lines[0]["server_ip"], "203.0.113.5");
}

#[test]
fn bad_input_is_400_and_unknown_is_404() {
    let f = fixture();
    let u = |p: &str| format!("{}/api/v1/{p}", f.base);
    for p in [
        "ja3/xyz".to_string(),
        format!("ja3/{}0", digest('a')),
        "ja3s/0123".into(),
        "ja4/t13d<script>".into(),
        "cert/abcd".into(),
        "ip/10.0.0.0/99".into(),
        "ip/banana".into(),
        "ip/300.1.1.1".into(),
        "name/bad..name".into(),
        "name/a%20b".into(),
        format!("ja3/{}?limit=0", digest('a')),
        format!("ja3/{}?limit=100000", digest('a')),
        format!("ja3/{}?cursor=zz", digest('a')),
        format!("ja3/{}?bogus=1", digest('a')),
        // A cursor of another query.
        format!("ja3/{}?cursor=0500", digest('a')),
    ] {
        let (code, v) = get(&u(&p));
        assert_eq!(code, 400, "{p}: {v}");
        assert!(v["error"].is_string(), "{p}: {v}");
    }
    assert_eq!(get(&u(&format!("ja3/{}", digest('f')))).0, 404);
    assert_eq!(get(&u(&format!("cert/{}", "0".repeat(40)))).0, 404);
    assert_eq!(get(&u(&format!("cert/{}", "0".repeat(64)))).0, 404);
}

#[test]
fn duplicate_ingest_counts_up_and_keeps_each_certificate_once() {
    let f = fixture();
    let before = f.store.counts().unwrap();
    let mut ing = Ingester::new(f.store.clone(), 1000);
    ing.reader(f.input.as_bytes(), "again").unwrap();
    ing.flush().unwrap();
    assert_eq!(ing.stats.new_certs, 0);
    let after = f.store.counts().unwrap();
    assert_eq!(after.sessions, 2 * before.sessions);
    assert_eq!(after.certificates, before.certificates);
    assert_eq!(after.fingerprints, before.fingerprints);
    let v = ok(&format!("{}/api/v1/cert/{}", f.base, sha1(&f.a)));
    assert_eq!(v["certificate"]["count"], 502);
    let v = ok(&format!("{}/api/v1/ja3/{}", f.base, digest('a')));
    assert_eq!(v["fingerprint"]["count"], 4);
}

#[test]
fn rate_limit_gives_429() {
    let f = fixture();
    let base = serve(f.store.clone(), 1.0);
    let codes: Vec<u16> = (0..5)
        .map(|_| get(&format!("{base}/api/v1/info")).0)
        .collect();
    assert_eq!(&codes[..2], [200, 200]);
    assert!(codes[2..].contains(&429), "{codes:?}");
}

#[test]
fn openapi_is_valid_and_documents_every_route() {
    let f = fixture();
    let doc = ok(&format!("{}/api/v1/openapi.json", f.base));
    let parsed: openapiv3::OpenAPI = serde_json::from_value(doc.clone()).expect("OpenAPI 3");
    assert!(parsed.openapi.starts_with("3.0"));
    for p in [
        "/api/v1/ja3/{fp}",
        "/api/v1/ja3s/{fp}",
        "/api/v1/ja4/{fp}",
        "/api/v1/cert/{hash}",
        "/api/v1/ip/{addr}",
        "/api/v1/name/{name}",
        "/api/v1/info",
        "/api/v1/openapi.json",
        "/cert/{q}",
        "/ja3/{q}",
        "/ja3s/{q}",
        "/ja4/{q}",
    ] {
        assert!(parsed.paths.paths.contains_key(p), "{p} undocumented");
    }
    // Every $ref resolves.
    fn refs(v: &Value, doc: &Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let p = r.strip_prefix('#').unwrap();
                    assert!(doc.pointer(p).is_some(), "{r} does not resolve");
                }
                m.values().for_each(|x| refs(x, doc));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, doc)),
            _ => {}
        }
    }
    refs(&doc, &doc);
}

#[test]
fn html_pages_escape_what_they_show() {
    let f = fixture();
    let r = reqwest::blocking::get(format!("{}/ja3/{}", f.base, digest('b'))).unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().unwrap();
    assert!(
        html.contains("&#60;b&#62;x&#60;/b&#62;") || html.contains("&lt;b&gt;x&lt;/b&gt;"),
        "{html}"
    );
    assert!(!html.contains("<b>x</b>"));
    let html = reqwest::blocking::get(format!("{}/cert/{}", f.base, sha1(&f.a)))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        html.contains("www.example.org") && html.contains("EC 256 bits"),
        "{html}"
    );
    assert_eq!(
        reqwest::blocking::get(format!("{}/cert/zz", f.base))
            .unwrap()
            .status(),
        400
    );
}
