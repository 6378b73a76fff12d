//! End to end: sensor → TLS → server → worker → queue → `d4 stdout`.

use std::time::Duration;

use crate::harness::*;

#[test]
fn synthetic_pcap_comes_back_with_identical_packets() {
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    let sensor = Sensor::new(&s, 1);
    let cap = synthetic_pcap(3000);
    sensor.send(&cap);
    s.wait_queue_len(&q, 1);
    let out = s.drain("1", &q, &["-f"]);
    assert_eq!(packets(&out), packets(&cap));
    match tcpdump_count(&out) {
        Some(n) => assert_eq!(n, 3000),
        None => eprintln!("skipped: tcpdump not installed (ci.sh installs it)"),
    }
    // The stored file is a valid pcap on its own, under the documented path.
    let dir = s.day_dir(&sensor.uuid, "1");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_str().unwrap().ends_with(".cap.gz"));
}

#[test]
fn real_captures_come_back_with_identical_packets() {
    let Some(shared) = shared() else { return };
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    for name in [
        "dns/dnscap__dns.pcap",
        "tls/goja3__test2.pcap",
        "mixed/tcpdump__pptp.pcap",
        "mixed/tcpdump__tcp-handshake-nano.pcap",
    ] {
        let path = shared.join("data/pcap").join(name);
        let original = std::fs::read(&path).unwrap();
        let sensor = Sensor::new(&s, 1);
        sensor.send_file(&path);
        s.wait_queue_len(&q, 1);
        let out = s.drain("1", &q, &["-f"]);
        // Big-endian and nanosecond files are stored as sent: compare bytes.
        assert_eq!(out, original, "{name}");
        if original[..4] == [0xd4, 0xc3, 0xb2, 0xa1] {
            assert_eq!(packets(&out).len(), packets(&original).len(), "{name}");
        }
    }
}

#[test]
fn rotation_cuts_on_record_boundaries_and_every_file_is_a_pcap() {
    let s = Server::start(&["--rotation-secs", "1"]);
    let q = s.create_queue("1", &[]);
    let sensor = Sensor::new(&s, 1);
    let cap = synthetic_pcap(4000);
    // Feed slowly, in odd-sized pieces, so rotations fall inside records.
    let mut child = std::process::Command::new(D4)
        .args(["client", "-c", sensor.dir.path().to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for chunk in cap.chunks(cap.len() / 7 + 13) {
            stdin.write_all(chunk).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_millis(400));
        }
    }
    assert!(child.wait().unwrap().success());
    let dir = s.day_dir(&sensor.uuid, "1");
    // Wait until every file is finished (compressed) and announced.
    let files = wait_for("all files compressed", Duration::from_secs(30), || {
        let mut f: Vec<_> = std::fs::read_dir(&dir)
            .ok()?
            .map(|e| e.unwrap().path())
            .collect();
        f.sort();
        f.iter()
            .all(|p| p.to_str().unwrap().ends_with(".cap.gz"))
            .then_some(f)
    });
    assert!(files.len() >= 2, "expected several files, got {files:?}");
    s.wait_queue_len(&q, files.len() as u64);
    let announced: Vec<String> = String::from_utf8(s.drain("1", &q, &["-n"]))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut all = Vec::new();
    for f in &files {
        assert!(
            announced.iter().any(|a| a == f.to_str().unwrap()),
            "{f:?} was not announced"
        );
        let mut r = d4_packet::gz::open_maybe_gz(f).unwrap();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut b).unwrap();
        let n = packets(&b).len();
        all.extend(packets(&b));
        if let Some(t) = tcpdump_count(&b) {
            assert_eq!(t, n, "tcpdump reads {f:?}");
        }
    }
    assert_eq!(all, packets(&cap));
}

