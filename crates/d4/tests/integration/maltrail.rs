//! `d4 maltrail match`: every kind of trail planted in a capture built by
//! hand is found, and nothing else (near misses beside each); the lines are
//! the ones Maltrail's server accepts; a type-1 queue of the server is read
//! (`-u`) and acknowledged; the failure paths exit non-zero with
//! the reason.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use d4_packet::testdata::build::{dns, ipv4, ipv6, pcap, tcp, udp};

use crate::export::{maltrail_accepts, maltrail_fields};
use crate::harness::{shared, Sensor, Server, D4};

const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const PSH_ACK: u8 = 0x18;
const CLIENT: [u8; 4] = [192, 0, 2, 10];
const RESOLVER: [u8; 4] = [198, 51, 100, 53];
const WEB: [u8; 4] = [198, 51, 100, 80];
/// 2027-01-15 08:00:00 UTC.
const T0: u32 = 1_800_000_000;

const TRAILS: &str = "\
# planted below, one of each kind
203.0.113.5,known attacker,(custom)
203.0.113.6:8080,\"c2, port 8080\",(custom)
2001:db8::66,v6 host,(custom)
evil.example,malware,abuse.ch
host.example,phishing,(static)
url.example/gate.php,c2 panel,urlhaus.abuse.ch
/dl/payload.exe,dropper,(static)
not a trail,x,y
203.0.113.128/26,c2 net,(custom)
2001:db8:77::/48,v6 net,(custom)
split.example/panel/login.php,c2 panel,(custom)
";

/// An address of 2001:db8:NN::/48.
fn v6_in(net: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, net]);
    a[15] = 5;
    a
}

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = last;
    a
}

fn query(sport: u16, name: &str) -> Vec<u8> {
    ipv4(
        17,
        CLIENT,
        RESOLVER,
        &udp(sport, 53, &dns(1, name, 1, false)),
    )
}

/// A TCP segment with its sequence number.
fn seg(sport: u16, dport: u16, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut s = tcp(sport, dport, flags, data);
    s[4..8].copy_from_slice(&seq.to_be_bytes());
    s
}

/// A DNS query with its 2-byte length (DNS over TCP).
fn framed_query(name: &str) -> Vec<u8> {
    let q = dns(2, name, 1, false);
    let mut b = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
    b.extend_from_slice(&q);
    b
}

fn get(sport: u16, host: &str, path: &str) -> Vec<u8> {
    let r = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n");
    ipv4(6, CLIENT, WEB, &tcp(sport, 80, PSH_ACK, r.as_bytes()))
}

