#![allow(clippy::unwrap_used)]
//! `extract` on the shared DNS captures, against tables written from an
//! independent reading of the bytes (tcpdump -tt -vv, and a 20-line Python
//! walker for the TTLs), and on frames built here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use d4_packet::capture::CaptureReader;
use d4_pdns::extract::{ExtractConfig, ExtractStats, Extractor};

mod common;
use common::{dns_response, ipv4, udp};

fn shared() -> Option<PathBuf> {
    d4_packet::testdata::shared("data/pcap").map(|p| p.join("data/pcap"))
}

/// Lines of `d4 pdns extract` for a capture, its statistics, and whether
/// the capture reader stopped on an error.
fn extract(rel: &str) -> Option<(Vec<String>, ExtractStats, bool)> {
    let path = shared()?.join(rel);
    let f = d4_packet::gz::open_maybe_gz(&path).unwrap();
    let mut r = CaptureReader::new(f).unwrap();
    let nanos = r.pcap_header().is_some_and(|h| h.nanos);
    let mut x = Extractor::new(ExtractConfig::default());
    let mut out = Vec::new();
    let failed = loop {
        match r.next_packet() {
            Ok(Some(p)) => x.packet(&p, nanos, &mut |rec| rec.write_line(&mut out).unwrap()),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    Some((lines, x.stats, failed))
}

/// Lines without the timestamp: `client||server||class||query||type||answer||ttl||count`.
fn untimed(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.split_once("||").unwrap().1.to_string())
        .collect()
}

fn field(l: &str, i: usize) -> &str {
    l.split("||").nth(i).unwrap()
}

fn tally(lines: &[String], fields: &[usize]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in lines {
        let f: Vec<&str> = l.split("||").collect();
        let k = fields.iter().map(|&i| f[i]).collect::<Vec<_>>().join("||");
        *m.entry(k).or_default() += 1;
    }
    m
}

#[test]
fn suricata_type_filtering_full_table() {
    let Some((lines, stats, failed)) = extract("dns/sv__dns-eve-type-filtering.pcap") else {
        return;
    };
    assert!(!failed);
    // 7 responses; two (AAAA? and MX? suricata-ids.org) are NOERROR with
    // no answer (SOA in authority only): no record.
    let c = "10.16.1.11||8.8.8.8||IN";
    let want = [
        format!("1573665066.852509||{c}||www.suricata-ids.org.||CNAME||suricata-ids.org.||3513||1"),
        format!("1573665066.852509||{c}||suricata-ids.org.||A||192.0.78.24||213||1"),
        format!("1573665066.852509||{c}||suricata-ids.org.||A||192.0.78.25||213||1"),
        format!("1573665070.696369||{c}||suricata-ids.org.||A||192.0.78.25||299||1"),
        format!("1573665070.696369||{c}||suricata-ids.org.||A||192.0.78.24||299||1"),
        format!("1573665078.480962||{c}||www.suricata-ids.org.||CNAME||suricata-ids.org.||3599||1"),
        format!("1573665082.267708||{c}||www.suricata-ids.org.||CNAME||suricata-ids.org.||3497||1"),
        format!("1573665100.223910||{c}||oisf.net.||MX||5 alt2.aspmx.l.google.com.||14399||1"),
        format!("1573665100.223910||{c}||oisf.net.||MX||5 alt1.aspmx.l.google.com.||14399||1"),
        format!("1573665100.223910||{c}||oisf.net.||MX||10 aspmx3.googlemail.com.||14399||1"),
        format!("1573665100.223910||{c}||oisf.net.||MX||10 aspmx2.googlemail.com.||14399||1"),
        format!("1573665100.223910||{c}||oisf.net.||MX||1 aspmx.l.google.com.||14399||1"),
    ];
    assert_eq!(lines, want);
    assert_eq!(
        (stats.messages, stats.responses, stats.records),
        (14, 7, 12)
    );
    assert_eq!(stats.malformed, 0);
}

/// The answers of dnscap's 41 exchanges: 24 `A? google.com` each answered
/// by 216.58.218.206, 17 `PTR? 206.218.58.216.in-addr.arpa` each answered
/// by two PTRs (f14 and f206, in either order).
fn dnscap_udp_table() -> BTreeMap<String, usize> {
    let c = "172.17.0.10||8.8.8.8||IN";
    BTreeMap::from([
        (format!("{c}||google.com.||A||216.58.218.206"), 24),
        (
            format!("{c}||206.218.58.216.in-addr.arpa.||PTR||dfw06s47-in-f14.1e100.net."),
            17,
        ),
        (
            format!("{c}||206.218.58.216.in-addr.arpa.||PTR||dfw06s47-in-f206.1e100.net."),
            17,
        ),
    ])
}

#[test]
fn dnscap_udp() {
    let Some((lines, stats, failed)) = extract("dns/dnscap__dns.pcap") else {
        return;
    };
    assert!(!failed);
    assert_eq!(tally(&lines, &[1, 2, 3, 4, 5, 6]), dnscap_udp_table());
    // First response: id 59311 at 1476976981.077982, TTL 44 (0x2c in the bytes).
    assert_eq!(
        lines[0],
        "1476976981.077982||172.17.0.10||8.8.8.8||IN||google.com.||A||216.58.218.206||44||1"
    );
    assert_eq!(
        (stats.messages, stats.responses, stats.records),
        (82, 41, 58)
    );
}

#[test]
fn dnscap_fragments_give_the_same_records() {
    let (Some((frag, fs, f1)), Some((plain, _, f2))) = (
        extract("dns/dnscap__frags.pcap"),
        extract("dns/dnscap__dns.pcap"),
    ) else {
        return;
    };
    assert!(!f1 && !f2);
    assert_eq!(tally(&frag, &[1, 2, 3, 4, 5, 6]), dnscap_udp_table());
    // Same content, TTLs included, in the same order; only the times differ.
    assert_eq!(untimed(&frag), untimed(&plain));
    assert_eq!(fs.reassembly.fragments, 495);
    assert_eq!(fs.reassembly.datagrams, 82);
    assert_eq!(fs.reassembly.datagrams_dropped, 0);
    assert_eq!((fs.messages, fs.responses), (82, 41));
}

#[test]
fn dnscap_tcp_reassembled() {
    let Some((lines, stats, failed)) = extract("dns/dnscap__dnso1tcp.pcap") else {
        return;
    };
    assert!(!failed);
    // Over TCP the same 41 exchanges; each PTR answer has 4 records
    // (f206, f14, f206, f14), the A answer is 216.58.211.142.
    let c = "172.17.0.8||8.8.8.8||IN";
    let want = BTreeMap::from([
        (format!("{c}||google.com.||A||216.58.211.142"), 24),
        (
            format!("{c}||206.218.58.216.in-addr.arpa.||PTR||dfw06s47-in-f14.1e100.net."),
            34,
        ),
        (
            format!("{c}||206.218.58.216.in-addr.arpa.||PTR||dfw06s47-in-f206.1e100.net."),
            34,
        ),
    ]);
    assert_eq!(tally(&lines, &[1, 2, 3, 4, 5, 6]), want);
    // All 82 messages, the 41 queries split (length prefix, then body) included.
    assert_eq!(stats.reassembly.tcp_messages, 82);
    assert_eq!(
        (stats.messages, stats.responses, stats.records),
        (82, 41, 92)
    );
}

#[test]
fn zeek_udp_tcp_ipv6_fragments() {
    let Some((lines, stats, failed)) = extract("dns/zeek__dns-edns-ecs.pcap") else {
        return;
    };
    assert!(!failed);
    // 85 messages: 20 queries, 65 responses with 99 answer records (sum of
    // the answer counts tcpdump shows); 8 packets are fragments of 4
    // datagrams; TCP segments start mid-connection (no SYN).
    assert_eq!(
        (stats.messages, stats.responses, stats.records),
        (85, 65, 99)
    );
    assert_eq!(
        (stats.reassembly.fragments, stats.reassembly.datagrams),
        (8, 4)
    );
    let types = tally(&lines, &[5]);
    assert_eq!(
        types,
        BTreeMap::from([
            ("A".to_string(), 37),
            ("AAAA".to_string(), 18),
            ("CNAME".to_string(), 6),
            ("DNSKEY".to_string(), 14),
            ("DS".to_string(), 2),
            ("RRSIG".to_string(), 20),
            ("SOA".to_string(), 2),
        ])
    );
    // The 8 A answers of www.eu-west-1.prodaa.netflix.com from 205.251.198.70.
    let netflix: Vec<_> = lines
        .iter()
        .filter(|l| field(l, 2) == "205.251.198.70" && field(l, 5) == "A")
        .map(|l| l.split("||").nth(6).unwrap())
        .collect();
    assert_eq!(
        netflix,
        [
            "34.252.114.84",
            "34.253.36.84",
            "52.208.174.58",
            "54.154.12.178",
            "54.194.103.216",
            "54.194.216.197",
            "54.229.85.178",
            "54.77.199.154"
        ]
    );
    // A reassembled UDP datagram (first fragment at 14:40:08 UTC+x):
    // DNSKEY, DNSKEY, RRSIG, RRSIG of weberlab.de to 172.217.40.76.
    let frag: Vec<_> = lines
        .iter()
        .filter(|l| field(l, 1) == "172.217.40.76" && field(l, 2) == "193.24.227.238")
        .map(|l| l.split("||").nth(5).unwrap())
        .collect();
    assert_eq!(frag, ["DNSKEY", "DNSKEY", "RRSIG", "RRSIG"]);
    // The DNSKEY answer over TCP (one 1732-byte segment) from 194.247.5.14.
    let tcp: Vec<_> = lines
        .iter()
        .filter(|l| field(l, 1) == "194.247.5.6" && field(l, 2) == "194.247.5.14")
        .map(|l| l.split("||").nth(5).unwrap())
        .collect();
    assert_eq!(tcp, ["DNSKEY", "DNSKEY", "RRSIG", "RRSIG"]);
    // IPv6: AAAA of erfpop.de from 2620:fe::fe.
    let v6: Vec<_> = lines
        .iter()
        .filter(|l| field(l, 2) == "2620:fe::fe" && field(l, 5) == "AAAA")
        .map(|l| l.split("||").nth(6).unwrap())
        .collect();
    assert_eq!(v6, ["2606:4700:30::6818:6291", "2606:4700:30::6818:6391"]);
    for l in &lines {
        assert_eq!(l.split("||").count(), 9, "{l}");
    }
}

#[test]
fn tcpdump_edns_options() {
    let Some((lines, stats, failed)) = extract("dns/tcpdump__edns-opts.pcap") else {
        return;
    };
    assert!(!failed);
    // 21 responses for example.com A 93.184.216.34, 7 of them with an RRSIG
    // (the DO-bit queries): 28 records. OPT records are not data.
    let t = tally(&lines, &[4, 5]);
    assert_eq!(
        t,
        BTreeMap::from([
            ("example.com.||A".to_string(), 21),
            ("example.com.||RRSIG".to_string(), 7)
        ])
    );
    assert!(lines
        .iter()
        .filter(|l| l.contains("||A||"))
        .all(|l| l.contains("||93.184.216.34||")));
    assert!(lines
        .iter()
        .filter(|l| l.contains("||RRSIG||"))
        .all(|l| l.contains("||A 8 2 86400 ")));
    assert_eq!(
        (stats.responses, stats.records, stats.malformed),
        (21, 28, 0)
    );
}

#[test]
fn malformed_captures_are_counted_not_fatal() {
    let Some(_) = shared() else { return };
    // The hostile message: 64259 questions, forward pointers.
    let (lines, stats, _) = extract("malformed/tcpdump__dns_fwdptr.pcap").unwrap();
    assert!(lines.is_empty());
    assert_eq!(stats.malformed, 1);
    // Cut file: the 20 records before the cut are read, then an error.
    let (lines, stats, failed) = extract("malformed/derived__dnscap_dns_truncated.pcap").unwrap();
    assert!(failed);
    assert_eq!(stats.packets, 20);
    assert_eq!(stats.responses, 5);
    assert_eq!(lines.len(), 7);
    for f in [
        "malformed/sv__bug-6875-fuzz.pcap",
        "malformed/sv__tls_DER-incomplete-header.pcap",
        "malformed/tcpdump__empty.pcap",
        "malformed/zeek__truncated-header.pcap",
    ] {
        let (lines, stats, _) = extract(f).unwrap();
        assert!(lines.is_empty(), "{f}");
        assert_eq!(stats.records, 0);
    }
}

// ---- frames built here ----

fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut t = sport.to_be_bytes().to_vec();
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(data);
    t
}

