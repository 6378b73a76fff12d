#![allow(clippy::unwrap_used)]
//! `d4 tls fingerprint`'s engine on the shared TLS captures, against tables
//! written from an independent reading of the bytes (scripts/tls-reference.py:
//! a Python walker of pcap/pcapng, TCP, TLS records and handshakes, with its
//! own JA3/JA3S/JA4 and hashlib SHA-1 of the certificate DER), against the
//! JA4 values FoxIO publishes for ja4__tls-handshake.pcapng
//! (rust/ja4/src/snapshots/ja4__insta@tls-handshake.pcapng.snap), and on
//! captures built here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use d4_packet::capture::CaptureReader;
use d4_tls::hello::{md5_hex, ClientHello};
use d4_tls::record::Record;
use d4_tls::session::{Config, Fingerprinter, Stats};

fn shared() -> Option<PathBuf> {
    d4_packet::testdata::shared("data/pcap").map(|p| p.join("data/pcap"))
}

/// The records of a capture, the statistics, and whether the capture
/// reader stopped on an error.
fn run(rel: &str) -> Option<(Vec<Record>, Stats, bool)> {
    let path = shared()?.join(rel);
    let f = d4_packet::gz::open_maybe_gz(&path).unwrap();
    let mut r = CaptureReader::new(f).unwrap();
    let nanos = r.nanos();
    let mut x = Fingerprinter::new(Config::default());
    let mut out = Vec::new();
    let failed = loop {
        match r.next_packet() {
            Ok(Some(p)) => x.packet(&p, nanos, &mut |rec| out.push(rec.clone())),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    x.finish(&mut |rec| out.push(rec.clone()));
    Some((out, x.stats, failed))
}

#[test]
fn certs_alert_one_ipv6_session_with_its_chain() {
    let Some((recs, st, _)) = run("tls/sv__tls-certs-alert.pcap") else {
        return;
    };
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(
        (r.client_ip.as_str(), r.client_port.as_str()),
        ("2a03:b0c0:2:d0::bd3:4001", "48106")
    );
    assert_eq!(
        (r.server_ip.as_str(), r.server_port.as_str()),
        ("2606:2800:220:1:248:1893:25c8:1946", "443")
    );
    assert_eq!(r.timestamp, "2019-05-15T08:11:18.853977Z");
    assert_eq!(r.sni, "example.com");
    assert_eq!(r.alpn, ["h2", "http/1.1"]);
    assert_eq!(
        r.ja3,
        "771,49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-13172-16-22-23-13,29-23-25-24,0-1-2"
    );
    assert_eq!(r.ja3_digest, "1fe4c7a3544eb27afec2adfb3a3dbf60");
    assert_eq!(r.ja3s, "771,49199,65281-0-11-16-23");
    assert_eq!(r.ja3s_digest, "5d79edf64e03689ff559a54e9d9487bc");
    assert_eq!(r.ja4, "t12d2808h2_d943125447b4_e0fb7d0a714d");
    let sha1: Vec<&str> = r
        .certificates
        .iter()
        .map(|c| c.cert_hash.as_str())
        .collect();
    assert_eq!(
        sha1,
        [
            "7bb698386970363d2919cc5772846984ffd4a889",
            "1fb86b1168ec743154062e8c9cc5b171a4b7ccb4",
            "a8985d3a65e5e5c4b2d7d66d40c6dd2fb19c5436",
        ]
    );
    assert!(r.certificates[0].raw.starts_with("MIIHQDCCBiigAwIBAgIQ"));
    assert_eq!(r.certificates[0].sha256.len(), 64);
    assert_eq!(
        (st.client_hellos, st.server_hellos, st.certificates),
        (1, 1, 3)
    );
    assert_eq!(st.malformed, 0);
}

const DRAFT28_CIPHERS: &str = "4866-4867-4865-4868-49196-52393-49325-49162-49195-49324-49161-49200-52392-49172-49199-49171-157-49309-53-156-49308-47-159-52394-49311-57-158-49310-51";

#[test]
fn tls13_draft28_two_sessions_differ_by_psk() {
    let Some((recs, st, _)) = run("tls/sv__tls13_draft28.pcap") else {
        return;
    };
    let got: Vec<(&str, &str, &str, &str)> = recs
        .iter()
        .map(|r| {
            (
                r.client_port.as_str(),
                r.ja3.as_str(),
                r.ja3s.as_str(),
                r.ja4.as_str(),
            )
        })
        .collect();
    let ja3a = format!("771,{DRAFT28_CIPHERS},5-10-11-13-22-23-35-51-43-65281-0-45,23,0");
    let ja3b = format!("771,{DRAFT28_CIPHERS},5-10-11-13-22-23-35-51-43-65281-0-45-41,23,0");
    assert_eq!(
        got,
        [
            // supported_versions holds draft 28 (0x7f1c) only: JA4 version 00.
            (
                "39632",
                ja3a.as_str(),
                "771,4866,43-51",
                "t00d291200_723694b0fccc_aaaa04918165"
            ),
            (
                "39634",
                ja3b.as_str(),
                "771,4866,43-51-41",
                "t00d291300_723694b0fccc_4c6658849c25"
            ),
        ]
    );
    assert_eq!(recs[0].ja3_digest, "43202faa1c8c1760d6f7f4bd9adde4ab");
    assert_eq!(recs[1].ja3_digest, "d00857e0c8e7a7f35e446508c6233460");
    assert_eq!(recs[1].ja3s_digest, "2253c82f03b621c5144709b393fde2c9");
    assert!(recs
        .iter()
        .all(|r| r.sni == "localhost" && r.server_ip == "::1"));
    assert_eq!(st.records, 2);
}

#[test]
fn duplicate_hello_gives_two_records_the_second_answered() {
    let Some((recs, st, _)) = run("tls/sv__tls-duplicate-hello.pcap") else {
        return;
    };
    assert_eq!(recs.len(), 2);
    let ja3 =
        |ext: &str| format!("771,{DRAFT28_CIPHERS},5-10-11-13-22-23-35-51-{ext}-65281-0-45,23,0");
    assert_eq!(recs[0].ja3, ja3("43"));
    assert_eq!(recs[0].ja3s, "", "the first ClientHello got no answer");
    assert_eq!(recs[1].ja3, ja3("44"));
    assert_eq!(recs[1].ja3_digest, "0d245ced3bf51e17d08b66272836538d");
    assert_eq!(recs[1].ja3s, "771,4865,43-51");
    assert_eq!(recs[1].ja3s_digest, "f4febc55ea12b31ae17cfb7e614afda8");
    // No supported_versions in the second: its JA4 says TLS 1.2.
    assert_eq!(recs[0].ja4, "t13d291200_723694b0fccc_aaaa04918165");
    assert_eq!(recs[1].ja4, "t12d291200_723694b0fccc_82307588990d");
    assert_eq!(recs[0].client_ip, "127.0.0.1");
    assert_eq!((st.client_hellos, st.server_hellos), (2, 1));
}

#[test]
fn goja3_raw_ip_25_handshakes_17_names() {
    let Some((recs, st, _)) = run("tls/goja3__test2.pcap") else {
        return;
    };
    assert_eq!(recs.len(), 25);
    assert!(recs.iter().all(|r| !r.ja3s.is_empty()));
    let snis: BTreeSet<&str> = recs.iter().map(|r| r.sni.as_str()).collect();
    let want = "chromefeedcontentsuggestions-pa.googleapis.com clientservices.googleapis.com \
                en.m.wikipedia.org encrypted-tbn0.gstatic.com images-na.ssl-images-amazon.com \
                ir.ebaystatic.com m.youtube.com mtalk.google.com news.ycombinator.com s.yimg.com \
                safebrowsing.googleapis.com static.xx.fbcdn.net t0.gstatic.com \
                update.googleapis.com www.google.com www.gstatic.com www.instagram.com";
    assert_eq!(snis, want.split_whitespace().collect::<BTreeSet<_>>());
    let by_port: BTreeMap<&str, &Record> =
        recs.iter().map(|r| (r.client_port.as_str(), r)).collect();
    let r = by_port["41634"];
    assert_eq!(r.ja3s, "771,49195,23-65281-11-35-16");
    assert_eq!(r.ja3s_digest, "eca9b8f0f3eae50309eaf901cb822d9b");
    assert_eq!(r.ja4, "t12d1808h1_98a373aa5100_31a7e1922da8");
    let certs: Vec<&str> = r
        .certificates
        .iter()
        .map(|c| c.cert_hash.as_str())
        .collect();
    assert_eq!(
        certs,
        [
            "c511f7e2307f3efda55e986c9f3786552f836ef4",
            "1e7ef647cba150281c60897257102878c4bd8cdc",
            "08745487e891c19e3078c1f2a07e452950ef36f6",
        ]
    );
    assert_eq!(by_port["38458"].ja3s, "771,52393,23-65281-11-35-16");
    assert_eq!(by_port["39009"].ja4, "t13d171200_5b57614c22b0_352634941f3a");
    let ja4s: BTreeSet<&str> = recs.iter().map(|r| r.ja4.as_str()).collect();
    assert_eq!(ja4s.len(), 6);
    assert_eq!(
        (st.client_hellos, st.server_hellos, st.certificates),
        (25, 25, 55)
    );
}

#[test]
fn ja4_capture_64_hellos_with_hello_retry_requests() {
    let Some((recs, st, _)) = run("tls/ja4__tls-handshake.pcapng") else {
        return;
    };
    assert_eq!(recs.len(), 64);
    assert_eq!((st.client_hellos, st.server_hellos), (64, 64));
    assert!(
        recs.iter().all(|r| !r.ja3s.is_empty()),
        "every hello answered"
    );
    let mut per_port: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in &recs {
        per_port.entry(r.client_port.as_str()).or_default().push(r);
    }
    assert_eq!(per_port.len(), 59);
    let twice: Vec<&str> = per_port
        .iter()
        .filter(|(_, v)| v.len() == 2)
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(twice, ["50159", "50165", "50166", "50168", "50169"]);
    // The HelloRetryRequest pair: the first hello has padding (21), the
    // second not; the HRR and the ServerHello give the same JA3S.
    let hrr = &per_port["50165"];
    assert_eq!(hrr[0].ja3_digest, "a344a44961275e65e50908ff6f17371d");
    assert_eq!(hrr[0].ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    assert_eq!(hrr[1].ja3_digest, "ede6dace7885f222f1c70375231b5c79");
    assert_eq!(hrr[1].ja4, "t13d1515h2_8daaf6152771_f37e75b10bcc");
    assert!(hrr.iter().all(|r| r.ja3s == "771,4866,43-51"));
    assert!(hrr.iter().all(|r| r.sni == "js.monitor.azure.com"));
    // JA4 as FoxIO's own tool prints it for this capture.
    for (port, ja4) in [
        ("50112", "t13d1516h2_8daaf6152771_e5627efa2ab1"),
        ("50122", "t13d1516h1_8daaf6152771_e5627efa2ab1"),
        ("50123", "t13d151400_8daaf6152771_de4a06bb82e3"),
        ("50153", "t13d1517h1_8daaf6152771_6cdcb247c39b"),
    ] {
        assert_eq!(per_port[port][0].ja4, ja4, "port {port}");
    }
    assert_eq!(per_port["50123"][0].server_port, "5228");
    assert_eq!(per_port["50123"][0].sni, "mtalk.google.com");
    // TLS 1.2 sessions carry their chain.
    let lp = per_port["50122"][0];
    assert_eq!(lp.ja3s, "771,49200,65281-11-35");
    let c: Vec<&str> = lp
        .certificates
        .iter()
        .map(|c| c.cert_hash.as_str())
        .collect();
    assert_eq!(
        c,
        [
            "2eed1996c300b241448a49fb122e15dfe8341720",
            "dfe83023062b997682708b4eab8e819aff5d9775"
        ]
    );
    assert_eq!(st.certificates, 14);
    let snis: BTreeSet<&str> = recs.iter().map(|r| r.sni.as_str()).collect();
    assert_eq!(snis.len(), 37);
}

#[test]
fn sslv2_hello_is_counted_not_fingerprinted() {
    let Some((recs, st, _)) = run("tls/zeek__ssl-v2.pcap") else {
        return;
    };
    assert!(recs.is_empty());
    assert_eq!(st.sslv2_hellos, 1);
    assert_eq!(st.client_hellos, 0);
}

#[test]
fn every_capture_runs_and_bad_certificates_are_counted() {
    let Some(root) = shared() else {
        return;
    };
    for dir in ["tls", "malformed"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let name = format!("{dir}/{}", e.unwrap().file_name().to_string_lossy());
            let (recs, st, _) = run(&name).unwrap();
            assert!(st.records as usize == recs.len(), "{name}");
        }
    }
    let (recs, st, failed) = run("malformed/sv__tls_DER-incomplete-header.pcap").unwrap();
    assert!(failed, "the capture ends on a bogus record header");
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].certificates[0].cert_hash,
        "88b5a112dfe8f4c1c48e8507eb182f397dfbb85b"
    );
    assert_eq!(st.malformed, 1, "the certificate's DER header is cut");
}

