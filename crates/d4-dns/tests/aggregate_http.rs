//! `d4 dns aggregate`'s HTTP side on loopback: the JSON API over a state
//! fed here, the OpenAPI document, the live stream (first event, an event
//! on change, the subscriber bound), the pages' escaping of names from the
//! network, and bad input counted while the service stays up.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use d4_api::shutdown::Shutdown;
use d4_dns::aggregate::http;
use d4_dns::aggregate::input::Feed;
use d4_dns::aggregate::spans::Aggregator;
use serde_json::Value;

/// The service on an ephemeral port, stopped on drop.
struct Service {
    base: String,
    feed: Feed,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Service {
    fn start(max_subscribers: usize) -> Service {
        let feed = Feed::new(Aggregator::default());
        let shutdown = Shutdown::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let (f, s) = (feed.clone(), shutdown.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap()).unwrap();
                let c = http::Config {
                    rate_limit: 0.0,
                    max_subscribers,
                };
                let (router, ticker) = http::router(f, &c, s.clone());
                tokio::spawn(ticker);
                d4_api::serve::serve(l, router, s.triggered())
                    .await
                    .unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Service {
            base: format!("http://{addr}"),
            feed,
            shutdown,
            thread: Some(thread),
        }
    }

    fn get(&self, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let r = reqwest::blocking::get(format!("{}{path}", self.base)).unwrap();
        let (code, h) = (r.status().as_u16(), r.headers().clone());
        (code, r.text().unwrap(), h)
    }

    fn json(&self, path: &str) -> Value {
        let (code, body, _) = self.get(path);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn send(&self, ty: &str, server: &str, data: &str) {
        let m = format!(r#"{{"type":"{ty}","serverId":"{server}","data":{data}}}"#);
        self.feed.take(m.as_bytes(), "test");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn underscored(name: &str, sender: &str) -> String {
    format!(
        r#"{{"{name}":[{{"sender":"{sender}","server":"192.0.2.53","query":{{"qname":"{name}","qtype":"A","qclass":"IN"}}}}]}}"#
    )
}

#[test]
fn the_api_gives_the_numbers_of_a_span_and_refuses_bad_parameters() {
    let s = Service::start(4);
    s.send("QueriesPerSecond", "ns1", r#"{"qps":10}"#);
    s.send("QueriesPerSecond", "ns1", r#"{"qps":20}"#);
    s.send("QueriesPerSecond", "ns2", r#"{"qps":4}"#);
    s.send("AnswersPerSecond", "ns2", r#"{"aps":3.5}"#);
    s.send(
        "QueriesNameCounter",
        "ns1",
        r#"{"www.example.com":6,"mail.example.com":2}"#,
    );
    s.send("QueriesNameCounter", "ns2", r#"{"www.example.com":2}"#);
    s.send("RcodeCounter", "ns2", r#"{"NOERROR":9,"NXDOMAIN":1}"#);
    s.send(
        "QueriesWithUnderscoredName",
        "ns2",
        &underscored("_sip._udp.example.com", "10.1.1.1"),
    );
    s.send(
        "PacketSummary",
        "ns1",
        r#"{"10.1.1.1":{"A":["www.example.com","www.example.com"],"28":["www.example.com"]}}"#,
    );

    let v = s.json("/api/v1/summary?span=1m");
    assert_eq!(v["span"], "1m");
    assert_eq!(v["total"]["qps"], 19.0, "ns1 mean 15 + ns2 4");
    assert_eq!(v["total"]["aps"], 3.5);
    assert_eq!(v["total"]["queries"], 10);
    assert_eq!(v["top_names"][0]["name"], "www.example.com");
    assert_eq!(v["top_names"][0]["percent"], 80.0);
    assert_eq!(v["rcodes"]["NXDOMAIN"], 1);
    assert_eq!(v["findings"]["underscored"], 1);
    assert_eq!(v["clients"], 1);
    assert_eq!(
        s.json("/api/v1/summary?top=1")["top_names"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let v = s.json("/api/v1/servers?span=15m");
    let ids: Vec<&str> = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ns1", "ns2"]);
    assert_eq!(v["servers"][0]["qps"], 15.0);
    assert_eq!(v["servers"][1]["top_names"][0]["percent"], 100.0);

    let v = s.json("/api/v1/names?server=ns1&limit=1");
    assert_eq!(
        (v["queries"].as_u64(), v["names"].as_array().unwrap().len()),
        (Some(8), 1)
    );
    assert_eq!(v["names"][0]["percent"], 75.0);

    let v = s.json("/api/v1/findings?kind=underscored");
    assert_eq!(v["findings"][0]["qname"], "_sip._udp.example.com");
    assert_eq!(
        s.json("/api/v1/findings?kind=alone")["findings"],
        serde_json::json!([])
    );
    let v = s.json("/api/v1/finding?name=_sip._udp.example.com");
    assert_eq!(v["findings"][0]["sender"], "10.1.1.1");
    assert_eq!(v["findings"][0]["monitor"], "ns2");

    let v = s.json("/api/v1/clients");
    assert_eq!(v["clients"][0]["queries"], 3);
    let v = s.json("/api/v1/client?ip=10.1.1.1");
    assert_eq!(v["by_qtype"][0]["qtype"], "A");
    assert_eq!(v["by_qtype"][1]["qtype"], "AAAA");

    for (path, code, says) in [
        ("/api/v1/summary?span=2m", 400, "span"),
        ("/api/v1/names?limit=0", 400, "limit"),
        ("/api/v1/findings?kind=weird", 400, "kind"),
        ("/api/v1/finding", 400, "name"),
        ("/api/v1/client?ip=10.9.9.9", 404, "10.9.9.9"),
        ("/api/v1/summary?top=abc", 400, "top"),
        ("/api/v1/summary?spam=1", 400, "spam"),
    ] {
        let (c, body, _) = s.get(path);
        assert_eq!(c, code, "{path}: {body}");
        let e: Value = serde_json::from_str(&body).unwrap();
        assert!(
            e["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
    let st = s.json("/api/v1/stats");
    assert_eq!(st["input"]["messages"], 9);
    assert_eq!(st["usage"]["servers"], 2);
}

#[test]
fn openapi_is_valid_and_documents_every_route() {
    let s = Service::start(1);
    let doc = s.json("/api/v1/openapi.json");
    let parsed: openapiv3::OpenAPI = serde_json::from_value(doc.clone()).expect("OpenAPI 3");
    for p in [
        "/api/v1/summary",
        "/api/v1/servers",
        "/api/v1/names",
        "/api/v1/findings",
        "/api/v1/finding",
        "/api/v1/clients",
        "/api/v1/client",
        "/api/v1/stats",
        "/api/v1/events",
        "/api/v1/openapi.json",
        "/",
        "/findings",
        "/finding",
        "/clients",
        "/client",
    ] {
        assert!(parsed.paths.paths.contains_key(p), "{p} undocumented");
        if p.ends_with("/events") {
            continue; // a stream: its own test
        }
        let q = match p {
            "/api/v1/finding" | "/finding" => "?name=x",
            "/api/v1/client" | "/client" => "?ip=10.0.0.1",
            _ => "",
        };
        let (code, _, _) = s.get(&format!("{p}{q}"));
        assert!(code == 200 || code == 404, "{p}: {code}");
    }
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

/// The next `data:` of an event stream (within 10 s).
fn next_event(r: &mut impl BufRead) -> Value {
    let end = Instant::now() + Duration::from_secs(10);
    let mut line = String::new();
    while Instant::now() < end {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            panic!("the stream ended");
        }
        if let Some(d) = line.strip_prefix("data: ") {
            return serde_json::from_str(d.trim_end()).unwrap();
        }
    }
    panic!("no event in 10 s");
}

#[test]
fn the_live_stream_sends_the_summary_then_each_change_and_is_bounded() {
    let s = Service::start(1);
    s.send("QueriesPerSecond", "ns1", r#"{"qps":5}"#);
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(format!("{}/api/v1/events?span=1m", s.base))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut r = BufReader::new(r);
    let first = next_event(&mut r);
    assert_eq!(first["total"]["qps"], 5.0);
    assert_eq!(first["span"], "1m");
    assert!(first["finding_groups"].is_array() && first["top_clients"].is_array());
    // One subscriber at most: the second is refused while the first lives.
    let (code, body, _) = s.get("/api/v1/events");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("--max-subscribers"));
    // A change reaches the open stream.
    s.send("QueriesPerSecond", "ns2", r#"{"qps":7}"#);
    let next = next_event(&mut r);
    assert_eq!(next["total"]["qps"], 12.0);
    assert_eq!(next["servers"].as_array().unwrap().len(), 2);
}

#[test]
fn names_from_the_network_reach_the_pages_as_text() {
    let s = Service::start(1);
    let evil = r#"<script>alert(1)</script>"#;
    s.send("QueriesNameCounter", "ns1", &format!(r#"{{"{evil}":3}}"#));
    s.send(
        "QueriesWithUnderscoredName",
        "ns1",
        &underscored("_x\\\"><img src=x onerror=alert(2)>", "10.0.0.1"),
    );
    for path in [
        "/",
        "/findings",
        "/finding?name=_x%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(2)%3E",
        "/clients",
        "/client?ip=%3Cb%3E",
    ] {
        let (code, page, h) = s.get(path);
        assert_eq!(code, 200, "{path}");
        assert!(!page.contains("<script>alert"), "{path}: unescaped");
        assert!(!page.contains("<img src=x"), "{path}: unescaped");
        assert!(!page.contains("<b>"), "{path}: unescaped");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"));
    }
    let (_, page, _) = s.get("/");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;") || page.contains("&#60;script&#62;")
    );
    let (_, f, _) = s.get("/findings");
    // The link to the detail page carries the name percent-encoded.
    assert!(
        f.contains("/finding?name=_x%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%282%29%3E"),
        "{f}"
    );
    let (code, js, h) = s.get("/static/dns.js");
    assert_eq!(code, 200);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(!js.contains("innerHTML"), "the script sets text only");
}

#[test]
fn bad_input_is_counted_and_the_service_stays_up() {
    let s = Service::start(1);
    s.send("QueriesPerSecond", "ns1", r#"{"qps":1}"#);
    let huge = format!(
        r#"{{"type":"QueriesNameCounter","serverId":"ns1","data":{{"{}":1}}}}"#,
        "a".repeat(2 << 20)
    );
    s.feed.take(huge.as_bytes(), "test");
    s.feed.take(b"\xff\xfe not json", "test");
    s.feed.take(
        br#"{"type":"QueriesPerSecond","serverId":"ns1","data":{"qps":"x"}}"#,
        "test",
    );
    s.feed.take(
        br#"{"type":"FutureReducer","serverId":"ns1","data":{}}"#,
        "test",
    );
    s.feed.take(
        br#"{"type":"TopNQ","serverId":"ns1","data":[[1,2,3]]}"#,
        "test",
    );
    let st = s.json("/api/v1/stats");
    assert_eq!(st["input"]["too_large"], 1);
    assert_eq!(st["input"]["malformed"], 3);
    assert_eq!(st["input"]["unknown_types"], 1);
    assert_eq!(st["input"]["messages"], 1);
    s.send("QueriesPerSecond", "ns1", r#"{"qps":3}"#);
    assert_eq!(s.json("/api/v1/summary?span=1m")["total"]["qps"], 2.0);
}

#[test]
fn answers_that_sum_the_state_are_kept_a_second() {
    let s = Service::start(1);
    s.send("QueriesPerSecond", "ns1", r#"{"qps":1}"#);
    let t = Instant::now();
    assert_eq!(s.json("/api/v1/summary?span=1m")["total"]["qps"], 1.0);
    s.send("QueriesPerSecond", "ns1", r#"{"qps":3}"#);
    let again = s.json("/api/v1/summary?span=1m");
    if t.elapsed() < http::CACHE_TTL {
        assert_eq!(
            again["total"]["qps"], 1.0,
            "the same answer within the second"
        );
    }
    // Another URI is computed afresh; the counters are never kept.
    assert_eq!(s.json("/api/v1/summary?span=5m")["total"]["qps"], 2.0);
    assert_eq!(s.json("/api/v1/stats")["input"]["messages"], 2);
    std::thread::sleep(http::CACHE_TTL);
    assert_eq!(s.json("/api/v1/summary?span=1m")["total"]["qps"], 2.0);
}
