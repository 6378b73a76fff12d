//! Passive DNS end to end: a type-8 sensor streams passivedns lines through
//! the real server; `d4 pdns serve --ingest-queue` ingests them and answers
//! `/query` in COF; a name with 1,000 records pages through completely.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{shared, wait_for, Sensor, Server, D4};

struct Pdns {
    child: Child,
    base: String,
    http: reqwest::blocking::Client,
}

impl Drop for Pdns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `d4 ARGS` (a lookup server), reads its first line
/// `{banner}: listening on URL`; the child and the URL.
pub(crate) fn spawn_listening(args: &[&str], banner: &str) -> (Child, String) {
    let mut child = Command::new(D4)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix(&format!("{banner}: listening on "))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, base)
}

impl Pdns {
    fn start(args: &[&str]) -> Pdns {
        let mut all = vec![
            "pdns",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit",
            "0",
        ];
        all.extend_from_slice(args);
        let (child, base) = spawn_listening(&all, "d4 pdns serve");
        Pdns {
            child,
            base,
            http: reqwest::blocking::Client::new(),
        }
    }

    /// GET returning (content type, NDJSON records, next cursor).
    fn query(&self, path: &str) -> (String, Vec<Value>, Option<String>) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let cursor = r
            .headers()
            .get("x-pdns-cursor")
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.text().unwrap();
        let recs = body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (ct, recs, cursor)
    }

    fn info(&self) -> Value {
        self.http
            .get(format!("{}/info", self.base))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }
}