/// The capture: each frame one second after the previous one (no two
/// events in one throttling window); a planted trail or a decoy each.
fn capture() -> Vec<u8> {
    let mut frames = vec![
        // IP, destination and source.
        ipv4(6, CLIENT, [203, 0, 113, 5], &tcp(50000, 443, SYN, b"")),
        ipv4(6, [203, 0, 113, 5], CLIENT, &tcp(50001, 22, SYN, b"")),
        // Decoys: the answer to a SYN, data, another address.
        ipv4(6, [203, 0, 113, 5], CLIENT, &tcp(443, 50000, SYN_ACK, b"")),
        ipv4(
            6,
            CLIENT,
            [203, 0, 113, 5],
            &tcp(50000, 443, PSH_ACK, b"hello"),
        ),
        ipv4(6, CLIENT, [203, 0, 113, 55], &tcp(50002, 443, SYN, b"")),
        // IP:port, and the other port.
        ipv4(6, CLIENT, [203, 0, 113, 6], &tcp(50003, 8080, SYN, b"")),
        ipv4(6, CLIENT, [203, 0, 113, 6], &tcp(50004, 8081, SYN, b"")),
        // IPv6.
        ipv6(6, v6(1), v6(0x66), &tcp(50005, 80, SYN, b"")),
        ipv6(6, v6(1), v6(0x67), &tcp(50006, 80, SYN, b"")),
        // Domain and subdomain in DNS queries; near misses; a response.
        query(40000, "evil.example"),
        query(40001, "Mail.Sub.evil.example"),
        query(40002, "notevil.example"),
        query(40003, "evil.example.org"),
        query(40004, "example"),
        ipv4(
            17,
            RESOLVER,
            CLIENT,
            &udp(53, 40000, &dns(1, "evil.example", 1, true)),
        ),
        // Domain in an HTTP Host header; a near miss.
        get(50100, "www.host.example", "/index.html"),
        get(50101, "nothost.example", "/index.html"),
        // URLs: host and path, path alone; near misses.
        get(50102, "url.example", "/gate.php?id=7"),
        get(50103, "cdn.other.example", "/dl/payload.exe"),
        get(50104, "url.example", "/gate.phpx"),
        get(50105, "other.example", "/gate.php"),
        get(50106, "url.example", "/other/gate.php"),
        get(50107, "cdn.other.example", "/dl/payload.ex"),
        get(50108, "cdn.other.example", "/x/dl/payload.exe"),
    ];
    // Network trails: the first address of 203.0.113.128/26, the last as a
    // source; the addresses just outside; IPv6.
    frames.extend([
        ipv4(6, CLIENT, [203, 0, 113, 130], &tcp(50300, 443, SYN, b"")),
        ipv4(6, CLIENT, [203, 0, 113, 192], &tcp(50301, 443, SYN, b"")),
        ipv4(6, CLIENT, [203, 0, 113, 127], &tcp(50302, 443, SYN, b"")),
        ipv4(17, [203, 0, 113, 191], CLIENT, &udp(53000, 5000, b"x")),
        ipv6(6, v6(1), v6_in(0x77), &tcp(50303, 80, SYN, b"")),
        ipv6(6, v6(1), v6_in(0x78), &tcp(50304, 80, SYN, b"")),
    ]);
    // An HTTP request in 3 segments, its Host across the 2nd and 3rd; the
    // rest of a head in another connection (a decoy) in between; the last
    // segment sent twice.
    let req = b"GET /panel/login.php?u=1 HTTP/1.1\r\nAccept: */*\r\nHost: split.example\r\n\r\n";
    let (a, b) = (38, 55);
    let web = |sport: u16, seq: usize, d: &[u8]| {
        ipv4(6, CLIENT, WEB, &seg(sport, 80, 1 + seq as u32, PSH_ACK, d))
    };
    frames.extend([
        web(50200, 0, &req[..a]),
        web(50201, a, b"Host: split.example\r\n\r\n"),
        web(50200, a, &req[a..b]),
        web(50200, b, &req[b..]),
        web(50200, b, &req[b..]),
    ]);
    // A DNS query over TCP in two segments; another (a near miss) whole.
    let q = framed_query("tcp.evil.example");
    let to_resolver = |seq: usize, d: &[u8]| {
        ipv4(
            6,
            CLIENT,
            RESOLVER,
            &seg(40100, 53, 1 + seq as u32, PSH_ACK, d),
        )
    };
    frames.extend([
        to_resolver(0, &q[..7]),
        to_resolver(7, &q[7..]),
        to_resolver(q.len(), &framed_query("notevil.example")),
    ]);
    let frames: Vec<(u32, u32, Vec<u8>)> = frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| (T0 + i as u32, 1000 + i as u32, f))
        .collect();
    pcap(&frames)
}

