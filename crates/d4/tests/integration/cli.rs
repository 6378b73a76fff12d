//! The command line: byte-identical output with the reference client, help,
//! exit codes, clear errors.

use std::process::Command;

use crate::harness::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn client_stdout_matches_the_reference_c_client_byte_for_byte() {
    let Some(shared) = shared() else { return };
    let root = shared.join("vectors");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("vectors.json")).unwrap()).unwrap();
    let mut n = 0;
    for v in doc["vectors"].as_array().unwrap() {
        if v["timestamps"] != "frozen" {
            continue;
        }
        let cfg = &v["config"];
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in cfg["config_files"].as_object().unwrap() {
            std::fs::write(dir.path().join(name), content.as_str().unwrap()).unwrap();
        }
        std::fs::write(
            dir.path().join("key"),
            hex(cfg["key_file_hex"].as_str().unwrap()),
        )
        .unwrap();
        let input = root.join(v["input"].as_str().unwrap());
        let o = Command::new(D4)
            .args([
                "client",
                "-c",
                dir.path().to_str().unwrap(),
                "--timestamp",
                "1704067200",
                "--end-frame",
            ])
            .stdin(std::fs::File::open(&input).unwrap())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let want = std::fs::read(root.join(v["output"].as_str().unwrap())).unwrap();
        assert!(
            o.stdout == want,
            "{}: output differs from the reference",
            v["id"]
        );
        n += 1;
    }
    assert!(n >= 18);
}