// ---- captures built here ----

/// A raw-IP (link type 101) IPv4 frame of one TCP segment.
fn frame(to_server: bool, seq: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let (src, dst, sp, dp) = if to_server {
        ([192, 0, 2, 1], [198, 51, 100, 7], 50000u16, 8443u16)
    } else {
        ([198, 51, 100, 7], [192, 0, 2, 1], 8443, 50000)
    };
    let total = (40 + data.len()) as u16;
    let mut f = vec![0x45, 0];
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(data);
    f
}

fn handshake_record(t: u8, body: &[u8]) -> Vec<u8> {
    let mut hs = vec![t];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(body);
    let mut r = vec![22, 3, 1];
    r.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    r.extend_from_slice(&hs);
    r
}

fn grease_hello() -> ClientHello {
    ClientHello {
        version: 0x0303,
        ciphers: vec![0x1a1a, 0x1301, 0xc02b, 0x009c],
        extensions: vec![0x2a2a, 0, 23, 10, 11, 13, 16, 43, 0xfe0d, 0xdada],
        curves: vec![0x3a3a, 29, 23],
        point_formats: vec![0],
        sni: Some("grease.example".into()),
        alpn: vec![b"http/1.1".to_vec()],
        versions: vec![0x4a4a, 0x0304, 0x0303],
        sig_algs: vec![0x0403, 0x0804, 0x0401],
    }
}