fn run(frames: &[(u32, Vec<u8>)]) -> (Vec<String>, ExtractStats) {
    let mut x = Extractor::new(ExtractConfig::default());
    let mut out = Vec::new();
    for (lt, f) in frames {
        x.frame(*lt, 100, 5, f, &mut |r| r.write_line(&mut out).unwrap());
    }
    let s = String::from_utf8(out).unwrap();
    (s.lines().map(str::to_string).collect(), x.stats)
}

#[test]
fn nxdomain_ipv6_sll_vlan_and_tcp_framing() {
    let q = b"\x03Bad\x07example\x00";
    // NXDOMAIN over raw IPv6 (link type 229).
    let nx = dns_response(1, 3, q, &[]);
    let u = udp(53, 4444, &nx);
    let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
    v6[4..6].copy_from_slice(&(u.len() as u16).to_be_bytes());
    v6.extend_from_slice(
        &"2001:db8::53"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v6.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v6.extend_from_slice(&u);
    // An A answer over Linux cooked capture (113).
    let a = dns_response(2, 0, q, &[(1, &[192, 0, 2, 7])]);
    let mut sll = vec![0u8; 14];
    sll.extend_from_slice(&[0x08, 0x00]);
    sll.extend_from_slice(&ipv4(
        17,
        [192, 0, 2, 53],
        [192, 0, 2, 1],
        &udp(53, 5000, &a),
    ));
    // Two TCP messages in one segment, a third split over two, behind a VLAN tag.
    let m1 = dns_response(3, 0, q, &[(16, b"\x05hello\x02hi")]);
    let m2 = dns_response(4, 2, q, &[]);
    let m3 = dns_response(
        5,
        0,
        q,
        &[(
            28,
            &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
        )],
    );
    let mut stream = Vec::new();
    for m in [&m1, &m2, &m3] {
        stream.extend_from_slice(&(m.len() as u16).to_be_bytes());
        stream.extend_from_slice(m);
    }
    let cut = 2 + m1.len() + 2 + m2.len() + 7;
    let eth = |l4: Vec<u8>| {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0, 0, 9, 0x08, 0]);
        f.extend_from_slice(&ipv4(6, [198, 51, 100, 53], [198, 51, 100, 1], &l4));
        f
    };
    let frames = vec![
        (229, v6),
        (113, sll),
        (1, eth(tcp(53, 6000, 1000, 0x12, &[]))),
        (
            1,
            eth(tcp(53, 6000, 1001 + cut as u32, 0x18, &stream[cut..])),
        ),
        (1, eth(tcp(53, 6000, 1001, 0x18, &stream[..cut]))),
    ];
    let (lines, stats) = run(&frames);
    assert_eq!(
        lines,
        [
            "100.000005||2001:db8::1||2001:db8::53||IN||bad.example.||A||NXDOMAIN||0||1",
            "100.000005||192.0.2.1||192.0.2.53||IN||bad.example.||A||192.0.2.7||3600||1",
            "100.000005||198.51.100.1||198.51.100.53||IN||bad.example.||TXT||\"hello\" \"hi\"||3600||1",
            "100.000005||198.51.100.1||198.51.100.53||IN||bad.example.||A||SERVFAIL||0||1",
            "100.000005||198.51.100.1||198.51.100.53||IN||bad.example.||AAAA||2001:db8::9||3600||1",
        ]
    );
    assert_eq!(stats.reassembly.tcp_messages, 3);
    // A compression loop in an answer: the message is skipped and counted.
    let mut bad = dns_response(6, 0, q, &[(5, &[0xc0, 0x1d])]);
    let l = bad.len();
    bad[l - 1] = (l - 2) as u8; // the rdata name points at itself
    let f = ipv4(17, [192, 0, 2, 53], [192, 0, 2, 1], &udp(53, 5000, &bad));
    let (lines, stats) = run(&[(228, f)]);
    assert!(lines.is_empty());
    assert_eq!(stats.malformed, 1);
    assert_eq!(stats.records, 0);
}