#[test]
fn help_has_examples_and_usage_errors_exit_2() {
    for sub in [
        "server",
        "client",
        "stdout",
        "queue create",
        "sensor approve",
    ] {
        let mut args: Vec<&str> = sub.split(' ').collect();
        args.push("--help");
        let o = Command::new(D4).args(&args).output().unwrap();
        assert!(o.status.success());
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.contains("Example"), "d4 {sub} --help has no example");
    }
    let o = Command::new(D4).args(["queue", "create"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(D4).args(["frobnicate"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn clear_runtime_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // No server here.
    let o = Command::new(D4)
        .args(["queue", "list", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(
        e.contains("no server found") && e.contains("--data-dir"),
        "{e}"
    );
    // A sensor without rootCA.crt refuses to send unverified.
    std::fs::write(dir.path().join("destination"), "127.0.0.1:9\n").unwrap();
    std::fs::write(dir.path().join("type"), "3\n").unwrap();
    let o = Command::new(D4)
        .args(["client", "-c"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(e.contains("rootCA.crt") && e.contains("--insecure"), "{e}");
    // The uuid was generated and written back.
    let u = std::fs::read_to_string(dir.path().join("uuid")).unwrap();
    assert!(d4_proto::is_v4(&uuid::Uuid::parse_str(u.trim()).unwrap()));
}

/// Logs written to a file or a pipe carry no colour codes (issue 17); a
/// terminal gets them unless NO_COLOR is set.
#[test]
fn logs_have_no_colour_codes_outside_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("destination"), "127.0.0.1:9\n").unwrap();
    std::fs::write(dir.path().join("type"), "3\n").unwrap();
    std::fs::write(dir.path().join("key"), "k\n").unwrap();
    let o = Command::new(D4)
        .args(["client", "--insecure", "--max-retries", "0", "-c"])
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("WARN") && e.contains("--insecure"), "{e}");
    assert!(!e.contains('\x1b'), "colour codes in a piped log: {e:?}");
}

#[test]
fn client_refuses_a_server_signed_by_another_ca() {
    let s = Server::start(&[]);
    let other = Server::start(&[]);
    let sensor = Sensor::new(&s, 3);
    std::fs::copy(
        other.data_dir().join("tls/ca.crt"),
        sensor.dir.path().join("rootCA.crt"),
    )
    .unwrap();
    let o = sensor.run(b"x\n", &["--max-retries", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("TLS handshake") || e.contains("certificate"),
        "{e}"
    );
    // --insecure is an explicit opt-out.
    let q = s.create_queue("3", &[]);
    let o = sensor.run(b"unverified\n", &["--insecure"]);
    assert!(o.status.success());
    s.wait_queue_len(&q, 1);
}

#[test]
fn queue_commands() {
    let s = Server::start(&[]);
    let q = s.create_queue(
        "maltrail",
        &["--description", "for the IDS", "--max-size", "42"],
    );
    let list = String::from_utf8(s.d4_ok(&["queue", "list"])).unwrap();
    assert!(
        list.contains(&q) && list.contains("maltrail") && list.contains("for the IDS"),
        "{list}"
    );
    let show: serde_json::Value = serde_json::from_slice(&s.d4_ok(&["queue", "show", &q])).unwrap();
    assert_eq!(show["max_size"], 42);
    // Type mismatch in d4 stdout is a clear error.
    let o = s.d4(&["stdout", "-t", "3", "-u", &q, "--once"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is of type maltrail"));
    // -f only for queues whose items are the server's file paths.
    let lines = s.create_queue("3", &[]);
    let o = s.d4(&["stdout", "-t", "3", "-u", &lines, "-f", "--once"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("only queues of types 1, 4, 5 and 7"));
    let o = s.d4(&["queue", "create", "-t", "../etc"]);
    assert_eq!(o.status.code(), Some(1));
    s.d4_ok(&["queue", "delete", &q]);
    let o = s.d4(&["queue", "show", &q]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no queue"));
}

#[test]
fn stdout_follows_until_interrupted_and_loses_nothing() {
    let s = Server::start(&[]);
    let q = s.create_queue("3", &[]);
    let follower = Command::new(D4)
        .args(["stdout", "-t", "3", "-u", &q, "-n", "--data-dir"])
        .arg(s.data_dir())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sensor = Sensor::new(&s, 3);
    let input: String = (0..3000).map(|i| format!("line {i}\n")).collect();
    sensor.send(input.as_bytes());
    // Once the queue is drained, interrupt the follower.
    std::thread::sleep(std::time::Duration::from_millis(500));
    wait_for("queue drained", std::time::Duration::from_secs(30), || {
        (s.queue_len(&q) == 0).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    Command::new("kill")
        .args(["-INT", &follower.id().to_string()])
        .status()
        .unwrap();
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), input);
}

#[test]
fn client_interrupted_sends_what_it_read_and_exits_0() {
    use std::io::Write;
    let s = Server::start(&[]);
    let q = s.create_queue("3", &[]);
    let sensor = Sensor::new(&s, 3);
    let mut c = Command::new(D4)
        .args(["client", "-c", sensor.dir.path().to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(b"before ctrl-c\n").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Ctrl-C reaches the client (and, in a shell pipeline, the producer, which then ends the input).
    Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    stdin.write_all(b"last words\n").unwrap();
    drop(stdin);
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("finishing"));
    s.wait_queue_len(&q, 2);
    assert_eq!(s.drain("3", &q, &["-n"]), b"before ctrl-c\nlast words\n");
}

#[test]
fn anonymize_pnat_keeps_every_packet_and_its_checksums() {
    let cap = with_udp_checksums(synthetic_pcap(500));
    for (_, _, f) in packets(&cap) {
        assert!(checksums_ok(&f));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    std::fs::write(&input, &cap).unwrap();
    let out = dir.path().join("out.pcap");
    let o = Command::new(D4)
        .args([
            "anonymize",
            "--pnat",
            "192.0.2.0/24:10.1.0.0/16,198.51.100.0/24:172.16.0.0/24",
            "-r",
        ])
        .arg(&input)
        .arg("-w")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("500 packets: 500 rewritten"));
    let before = packets(&cap);
    let after = packets(&std::fs::read(&out).unwrap());
    assert_eq!(after.len(), before.len());
    for ((_, _, a), (_, _, b)) in after.iter().zip(&before) {
        assert!(checksums_ok(a), "checksums after rewriting");
        assert_eq!(&a[26..28], &[10, 1], "source 192.0.2.x -> 10.1.x.y");
        assert_eq!(a[29], b[29], "host bits kept");
        assert_eq!(&a[30..34], &[172, 16, 0, 1]);
        assert_eq!(a[34..40], b[34..40], "ports and length untouched");
        assert_eq!(a[42..], b[42..], "payload untouched");
    }
}

#[test]
fn anonymize_cryptopan_real_capture_from_gzip_on_stdin() {
    let Some(shared) = shared() else { return };
    let original = std::fs::read(shared.join("data/pcap/dns/dnscap__dns.pcap")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &original).unwrap();
    let gz = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(
        &key,
        "15178d8d33a4cf80130a5b16499071d8988f837979652762574c2d2a84220200\n",
    )
    .unwrap();
    let mut c = Command::new(D4)
        .args(["anonymize", "--cryptopan-key"])
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let w = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &gz).unwrap());
    let o = c.wait_with_output().unwrap();
    w.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = packets(&original);
    let after = packets(&o.stdout);
    assert_eq!(after.len(), before.len());
    // No IPv4 header keeps the original private or resolver addresses.
    for (_, _, f) in &after {
        if f.len() >= 34 && f[12..14] == [8, 0] {
            for a in [&f[26..30], &f[30..34]] {
                assert_ne!(a, &[172, 17, 0, 10]);
                assert_ne!(a, &[8, 8, 8, 8]);
            }
        }
    }
}

fn flag_counts(csv: &[u8]) -> std::collections::BTreeMap<u8, usize> {
    let text = String::from_utf8(csv.to_vec()).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("#timestamp, source IP, TCP flags, source port")
    );
    let mut m = std::collections::BTreeMap::new();
    for l in lines {
        let f: u8 = l.split(',').nth(2).unwrap().parse().unwrap();
        *m.entry(f).or_insert(0) += 1;
    }
    m
}

#[test]
fn backscatter_on_real_ddos_captures() {
    let Some(shared) = shared() else { return };
    let dir = shared.join("data/pcap/backscatter");
    let o = Command::new(D4)
        .args(["backscatter", "-b", "-r"])
        .arg(dir.join("stopddos__amp.TCP.reflection.SYNACK.pcap"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = flag_counts(&o.stdout);
    // SYN-ACK, RST and RST-ACK answers of the reflectors (counts from the capture's README).
    assert_eq!((c[&0x12], c[&0x04], c[&0x14]), (6651, 813, 205), "{c:?}");
    // In the SYN+ECE+CWR flood the SYNs are SYNs; RSTs are judged like any other packet.
    let o = Command::new(D4)
        .args(["backscatter", "-b", "-s", "-r"])
        .arg(dir.join("stopddos__pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let c = flag_counts(&o.stdout);
    assert!(!c.contains_key(&0xc2), "an ECN SYN was reported: {c:?}");
    assert!(c.keys().all(|f| f & 0x04 != 0), "{c:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("9639 SYNs"));
}

#[test]
fn backscatter_on_a_built_capture_and_a_damaged_one() {
    let cap = backscatter_capture();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.pcap");
    std::fs::write(&p, &cap).unwrap();
    let o = Command::new(D4)
        .args(["backscatter", "-b", "-r"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "#timestamp, source IP, TCP flags, source port\n2,203.0.113.9,18,443\n"
    );
    // A file cut short: its good packets are reported, the file is named, exit 1.
    std::fs::write(&p, &cap[..cap.len() - 3]).unwrap();
    let o = Command::new(D4)
        .args(["backscatter", "-b", "-r"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("2,203.0.113.9,18,443"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("c.pcap"));
}

#[test]
fn backscatter_victims_windows_and_matched_frames_on_the_reflection_capture() {
    let Some(shared) = shared() else { return };
    let dir = shared.join("data/pcap/backscatter");
    let tmp = tempfile::tempdir().unwrap();
    let matched = tmp.path().join("matched.pcap");
    let o = Command::new(D4)
        .args(["backscatter", "--victims", "--window", "1h", "-w"])
        .arg(&matched)
        .arg("-r")
        .arg(dir.join("stopddos__amp.TCP.reflection.SYNACK.pcap"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One 0.15 s attack: one window; the README's 6919 distinct TCP sources
    // are victims, and every TCP packet but the capture's one SYN is an answer.
    assert_eq!(rows.len(), 6919);
    let total: u64 = rows.iter().map(|r| r["packets"].as_u64().unwrap()).sum();
    assert_eq!(total, 7678, "every TCP packet but the one SYN");
    let flag = |name: &str| -> u64 { rows.iter().filter_map(|r| r["flags"][name].as_u64()).sum() };
    assert_eq!(
        (flag("SYN+ACK"), flag("RST"), flag("RST+ACK")),
        (6651, 813, 205)
    );
    assert!(rows
        .iter()
        .all(|r| r["window_start"] == rows[0]["window_start"]));
    assert!(rows
        .iter()
        .all(|r| r["distinct_destinations"] == 1 && r["partial"] == false));
    // The matched frames: exactly the reported packets, a pcap tcpdump reads.
    assert_eq!(packets(&std::fs::read(&matched).unwrap()).len(), 7678);
    // --min-packets keeps the victims that answered at least that often.
    let o = Command::new(D4)
        .args(["backscatter", "--victims", "--min-packets", "3", "-r"])
        .arg(dir.join("stopddos__amp.TCP.reflection.SYNACK.pcap"))
        .output()
        .unwrap();
    let n3 = String::from_utf8(o.stdout).unwrap().lines().count();
    let want = rows
        .iter()
        .filter(|r| r["packets"].as_u64().unwrap() >= 3)
        .count();
    assert!(n3 > 0 && n3 == want, "{n3} vs {want}");
    // A directory is read whole, in name order: the same as its files one by one.
    let by_dir = Command::new(D4)
        .args(["backscatter", "-b", "-r"])
        .arg(&dir)
        .output()
        .unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut by_files = Command::new(D4);
    by_files.args(["backscatter", "-b"]);
    for n in &names {
        by_files.arg("-r").arg(n);
    }
    let by_files = by_files.output().unwrap();
    assert!(by_dir.status.success());
    assert_eq!(by_dir.stdout, by_files.stdout);
}

#[test]
fn backscatter_consumes_a_type1_queue_each_file_once() {
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    // Answers from 203.0.113.9 (SYN-ACK) and 2001:db8::9 (RST) to a darknet.
    let mut cap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    cap.extend_from_slice(&65535u32.to_le_bytes());
    cap.extend_from_slice(&1u32.to_le_bytes());
    let v4 = |fl: u8, port: u16| {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12] = 8;
        f[14] = 0x45;
        f[22] = 50;
        f[23] = 6;
        f[26..30].copy_from_slice(&[203, 0, 113, 9]);
        f[30..34].copy_from_slice(&[198, 51, 100, 1]);
        f[34..36].copy_from_slice(&port.to_be_bytes());
        f[47] = fl;
        f
    };
    let v6 = {
        let mut f = vec![0u8; 14 + 40 + 20];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[20] = 6;
        f[21] = 60;
        f[22..24].copy_from_slice(&[0x20, 0x01]);
        f[24..26].copy_from_slice(&[0x0d, 0xb8]);
        f[37] = 9;
        f[54..56].copy_from_slice(&25u16.to_be_bytes());
        f[67] = 0x04;
        f
    };
    for (t, f) in [(10u32, v4(0x12, 80)), (11, v4(0x12, 443)), (12, v6.clone())] {
        cap.extend_from_slice(&(1_700_000_000 + t).to_le_bytes());
        cap.extend_from_slice(&0u32.to_le_bytes());
        cap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        cap.extend_from_slice(&(f.len() as u32).to_le_bytes());
        cap.extend_from_slice(&f);
    }
    Sensor::new(&s, 1).send(&cap);
    Sensor::new(&s, 1).send(&cap);
    s.wait_queue_len(&q, 2);
    let out = s.d4_ok(&[
        "backscatter",
        "-u",
        &q,
        "--once",
        "--victims",
        "--window",
        "1d",
    ]);
    let rows: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let v4row = rows.iter().find(|r| r["victim"] == "203.0.113.9").unwrap();
    assert_eq!(v4row["packets"], 4, "two files, two answers each");
    assert_eq!(v4row["distinct_ports"], 2);
    assert_eq!(v4row["flags"]["SYN+ACK"], 4);
    assert_eq!(
        (v4row["ttl_min"].clone(), v4row["ttl_max"].clone()),
        (50.into(), 50.into())
    );
    let v6row = rows.iter().find(|r| r["victim"] == "2001:db8::9").unwrap();
    assert_eq!(v6row["flags"]["RST"], 2);
    assert_eq!(v6row["services"][0]["port"], 25);
    assert_eq!(s.queue_len(&q), 0, "each file read once, then removed");
    // A queue of another type is refused with the reason.
    let q8 = s.create_queue("8", &[]);
    let o = s.d4(&["backscatter", "-u", &q8, "--once"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("type-1"));
}

#[test]
fn anonymize_dns_answers_on_a_real_capture() {
    let Some(shared) = shared() else { return };
    let input = shared.join("data/pcap/dns/dnscap__dns.pcap");
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, [9u8; 32]).unwrap();
    let run = |dns: bool| {
        let out = dir.path().join(format!("out-{dns}.pcap"));
        let mut c = Command::new(D4);
        c.args(["anonymize", "--cryptopan-key"]).arg(&key);
        if dns {
            c.arg("--dns");
        }
        let o = c
            .arg("-r")
            .arg(&input)
            .arg("-w")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        packets(&std::fs::read(&out).unwrap())
    };
    let before = packets(&std::fs::read(&input).unwrap());
    let (plain, with_dns) = (run(false), run(true));
    assert_eq!(with_dns.len(), before.len());
    let udp = |f: &[u8]| f.len() > 42 && f[12..14] == [8, 0] && f[23] == 17;
    let mut changed = 0;
    for ((b, p), d) in before.iter().zip(&plain).zip(&with_dns) {
        let (b, p, d) = (&b.2, &p.2, &d.2);
        if !udp(b) {
            continue;
        }
        assert_eq!(
            b[42..],
            p[42..],
            "without --dns the DNS payload is untouched"
        );
        if checksums_ok(b) {
            assert!(
                checksums_ok(d),
                "checksums right after rewriting the answers"
            );
        }
        if b[42..] != d[42..] {
            changed += 1;
            assert_eq!(b[34..36], [0, 53], "only responses carry answers");
        }
    }
    // 41 responses: 24 with A records for google.com, 17 PTR answers with glue A records.
    assert!(changed >= 24, "{changed} responses rewritten");
}

/// A capture that holds the sensor's own connection to its server (a live
/// capture feeding itself) gets one clear warning with the filter to add;
/// the stream is still sent (issue 17).
#[test]
fn client_warns_when_its_capture_holds_its_own_upload() {
    let s = Server::start(&[]);
    let mut cap = synthetic_pcap(20);
    let mut pkt = vec![0u8; 14 + 20 + 20];
    pkt[12] = 0x08;
    pkt[14] = 0x45;
    pkt[16..18].copy_from_slice(&40u16.to_be_bytes());
    pkt[22] = 64;
    pkt[23] = 6;
    pkt[26..30].copy_from_slice(&[127, 0, 0, 1]);
    pkt[30..34].copy_from_slice(&[127, 0, 0, 1]);
    pkt[34..36].copy_from_slice(&40000u16.to_be_bytes());
    pkt[36..38].copy_from_slice(&s.ingest.port().to_be_bytes());
    pkt[46] = 0x50;
    for _ in 0..3 {
        cap.extend_from_slice(&[0; 8]);
        cap.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        cap.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        cap.extend_from_slice(&pkt);
    }
    let sensor = Sensor::new(&s, 1);
    let o = sensor.run(&cap, &[]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    let filter = format!("not (host 127.0.0.1 and tcp port {})", s.ingest.port());
    assert_eq!(e.matches("its own connection").count(), 1, "{e}");
    assert!(e.contains(&filter), "{e}");
    // Other traffic: no warning.
    let o = Sensor::new(&s, 1).run(&synthetic_pcap(20), &[]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("own connection"));
}

/// Errors that say what happened: a missing file is not "damaged", a text
/// file is not a "capture cut short", an empty folder is not a silent
/// success, rules that match nothing rewrite nothing.
#[test]
fn messages_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("notes.txt"), "hello\n").unwrap();
    std::fs::create_dir(d.join("empty")).unwrap();
    let run = |args: &[&str]| {
        let o = Command::new(D4).current_dir(d).args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["backscatter", "-b", "-r", "missing.pcap"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(!err.contains("damaged"), "{err}");
    let (code, err) = run(&["pdns", "extract", "-r", "notes.txt"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("not a pcap or pcapng capture: it starts with the text \"hell\""),
        "{err}"
    );
    assert!(!err.contains("cut short"), "{err}");
    for cmd in [
        &["backscatter", "-b", "-r", "empty"][..],
        &["pdns", "extract", "-r", "empty"],
    ] {
        let (code, err) = run(cmd);
        assert_eq!(code, Some(1), "{cmd:?}");
        assert!(err.contains("empty: no file in this directory"), "{err}");
    }
    std::fs::write(d.join("in.pcap"), synthetic_pcap(20)).unwrap();
    let (code, err) = run(&[
        "anonymize",
        "--pnat",
        "203.0.113.0/24:10.9.0.0/24",
        "-r",
        "in.pcap",
        "-w",
        "out.pcap",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("20 packets: 0 rewritten, 20 with no address to change"),
        "{err}"
    );
}

/// A server.json left by a crashed server, whose address another server now
/// uses: the CLI says so instead of rustls' "BadSignature".
#[test]
fn a_stale_server_json_is_named_as_such() {
    let a = Server::start(&[]);
    let web = a.api.trim_start_matches("https://").to_string();
    let stale = std::fs::read(a.data_dir().join("server.json")).unwrap();
    let dir = a.crash();
    let b = Server::start(&["--web", &web]);
    std::fs::write(dir.path().join("data/server.json"), &stale).unwrap();
    let o = Command::new(D4)
        .args(["queue", "list", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("a stale server.json"), "{err}");
    drop(b);
}
