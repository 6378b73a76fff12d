use super::*;
use d4_packet::testdata::build::{dns, ipv4, ipv6, tcp, udp};

const SYN: u8 = 0x02;
const PSH_ACK: u8 = 0x18;
const CLIENT: [u8; 4] = [192, 0, 2, 10];
const RESOLVER: [u8; 4] = [198, 51, 100, 53];

fn matcher(lines: &str, throttle: u64) -> Matcher {
    let mut t = Trails::new();
    t.load(lines.as_bytes(), |b| panic!("{b:?}"))
        .unwrap_or_default();
    Matcher::new(t, throttle)
}

/// The events of frames (one second apart), as lines in UTC.
fn events(m: &mut Matcher, frames: &[Vec<u8>]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        m.frame(1, 1_800_000_000 + i as u64, 42, f, &mut |e| {
            let mut s = String::new();
            e.write_line(&chrono::Utc, "s1", &mut s);
            out.push(s);
        });
    }
    out
}

fn query(name: &str) -> Vec<u8> {
    ipv4(
        17,
        CLIENT,
        RESOLVER,
        &udp(40000, 53, &dns(7, name, 1, false)),
    )
}

#[test]
fn the_line_is_maltrails() {
    let e = Event {
        sec: 1_800_000_000,
        usec: 5,
        src: IpAddr::from(CLIENT),
        sport: Some(0),
        dst: IpAddr::from(RESOLVER),
        dport: Some(53),
        proto: "UDP",
        kind: "DNS",
        trail: "(a).evil.example",
        info: "malware \"x\" (static)",
        reference: "",
    };
    let mut s = String::new();
    e.write_line(&chrono::Utc, "my sensor", &mut s);
    assert_eq!(
        s,
        "\"2027-01-15 08:00:00.000005\" \"my sensor\" 192.0.2.10 - 198.51.100.53 53 UDP DNS (a).evil.example \"malware \"\"x\"\" (static)\" -\n"
    );
}

#[test]
fn domains_and_subdomains_in_queries_not_near_misses() {
    let mut m = matcher("evil.example,malware,abuse.ch\n", 0);
    let got = events(
        &mut m,
        &[
            query("evil.example"),
            query("A.B.Evil.Example"),
            query("notevil.example"),
            query("evil.example.org"),
            query("example"),
            // A response is not a query.
            ipv4(
                17,
                RESOLVER,
                CLIENT,
                &udp(53, 40000, &dns(7, "evil.example", 1, true)),
            ),
            // Not on port 53.
            ipv4(
                17,
                CLIENT,
                RESOLVER,
                &udp(40000, 5353, &dns(7, "evil.example", 1, false)),
            ),
        ],
    );
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got[0].ends_with(" 40000 198.51.100.53 53 UDP DNS evil.example malware abuse.ch\n"));
    assert!(
        got[1].contains(" UDP DNS (a.b).evil.example malware abuse.ch\n"),
        "{}",
        got[1]
    );
    assert_eq!(m.stats.dns_queries, 5);
}

#[test]
fn ip_and_ip_port_in_both_directions() {
    let mut m = matcher(
        "203.0.113.5,known attacker,(custom)\n203.0.113.6:8080,c2,(custom)\n2001:db8::66,v6,(custom)\n",
        0,
    );
    let v6 = |a: u8| {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        b[15] = a;
        b
    };
    let got = events(
        &mut m,
        &[
            ipv4(6, CLIENT, [203, 0, 113, 5], &tcp(50000, 443, SYN, b"")),
            ipv4(6, [203, 0, 113, 5], CLIENT, &tcp(50001, 22, SYN, b"")),
            // Not a connection's start.
            ipv4(6, CLIENT, [203, 0, 113, 5], &tcp(50000, 443, PSH_ACK, b"x")),
            ipv4(6, CLIENT, [203, 0, 113, 6], &tcp(50002, 8080, SYN, b"")),
            ipv4(6, CLIENT, [203, 0, 113, 6], &tcp(50003, 8081, SYN, b"")),
            ipv4(17, CLIENT, [203, 0, 113, 6], &udp(50004, 8080, b"x")),
            ipv4(1, CLIENT, [203, 0, 113, 5], &[8, 0, 0, 0]),
            ipv4(1, CLIENT, [203, 0, 113, 5], &[0, 0, 0, 0]),
            ipv6(6, v6(1), v6(0x66), &tcp(50005, 80, SYN, b"")),
            ipv6(58, v6(1), v6(0x66), &[128, 0, 0, 0]),
        ],
    );
    let kinds: Vec<String> = got
        .iter()
        .map(|l| l.split(' ').skip(7).take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        kinds,
        [
            "TCP IP 203.0.113.5",
            "TCP IP 203.0.113.5",
            "TCP IPORT 203.0.113.6:8080",
            "UDP IPORT 203.0.113.6:8080",
            "ICMP IP 203.0.113.5",
            "TCP IP 2001:db8::66",
            "ICMPV6 IP 2001:db8::66",
        ]
    );
    assert!(
        got[4].contains(" 192.0.2.10 - 203.0.113.5 - ICMP "),
        "{}",
        got[4]
    );
}