/// Every event planted, in capture order.
const EXPECTED: &str = r#""2027-01-15 08:00:00.001000" edge-1 192.0.2.10 50000 203.0.113.5 443 TCP IP 203.0.113.5 "known attacker" (custom)
"2027-01-15 08:00:01.001001" edge-1 203.0.113.5 50001 192.0.2.10 22 TCP IP 203.0.113.5 "known attacker" (custom)
"2027-01-15 08:00:05.001005" edge-1 192.0.2.10 50003 203.0.113.6 8080 TCP IPORT 203.0.113.6:8080 "c2, port 8080" (custom)
"2027-01-15 08:00:07.001007" edge-1 2001:db8::1 50005 2001:db8::66 80 TCP IP 2001:db8::66 "v6 host" (custom)
"2027-01-15 08:00:09.001009" edge-1 192.0.2.10 40000 198.51.100.53 53 UDP DNS evil.example malware abuse.ch
"2027-01-15 08:00:10.001010" edge-1 192.0.2.10 40001 198.51.100.53 53 UDP DNS (mail.sub).evil.example malware abuse.ch
"2027-01-15 08:00:15.001015" edge-1 192.0.2.10 50100 198.51.100.80 80 TCP DNS (www).host.example phishing (static)
"2027-01-15 08:00:17.001017" edge-1 192.0.2.10 50102 198.51.100.80 80 TCP URL url.example/gate.php(?id=7) "c2 panel" urlhaus.abuse.ch
"2027-01-15 08:00:18.001018" edge-1 192.0.2.10 50103 198.51.100.80 80 TCP URL (cdn.other.example)/dl/payload.exe dropper (static)
"2027-01-15 08:00:24.001024" edge-1 192.0.2.10 50300 203.0.113.130 443 TCP IP 203.0.113.130 "c2 net" (custom)
"2027-01-15 08:00:27.001027" edge-1 203.0.113.191 53000 192.0.2.10 5000 UDP IP 203.0.113.191 "c2 net" (custom)
"2027-01-15 08:00:28.001028" edge-1 2001:db8::1 50303 2001:db8:77::5 80 TCP IP 2001:db8:77::5 "v6 net" (custom)
"2027-01-15 08:00:33.001033" edge-1 192.0.2.10 50200 198.51.100.80 80 TCP URL split.example/panel/login.php(?u=1) "c2 panel" (custom)
"2027-01-15 08:00:36.001036" edge-1 192.0.2.10 40100 198.51.100.53 53 TCP DNS (tcp).evil.example malware abuse.ch
"#;

/// Frames in the capture.
const FRAMES: i64 = 38;

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new(D4)
        .args(["maltrail", "match"])
        .args(args)
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut i = c.stdin.take().unwrap();
    if let Some(b) = stdin {
        i.write_all(b).unwrap();
    }
    drop(i);
    c.wait_with_output().unwrap()
}

#[test]
fn every_planted_trail_and_nothing_else() {
    let d = tempfile::tempdir().unwrap();
    let trails = d.path().join("trails.csv");
    std::fs::write(&trails, TRAILS).unwrap();
    let cap = d.path().join("planted.pcap");
    std::fs::write(&cap, capture()).unwrap();
    let (trails, cap) = (trails.to_str().unwrap(), cap.to_str().unwrap());
    let o = run(
        &["--trails", trails, "-r", cap, "--sensor", "edge-1", "-s"],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out, EXPECTED);
    assert!(
        err.contains("trails.csv:9: skipped: a trail holds no space"),
        "the bad line, with its number: {err}"
    );
    assert!(
        err.contains("10 trails (2 IP, 2 networks, 1 IP:port, 2 domains, 3 URLs; 1 bad lines")
            && err.contains(
                "38 packets, 7 DNS queries (0 malformed), 10 HTTP requests, 0 TCP directions dropped; 14 events, 0 throttled"
            ),
        "{err}"
    );
    // Each line as Maltrail's server takes it: its seconds, 11 fields.
    for line in out.lines() {
        let (sec, event) = maltrail_accepts(line.as_bytes()).expect("Maltrail accepts it");
        assert_eq!(event, format!("{line}\n").into_bytes());
        assert!(
            (i64::from(T0)..i64::from(T0) + FRAMES).contains(&sec),
            "{sec}"
        );
        let f = maltrail_fields(line);
        assert_eq!(f.len(), 11, "{f:?}");
        assert_eq!(f[1], "edge-1");
    }

    // The same from stdin (gzip), and appended to a file with -o.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&capture()).unwrap();
    let gz = gz.finish().unwrap();
    let events = d.path().join("events.log");
    let ev = events.to_str().unwrap();
    for _ in 0..2 {
        let o = run(
            &["--trails", trails, "--sensor", "edge-1", "-o", ev],
            Some(&gz),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stdout.is_empty());
    }
    assert_eq!(
        std::fs::read_to_string(&events).unwrap(),
        EXPECTED.repeat(2)
    );
}

