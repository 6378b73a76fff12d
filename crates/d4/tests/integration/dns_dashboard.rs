//! `d4 dns aggregate` end to end (issue 15): two simulated monitors publish
//! reducer windows to a real `redis-server` (and, apart, through a type-254
//! sensor into a `dns-stats` queue of a real `d4 server`); the aggregator's
//! JSON API shows both monitors with the numbers computed by hand; bad
//! messages are counted while it stays up; it reconnects when Redis comes
//! back; it refuses to start without its input; and in headless Chromium
//! the dashboard's numbers change with no reload and a finding clicks
//! through to its detail (screenshot 14 under `target/tmp/screenshots/`,
//! committed as `docs/screenshots/14-dns-dashboard.png`).
//!
//! The monitors' feed is one function, [`two_monitors`]: the windows as
//! `d4 dns reduce` publishes them, with numbers chosen to be checked by
//! hand; and, as issue 15 asks, two real reducers replaying captures
//! (`d4 dns reduce --speed 4`) feed the live page in
//! `the_dashboard_follows_two_replays_at_speed_four`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{terminate, wait_for, RedisServer, Sensor, Server, D4};
use crate::web::{wait_page, Browser};

/// The monitors of [`two_monitors`] and the Redis channel each publishes on.
pub(crate) const PARIS: (&str, &str) = ("ns-paris", "d4:dns");
pub(crate) const BERLIN: (&str, &str) = ("ns-berlin", "dns:berlin");

/// One reducer output.
pub(crate) fn envelope(ty: &str, server: &str, data: Value) -> String {
    json!({"type": ty, "serverId": server, "data": data}).to_string()
}

/// The windows of round `i` of one monitor, `base` its QPS at round 0.
fn windows(server: &str, base: f64, i: u64) -> Vec<String> {
    let qps = base + 10.0 * i as f64;
    let mut w = vec![
        envelope("QueriesPerSecond", server, json!({"qps": qps})),
        envelope("AnswersPerSecond", server, json!({"aps": qps - 2.0})),
        envelope("PacketsPerSecond", server, json!({"pps": 2.0 * qps - 2.0})),
        envelope(
            "QueriesNameCounter",
            server,
            json!({"www.example.com": 30 + i, "mail.example.com": 10, "api.example.net": 5 * i}),
        ),
        envelope(
            "TopNQ",
            server,
            json!([["www.example.com", 30 + i], ["mail.example.com", 10]]),
        ),
        envelope(
            "QtypeCounter",
            server,
            json!({"A": 30, "AAAA": 12, "MX": 3}),
        ),
        envelope(
            "RcodeCounter",
            server,
            json!({"NOERROR": 40, "NXDOMAIN": 5}),
        ),
        envelope(
            "PacketSummary",
            server,
            json!({format!("10.0.0.{}", i % 3 + 1): {"A": ["www.example.com"], "28": ["api.example.net"]}}),
        ),
        envelope(
            "MalformedPackets",
            server,
            json!({"count": 1, "senders": {"198.51.100.66": 1}}),
        ),
    ];
    let q = |sender: &str, name: &str, qtype: Value| {
        json!({"sender": sender, "server": "192.0.2.53", "id": "0x1a2b",
               "query": {"qname": name, "qtype": qtype, "qclass": 1}})
    };
    if server == PARIS.0 {
        w.push(envelope(
            "QueriesWithUnderscoredName",
            server,
            json!({"_ldap._tcp.dc.example.com": [q("10.0.0.7", "_ldap._tcp.dc.example.com", json!(1))]}),
        ));
    } else {
        w.push(envelope(
            "AlonePackets",
            server,
            json!({"queries": [q("10.0.1.9", "lost.example.org", json!("AAAA"))], "answers": []}),
        ));
    }
    w
}

/// Two simulated monitors, as `d4 dns reduce` publishes them: `rounds`
/// windows each, `pause` apart; Paris (QPS 100 + 10 i) from round 0,
/// Berlin (QPS 40 + 10 i) joining from round 1. Each envelope goes to
/// `publish(channel, json)` (the channels of [`PARIS`] and [`BERLIN`]).
///
/// Over rounds 0..3, by hand: Paris QPS (100 + 110 + 120) / 3 = 110, Berlin
/// (50 + 60) / 2 = 55, total 165; www.example.com 30 + 31 + 32 (Paris) +
/// 31 + 32 (Berlin) = 156 of 236 named queries (mail 5 × 10, api 15 + 15):
/// 66.1 %.
pub(crate) fn two_monitors(
    rounds: std::ops::Range<u64>,
    pause: Duration,
    publish: &mut dyn FnMut(&str, &str),
) {
    for i in rounds {
        for m in windows(PARIS.0, 100.0, i) {
            publish(PARIS.1, &m);
        }
        if i >= 1 {
            for m in windows(BERLIN.0, 40.0, i) {
                publish(BERLIN.1, &m);
            }
        }
        std::thread::sleep(pause);
    }
}