#[test]
fn type8_stream_to_cof_lookups_with_pages() {
    let s = Server::start(&[]);
    let q = s.create_queue("8", &[]);
    let sensor = Sensor::new(&s, 8);
    let mut input = String::new();
    // One (name, type, rdata) seen three times, out of order, counts 2+1+4.
    for (t, n) in [
        (1_700_000_300u64, 2),
        (1_700_000_100, 1),
        (1_700_000_200, 4),
    ] {
        input.push_str(&format!(
            "{t}.000001||10.0.0.1||192.0.2.53||IN||Mixed.Example.||A||192.0.2.10||60||{n}\n"
        ));
    }
    // The same name with other types and times: never mixed with the A record.
    input.push_str(
        "1_700_000_900.5||10.0.0.1||192.0.2.53||IN||mixed.example.||A||192.0.2.99||60||1\n",
    ); // bad timestamp: skipped
    input.push_str(
        "1700000050.000000||10.0.0.1||192.0.2.53||IN||mixed.example.||AAAA||2001:db8::10||60||1\n",
    );
    input.push_str(
        "1700000500.000000||10.0.0.1||192.0.2.53||IN||mixed.example.||AAAA||2001:DB8::10||60||3\n",
    );
    input.push_str("1700000400.000000||10.0.0.1||192.0.2.53||IN||mixed.example.||TYPE65534||\\# 2 0102||60||1\n");
    input
        .push_str("1700000450.000000||10.0.0.1||192.0.2.53||IN||bad.example.||A||NXDOMAIN||0||1\n");
    // 1,000 distinct records of one name.
    for i in 0..1000u32 {
        input.push_str(&format!(
            "{}.000000||10.0.0.2||192.0.2.53||IN||many.example.||A||10.1.{}.{}||300||1\n",
            1_700_001_000 + i / 10,
            i / 256,
            i % 256
        ));
    }
    let lines = input.lines().count() as u64;
    sensor.send(input.as_bytes());
    s.wait_queue_len(&q, lines);

    let store = s.dir.path().join("pdns.redb");
    let data_dir = s.data_dir();
    let p = Pdns::start(&[
        "--store",
        store.to_str().unwrap(),
        "--ingest-queue",
        &q,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--sensor-id",
        "sensor-a",
    ]);
    // 1 + 1 + 1 + 1 + 1000 records once everything is ingested.
    wait_for("the queue ingested", Duration::from_secs(30), || {
        (p.info()["stats"]["records"].as_u64() == Some(1004)).then_some(())
    });
    assert_eq!(s.queue_len(&q), 0);
    let info = p.info();
    assert_eq!(info["software"], "d4-pdns");
    assert_eq!(info["sensors"], serde_json::json!(["sensor-a"]));

    let (ct, recs, cursor) = p.query("/query/mixed.example");
    assert_eq!(ct, "application/x-ndjson");
    assert_eq!(cursor, None);
    let got: Vec<(String, String, u64, u64, u64)> = recs
        .iter()
        .map(|r| {
            (
                r["rrtype"].as_str().unwrap().to_string(),
                r["rdata"].as_str().unwrap().to_string(),
                r["time_first"].as_u64().unwrap(),
                r["time_last"].as_u64().unwrap(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    // In store order (type, then rdata); per (rrname, rrtype, rdata).
    assert_eq!(
        got,
        [
            (
                "A".into(),
                "192.0.2.10".into(),
                1_700_000_100,
                1_700_000_300,
                7
            ),
            (
                "AAAA".into(),
                "2001:db8::10".into(),
                1_700_000_050,
                1_700_000_500,
                4
            ),
            (
                "TYPE65534".into(),
                "\\# 2 0102".into(),
                1_700_000_400,
                1_700_000_400,
                1
            ),
        ]
    );
    for r in &recs {
        assert_eq!(r["rrname"], "mixed.example");
        assert_eq!(r["sensor_id"], serde_json::json!(["sensor-a"]));
    }
    // Filters, reverse lookup, NXDOMAIN kept.
    let (_, a, _) = p.query("/query/mixed.example?rrtype=a");
    assert_eq!(a.len(), 1);
    let (_, a1, _) = p.query("/query/mixed.example?rrtype=1");
    assert_eq!(a1, a);
    // An unknown type is a 400, not an empty 200 (as PDNS.md says).
    let r = p
        .http
        .get(format!("{}/query/mixed.example?rrtype=nosuchtype", p.base))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("unknown rrtype"));
    let (_, by_ip, _) = p.query("/query/192.0.2.10");
    assert_eq!(by_ip[0]["rrname"], "mixed.example");
    let (_, nx, _) = p.query("/query/bad.example");
    assert_eq!(nx[0]["rdata"], "NXDOMAIN");
    let (_, old, _) = p.query("/query/mixed.example?time_last_before=1700000450");
    assert_eq!(old.len(), 2);

    // The 1,000 records of many.example, 128 at a time, each exactly once.
    let mut seen = BTreeSet::new();
    let mut last = String::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/query/many.example?limit=128&cursor={c}"),
            None => "/query/many.example?limit=128".to_string(),
        };
        let (_, recs, next) = p.query(&path);
        pages += 1;
        for r in recs {
            let d = r["rdata"].as_str().unwrap().to_string();
            assert!(d > last, "not in store order");
            last = d.clone();
            assert!(seen.insert(d));
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(pages, 8);
    // The browser form: one JSON array.
    let arr: Value = p
        .http
        .get(format!("{}/fquery/mixed.example", p.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 3);
    // The shared passivedns vectors ingest without a bad line.
    if let Some(sh) = shared() {
        let path = sh.join("vectors/inputs/passivedns.csv");
        let dir = tempfile::tempdir().unwrap();
        let o = Command::new(D4)
            .args(["pdns", "ingest", "-s", "-r"])
            .arg(&path)
            .arg("--store")
            .arg(dir.path().join("v.redb"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(" 0 bad lines"), "{err}");
    }
}

#[test]
fn extract_cli_on_a_capture_and_a_damaged_file() {
    let Some(sh) = shared() else { return };
    let o = Command::new(D4)
        .args(["pdns", "extract", "-s", "-r"])
        .arg(sh.join("data/pcap/dns/sv__dns-eve-type-filtering.pcap"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let out = String::from_utf8(o.stdout).unwrap();
    // passivedns's default types (-X 46PCDNRS): the capture's five MX
    // answers are left out, as passivedns does (-X M adds them).
    assert_eq!(out.lines().count(), 7);
    assert!(out.starts_with(
        "1573665066.852509||10.16.1.11||8.8.8.8||IN||www.suricata-ids.org.||CNAME||suricata-ids.org.||3513||1\n"
    ));
    let o = Command::new(D4)
        .args(["pdns", "extract", "--cof", "-r"])
        .arg(sh.join("data/pcap/malformed/derived__dnscap_dns_truncated.pcap"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "a cut file is reported");
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 7, "records before the cut are kept");
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["rrname"], "google.com");
    assert_eq!(first["rrtype"], "A");
}

#[test]
fn type1_captures_through_a_queue_into_the_store() {
    let Some(sh) = shared() else { return };
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    let sensor = Sensor::new(&s, 1);
    sensor.send_file(&sh.join("data/pcap/dns/dnscap__frags.pcap"));
    s.wait_queue_len(&q, 1);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("t1.redb");
    let data_dir = s.data_dir();
    let o = Command::new(D4)
        .args(["pdns", "ingest", "-s", "--once", "-u", &q, "--data-dir"])
        .arg(&data_dir)
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    // 58 answers (after IPv4 reassembly) of 3 distinct records.
    assert!(err.contains("58 observations (3 created"), "{err}");
    assert_eq!(s.queue_len(&q), 0);
    let p = Pdns::start(&["--store", store.to_str().unwrap()]);
    let (_, recs, _) = p.query("/query/206.218.58.216.in-addr.arpa");
    let mut got: Vec<(String, u64)> = recs
        .iter()
        .map(|r| {
            (
                r["rdata"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("dfw06s47-in-f14.1e100.net".to_string(), 17),
            ("dfw06s47-in-f206.1e100.net".to_string(), 17)
        ]
    );
    let (_, a, _) = p.query("/query/google.com");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["count"], 24);
    assert_eq!(a[0]["rdata"], "216.58.218.206");
    // The whole capture lies within second 1506965422 (tcpdump -tt: .731059 to .884033).
    assert_eq!(a[0]["time_first"], 1_506_965_422u64);
    assert_eq!(a[0]["time_last"], 1_506_965_422u64);
}

#[test]
fn pdns_help_has_examples_and_bad_usage_exits_2() {
    for sub in ["extract", "ingest", "serve"] {
        let o = Command::new(D4)
            .args(["pdns", sub, "--help"])
            .output()
            .unwrap();
        assert!(o.status.success());
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(
            text.contains("Examples:"),
            "d4 pdns {sub} --help has no example"
        );
    }
    let o = Command::new(D4)
        .args(["pdns", "serve", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(D4).args(["pdns", "ingest"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to ingest"));
}

/// `kill -TERM` to a child; its exit status, which must come within 10 s.
pub(crate) fn sigterm(child: &mut Child) -> (std::process::ExitStatus, Duration) {
    let t = std::time::Instant::now();
    let k = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success(), "kill -TERM failed");
    let status = wait_for("the process to exit", Duration::from_secs(10), || {
        child.try_wait().unwrap()
    });
    (status, t.elapsed())
}

/// `n` passivedns lines of distinct records, the `wave`-th lot.
fn lines(wave: u32, n: u32) -> String {
    (0..n)
        .map(|i| {
            format!(
                "{}.000000||10.0.0.3||192.0.2.53||IN||w{wave}.example.||A||10.{wave}.{}.{}||300||1\n",
                1_700_002_000 + i,
                i / 256,
                i % 256
            )
        })
        .collect()
}

#[test]
fn one_sigterm_stops_serve_and_ingest_and_loses_nothing() {
    let s = Server::start(&[]);
    let q = s.create_queue("8", &[]);
    let sensor = Sensor::new(&s, 8);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("term.redb");
    let store = store.to_str().unwrap();
    let data_dir = s.data_dir();
    let data_dir = data_dir.to_str().unwrap();
    let records = |store: &str| -> u64 {
        let p = Pdns::start(&["--store", store]);
        p.info()["stats"]["records"].as_u64().unwrap()
    };

    // serve --ingest-queue: items popped just before the signal still reach the store.
    sensor.send(lines(1, 3000).as_bytes());
    s.wait_queue_len(&q, 3000);
    let mut p = Pdns::start(&[
        "--store",
        store,
        "--ingest-queue",
        &q,
        "--data-dir",
        data_dir,
    ]);
    wait_for("the queue drained", Duration::from_secs(30), || {
        (s.queue_len(&q) == 0).then_some(())
    });
    let (status, took) = sigterm(&mut p.child);
    assert!(status.success(), "serve exited with {status}");
    assert!(took < Duration::from_secs(5), "serve took {took:?} to stop");
    drop(p);
    assert_eq!(records(store), 3000);

    // ingest -u (following): the same, for the command without a server.
    sensor.send(lines(2, 3000).as_bytes());
    s.wait_queue_len(&q, 3000);
    let mut ingest = Command::new(D4)
        .args(["pdns", "ingest", "-s", "-u", &q, "--store", store])
        .args(["--data-dir", data_dir])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the queue drained", Duration::from_secs(30), || {
        (s.queue_len(&q) == 0).then_some(())
    });
    let (status, took) = sigterm(&mut ingest);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut ingest.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "ingest exited with {status}: {err}");
    assert!(
        took < Duration::from_secs(5),
        "ingest took {took:?} to stop"
    );
    assert!(err.contains("3000 observations (3000 created"), "{err}");
    assert_eq!(records(store), 6000);
}

/// `d4 pdns ingest ARGS`: (success, stderr).
fn ingest(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let o = Command::new(D4)
        .args(["pdns", "ingest", "-s"])
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A DNS response (www.example.com A 192.0.2.7, TTL 300) from 192.0.2.53:53
/// to 10.0.0.9:40000 in an Ethernet/IPv4/UDP frame.
fn dns_response_frame() -> Vec<u8> {
    let mut dns = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for l in ["www", "example", "com"] {
        dns.push(l.len() as u8);
        dns.extend_from_slice(l.as_bytes());
    }
    dns.extend_from_slice(&[0, 0, 1, 0, 1]); // root, A, IN
    dns.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 7]);
    let udp_len = 8 + dns.len() as u16;
    let mut udp = Vec::new();
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]); // no checksum
    udp.extend_from_slice(&dns);
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(20 + udp_len).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 53, 10, 0, 0, 9]);
    let sum = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&udp);
    let mut eth = vec![2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 53, 0x08, 0x00];
    eth.extend_from_slice(&ip);
    eth
}

/// A little-endian microsecond pcap of one Ethernet frame at 1700000000.
fn pcap_of(frame: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 1] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    for v in [1_700_000_000u32, 0, frame.len() as u32, frame.len() as u32] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(frame);
    f
}