fn lines_round_trip(ty: u8, input: &[u8]) {
    let s = Server::start(&[]);
    let q = s.create_queue(&ty.to_string(), &[]);
    let sensor = Sensor::new(&s, ty);
    sensor.set("snaplen", "100\n"); // lines split across frames
    sensor.send(input);
    let want: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    s.wait_queue_len(&q, want.len() as u64);
    let out = s.drain(&ty.to_string(), &q, &["-n"]);
    let got: Vec<&[u8]> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn type3_lines_land_one_item_per_line() {
    let input: String = (0..500)
        .map(|i| {
            format!(
                "<13>Jan  1 00:00:{:02} host app[{i}]: message number {i}\n",
                i % 60
            )
        })
        .collect();
    lines_round_trip(3, input.as_bytes());
}

#[test]
fn type8_passivedns_lines_land_one_item_per_line() {
    let input = match shared() {
        Some(p) => std::fs::read(p.join("vectors/inputs/passivedns.csv")).unwrap(),
        None => (0..300)
            .map(|i| format!("1322849924.{i:06}||10.1.1.1||8.8.8.8||IN||host{i}.example.||A||192.0.2.{}||3600||1\n", i % 250))
            .collect::<String>()
            .into_bytes(),
    };
    lines_round_trip(8, &input);
}

#[test]
fn extended_type_session_lands_lines_in_its_queue() {
    let s = Server::start(&[]);
    let q = s.create_queue("maltrail", &[]);
    let other = s.create_queue("ja3-jl", &[]);
    let sensor = Sensor::new(&s, 254);
    sensor.set(
        "metaheader.json",
        r#"{"type": "maltrail", "encoding": "utf-8"}"#,
    );
    let input: String = (0..200).map(|i| format!("\"2026-11-21 10:00:{:02}\" sensor 192.0.2.{i} 1234 198.51.100.1 80 TCP IP evil.example.{i} \"malware\"\n", i % 60)).collect();
    sensor.send(input.as_bytes());
    s.wait_queue_len(&q, 200);
    let out = String::from_utf8(s.drain("maltrail", &q, &["-n"])).unwrap();
    assert_eq!(out, input);
    assert_eq!(s.queue_len(&other), 0);
    // The meta-header is stored beside the data.
    let dir = s.day_dir(&sensor.uuid, "254").join("maltrail");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().any(|n| n.ends_with(".json")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".txt.gz")), "{names:?}");
    let sv = s.sensor(&sensor.uuid);
    assert!(sv["types"]["254:maltrail"].is_object(), "{sv}");
}

