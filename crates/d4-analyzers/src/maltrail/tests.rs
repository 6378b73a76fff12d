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
    assert_eq!(m.stats().dns_queries, 5);
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
    // Each request in a connection of its own (the same bytes again in
    // one connection would be a retransmission).
    let mut sport = 50100;
    let mut get = |host: &str, path: &str| {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: t\r\n\r\n");
        sport += 1;
        ipv4(
            6,
            CLIENT,
            [203, 0, 113, 80],
            &tcp(sport, 80, PSH_ACK, req.as_bytes()),
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
    assert_eq!(m.stats().http_requests, 10);
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
    assert_eq!(m.stats().throttled, 3);
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

/// A TCP segment with its sequence number.
fn seg(sport: u16, dport: u16, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut s = tcp(sport, dport, flags, data);
    s[4..8].copy_from_slice(&seq.to_be_bytes());
    s
}

/// The trail fields (PROTO TYPE TRAIL) of event lines.
fn trails_of(got: &[String]) -> Vec<String> {
    got.iter()
        .map(|l| l.split(' ').skip(7).take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn http_heads_across_segments_out_of_order_and_retransmitted_once() {
    let mut m = matcher(
        "url.example/gate.php,c2 panel,urlhaus\nhost.example,malware,(static)\n",
        0,
    );
    let web = [203, 0, 113, 80];
    let req =
        b"GET /gate.php?id=1 HTTP/1.1\r\nUser-Agent: t\r\nHost: url.example\r\nAccept: */*\r\n\r\n";
    let (a, b) = (10, 40);
    let to_web = |sport: u16, seq: u32, flags: u8, d: &[u8]| {
        ipv4(6, CLIENT, web, &seg(sport, 80, seq, flags, d))
    };
    let got = events(
        &mut m,
        &[
            // Three segments in order, the Host in the second: one event.
            to_web(50000, 100, PSH_ACK, &req[..a]),
            to_web(50000, 100 + a as u32, PSH_ACK, &req[a..b]),
            to_web(50000, 100 + b as u32, PSH_ACK, &req[b..]),
            // The same connection again from its SYN; the middle segment
            // first, the first one twice, the last one twice.
            to_web(50001, 999, SYN, b""),
            to_web(50001, 1000 + a as u32, PSH_ACK, &req[a..b]),
            to_web(50001, 1000, PSH_ACK, &req[..a]),
            to_web(50001, 1000, PSH_ACK, &req[..a]),
            to_web(50001, 1000 + b as u32, PSH_ACK, &req[b..]),
            to_web(50001, 1000 + b as u32, PSH_ACK, &req[b..]),
            // A head cut where its Host is, in another connection: the
            // rest of it in a third connection does not complete it.
            to_web(50002, 1, PSH_ACK, b"GET / HTTP/1.1\r\nHost: www.host.ex"),
            to_web(50003, 34, PSH_ACK, b"ample\r\n\r\n"),
            to_web(50002, 34, PSH_ACK, b"ample\r\n\r\n"),
        ],
    );
    assert_eq!(
        trails_of(&got),
        [
            "TCP URL url.example/gate.php(?id=1)",
            "TCP URL url.example/gate.php(?id=1)",
            "TCP DNS (www).host.example",
        ],
        "{got:#?}"
    );
    // Each event at the segment that completed the head.
    assert!(got[0].starts_with("\"2027-01-15 08:00:02."), "{}", got[0]);
    assert!(got[1].starts_with("\"2027-01-15 08:00:07."), "{}", got[1]);
    assert_eq!(m.stats().http_requests, 3);
}

#[test]
fn http_keep_alive_requests_after_a_body_and_pipelined() {
    let mut m = matcher("/gate.php,c2,(static)\n/dl/x.exe,dropper,(static)\n", 0);
    let web = [203, 0, 113, 80];
    let post = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
    let two = b"GET /gate.php HTTP/1.1\r\nHost: h\r\n\r\nGET /dl/x.exe HTTP/1.1\r\nHost: h\r\n\r\n";
    let got = events(
        &mut m,
        &[
            ipv4(6, CLIENT, web, &seg(50000, 80, 1, PSH_ACK, post)),
            ipv4(
                6,
                CLIENT,
                web,
                &seg(50000, 80, 1 + post.len() as u32, PSH_ACK, two),
            ),
            // Bulk data of another connection, not a request.
            ipv4(6, web, CLIENT, &seg(80, 50000, 1, PSH_ACK, &[0u8; 1400])),
        ],
    );
    assert_eq!(
        trails_of(&got),
        ["TCP URL (h)/gate.php", "TCP URL (h)/dl/x.exe"],
        "{got:#?}"
    );
    assert_eq!(m.stats().http_requests, 3);
}

#[test]
fn dns_queries_over_tcp_split_and_several_a_segment() {
    let mut m = matcher("evil.example,malware,abuse.ch\n", 0);
    let framed = |name: &str| {
        let q = dns(9, name, 1, false);
        let mut b = u16::try_from(q.len()).unwrap_or(0).to_be_bytes().to_vec();
        b.extend_from_slice(&q);
        b
    };
    let mut stream = framed("a.evil.example");
    stream.extend(framed("notevil.example"));
    stream.extend(framed("evil.example"));
    let third = framed("b.evil.example");
    let to_resolver =
        |seq: u32, d: &[u8]| ipv4(6, CLIENT, RESOLVER, &seg(40000, 53, seq, PSH_ACK, d));
    let cut = 5;
    let got = events(
        &mut m,
        &[
            to_resolver(1, &stream),
            to_resolver(1 + stream.len() as u32, &third[..cut]),
            to_resolver(1 + (stream.len() + cut) as u32, &third[cut..]),
            // A response over TCP is not a query.
            ipv4(
                6,
                RESOLVER,
                CLIENT,
                &seg(53, 40000, 1, PSH_ACK, &{
                    let r = dns(9, "evil.example", 1, true);
                    let mut b = u16::try_from(r.len()).unwrap_or(0).to_be_bytes().to_vec();
                    b.extend_from_slice(&r);
                    b
                }),
            ),
        ],
    );
    assert_eq!(
        trails_of(&got),
        [
            "TCP DNS (a).evil.example",
            "TCP DNS evil.example",
            "TCP DNS (b).evil.example",
        ],
        "{got:#?}"
    );
    assert!(got[0].contains(" 192.0.2.10 40000 198.51.100.53 53 TCP "));
    assert_eq!(m.stats().dns_queries, 4);
}

#[test]
fn network_trails_name_the_address_inside() {
    let mut m = matcher(
        "203.0.113.0/25,scanner net,(custom)\n203.0.113.64/26,inner,(custom)\n203.0.113.66,exact,(custom)\n2001:db8:66::/48,v6 net,(custom)\n",
        0,
    );
    let v6 = |h: u16| {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, h as u8]);
        b[15] = 9;
        b
    };
    let got = events(
        &mut m,
        &[
            ipv4(6, CLIENT, [203, 0, 113, 0], &tcp(50000, 443, SYN, b"")),
            ipv4(6, CLIENT, [203, 0, 113, 127], &tcp(50001, 443, SYN, b"")),
            ipv4(6, CLIENT, [203, 0, 113, 128], &tcp(50002, 443, SYN, b"")),
            ipv4(17, [203, 0, 113, 70], CLIENT, &udp(53, 40000, b"x")),
            ipv4(1, CLIENT, [203, 0, 113, 66], &[8, 0, 0, 0]),
            ipv6(6, v6(1), v6(0x66), &tcp(50003, 80, SYN, b"")),
            ipv6(6, v6(1), v6(0x67), &tcp(50004, 80, SYN, b"")),
        ],
    );
    assert_eq!(
        trails_of(&got),
        [
            "TCP IP 203.0.113.0",
            "TCP IP 203.0.113.127",
            "UDP IP 203.0.113.70",
            "ICMP IP 203.0.113.66",
            "TCP IP 2001:db8:66::9",
        ],
        "{got:#?}"
    );
    assert!(
        got[0].ends_with(" \"scanner net\" (custom)\n"),
        "{}",
        got[0]
    );
    assert!(
        got[2].ends_with(" inner (custom)\n"),
        "the longest prefix: {}",
        got[2]
    );
    assert!(
        got[3].ends_with(" exact (custom)\n"),
        "an address first: {}",
        got[3]
    );
}

#[test]
fn network_lines_loaded_and_bad_ones_refused_with_their_number() {
    let mut t = Trails::new();
    let mut bad = Vec::new();
    t.load(
        &b"10.0.0.0/8,net,x\n10.0.0.0/33,bad,x\n2001:db8::/32,v6,x\n10.9.0.0/8,again,x\n"[..],
        |b| bad.push(b),
    )
    .unwrap_or_default();
    assert_eq!((t.stats.networks, t.stats.duplicates, t.len()), (2, 1, 2));
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].line, 2);
    assert!(
        bad[0].reason.contains("prefix length 33 is over 32"),
        "{:?}",
        bad[0]
    );
}
