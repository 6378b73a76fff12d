#![allow(clippy::unwrap_used)]
//! `d4 pdns extract`'s lines against lines written by hand from gamelinux
//! passivedns's rules (src/dns.c: the rdata field it prints per type, and
//! its default `-X 46PCDNRS`), one record of each type it knows.

use d4_pdns::extract::{ExtractConfig, Extractor};
use d4_pdns::passivedns::Select;

mod common;
use common::{dns_response, ipv4, udp};

fn name(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in s.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

fn cs(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

/// A UDP/IPv4 frame (raw IP, link type 228) from 192.0.2.53:53 to
/// 192.0.2.1: a response for `q.example.` with these answers.
fn frame(answers: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let borrowed: Vec<(u16, &[u8])> = answers.iter().map(|(t, r)| (*t, r.as_slice())).collect();
    ipv4(
        17,
        [192, 0, 2, 53],
        [192, 0, 2, 1],
        &udp(53, 4444, &dns_response(1, 0, &name("q.example"), &borrowed)),
    )
}

fn every_type() -> Vec<(u16, Vec<u8>)> {
    let cat = |parts: &[&[u8]]| parts.concat();
    vec![
        (1, vec![192, 0, 2, 7]),
        (28, cat(&[&[0x20, 1, 0x0d, 0xb8], &[0; 11], &[1]])),
        (12, name("ptr.example")),
        (5, name("alias.example")),
        (39, name("dst.example")),
        (
            35,
            cat(&[
                &100u16.to_be_bytes(),
                &10u16.to_be_bytes(),
                &cs("S"),
                &cs("SIP+D2U"),
                &cs(""),
                &name("_sip._udp.example"),
            ]),
        ),
        (17, cat(&[&name("admin.example"), &name("txt.example")])),
        (
            33,
            cat(&[&[0, 0, 0, 5], &5060u16.to_be_bytes(), &name("sip.example")]),
        ),
        (16, cat(&[&cs("v=spf1 -all"), &cs("x")])),
        (
            6,
            cat(&[
                &name("ns1.example"),
                &name("host.example"),
                &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5],
            ]),
        ),
        (15, cat(&[&10u16.to_be_bytes(), &name("mx.example")])),
        (2, name("ns2.example")),
    ]
}

fn lines(select: Option<Select>) -> Vec<String> {
    let mut x = Extractor::new(ExtractConfig {
        passivedns: select,
        ..ExtractConfig::default()
    });
    let mut out = Vec::new();
    x.frame(228, 100, 5, &frame(&every_type()), &mut |r| {
        r.write_line(&mut out).unwrap()
    });
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| l.split("||").skip(4).collect::<Vec<_>>().join("||"))
        .collect()
}

/// `query||type||answer||ttl||count`, as passivedns prints each type.
const BY_HAND: [&str; 12] = [
    "q.example.||A||192.0.2.7||3600||1",
    "q.example.||AAAA||2001:db8::1||3600||1",
    "q.example.||PTR||ptr.example.||3600||1",
    "q.example.||CNAME||alias.example.||3600||1",
    "q.example.||DNAME||dst.example.||3600||1",
    "q.example.||NAPTR||100||3600||1",
    "q.example.||RP||admin.example.||3600||1",
    "q.example.||SRV||sip.example.||3600||1",
    "q.example.||TXT||\"v=spf1 -all\"||3600||1",
    "q.example.||SOA||ns1.example.||3600||1",
    "q.example.||MX||mx.example.||3600||1",
    "q.example.||NS||ns2.example.||3600||1",
];

#[test]
fn every_type_with_all_letters() {
    assert_eq!(lines(Some(Select::parse("46PCDNRSTOMn").unwrap())), BY_HAND);
}

#[test]
fn the_default_selection_is_passivedns_default() {
    assert_eq!(lines(Some(Select::default())), BY_HAND[..8]);
}

#[test]
fn cof_and_the_store_keep_the_full_form() {
    let full = lines(None);
    assert_eq!(full.len(), 12);
    assert_eq!(full[10], "q.example.||MX||10 mx.example.||3600||1");
    assert_eq!(full[7], "q.example.||SRV||0 5 5060 sip.example.||3600||1");
}