/// A running `d4 dns aggregate`, killed on drop.
pub(crate) struct Aggregate {
    child: Option<Child>,
    pub(crate) base: String,
    log: tempfile::NamedTempFile,
    http: reqwest::blocking::Client,
}

impl Aggregate {
    /// `d4 dns aggregate --listen 127.0.0.1:0 ARGS`, once it listens.
    pub(crate) fn start(args: &[&str]) -> Aggregate {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(D4)
            .args(["dns", "aggregate", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("d4 dns aggregate: listening on ") else {
            let _ = child.kill();
            panic!(
                "d4 dns aggregate did not start: {line:?}\n{}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
        };
        Aggregate {
            base: addr.to_string(),
            child: Some(child),
            log,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    pub(crate) fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().unwrap()
    }

    /// Waits (30 s) until the `span` summary satisfies `f`; returns it.
    pub(crate) fn wait_summary(&self, what: &str, span: &str, f: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, Duration::from_secs(30), || {
            let v = self.get(&format!("/api/v1/summary?span={span}"));
            f(&v).then_some(v)
        })
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGTERM; whether it exited 0 (within 20 s), and its log.
    pub(crate) fn stop(mut self) -> (bool, String) {
        let (ok, _) = terminate(self.child.take().unwrap());
        (ok, self.log())
    }
}

impl Drop for Aggregate {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A publisher to `r`: each message once the channel has a subscriber.
fn publisher(r: &RedisServer) -> impl FnMut(&str, &str) {
    let mut con = redis::Client::open(r.url(0))
        .unwrap()
        .get_connection()
        .unwrap();
    move |channel: &str, msg: &str| {
        let n: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(msg)
            .query(&mut con)
            .unwrap();
        assert_eq!(n, 1, "one subscriber on {channel}");
    }
}

fn server<'a>(summary: &'a Value, id: &str) -> &'a Value {
    summary["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id))
        .unwrap_or(&Value::Null)
}

#[test]
fn two_monitors_over_redis_reach_the_api_and_bad_messages_are_counted() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url(0);
    // A channel and a pattern (PSUBSCRIBE).
    let a = Aggregate::start(&["--redis", &url, "--channel", "d4:dns", "--channel", "dns:*"]);
    let mut publish = publisher(&redis);
    two_monitors(0..3, Duration::ZERO, &mut publish);
    // Bad input on the same channel: not JSON, an unknown reducer, a
    // message of 2 MiB (the bound is 1 MiB), a wrong shape.
    publish("d4:dns", "{not json");
    publish(
        "d4:dns",
        &envelope("FutureReducer", PARIS.0, json!({"x": 1})),
    );
    let huge = "x".repeat(2 << 20);
    publish(
        "d4:dns",
        &envelope("QueriesNameCounter", PARIS.0, json!({ huge: 1 })),
    );
    publish(
        "dns:berlin",
        &envelope("QueriesPerSecond", BERLIN.0, json!({"qps": "fast"})),
    );

    let s = a.wait_summary("both monitors' windows", "1m", |v| {
        v["input"]["messages"] == 50 && v["input"]["too_large"] == 1
    });
    assert_eq!(s["servers"].as_array().unwrap().len(), 2);
    assert_eq!(server(&s, PARIS.0)["qps"], 110.0);
    assert_eq!(server(&s, PARIS.0)["aps"], 108.0);
    assert_eq!(server(&s, BERLIN.0)["qps"], 55.0);
    assert_eq!(s["total"]["qps"], 165.0);
    assert_eq!(s["total"]["pps"], 2.0 * 165.0 - 4.0);
    assert_eq!(s["total"]["queries"], 236);
    assert_eq!(
        s["top_names"][0],
        json!({"name": "www.example.com", "count": 156, "percent": 66.1})
    );
    // Berlin: www 63 of 98.
    assert_eq!(server(&s, BERLIN.0)["top_names"][0]["percent"], 64.29);
    assert_eq!(s["qtypes"], json!({"A": 150, "AAAA": 60, "MX": 15}));
    assert_eq!(s["rcodes"]["NXDOMAIN"], 25);
    assert_eq!(s["total"]["malformed"], 5);
    assert_eq!(s["findings"]["underscored"], 3);
    assert_eq!(s["findings"]["alone_queries"], 2);
    assert_eq!(s["clients"], 3);
    let i = &s["input"];
    assert_eq!(
        (i["malformed"].as_u64(), i["unknown_types"].as_u64()),
        (Some(2), Some(1))
    );
    let f = a.get("/api/v1/findings?kind=underscored");
    assert_eq!(f["findings"][0]["qname"], "_ldap._tcp.dc.example.com");
    assert_eq!(f["findings"][0]["count"], 3);
    let f = a.get("/api/v1/finding?name=lost.example.org");
    assert_eq!(f["findings"][0]["kind"], "alone-query");
    assert_eq!(f["findings"][0]["qtype"], "AAAA");

    // Redis goes away and comes back: the aggregator subscribes again.
    redis.stop();
    redis.restart();
    let mut publish = wait_for(
        "the aggregator back on Redis",
        Duration::from_secs(30),
        || {
            let mut con = redis::Client::open(redis.url(0))
                .ok()?
                .get_connection()
                .ok()?;
            let n: i64 = redis::cmd("PUBLISH")
                .arg("d4:dns")
                .arg(envelope("QueriesPerSecond", PARIS.0, json!({"qps": 110.0})))
                .query(&mut con)
                .ok()?;
            (n == 1).then(|| publisher(&redis))
        },
    );
    publish(
        "dns:berlin",
        &envelope("QueriesPerSecond", BERLIN.0, json!({"qps": 55.0})),
    );
    a.wait_summary("the windows after the reconnection", "1m", |v| {
        v["input"]["messages"] == 52
    });
    assert!(a.log().contains("reconnecting"), "{}", a.log());
    let (ok, log) = a.stop();
    assert!(ok, "a clean exit on SIGTERM: {log}");
}

#[test]
fn the_aggregator_refuses_to_start_without_its_input() {
    let run = |args: &[&str]| {
        let o = Command::new(D4)
            .args(["dns", "aggregate"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (code, err) = run(&[
        "--redis",
        &format!("redis://127.0.0.1:{port}"),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot reach Redis at redis://127.0.0.1:"),
        "{err}"
    );
    let (code, err) = run(&[
        "-r",
        "/nonexistent/windows.jsonl",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("cannot open /nonexistent/windows.jsonl"),
        "{err}"
    );
    let (code, err) = run(&["--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nothing to aggregate"), "{err}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, err) = run(&["-r", "-", "--listen", &addr]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    let (code, err) = run(&["--help"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _) = run(&["--listen", "nowhere"]);
    assert_eq!(code, Some(2), "a usage error");
}

#[test]
fn a_dns_stats_queue_of_the_server_feeds_the_aggregator() {
    let s = Server::start(&[]);
    let q = s.create_queue("dns-stats", &[]);
    let lines = s.create_queue("3", &[]);
    // The reducers' outputs sent by a type-254 sensor (meta-header type dns-stats).
    let sensor = Sensor::new(&s, 254);
    sensor.set("metaheader.json", r#"{"type": "dns-stats"}"#);
    let mut out = String::new();
    two_monitors(0..3, Duration::ZERO, &mut |_, m| {
        out.push_str(m);
        out.push('\n');
    });
    out.push_str("{broken\n");
    sensor.send(out.as_bytes());
    s.wait_queue_len(&q, 51);

    let data_dir = s.data_dir();
    let dd = data_dir.to_str().unwrap();
    let a = Aggregate::start(&["-u", &q, "--data-dir", dd]);
    let v = a.wait_summary("the queue's windows", "5m", |v| {
        v["input"]["messages"] == 50
    });
    assert_eq!(v["total"]["qps"], 165.0);
    assert_eq!(v["input"]["malformed"], 1);
    assert_eq!(v["top_names"][0]["count"], 156);
    // Read, then acknowledged: the queue is empty.
    wait_for("the queue acknowledged", Duration::from_secs(20), || {
        (s.queue_len(&q) == 0).then_some(())
    });
    let (ok, log) = a.stop();
    assert!(ok, "{log}");

    // A queue of another type is refused at start, with the reason.
    let o = Command::new(D4)
        .args([
            "dns",
            "aggregate",
            "--listen",
            "127.0.0.1:0",
            "-u",
            &lines,
            "--data-dir",
            dd,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("dns-stats"), "{err}");
}

/// Runs `script` in the page; its return value.
fn exec(b: &Browser, script: &str) -> Value {
    b.cmd(
        "POST",
        "/execute/sync",
        Some(json!({"script": script, "args": []})),
    )
}

#[test]
fn the_dashboard_updates_without_a_reload_and_a_finding_clicks_through() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = Aggregate::start(&[
        "--redis",
        &redis.url(0),
        "--channel",
        PARIS.1,
        "--channel",
        BERLIN.1,
    ]);
    let Some(b) = Browser::start(&a.base) else {
        return;
    };
    // Round 0: Paris alone.
    two_monitors(0..1, Duration::ZERO, &mut publisher(&redis));
    a.wait_summary("round 0", "1m", |v| v["total"]["qps"] == 100.0);
    b.go("/?span=1m");
    wait_page(&b, "the first live event", |b| {
        b.attr("#dashboard", "data-received") == "1"
    });
    assert_eq!(b.text("#total-qps"), "100.0");
    let rows = |b: &Browser| exec(b, "return document.querySelectorAll('#servers tr').length;");
    assert_eq!(rows(&b), 1);
    let loaded = exec(&b, "window.__loaded = Date.now(); return window.__loaded;");

    // Rounds 1 to 8 over about 10 s (two or three buckets of the chart):
    // Berlin joins, the rates rise.
    let feeder = {
        let mut publish = publisher(&redis);
        std::thread::spawn(move || two_monitors(1..9, Duration::from_millis(1200), &mut publish))
    };
    wait_page(&b, "the second monitor's row", |b| rows(b) == 2);
    feeder.join().unwrap();
    // By hand: Paris (100 + 110 + ... + 180) / 9 = 140, Berlin
    // (50 + 60 + ... + 120) / 8 = 85.
    wait_page(&b, "the last rates", |b| b.text("#total-qps") == "225.0");
    assert_eq!(
        exec(&b, "return window.__loaded;"),
        loaded,
        "the page was not reloaded"
    );
    assert_eq!(
        exec(
            &b,
            "return performance.getEntriesByType('navigation').length;"
        ),
        json!(1)
    );
    let received: u64 = b.attr("#dashboard", "data-received").parse().unwrap();
    assert!(received >= 2, "live events: {received}");
    assert_eq!(
        b.text("#servers tr[data-server='ns-berlin'] td:nth-child(2)"),
        "85.0"
    );
    assert_eq!(
        b.text("#top-names tr:first-child td:first-child"),
        "www.example.com"
    );
    assert!(
        b.has("#qps-chart path[data-series='total']"),
        "the chart has a line"
    );
    assert!(b.has("#qps-chart path[data-series='ns-berlin']"));
    assert!(b.has("#qtypes .tile"));
    b.shot("14-dns-dashboard");

    // A finding, clicked through to its queries, then to the client.
    wait_page(&b, "the findings list", |b| b.has("#findings a"));
    let name = b.text("#findings tr:first-child a");
    assert!(
        name == "_ldap._tcp.dc.example.com" || name == "lost.example.org",
        "{name}"
    );
    b.click("#findings tr:first-child a");
    wait_page(&b, "the finding's page", |b| {
        b.url().contains("/finding?name=")
    });
    assert_eq!(b.text("#qname"), name);
    let n = exec(
        &b,
        "return document.querySelectorAll('#finding-rows tr').length;",
    );
    assert!(n.as_u64().unwrap_or(0) >= 4, "{n}");
    b.shot("14-dns-finding");
    b.click("#finding-rows tr:first-child a");
    wait_page(&b, "the client's page", |b| b.url().contains("/client?ip="));
    assert!(b.has("#client"));
    drop(b);
    let (ok, log) = a.stop();
    assert!(ok, "{log}");
}

/// A capture of 40 s of packet time from one client: a query every
/// `every_ms` (from 0 to 40 s, the last one before 40 s), for
/// `www.example.com`, and every tenth one for `_sip._udp.example.com`
/// (an underscored name; no query has a response, so each is alone too).
fn forty_seconds(client: [u8; 4], every_ms: u32) -> Vec<u8> {
    use d4_packet::testdata::build::{dns, ipv4, pcap, udp};
    const T0: u32 = 1_800_000_000;
    let frames: Vec<_> = (0..40_000 / every_ms)
        .map(|i| {
            let ms = i * every_ms;
            let name = if i % 10 == 9 {
                "_sip._udp.example.com"
            } else {
                "www.example.com"
            };
            let q = dns(i as u16, name, 1, false);
            let frame = ipv4(17, client, [198, 51, 100, 53], &udp(40000, 53, &q));
            (T0 + ms / 1000, (ms % 1000) * 1000, frame)
        })
        .collect();
    pcap(&frames)
}

/// Issue 15's acceptance as it reads: two real monitors, `d4 dns reduce
/// --speed 4 --window-secs 1` replaying 40 s captures (10 s each) into
/// Redis, one started after the other; the page, loaded once, shows the
/// first, then both, its event count rising while they run, and lands on
/// the rates computed by hand.
#[test]
fn the_dashboard_follows_two_replays_at_speed_four() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    // Paris: 20 queries a second; each 1-s window spans 0.95 s of packet
    // time, so every window's rate is 20 / 0.95 = 21.05. Berlin: 10 a
    // second, 10 / 0.9 = 11.11. Both: 32.16.
    let paris = d.path().join("paris.pcap");
    std::fs::write(&paris, forty_seconds([192, 0, 2, 10], 50)).unwrap();
    let berlin = d.path().join("berlin.pcap");
    std::fs::write(&berlin, forty_seconds([192, 0, 2, 20], 100)).unwrap();
    let a = Aggregate::start(&[
        "--redis",
        &redis.url(0),
        "--channel",
        PARIS.1,
        "--channel",
        BERLIN.1,
    ]);
    let Some(b) = Browser::start(&a.base) else {
        return;
    };
    b.go("/?span=1m");
    let loaded = exec(&b, "window.__loaded = Date.now(); return window.__loaded;");
    let url = redis.url(0);
    let replay = |cap: &std::path::Path, (id, channel): (&str, &str)| {
        Command::new(D4)
            .args(["dns", "reduce", "--speed", "4", "--window-secs", "1"])
            .args(["--server-id", id, "--redis", &url, "--channel", channel])
            .arg("-r")
            .arg(cap)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let rows = |b: &Browser| exec(b, "return document.querySelectorAll('#servers tr').length;");
    let received = |b: &Browser| -> u64 {
        b.attr("#dashboard", "data-received")
            .parse()
            .unwrap_or_default()
    };
    let first = replay(&paris, PARIS);
    wait_page(&b, "the first monitor's row", |b| rows(b) == 1);
    let second = replay(&berlin, BERLIN);
    wait_page(&b, "the second monitor's row", |b| rows(b) == 2);
    let during = received(&b);
    for child in [first, second] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    wait_page(&b, "the rates of both replays", |b| {
        b.text("#total-qps") == "32.2"
    });
    assert_eq!(
        b.text("#servers tr[data-server='ns-paris'] td:nth-child(2)"),
        "21.1"
    );
    assert_eq!(
        b.text("#servers tr[data-server='ns-berlin'] td:nth-child(2)"),
        "11.1"
    );
    assert!(
        received(&b) >= during + 3,
        "live events while the replays ran: {during} then {}",
        received(&b)
    );
    assert_eq!(exec(&b, "return window.__loaded;"), loaded, "no reload");
    assert_eq!(
        exec(
            &b,
            "return performance.getEntriesByType('navigation').length;"
        ),
        json!(1)
    );
    assert_eq!(
        b.text("#top-names tr:first-child td:first-child"),
        "www.example.com"
    );
    wait_page(&b, "the underscored finding", |b| b.has("#findings a"));
    b.shot("14-dns-replays");
    // The summary the page shows, as JSON: 1,200 queries from the two
    // monitors in the span (800 + 400), every one alone (no responses).
    let s = a.get("/api/v1/summary?span=1m");
    assert_eq!(s["findings"]["alone_queries"], 1200, "{s}");
    assert_eq!(s["findings"]["underscored"], 120, "{s}");
    assert_eq!(server(&s, "ns-paris")["queries"], 800, "{s}");
    assert_eq!(server(&s, "ns-berlin")["queries"], 400, "{s}");
    // 40 windows of 11 reducers each.
    assert_eq!(server(&s, "ns-paris")["windows"], 440, "{s}");
    drop(b);
    let (ok, log) = a.stop();
    assert!(ok, "{log}");
}
