//! `d4 dns serialize` and `d4 dns reduce`: the serializer on the shared
//! DNS captures, read back by an independent parser (exact length
//! prefixes, every DNS message once); the reducers on a capture built by
//! hand, every value computed by hand; windows by messages and by packet
//! time; the round trip through serialized messages; replay at a speed;
//! the Redis and D4-server outputs against real servers; bad input; a
//! SIGTERM ending `reduce -u`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use d4_packet::testdata::build::{dns, ipv4, ipv6, pcap, tcp, udp};
use serde_json::{json, Value};

use crate::harness::{shared, terminate, wait_for, RedisServer, Sensor, Server, D4};

const A: [u8; 4] = [192, 0, 2, 10];
const B: [u8; 4] = [192, 0, 2, 20];
const S: [u8; 4] = [198, 51, 100, 53];
/// 2027-01-15 08:00:00 UTC (a multiple of 1.5 s and of 100 s).
const T0: u32 = 1_800_000_000;

fn d4(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new(D4)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut i = c.stdin.take().unwrap();
    let data = stdin.unwrap_or_default().to_vec();
    let w = std::thread::spawn(move || {
        let _ = i.write_all(&data);
    });
    let o = c.wait_with_output().unwrap();
    w.join().unwrap();
    o
}

fn ok(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let o = d4(args, stdin);
    assert!(
        o.status.success(),
        "d4 {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The independent reader of length-prefixed JSON: ASCII digits, then
/// exactly that many bytes, each a JSON object; nothing between.
fn parse_length_prefixed(mut b: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let d = b.iter().take_while(|c| c.is_ascii_digit()).count();
        assert!(
            d > 0,
            "a message must start with its length: {:?}",
            &b[..b.len().min(20)]
        );
        let n: usize = std::str::from_utf8(&b[..d]).unwrap().parse().unwrap();
        let body = &b[d..d + n];
        assert_eq!(body.first(), Some(&b'{'));
        assert_eq!(
            body.last(),
            Some(&b'}'),
            "the prefix {n} must end on the object's end"
        );
        out.push(serde_json::from_slice(body).unwrap());
        b = &b[d + n..];
    }
    out
}

fn parse_ndjson(b: &[u8]) -> Vec<Value> {
    b.split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// Every capture of the shared DNS folder: each DNS message once, the
/// length prefixes exact, NDJSON the same messages, and the worker pool's
/// output byte for byte the reading thread's.
#[test]
fn serializer_on_every_shared_dns_capture() {
    let Some(sh) = shared() else {
        eprintln!("SKIPPED: ../shared/data/pcap not found");
        return;
    };
    // DNS messages per capture, counted by hand with tcpdump 4.99:
    // `tcpdump -nr F 'udp port 53' | wc -l` (a fragmented datagram counts
    // once: only its first fragment carries the port) plus, for TCP, the
    // segments carrying a message, `tcpdump -nr F 'tcp port 53' -v` read
    // one by one: dnso1tcp's client sends each 2-byte length in a segment
    // of its own (41 queries) and the server length and message together
    // (41 responses); zeek's file has 9 TCP segments each holding one
    // whole message (3 over IPv6).
    let counts = [
        ("dnscap__dns.pcap", 82),      // 82 UDP (133 packets: ICMP, ARP besides)
        ("dnscap__dnso1tcp.pcap", 82), // 41 + 41 over one TCP connection
        ("dnscap__frags.pcap", 82),    // 82 UDP datagrams in 495 fragments
        ("sv__dns-eve-type-filtering.pcap", 14),
        ("tcpdump__edns-opts.pcap", 42),
        ("zeek__dns-edns-ecs.pcap", 85), // 76 UDP (4 in two fragments) + 9 TCP
    ];
    let dir = sh.join("data/pcap/dns");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(
            counts.iter().any(|(n, _)| *n == name),
            "{name}: a new capture in the shared folder needs its count here"
        );
    }
    for (name, want) in counts {
        let f = dir.join(name);
        let f = f.to_str().unwrap();
        let lp = ok(&["dns", "serialize", "-r", f, "-s", "--threads", "3"], None);
        let msgs = parse_length_prefixed(&lp.stdout);
        assert_eq!(msgs.len(), want, "{name}");
        let err = String::from_utf8_lossy(&lp.stderr);
        assert!(
            err.contains(&format!("{want} messages written, 0 malformed")),
            "{name}: {err}"
        );
        for m in &msgs {
            assert!(m["source"]
                .as_str()
                .unwrap()
                .parse::<std::net::IpAddr>()
                .is_ok());
            assert!(m["id"].as_str().unwrap().starts_with("0x"));
            assert!(m["time"].as_f64().unwrap() > 1e9);
            assert!(
                m["queries"].is_array() && m["answers"].is_array() && m["authorities"].is_array()
            );
        }
        let inline = ok(&["dns", "serialize", "-r", f, "--threads", "1"], None);
        assert_eq!(inline.stdout, lp.stdout, "{name}: threads change nothing");
        let nd = ok(&["dns", "serialize", "-r", f, "--ndjson"], None);
        assert_eq!(parse_ndjson(&nd.stdout), msgs, "{name}");
        seen += 1;
    }
    assert_eq!(seen, 6);
    // Answers and authorities of a known message: dnscap's first response.
    let f = dir.join("dnscap__dns.pcap");
    let o = ok(
        &["dns", "serialize", "-r", f.to_str().unwrap(), "--ndjson"],
        None,
    );
    let m = &parse_ndjson(&o.stdout)[1];
    assert_eq!(
        *m,
        json!({"source": "8.8.8.8", "dest": "172.17.0.10", "id": "0xe7af", "flags": "0x8180",
            "time": 1476976981.077982,
            "queries": [{"qname": "google.com", "qtype": "A", "qclass": "IN"}],
            "answers": [{"name": "google.com", "type": "A", "class": "IN", "ttl": 44, "data": "216.58.218.206"}],
            "authorities": [{"name": "google.com", "type": "NS", "class": "IN",
                "ns": ["ns4.google.com", "ns3.google.com", "ns1.google.com", "ns2.google.com"]}]})
    );
}

/// A response with rcode `rcode`.
fn response(id: u16, name: &str, qtype: u16, rcode: u8) -> Vec<u8> {
    let mut m = dns(id, name, qtype, true);
    m[3] |= rcode;
    m
}

fn at(ms: u32, frame: Vec<u8>) -> (u32, u32, Vec<u8>) {
    (T0 + ms / 1000, (ms % 1000) * 1000, frame)
}

/// The capture the reducers are checked on (see `by_hand` for the
/// values).
fn capture() -> Vec<u8> {
    // A TCP query: the 2-byte length, then the message.
    let q4 = dns(4, "_srv.example.com", 16, false);
    let mut tcp4 = (q4.len() as u16).to_be_bytes().to_vec();
    tcp4.extend_from_slice(&q4);
    pcap(&[
        at(
            0,
            ipv4(
                17,
                A,
                S,
                &udp(40001, 53, &dns(1, "www.example.com", 1, false)),
            ),
        ),
        at(
            500,
            ipv4(
                17,
                S,
                A,
                &udp(53, 40001, &response(1, "www.example.com", 1, 0)),
            ),
        ),
        at(
            1000,
            ipv4(
                17,
                A,
                S,
                &udp(40002, 53, &dns(2, "_ldap._tcp.Example.com", 6, false)),
            ),
        ),
        at(
            1500,
            ipv4(
                17,
                B,
                S,
                &udp(40003, 53, &dns(3, "www.example.com", 28, false)),
            ),
        ),
        at(
            2000,
            ipv4(
                17,
                S,
                B,
                &udp(53, 40003, &response(3, "www.example.com", 28, 3)),
            ),
        ),
        at(2500, ipv4(6, B, S, &tcp(40004, 53, 0x18, &tcp4))),
        at(
            3000,
            ipv4(
                17,
                S,
                A,
                &udp(53, 40009, &response(9, "lost.example", 1, 0)),
            ),
        ),
        // Malformed: five bytes of DNS.
        at(3500, ipv4(17, B, S, &udp(40005, 53, &[1, 2, 3, 4, 5]))),
        at(
            4000,
            ipv4(
                17,
                A,
                S,
                &udp(40006, 53, &dns(5, "www.example.com", 1, false)),
            ),
        ),
        // Not DNS: another port, and ICMP.
        at(
            4000,
            ipv4(17, A, S, &udp(40007, 54, &dns(6, "no.example", 1, false))),
        ),
        at(4000, ipv4(1, A, S, &[8, 0, 0, 0, 0, 0, 0, 0])),
    ])
}

/// The nine DNS messages over 4.0 s of packet time, counted by hand:
/// queries at 0, 1.0, 1.5, 2.5 (TCP), 4.0 s; responses at 0.5, 2.0
/// (NXDOMAIN), 3.0 s; a malformed one at 3.5 s from B.
fn by_hand(server: &str) -> Vec<Value> {
    let (a, b, s) = ("192.0.2.10", "192.0.2.20", "198.51.100.53");
    let q = |n: &str, t: &str| json!({"qname": n, "qtype": t, "qclass": "IN"});
    let data = [
        ("QueriesPerSecond", json!({"qps": 5.0 / 4.0})),
        ("AnswersPerSecond", json!({"aps": 3.0 / 4.0})),
        ("PacketsPerSecond", json!({"pps": 9.0 / 4.0})),
        (
            "QueriesNameCounter",
            json!({"www.example.com": 3, "_ldap._tcp.example.com": 1, "_srv.example.com": 1}),
        ),
        (
            "TopNQ",
            json!([["www.example.com", 3], ["_ldap._tcp.example.com", 1]]),
        ),
        (
            "QueriesWithUnderscoredName",
            json!({"_ldap._tcp.example.com": [{"sender": a, "server": s, "query": q("_ldap._tcp.example.com", "SOA")}]}),
        ),
        ("MalformedPackets", json!({"count": 1, "senders": {b: 1}})),
        (
            "PacketSummary",
            json!({a: {"A": ["www.example.com"], "SOA": ["_ldap._tcp.example.com"]},
                   b: {"AAAA": ["www.example.com"], "TXT": ["_srv.example.com"]}}),
        ),
        (
            "AlonePackets",
            json!({"queries": [
                    {"sender": a, "server": s, "id": "0x0002", "query": q("_ldap._tcp.example.com", "SOA")},
                    {"sender": b, "server": s, "id": "0x0004", "query": q("_srv.example.com", "TXT")},
                    {"sender": a, "server": s, "id": "0x0005", "query": q("www.example.com", "A")}],
                   "answers": [
                    {"sender": a, "server": s, "id": "0x0009", "query": q("lost.example", "A")}]}),
        ),
        (
            "QtypeCounter",
            json!({"A": 2, "AAAA": 1, "SOA": 1, "TXT": 1}),
        ),
        ("RcodeCounter", json!({"NOERROR": 2, "NXDOMAIN": 1})),
    ];
    data.into_iter()
        .map(|(t, d)| json!({"type": t, "serverId": server, "data": d}))
        .collect()
}

fn lines(b: &[u8]) -> Vec<Value> {
    parse_ndjson(b)
}

#[test]
fn reducers_match_the_values_computed_by_hand() {
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("c.pcap");
    std::fs::write(&cap, capture()).unwrap();
    let cap = cap.to_str().unwrap();
    let base = ["dns", "reduce", "--server-id", "ns-test", "--top", "2"];
    // One window of 100 s of packet time.
    let o = ok(
        &[&base[..], &["-r", cap, "--window-secs", "100", "-s"]].concat(),
        None,
    );
    assert_eq!(lines(&o.stdout), by_hand("ns-test"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("11 packets, 9 DNS messages (1 over TCP)"),
        "{err}"
    );
    // Each line is exactly the three keys of the reference's envelope.
    for l in lines(&o.stdout) {
        assert_eq!(l.as_object().unwrap().len(), 3);
    }
    // The same through serialized messages (malformed ones marked), both
    // framings, from stdin: the same lines.
    for fmt in [&[][..], &["--ndjson"]] {
        let s = ok(
            &[&["dns", "serialize", "--malformed", "-r", cap][..], fmt].concat(),
            None,
        );
        let o = ok(
            &[&base[..], &["--window-secs", "100"]].concat(),
            Some(&s.stdout),
        );
        assert_eq!(lines(&o.stdout), by_hand("ns-test"));
    }
    // And a window of W messages that holds them all.
    let o = ok(
        &[&base[..], &["-r", cap, "--window-messages", "9"]].concat(),
        None,
    );
    assert_eq!(lines(&o.stdout), by_hand("ns-test"));
    // The serializer skips and counts the malformed one.
    let o = ok(&["dns", "serialize", "-r", cap, "--ndjson", "-s"], None);
    assert_eq!(parse_ndjson(&o.stdout).len(), 8);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("8 messages written, 1 malformed (skipped)"),
        "{err}"
    );
}

/// Windows of 4 messages, and of 1.5 s of packet time (boundaries at
/// multiples of 1.5 s since the epoch; T0 is one): the rates of each.
#[test]
fn windows_by_messages_and_by_packet_time() {
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("c.pcap");
    std::fs::write(&cap, capture()).unwrap();
    let cap = cap.to_str().unwrap();
    let rates = |args: &[&str]| -> Vec<(f64, f64)> {
        let o = ok(
            &[
                &[
                    "dns",
                    "reduce",
                    "-r",
                    cap,
                    "--reducers",
                    "PacketsPerSecond,QueriesPerSecond",
                ][..],
                args,
            ]
            .concat(),
            None,
        );
        let l = lines(&o.stdout);
        l.chunks(2)
            .map(|w| {
                (
                    w[0]["data"]["qps"].as_f64().unwrap(),
                    w[1]["data"]["pps"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    // Messages 1-4 (0 to 1.5 s: queries at 0, 1.0, 1.5), 5-8 (2.0 to
    // 3.5 s: one query), 9 (alone: a zero span gives the count).
    assert_eq!(
        rates(&["--window-messages", "4"]),
        [(3.0 / 1.5, 4.0 / 1.5), (1.0 / 1.5, 4.0 / 1.5), (1.0, 1.0)]
    );
    // [0, 1.5): 0, 0.5, 1.0; [1.5, 3.0): 1.5, 2.0, 2.5; [3.0, 4.5): 3.0,
    // 3.5 (malformed), 4.0.
    assert_eq!(
        rates(&["--window-secs", "1.5"]),
        [(2.0, 3.0), (2.0, 3.0), (1.0, 3.0)]
    );
    // Both: the one that comes first.
    assert_eq!(
        rates(&["--window-secs", "1.5", "--window-messages", "2"]),
        [
            (2.0, 4.0),
            (1.0, 1.0),
            (2.0, 4.0),
            (1.0, 1.0),
            (0.0, 4.0),
            (1.0, 1.0)
        ]
    );
}

/// A capture of 10 s: 41 queries 250 ms apart, IPv6.
fn ten_seconds() -> Vec<u8> {
    let v6 = |l: u8| {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = l;
        a
    };
    let frames: Vec<_> = (0..=40u32)
        .map(|i| {
            at(
                i * 250,
                ipv6(
                    17,
                    v6(1),
                    v6(53),
                    &udp(40000, 53, &dns(i as u16, "paced.example", 1, false)),
                ),
            )
        })
        .collect();
    pcap(&frames)
}

/// `--speed 1` takes the capture's 10 s, `--speed 4` 2.5 s, within 2 %
/// (from the first message out to the last, each flushed as it goes); the
/// mean timing error per packet is in `-s`.
#[test]
fn replay_at_speed_one_and_four() {
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("ten.pcap");
    std::fs::write(&cap, ten_seconds()).unwrap();
    for (speed, want) in [("1", 10.0), ("4", 2.5)] {
        let mut c = Command::new(D4)
            .args(["dns", "serialize", "--ndjson", "-s", "--speed", speed, "-r"])
            .arg(&cap)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(c.stdout.take().unwrap());
        let mut times = Vec::new();
        for l in out.lines() {
            l.unwrap();
            times.push(Instant::now());
        }
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success());
        assert_eq!(times.len(), 41);
        let took = (times[40] - times[0]).as_secs_f64();
        let err = String::from_utf8_lossy(&o.stderr);
        println!("speed {speed}: {took:.4} s for {want} s; {}", err.trim());
        assert!(
            (took - want).abs() <= want * 0.02,
            "speed {speed}: {took} s, not {want} s"
        );
        assert!(err.contains("mean absolute timing error"), "{err}");
    }
}

/// `--redis`: every line published on the channel of a real redis-server,
/// as stdout would have it.
#[test]
fn redis_pubsub_output() {
    let Some(r) = RedisServer::start() else {
        eprintln!("SKIPPED: redis-server not installed");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("c.pcap");
    std::fs::write(&cap, capture()).unwrap();
    let client = redis::Client::open(r.url(0)).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut ps = con.as_pubsub();
    ps.subscribe("dns:test").unwrap();
    ps.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let url = r.url(0);
    let args = [
        "dns",
        "reduce",
        "-r",
        cap.to_str().unwrap(),
        "--server-id",
        "ns-test",
        "--top",
        "2",
        "--window-secs",
        "100",
        "--redis",
        &url,
        "--channel",
        "dns:test",
        "-s",
    ];
    let o = ok(&args, None);
    assert!(o.stdout.is_empty(), "no stdout without --stdout");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("11 published, 0 dropped"), "{err}");
    let mut got = Vec::new();
    for _ in 0..11 {
        let m = ps.get_message().unwrap();
        assert_eq!(m.get_channel_name(), "dns:test");
        let p: String = m.get_payload().unwrap();
        got.push(serde_json::from_str::<Value>(&p).unwrap());
    }
    assert_eq!(got, by_hand("ns-test"));
    // --stdout as well: both.
    let o = ok(&[&args[..], &["--stdout"]].concat(), None);
    assert_eq!(lines(&o.stdout), by_hand("ns-test"));
}

/// `--d4 CONF`: a type-254 session to a real `d4 server`, meta-header
/// {"type":"dns-stats"}: the lines land, one item each, in a dns-stats
/// queue. The TOML `--config` routes the reducers (here a file and the
/// server).
#[test]
fn d4_server_output_and_config_routes() {
    let s = Server::start(&[]);
    let q = s.create_queue("dns-stats", &[]);
    let sensor = Sensor::new(&s, 254);
    sensor.set("metaheader.json", r#"{"type": "dns-stats"}"#);
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("c.pcap");
    std::fs::write(&cap, capture()).unwrap();
    let conf = sensor.dir.path().to_str().unwrap();
    let o = ok(
        &[
            "dns",
            "reduce",
            "-r",
            cap.to_str().unwrap(),
            "--server-id",
            "ns-test",
            "--top",
            "2",
            "--window-secs",
            "100",
            "--d4",
            conf,
            "-s",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("11 lines sent, 0 dropped"), "{err}");
    s.wait_queue_len(&q, 11);
    let out = s.drain("dns-stats", &q, &["-n"]);
    assert_eq!(lines(&out), by_hand("ns-test"));
    // The configuration: QueriesPerSecond and TopNQ to the server, TopNQ
    // and RcodeCounter to a file too.
    let toml = d.path().join("reduce.toml");
    std::fs::write(
        &toml,
        format!(
            "server_id = \"from-config\"\nwindow_secs = 100\ntop = 2\n\
             [outputs.server]\nkind = \"d4\"\nsensor = \"{conf}\"\n\
             [outputs.archive]\nkind = \"file\"\npath = \"archive.ndjson\"\n\
             [reducers]\nQueriesPerSecond = [\"server\"]\nTopNQ = [\"server\", \"archive\"]\nRcodeCounter = [\"archive\"]\n"
        ),
    )
    .unwrap();
    let o = ok(
        &[
            "dns",
            "reduce",
            "-r",
            cap.to_str().unwrap(),
            "--config",
            toml.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.stdout.is_empty());
    s.wait_queue_len(&q, 2);
    let want = by_hand("from-config");
    assert_eq!(
        lines(&s.drain("dns-stats", &q, &["-n"])),
        [want[0].clone(), want[4].clone()]
    );
    let archive = std::fs::read(d.path().join("archive.ndjson")).unwrap();
    assert_eq!(lines(&archive), [want[4].clone(), want[10].clone()]);
    // Flags that the configuration replaces are refused with it.
    let o = d4(
        &[
            "dns",
            "reduce",
            "--config",
            toml.to_str().unwrap(),
            "--redis",
            "redis://x",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
}

/// Garbage, a truncated capture, empty input, a capture without DNS and
/// broken serialized input: a clear reason and a non-zero exit.
#[test]
fn bad_input_exits_non_zero_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let full = capture();
    let cut = d.path().join("cut.pcap");
    std::fs::write(&cut, &full[..full.len() - 10]).unwrap();
    let none = d.path().join("none.pcap");
    std::fs::write(
        &none,
        pcap(&[at(0, ipv4(1, A, S, &[8, 0, 0, 0, 0, 0, 0, 0]))]),
    )
    .unwrap();
    for cmd in ["serialize", "reduce"] {
        for (args, stdin, why) in [
            (
                vec![],
                Some(&b"garbage, not a capture"[..]),
                "not a pcap or pcapng capture",
            ),
            (vec![], Some(&b""[..]), "it is empty"),
            (vec!["-r", cut.to_str().unwrap()], None, "cut short"),
            (
                vec!["-r", none.to_str().unwrap()],
                None,
                "no DNS message in the input (1 packets read",
            ),
            (
                vec!["-r", "/nonexistent.pcap"],
                None,
                "cannot open /nonexistent.pcap",
            ),
            (
                vec!["--speed", "nan"],
                Some(&full[..]),
                "speed NaN is not 0",
            ),
        ] {
            let o = d4(&[&["dns", cmd][..], &args].concat(), stdin);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{cmd} {args:?}: {err}");
            assert!(err.contains(why), "{cmd} {args:?}: {err}");
        }
    }
    // The truncated capture's messages before the cut are still written.
    let o = d4(
        &["dns", "serialize", "--ndjson", "-r", cut.to_str().unwrap()],
        None,
    );
    assert_eq!(parse_ndjson(&o.stdout).len(), 8);
    for (input, why) in [
        (&b"99999999{"[..], "over the bound"),
        (b"40{\"source\":\"192.0.2.1\"", "ends inside a message"),
        (b"{\"source\": 1}\n", "1 messages skipped"),
    ] {
        let o = d4(&["dns", "reduce"], Some(input));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(why), "{err}");
    }
}

/// `reduce -u QUEUE` follows a type-1 queue; one SIGTERM ends it, with
/// the window in hand written out.
#[test]
fn sigterm_ends_a_following_reduce() {
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    let sensor = Sensor::new(&s, 1);
    sensor.send(&capture());
    s.wait_queue_len(&q, 1);
    let mut c = Command::new(D4)
        .args([
            "dns",
            "reduce",
            "-u",
            &q,
            "--window-secs",
            "100",
            "--top",
            "2",
        ])
        .args(["--server-id", "ns-test", "--data-dir"])
        .arg(s.data_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the item read", Duration::from_secs(20), || {
        (s.queue_len(&q) == 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(c.try_wait().unwrap().is_none(), "it follows the queue");
    let mut out = c.stdout.take().unwrap();
    let (ok, err) = terminate(c);
    assert!(ok, "{err}");
    let mut b = Vec::new();
    std::io::Read::read_to_end(&mut out, &mut b).unwrap();
    assert_eq!(lines(&b), by_hand("ns-test"));
}

#[test]
fn help_has_examples() {
    for cmd in ["serialize", "reduce"] {
        let o = ok(&["dns", cmd, "--help"], None);
        let h = String::from_utf8_lossy(&o.stdout);
        assert!(
            h.contains("Examples:") && h.contains(&format!("d4 dns {cmd}")),
            "{h}"
        );
    }
}

/// `--cryptopan-key`: the addresses of every message pseudonymised as
/// `d4 anonymize --cryptopan-key` rewrites them in the capture, and as the
/// reference check values say.
#[test]
fn cryptopan_addresses_as_d4_anonymize() {
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("c.pcap");
    std::fs::write(&cap, capture()).unwrap();
    let key = d.path().join("key");
    // The key of the Crypto-PAn reference check values (as hex digits).
    let k: [u8; 32] = [
        21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131,
        121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
    ];
    std::fs::write(
        &key,
        k.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    )
    .unwrap();
    let (cap, key) = (cap.to_str().unwrap(), key.to_str().unwrap());
    let anon = d.path().join("anon.pcap");
    ok(
        &[
            "anonymize",
            "--cryptopan-key",
            key,
            "-r",
            cap,
            "-w",
            anon.to_str().unwrap(),
        ],
        None,
    );
    let direct = ok(
        &[
            "dns",
            "serialize",
            "--ndjson",
            "--cryptopan-key",
            key,
            "-r",
            cap,
        ],
        None,
    );
    let via = ok(
        &["dns", "serialize", "--ndjson", "-r", anon.to_str().unwrap()],
        None,
    );
    let addrs = |b: &[u8]| -> Vec<(String, String)> {
        parse_ndjson(b)
            .iter()
            .map(|m| {
                (
                    m["source"].as_str().unwrap().into(),
                    m["dest"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let (a, v) = (addrs(&direct.stdout), addrs(&via.stdout));
    assert_eq!(a.len(), 8);
    assert_eq!(a, v);
    let c = d4_packet::anon::CryptoPan::new(&k).unwrap();
    assert_eq!(a[0].0, c.ip("192.0.2.10".parse().unwrap()).to_string());
    assert_ne!(a[0].0, "192.0.2.10");
    // The same key on serialized input (reduce): the same addresses.
    let plain = ok(&["dns", "serialize", "-r", cap], None);
    let o = ok(
        &[
            "dns",
            "reduce",
            "--cryptopan-key",
            key,
            "--reducers",
            "PacketSummary",
            "--window-secs",
            "100",
        ],
        Some(&plain.stdout),
    );
    let l = lines(&o.stdout);
    assert!(l[0]["data"].get(a[0].0.as_str()).is_some(), "{l:?}");
}

/// A SIGTERM ends a paced replay at once, cleanly: what was written is
/// whole, the exit status 0.
#[test]
fn sigterm_ends_a_paced_replay() {
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("ten.pcap");
    std::fs::write(&cap, ten_seconds()).unwrap();
    let mut c = Command::new(D4)
        .args(["dns", "serialize", "--ndjson", "--speed", "1", "-r"])
        .arg(&cap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let t = Instant::now();
    let (ok, err) = terminate(c);
    assert!(ok, "{err}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let rest: Vec<String> = out.lines().map(Result::unwrap).collect();
    assert!(rest.len() < 10, "{}", rest.len());
    for l in std::iter::once(first.trim_end().to_string()).chain(rest) {
        serde_json::from_str::<Value>(&l).unwrap();
    }
}