#[test]
fn throttling_drops_repeats_within_the_window() {
    let d = tempfile::tempdir().unwrap();
    let trails = d.path().join("t.csv");
    std::fs::write(&trails, "evil.example,malware,abuse.ch\n").unwrap();
    // Ten queries in the same second, then one 5 s later.
    let mut frames: Vec<(u32, u32, Vec<u8>)> = (0..10)
        .map(|i| (T0, i, query(40000, "evil.example")))
        .collect();
    frames.push((T0 + 5, 0, query(40000, "evil.example")));
    let cap = d.path().join("q.pcap");
    std::fs::write(&cap, pcap(&frames)).unwrap();
    let count = |throttle: &str| {
        let o = run(
            &[
                "--trails",
                trails.to_str().unwrap(),
                "-r",
                cap.to_str().unwrap(),
                "--throttle",
                throttle,
            ],
            None,
        );
        assert!(o.status.success());
        o.stdout.iter().filter(|&&b| b == b'\n').count()
    };
    assert_eq!(count("1"), 2);
    assert_eq!(count("10"), 1);
    assert_eq!(count("0"), 11);
}

#[test]
fn failures_exit_non_zero_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("c.pcap");
    std::fs::write(&cap, capture()).unwrap();
    let cap = cap.to_str().unwrap();
    let missing = d.path().join("missing.csv");
    let empty = d.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let bad = d.path().join("bad.csv");
    std::fs::write(&bad, "a b,x,y\n10.0.0.0/33,net,x\n").unwrap();
    let good = d.path().join("good.csv");
    std::fs::write(&good, "evil.example,malware,abuse.ch\n").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["--trails", missing.to_str().unwrap(), "-r", cap],
            "cannot open the trails file",
        ),
        (
            &["--trails", empty.to_str().unwrap(), "-r", cap],
            "no usable trail",
        ),
        (
            &["--trails", bad.to_str().unwrap(), "-r", cap],
            "bad.csv:2: skipped: not a network: prefix length 33 is over 32 (IPv4)",
        ),
        (
            &[
                "--trails",
                good.to_str().unwrap(),
                "-r",
                "/nonexistent.pcap",
            ],
            "could not read",
        ),
        (
            &[
                "--trails",
                good.to_str().unwrap(),
                "-r",
                good.to_str().unwrap(),
            ],
            "could not read",
        ),
    ];
    for (args, why) in cases {
        let o = run(args, None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let o = run(&["-r", cap], None);
    assert_eq!(o.status.code(), Some(2), "--trails is required");
    let o = run(&["--help"], None);
    assert!(String::from_utf8_lossy(&o.stdout).contains("Examples:\n  d4 maltrail match"));
}

/// `-u QUEUE --once`: the captures a sensor sent to the server (type 1)
/// are matched from the server's type-1 queue, and acknowledged; a queue
/// of another type is refused with the reason.
#[test]
fn a_type1_queue_of_the_server() {
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    let lines = s.create_queue("3", &[]);
    let sensor = Sensor::new(&s, 1);
    let d = tempfile::tempdir().unwrap();
    let cap = d.path().join("planted.pcap");
    std::fs::write(&cap, capture()).unwrap();
    sensor.send_file(&cap);
    s.wait_queue_len(&q, 1);
    let trails = d.path().join("trails.csv");
    std::fs::write(&trails, TRAILS).unwrap();
    let data_dir = s.data_dir();
    let (trails, data_dir) = (trails.to_str().unwrap(), data_dir.to_str().unwrap());
    let base = [
        "--trails",
        trails,
        "--sensor",
        "edge-1",
        "--data-dir",
        data_dir,
    ];
    let o = run(&[&base[..], &["-u", &q, "--once"]].concat(), None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), EXPECTED);
    assert_eq!(s.queue_len(&q), 0, "the item is acknowledged");
    let o = run(&[&base[..], &["-u", &lines, "--once"]].concat(), None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("is of type 3, not 1"), "{err}");
}

/// A real capture: the 24 A queries for google.com of dnscap's sample
/// (the 17 PTR queries are for another name).
#[test]
fn real_capture_dns_queries() {
    let Some(sh) = shared() else {
        eprintln!("SKIPPED: ../shared/data/pcap not found");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let trails = d.path().join("t.csv");
    std::fs::write(&trails, "google.com,test,(custom)\n").unwrap();
    let cap = sh.join("data/pcap/dns/dnscap__dns.pcap");
    let o = run(
        &[
            "--trails",
            trails.to_str().unwrap(),
            "-r",
            cap.to_str().unwrap(),
            "--throttle",
            "0",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 24, "{out}");
    assert!(out
        .lines()
        .all(|l| l.contains(" 8.8.8.8 53 UDP DNS google.com test (custom)")));
}