#[test]
fn http_host_and_urls() {
    let mut m = matcher(
        "host.example,malware,(static)\nurl.example/gate.php,c2 panel,urlhaus\n/dir/payload.exe,dropper,(static)\n",
        0,
    );
    let get = |host: &str, path: &str| {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: t\r\n\r\n");
        ipv4(
            6,
            CLIENT,
            [203, 0, 113, 80],
            &tcp(50100, 80, PSH_ACK, req.as_bytes()),
        )
    };
    let got = events(
        &mut m,
        &[
            get("www.Host.Example", "/"),
            get("url.example", "/gate.php?id=1"),
            get("url.example:80", "/gate.php/"),
            get("other.example", "/a/dir/payload.exe"),
            get("other.example", "/dir/payload.exe/more?x=1"),
            // Near misses.
            get("nothost.example", "/"),
            get("url.example", "/gate.phpx"),
            get("other.example", "/gate.php"),
            get("url.example", "/other/gate.php"),
            get("other.example", "/dir/payload.ex"),
        ],
    );
    let trails: Vec<String> = got
        .iter()
        .map(|l| l.split(' ').skip(7).take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        trails,
        [
            "TCP DNS (www).host.example",
            "TCP URL url.example/gate.php(?id=1)",
            "TCP URL url.example/gate.php(/)",
            "TCP URL (other.example)/dir/payload.exe(/more?x=1)",
        ],
        "{got:#?}"
    );
    assert_eq!(m.stats.http_requests, 10);
}

#[test]
fn throttled_per_window_by_source_or_destination() {
    let mut m = matcher("evil.example,malware,abuse.ch\n", 10);
    let other = ipv4(
        17,
        [192, 0, 2, 11],
        RESOLVER,
        &udp(40000, 53, &dns(7, "evil.example", 1, false)),
    );
    let elsewhere = ipv4(
        17,
        [192, 0, 2, 11],
        [9, 9, 9, 9],
        &udp(40000, 53, &dns(7, "evil.example", 1, false)),
    );
    // Seconds 0..=11 from a 10-s window start: 1_800_000_000 is a multiple of 10.
    let mut frames = vec![
        query("evil.example"),
        query("evil.example"),
        other,
        elsewhere,
    ];
    frames.extend((0..6).map(|_| query("x.example")));
    frames.extend([query("evil.example"), query("evil.example")]);
    let got = events(&mut m, &frames);
    // The first; the same source again, and another source to the same
    // resolver: dropped; another pair: reported; the next window: again once.
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(m.stats.throttled, 3);
    assert!(got[1].contains(" 192.0.2.11 40000 9.9.9.9 "));
    assert!(got[2].starts_with("\"2027-01-15 08:00:10"));
}

#[test]
fn garbage_never_panics() {
    let mut m = matcher("evil.example,a,b\n1.2.3.4,a,b\n/x,a,b\n", 0);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let base = [
        query("a.evil.example"),
        ipv4(
            6,
            CLIENT,
            [1, 2, 3, 4],
            &tcp(1, 80, PSH_ACK, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"),
        ),
    ];
    for i in 0..20_000 {
        let mut f = base[i % 2].clone();
        let n = (next() % 6) as usize;
        for _ in 0..n {
            let at = (next() as usize) % f.len();
            f[at] = next() as u8;
        }
        f.truncate((next() as usize) % (f.len() + 1));
        m.frame(1, 0, 0, &f, &mut |_| {});
    }
}