/// A little-endian pcapng (section header, one Ethernet interface, one
/// enhanced packet block at 1700000000 s in microseconds).
fn pcapng_of(frame: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    let u32le = |f: &mut Vec<u8>, v: u32| f.extend_from_slice(&v.to_le_bytes());
    // Section header block.
    for v in [0x0a0d_0d0au32, 28, 0x1a2b_3c4d] {
        u32le(&mut f, v);
    }
    f.extend_from_slice(&1u16.to_le_bytes());
    f.extend_from_slice(&0u16.to_le_bytes());
    f.extend_from_slice(&(-1i64).to_le_bytes());
    u32le(&mut f, 28);
    // Interface description block: Ethernet, snaplen 65535.
    u32le(&mut f, 1);
    u32le(&mut f, 20);
    f.extend_from_slice(&1u16.to_le_bytes());
    f.extend_from_slice(&0u16.to_le_bytes());
    u32le(&mut f, 65535);
    u32le(&mut f, 20);
    // Enhanced packet block.
    let padded = frame.len().div_ceil(4) * 4;
    let total = (32 + padded) as u32;
    let ts = 1_700_000_000u64 * 1_000_000;
    for v in [
        6,
        total,
        0,
        (ts >> 32) as u32,
        ts as u32,
        frame.len() as u32,
        frame.len() as u32,
    ] {
        u32le(&mut f, v);
    }
    f.extend_from_slice(frame);
    f.resize(f.len() + padded - frame.len(), 0);
    u32le(&mut f, total);
    f
}

