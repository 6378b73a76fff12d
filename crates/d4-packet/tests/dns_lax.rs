#![allow(clippy::unwrap_used)]
//! The lax DNS walk on every truncation of a real response (from a shared
//! capture, skipped when absent) and of one built here: it never panics,
//! never yields a record past the cut, yields a prefix of the whole
//! message's records, and on the whole message agrees with the strict walk.

use std::path::PathBuf;

use d4_packet::capture::CaptureReader;
use d4_packet::decode;
use d4_packet::dns::{DnsError, Message, Record};

fn shared() -> Option<PathBuf> {
    d4_packet::testdata::shared("data/pcap").map(|p| p.join("data/pcap"))
}

/// A record as comparable values (name, section, type, class, TTL, rdata).
type Key = (String, String, u16, u16, u32, std::ops::Range<usize>);

fn key(r: &Record<'_>) -> Key {
    (
        r.name.to_string_lower(),
        format!("{:?}", r.section),
        r.rtype,
        r.class,
        r.ttl,
        r.rdata.clone(),
    )
}

/// Checks the lax walk on every prefix of `m`, a whole response; returns
/// how many records it has.
fn every_cut(m: &[u8]) -> usize {
    let strict = Message::parse(m).unwrap();
    let all: Vec<Key> = strict.records().map(|r| key(&r.unwrap())).collect();
    assert!(!all.is_empty());
    let lax = Message::parse_lax(m).unwrap();
    let mut walk = lax.records_lax();
    let whole: Vec<Key> = walk.by_ref().map(|r| key(&r)).collect();
    assert_eq!(whole, all, "lax = strict on the whole message");
    assert_eq!(walk.stop(), None);
    let mut last = 0;
    for cut in 0..m.len() {
        let Ok(msg) = Message::parse_lax(&m[..cut]) else {
            assert!(cut < 12);
            continue;
        };
        let mut walk = msg.records_lax();
        let got: Vec<Key> = walk.by_ref().map(|r| key(&r)).collect();
        for r in &got {
            assert!(r.5.end <= cut, "cut {cut}: rdata past the cut");
        }
        assert_eq!(got, all[..got.len()], "cut {cut}: a prefix of the records");
        assert!(
            got.len() >= last,
            "cut {cut}: fewer records with more bytes"
        );
        assert!(
            got.len() < all.len(),
            "cut {cut}: a cut message is not whole"
        );
        let stop = walk.stop().unwrap();
        assert_eq!(stop.error, DnsError::Truncated, "cut {cut}: {stop:?}");
        assert!(stop.at <= cut);
        last = got.len();
    }
    assert!(last > 0, "some cut keeps records");
    all.len()
}

/// A response built here: www.example.com A, with a CNAME and an A
/// answer, an NS in authority and a glue A in additional.
fn built() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 1, 0, 1];
    m.extend_from_slice(b"\x03www\x07example\x03com\x00");
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 16]);
    m.extend_from_slice(&[0xc0, 16, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 192, 0, 2, 1]);
    let ns_rdata = m.len() + 12;
    m.extend_from_slice(&[0xc0, 16, 0, 2, 0, 1, 0, 0, 1, 0, 0, 6]);
    m.extend_from_slice(b"\x03ns1\xc0\x10");
    m.extend_from_slice(&[0xc0, ns_rdata as u8]);
    m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 192, 0, 2, 53]);
    m
}

#[test]
fn lax_on_every_cut_of_a_built_response() {
    let m = built();
    assert_eq!(every_cut(&m), 4);
    let all: Vec<String> = Message::parse(&m)
        .unwrap()
        .records()
        .map(|r| r.unwrap().name.to_string_lower())
        .collect();
    assert_eq!(all[3], "ns1.example.com");
    // Strict refuses what lax reads: the counts of a cut message cannot fit.
    let cut = &m[..m.len() - 16];
    let strict_ok = Message::parse(cut)
        .map(|s| s.records().all(|r| r.is_ok()))
        .unwrap_or(false);
    assert!(!strict_ok);
    assert_eq!(Message::parse_lax(cut).unwrap().records_lax().count(), 3);
}

#[test]
fn lax_on_every_cut_of_a_real_response() {
    let Some(dir) = shared() else { return };
    let f = d4_packet::gz::open_maybe_gz(&dir.join("dns/dnscap__dns.pcap")).unwrap();
    let mut r = CaptureReader::new(f).unwrap();
    let mut checked = 0;
    while let Some(p) = r.next_packet().unwrap() {
        let Some(ip) = decode::ip(p.linktype, &p.data) else {
            continue;
        };
        let Some((sport, _, dns)) = decode::udp(ip.payload) else {
            continue;
        };
        let Ok(m) = Message::parse(dns) else { continue };
        // Responses with records in more than one section.
        if sport == 53 && m.header.ancount > 0 && m.header.nscount + m.header.arcount > 0 {
            every_cut(dns);
            checked += 1;
            if checked == 3 {
                break;
            }
        }
    }
    assert_eq!(
        checked, 3,
        "responses with several sections in dnscap__dns.pcap"
    );
}