fn server_hello_body(cipher: u16, exts: &[u16]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend_from_slice(&[7; 32]);
    b.push(0);
    b.extend_from_slice(&cipher.to_be_bytes());
    b.push(0);
    let mut e = Vec::new();
    for t in exts {
        e.extend_from_slice(&t.to_be_bytes());
        e.extend_from_slice(&[0, 0]);
    }
    b.extend_from_slice(&(e.len() as u16).to_be_bytes());
    b.extend_from_slice(&e);
    b
}

#[test]
fn hello_split_out_of_order_retransmitted_grease_two_records_in_a_segment() {
    let h = grease_hello();
    let ch = handshake_record(1, &h.build());
    let cut = ch.len() / 2;
    // Server: ServerHello and Certificate in one segment, two records.
    let mut sh = handshake_record(2, &server_hello_body(0xc02b, &[0xff01, 11]));
    let der = [0x30, 0x03, 2, 1, 5];
    let mut cert = Vec::new();
    cert.extend_from_slice(&8u32.to_be_bytes()[1..]);
    cert.extend_from_slice(&5u32.to_be_bytes()[1..]);
    cert.extend_from_slice(&der);
    sh.extend_from_slice(&handshake_record(11, &cert));
    sh.extend_from_slice(&[23, 3, 3, 0, 2, 0xaa, 0xbb]); // application data
    let mut x = Fingerprinter::new(Config::default());
    let mut recs = Vec::new();
    let mut emit = |r: &Record| recs.push(r.clone());
    let isn = 1_000u32;
    let frames = [
        frame(true, isn, 0x02, &[]),
        frame(false, 77, 0x12, &[]),
        frame(true, isn + 1 + cut as u32, 0x18, &ch[cut..]), // second half first
        frame(true, isn + 1, 0x18, &ch[..cut]),
        frame(true, isn + 1, 0x18, &ch[..cut]), // retransmission
        frame(false, 78, 0x18, &sh),
        frame(true, isn + 1 + ch.len() as u32, 0x18, &[23, 3, 3, 0, 1, 0]),
    ];
    for (i, f) in frames.iter().enumerate() {
        x.frame(101, 1_600_000_000, i as u32, f, &mut emit);
    }
    x.finish(&mut emit);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(
        r.ja3,
        "771,4865-49195-156,0-23-10-11-13-16-43-65037,29-23,0"
    );
    assert_eq!(r.ja3_digest, md5_hex(&r.ja3));
    assert_eq!(r.ja3s, "771,49195,65281-11");
    assert_eq!(r.sni, "grease.example");
    assert_eq!(r.alpn, ["http/1.1"]);
    assert!(r.ja4.starts_with("t13d0308h1_"), "{}", r.ja4);
    assert_eq!(r.timestamp, "2020-09-13T12:26:40.000003Z");
    assert_eq!(r.certificates.len(), 1);
    // sha1(30 03 02 01 05), from Python's hashlib.
    assert_eq!(r.certificates[0].raw, "MAMCAQU=");
    assert_eq!(
        r.certificates[0].cert_hash,
        "16c3c3e0bb5b5f4fbaecdb6df37a5a4f9d1196e4"
    );
    assert_eq!(
        (r.client_ip.as_str(), r.client_port.as_str()),
        ("192.0.2.1", "50000")
    );
    assert_eq!(x.stats.malformed, 0);
    assert_eq!(x.pending(), 0);
}

#[test]
fn a_session_without_server_hello_still_gives_its_ja3_and_garbage_is_counted() {
    let ch = handshake_record(1, &grease_hello().build());
    let mut x = Fingerprinter::new(Config::default());
    let mut recs = Vec::new();
    let mut emit = |r: &Record| recs.push(r.clone());
    x.frame(101, 10, 0, &frame(true, 5, 0x18, &ch), &mut emit);
    // A handshake record whose ClientHello is cut inside.
    let bad = handshake_record(1, &[3, 3, 0, 0]);
    let f = frame(false, 9, 0x18, &bad);
    x.frame(101, 11, 0, &f, &mut emit);
    assert_eq!(x.pending(), 1, "nothing written before the end");
    x.finish(&mut emit);
    assert_eq!(recs.len(), 1);
    assert!(recs[0].ja3s.is_empty());
    assert_eq!(x.stats.malformed, 1);
}