#[test]
fn ingest_reads_uncompressed_captures_by_magic_and_refuses_inputs_that_yield_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let frame = dns_response_frame();
    // Named as they come, and one capture with a misleading name.
    std::fs::write(d.join("dns.pcap"), pcap_of(&frame)).unwrap();
    std::fs::write(d.join("dns.pcapng"), pcapng_of(&frame)).unwrap();
    std::fs::write(d.join("capture.log"), pcapng_of(&frame)).unwrap();
    for name in ["dns.pcap", "dns.pcapng", "capture.log"] {
        let store = d.join(format!("{name}.redb"));
        let (ok, err) = ingest(&[
            "-r".as_ref(),
            d.join(name).as_os_str(),
            "--store".as_ref(),
            store.as_os_str(),
        ]);
        assert!(ok, "{name}: {err}");
        assert!(
            err.contains("1 observations (1 created") && err.contains("; 1 records stored"),
            "{name}: {err}"
        );
        let p = Pdns::start(&["--store", store.to_str().unwrap()]);
        let (_, recs, _) = p.query("/query/www.example.com");
        assert_eq!(recs.len(), 1, "{name}");
        assert_eq!(recs[0]["rdata"], "192.0.2.7");
        assert_eq!(recs[0]["time_last"], 1_700_000_000u64);
    }

    // Not empty, nothing in it: an error naming the file and what it was
    // taken for; the good input next to it is still stored.
    std::fs::write(d.join("junk.bin"), b"\x00\x01hello, not a record\n").unwrap();
    std::fs::write(d.join("header-only.pcap"), &pcap_of(&frame)[..24]).unwrap();
    std::fs::write(d.join("empty.log"), b"").unwrap();
    let store = d.join("mixed.redb");
    let (ok, err) = ingest(&[
        "-r".as_ref(),
        d.join("junk.bin").as_os_str(),
        "-r".as_ref(),
        d.join("header-only.pcap").as_os_str(),
        "-r".as_ref(),
        d.join("empty.log").as_os_str(),
        "-r".as_ref(),
        d.join("dns.pcap").as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
    ]);
    assert!(!ok, "inputs that yield nothing are not a success: {err}");
    assert!(
        err.contains(&format!(
            "{}: no record in 22 bytes read as passivedns lines: 1 lines, 1 not passivedns records",
            d.join("junk.bin").display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{}: no record in 24 bytes read as a capture (pcap/pcapng): 0 packets",
            d.join("header-only.pcap").display()
        )),
        "{err}"
    );
    assert!(
        !err.contains("empty.log:"),
        "an empty input is no error: {err}"
    );
    assert!(err.contains("1 observations (1 created"), "{err}");
    assert!(err.contains("junk.bin, "), "the summary names it: {err}");

    // Stdin too.
    let o = Command::new(D4)
        .args(["pdns", "ingest", "-r", "-", "--store"])
        .arg(d.join("stdin.redb"))
        .stdin(std::fs::File::open(d.join("junk.bin")).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("-: no record in 22 bytes"));

    // Real captures: a pcap with DNS; pcapng files without a DNS answer.
    let Some(sh) = shared() else { return };
    let pcaps = sh.join("data/pcap");
    let (ok, err) = ingest(&[
        "-r".as_ref(),
        pcaps.join("dns/dnscap__dns.pcap").as_os_str(),
        "-r".as_ref(),
        pcaps.join("dns/zeek__dns-edns-ecs.pcap").as_os_str(),
        "--store".as_ref(),
        d.join("real.redb").as_os_str(),
    ]);
    assert!(ok, "{err}");
    // 58 answers of 3 records, and the 99 of the zeek capture.
    assert!(err.contains("157 observations"), "{err}");
    assert!(!err.contains("0 records stored"), "{err}");
    for f in [
        "tls/ja4__tls-handshake.pcapng",
        "pcapng/tcpdump__empty.pcapng",
    ] {
        let (ok, err) = ingest(&[
            "-r".as_ref(),
            pcaps.join(f).as_os_str(),
            "--store".as_ref(),
            d.join("none.redb").as_os_str(),
        ]);
        assert!(!ok, "{f}: {err}");
        assert!(
            err.contains(f) && err.contains("read as a capture (pcap/pcapng)"),
            "{f}: {err}"
        );
    }
}