/// `ja3-jl` as the reference server: each record a file of its own under
/// `254/.../ja3-jl/jsons/`, named by its Timestamp (a second record of the
/// same time does not overwrite the first), each certificate once under
/// `certs/<SHA-1>.crt`, and the queue item is the record file's path. A line
/// that is not JSON is skipped; a 300 KB chain is kept whole.
#[test]
fn ja3_jl_records_are_saved_one_file_each_and_queued_by_path() {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let s = Server::start(&[]);
    let q = s.create_queue("ja3-jl", &[]);
    let sensor = Sensor::new(&s, 254);
    sensor.set("metaheader.json", r#"{"type": "ja3-jl"}"#);
    let big = vec![0x30u8; 300_000];
    let rec = |port: u16, certs: &[&[u8]]| {
        let certs: Vec<_> = certs
            .iter()
            .map(|c| serde_json::json!({"CertHash": "", "Raw": b64(c)}))
            .collect();
        serde_json::json!({
            "ServerIP": "192.0.2.1", "ServerPort": "443", "ClientIP": "192.0.2.9",
            "ClientPort": port.to_string(), "TLSH": "", "Timestamp": "2021-10-01T10:00:00Z",
            "JA3": "771,4865,0-10,29,0", "JA3Digest": "", "JA3S": "", "JA3SDigest": "",
            "Certificates": certs,
        })
        .to_string()
    };
    let lines = [
        rec(50000, &[b"leaf", b"ca"]),
        rec(50001, &[b"other leaf", b"ca"]),
        rec(50002, &[&big]),
    ];
    let input = format!("{}\nnot json\n{}\n{}\n", lines[0], lines[1], lines[2]);
    sensor.send(input.as_bytes());
    s.wait_queue_len(&q, 3);
    let out = String::from_utf8(s.drain("ja3-jl", &q, &["-n"])).unwrap();
    let paths: Vec<&str> = out.lines().collect();
    let dir = s.day_dir(&sensor.uuid, "254").join("ja3-jl");
    let names: Vec<String> = paths
        .iter()
        .map(|p| {
            let p = std::path::Path::new(p);
            assert_eq!(p.parent().unwrap(), dir.join("jsons"), "{p:?}");
            p.file_name().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "2021-10-01T10:00:00Z.json",
            "2021-10-01T10:00:00Z.1.json",
            "2021-10-01T10:00:00Z.2.json"
        ]
    );
    for (p, l) in paths.iter().zip(&lines) {
        assert_eq!(std::fs::read_to_string(p).unwrap(), *l);
    }
    let mut certs: Vec<String> = std::fs::read_dir(dir.join("certs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    certs.sort();
    // sha1sum of "ca", "leaf", "other leaf" and of the 300 KB chain.
    let mut want = vec![
        "1c42c72cf95aa1b76609b585b34baf6b501d713e.crt".to_string(),
        "98798241748efaccb230386437b7873a478f5bd4.crt".to_string(),
        "d3e12c8b3dc9eacc4704f83f9d4a09a83133a04f.crt".to_string(),
        "611fedefc4745c69464b2db8301317db09941a5d.crt".to_string(),
    ];
    want.sort();
    assert_eq!(certs, want);
    let sv = s.sensor(&sensor.uuid);
    assert!(sv["types"]["254:ja3-jl"].is_object(), "{sv}");
}

#[test]
fn ndjson_invalid_lines_are_skipped_and_recorded() {
    let s = Server::start(&[]);
    let q = s.create_queue("6", &[]);
    let sensor = Sensor::new(&s, 6);
    sensor.send(b"{\"a\":1}\nnot json\n{\"b\":[2]}\n");
    s.wait_queue_len(&q, 2);
    let out = s.drain("6", &q, &["-n"]);
    assert_eq!(out, b"{\"a\":1}\n{\"b\":[2]}\n");
    let sv = s.sensor(&sensor.uuid);
    assert_eq!(sv["skipped_count"], 1, "{sv}");
    let e = sv["last_skipped"]["reason"].as_str().unwrap();
    assert!(e.contains("not JSON") && e.contains("not json"), "{e}");
}

#[test]
fn queue_groups_max_size_and_restart() {
    let s = Server::start(&[]);
    let a = Sensor::new(&s, 3);
    let b = Sensor::new(&s, 3);
    let only_a = s.create_queue("3", &["--sensor", &a.uuid.to_string()]);
    let small = s.create_queue("3", &["--max-size", "5"]);
    a.send(b"a1\na2\na3\n");
    b.send(b"b1\nb2\nb3\nb4\n");
    s.wait_queue_len(&only_a, 3);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.queue_len(&only_a), 3);
    let sq = s.api_get(&format!("/queues/{small}"));
    assert_eq!(sq["length"], 5);
    assert_eq!(sq["dropped"], 2);
    // Items survive a restart.
    let dir = s.stop();
    let s = Server::start_in(dir, &[]);
    assert_eq!(s.drain("3", &only_a, &["-n"]), b"a1\na2\na3\n");
    assert_eq!(s.queue_len(&small), 5);
}

#[test]
fn registration_mode_pending_then_approved() {
    let s = Server::start(&["--mode", "registration"]);
    let q = s.create_queue("3", &[]);
    let sensor = Sensor::new(&s, 3);
    let o = sensor.run(b"hello\n", &["--max-retries", "1"]);
    // Refused: the server never confirms the stream, the sensor says so and fails.
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("did not confirm") || e.contains("connection lost"),
        "{e}"
    );
    // In words the sensor's operator can act on, not a TLS library's link.
    assert!(
        e.contains("refused by the server") && e.contains("approve"),
        "{e}"
    );
    assert!(!e.contains("docs.rs") && !e.contains("close_notify"), "{e}");
    let err = s.wait_error(&sensor.uuid, "not approved");
    assert!(err.contains("d4 sensor approve"), "{err}");
    let list = String::from_utf8(s.d4_ok(&["sensor", "list"])).unwrap();
    assert!(
        list.contains(&sensor.uuid.simple().to_string()) && list.contains("pending"),
        "{list}"
    );
    s.d4_ok(&[
        "sensor",
        "approve",
        &sensor.uuid.to_string(),
        "--key",
        "per sensor secret",
    ]);
    // The old default key no longer works for this sensor...
    sensor.run(b"with the old key\n", &[]);
    s.wait_error(&sensor.uuid, "HMAC");
    // ...its own key does.
    sensor.set("key", "per sensor secret\n");
    sensor.send(b"approved line\n");
    s.wait_queue_len(&q, 1);
    assert_eq!(s.drain("3", &q, &["-n"]), b"approved line\n");
    let sv = s.sensor(&sensor.uuid);
    assert_eq!(sv["status"], "approved");
    assert_eq!(sv["has_own_key"], true);
    assert!(sv.get("key").is_none() && !sv.to_string().contains("per sensor secret"));
}

#[test]
fn client_resumes_after_server_restart() {
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    let sensor = Sensor::new(&s, 1);
    let cap = synthetic_pcap(2000);
    let ingest = s.ingest;
    let mut child = std::process::Command::new(D4)
        .args([
            "client",
            "-c",
            sensor.dir.path().to_str().unwrap(),
            "--max-backoff",
            "1",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    let half = cap.len() / 2 + 77; // inside a record
    stdin.write_all(&cap[..half]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // Restart the server on the same address.
    let dir = s.stop();
    let s = Server::start_in(dir, &["--listen", &ingest.to_string()]);
    stdin.write_all(&cap[half..]).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    s.wait_queue_len(&q, 2);
    let out = s.drain("1", &q, &["-f"]);
    let got = packets(&out);
    let want = packets(&cap);
    // Nothing lost: the stream resumes on a record boundary, replaying what
    // the old server may not have read (at most the 4 MiB replay window).
    assert!(got.len() >= want.len());
    let dup = got.len() - want.len();
    let i = got
        .iter()
        .zip(&want)
        .position(|(g, w)| g != w)
        .unwrap_or(want.len());
    assert_eq!(&got[..i], &want[..i]);
    assert_eq!(
        &got[i..],
        &want[i - dup..],
        "after the restart the stream continues from a record boundary"
    );
    let dup_bytes: usize = want[i - dup..i].iter().map(|p| p.2.len() + 16).sum();
    assert!(
        dup_bytes <= 4 * 1024 * 1024 + 65_536,
        "{dup_bytes} bytes replayed"
    );
}

#[test]
fn pcapng_streams_are_stored_whole_and_announced() {
    let Some(shared) = shared() else { return };
    let s = Server::start(&[]);
    let q = s.create_queue("5", &[]);
    for name in [
        "pcapnggen__le_test100.pcapng",
        "pcapnggen__le_test202.pcapng",
        "pcapnggen__be_test001.pcapng",
    ] {
        let path = shared.join("data/pcap/pcapng").join(name);
        let sensor = Sensor::new(&s, 5);
        sensor.set("snaplen", "100\n"); // blocks split across frames
        sensor.send_file(&path);
        s.wait_queue_len(&q, 1);
        assert_eq!(
            s.drain("5", &q, &["-f"]),
            std::fs::read(&path).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn files_left_by_a_crash_are_finished_on_restart() {
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    let sensor = Sensor::new(&s, 1);
    let cap = synthetic_pcap(500);
    let mut client = std::process::Command::new(D4)
        .args(["client", "-c", sensor.dir.path().to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    // All of it but the end of the last record: the file ends inside a record.
    std::io::Write::write_all(&mut stdin, &cap[..cap.len() - 5]).unwrap();
    std::io::Write::flush(&mut stdin).unwrap();
    let dir = s.day_dir(&sensor.uuid, "1");
    wait_for("the capture on disk", Duration::from_secs(20), || {
        let f = std::fs::read_dir(&dir).ok()?.next()?.ok()?.path();
        (std::fs::metadata(&f).ok()?.len() as usize == cap.len() - 5).then_some(())
    });
    // SIGKILL: no chance to finish the file.
    let dir = s.crash();
    let _ = client.kill();
    let _ = client.wait();
    let s = Server::start_in(dir, &[]);
    s.wait_queue_len(&q, 1);
    // Finished on restart: cut back to its last whole record, a valid pcap.
    let want = packets(&cap);
    assert_eq!(packets(&s.drain("1", &q, &["-f"])), want[..want.len() - 1]);
}

/// How many packets tcpdump reads from a capture, if tcpdump is installed.
fn tcpdump_count(pcap: &[u8]) -> Option<usize> {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), pcap).unwrap();
    let o = std::process::Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(tmp.path())
        .output()
        .ok()?;
    assert!(
        o.status.success(),
        "tcpdump: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(
        o.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count(),
    )
}

#[test]
fn streams_of_the_reference_c_client_are_accepted() {
    let Some(shared) = shared() else { return };
    let root = shared.join("vectors/streams");
    let s = Server::start(&[]);
    let q1 = s.create_queue("1", &[]);
    let q3 = s.create_queue("3", &[]);
    let q8 = s.create_queue("8", &[]);
    let u = uuid::Uuid::parse_str("9a7c4b56-1c1f-4b74-9b0e-3c1f2a1b7e01").unwrap();
    let inputs = shared.join("vectors/inputs");
    let lines = |f: &str| {
        std::fs::read(inputs.join(f))
            .unwrap()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64
    };
    let mut want3 = 0;
    let mut want8 = 0;
    for (stream, ty) in [
        ("frozen/t1-pcap.d4", 1),
        ("frozen/t3-syslog.d4", 3),
        ("frozen/t3-small.d4", 3),
        ("frozen/t3-empty.d4", 3),
        ("frozen/t8-passivedns.d4", 8),
        ("edge/key-no-newline.d4", 3),
        ("edge/snaplen-1000.d4", 3),
        ("live/t8-passivedns.d4", 8),
    ] {
        let bytes = std::fs::read(root.join(stream)).unwrap();
        let mut raw = Raw::connect(&s, None);
        assert!(raw.write(&bytes), "{stream}");
        raw.close();
        // Sessions of one sensor and type must not overlap: wait until it is gone.
        wait_for("session end", Duration::from_secs(10), || {
            (!s.sensor(&u)["connected"].as_bool()?).then_some(())
        });
        assert!(
            s.sensor(&u)["last_error"].is_null(),
            "{stream}: {}",
            s.sensor(&u)["last_error"]
        );
        match (ty, stream) {
            (3, "frozen/t3-syslog.d4") => want3 += lines("syslog.log"),
            (3, "frozen/t3-small.d4") => want3 += lines("small.bin"),
            (3, "edge/key-no-newline.d4") => want3 += lines("small.bin"),
            (3, "edge/snaplen-1000.d4") => want3 += lines("multi.bin"),
            (8, _) => want8 += lines("passivedns.csv"),
            _ => {}
        }
    }
    s.wait_queue_len(&q1, 1);
    let sample = std::fs::read(inputs.join("sample.pcap")).unwrap();
    assert_eq!(s.drain("1", &q1, &["-f"]), sample);
    s.wait_queue_len(&q3, want3);
    s.wait_queue_len(&q8, want8);
    // A stream signed with another key is refused.
    let mut raw = Raw::connect(&s, None);
    raw.write(&std::fs::read(root.join("edge/key-100-bytes.d4")).unwrap());
    assert!(raw.closed_by_server());
    s.wait_error(&u, "HMAC does not match");
}

#[test]
fn a_waiting_sensor_delivers_once_approved() {
    let s = Server::start(&["--mode", "registration"]);
    let q = s.create_queue("8", &[]);
    let sensor = Sensor::new(&s, 8);
    let input: String = (0..50)
        .map(|i| {
            format!(
                "1700000000.{i:06}||10.0.0.1||10.0.0.2||IN||n{i}.example.||A||192.0.2.{i}||60||1\n"
            )
        })
        .collect();
    let dir = sensor.dir.path().to_path_buf();
    let data = input.clone();
    let client = std::thread::spawn(move || {
        let mut c = std::process::Command::new(D4)
            .args(["client", "-c", dir.to_str().unwrap(), "--max-backoff", "1"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut c.stdin.take().unwrap(), data.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    });
    s.wait_error(&sensor.uuid, "not approved");
    s.d4_ok(&["sensor", "approve", &sensor.uuid.to_string()]);
    let o = client.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s.wait_queue_len(&q, 50);
    std::thread::sleep(Duration::from_millis(300));
    // Everything, once: the refused attempts stored nothing.
    assert_eq!(String::from_utf8(s.drain("8", &q, &["-n"])).unwrap(), input);
}

#[test]
fn dnscap_type4_pcap_or_text_is_stored_and_announced() {
    let s = Server::start(&[]);
    let q = s.create_queue("4", &[]);
    let cap = synthetic_pcap(300);
    let pcap_sensor = Sensor::new(&s, 4);
    pcap_sensor.set("snaplen", "777\n");
    pcap_sensor.send(&cap);
    s.wait_queue_len(&q, 1);
    assert_eq!(packets(&s.drain("4", &q, &["-f"])), packets(&cap));
    let text_sensor = Sensor::new(&s, 4);
    let text = b"[56] 2026-11-21 10:00:00.000000 [#0 eth0 0] 192.0.2.1.53 198.51.100.7.5353 dns QUERY,NOERROR,1234,qr|rd\n".repeat(50);
    text_sensor.send(&text);
    s.wait_queue_len(&q, 1);
    assert_eq!(s.drain("4", &q, &["-f"]), text);
}

#[test]
fn a_quiet_sensor_stays_connected_and_sends_each_line_once() {
    let s = Server::start(&["--idle-timeout-secs", "3"]);
    let q = s.create_queue("3", &[]);
    let sensor = Sensor::new(&s, 3);
    let mut c = std::process::Command::new(D4)
        .args([
            "client",
            "-c",
            sensor.dir.path().to_str().unwrap(),
            "--keepalive",
            "1",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"first line\n").unwrap();
    std::thread::sleep(Duration::from_secs(7)); // more than twice the idle timeout
    std::io::Write::write_all(&mut stdin, b"second line\n").unwrap();
    drop(stdin);
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success());
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("(0 reconnections)"), "{log}");
    s.wait_queue_len(&q, 2);
    assert_eq!(s.drain("3", &q, &["-n"]), b"first line\nsecond line\n");
    assert!(s.sensor(&sensor.uuid)["last_error"].is_null());
}