#[test]
fn a_wildcard_lookup_costs_its_limit_and_keeps_no_memory() {
    // 100,000 records under *.com.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("com.log");
    let mut text = String::new();
    for i in 0..100_000u32 {
        text.push_str(&format!(
            "{}.000000||10.0.0.1||192.0.2.53||IN||h{i}.z{}.com.||A||10.{}.{}.{}||300||1\n",
            1_700_000_000 + i,
            i % 100,
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    std::fs::write(&input, text).unwrap();
    let store = dir.path().join("com.redb");
    let (ok, err) = ingest(&[
        "-r".as_ref(),
        input.as_os_str(),
        "--store".as_ref(),
        store.as_os_str(),
    ]);
    assert!(ok && err.contains("100000 records stored"), "{err}");
    let p = Pdns::start(&["--store", store.to_str().unwrap()]);
    let status = || std::fs::read_to_string(format!("/proc/{}/status", p.child.id())).ok();
    let kb = |field: &str| -> Option<u64> {
        status()?
            .lines()
            .find_map(|l| l.strip_prefix(field))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    let get = |path: &str| {
        let r = p.http.get(format!("{}{path}", p.base)).send().unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
        let (cursor, examined) = (h("x-pdns-cursor"), h("x-pdns-examined"));
        let body = r.text().unwrap();
        (body.lines().count(), cursor, examined)
    };
    let _ = p.info();
    let before = kb("VmHWM:");
    let (n, cursor, examined) = get("/query/*.com?limit=1");
    assert_eq!(n, 1);
    let examined: u64 = examined.expect("x-pdns-examined").parse().unwrap();
    assert!(examined <= 2, "a limit=1 page examined {examined} records");
    let (n, _, examined) = get(&format!("/query/*.com?limit=1&cursor={}", cursor.unwrap()));
    assert_eq!(n, 1);
    assert!(examined.unwrap().parse::<u64>().unwrap() <= 2);
    // Four clients at once, then more: the peak resident memory of the
    // server stays where it was (each lookup read the 100,000 records,
    // about 100 MB, before issue 19).
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..4 {
                    assert_eq!(get("/query/*.com?limit=1").0, 1);
                }
            });
        }
    });
    if let (Some(before), Some(after)) = (before, kb("VmHWM:")) {
        assert!(
            after < before + 32 * 1024,
            "peak RSS {before} kB -> {after} kB over 18 wildcard lookups"
        );
    } else {
        eprintln!("skipped the memory check: no /proc/PID/status");
    }
}
