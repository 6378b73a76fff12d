//! Sharing between servers: a private server's queue forwarded, pseudonymised,
//! to a public server (`d4 forward`), as the D4 sharing tutorial does with
//! `d4-stdout.py | zcat | tcprewrite --pnat | d4-goclient`.

use std::process::Command;

use crate::harness::*;

/// A capture of private traffic: 10.1.7.x → 172.16.5.9 over UDP, checksums right.
fn private_capture(n: usize) -> Vec<u8> {
    let mut cap = synthetic_pcap(n);
    let mut off = 24;
    while off + 16 <= cap.len() {
        let len = u32::from_le_bytes(cap[off + 8..off + 12].try_into().unwrap()) as usize;
        let f = &mut cap[off + 16..off + 16 + len];
        f[26..29].copy_from_slice(&[10, 1, 7]);
        f[30..34].copy_from_slice(&[172, 16, 5, 9]);
        off += 16 + len;
    }
    with_udp_checksums(cap)
}

fn forward(private: &Server, queue: &str, conf: &Sensor, extra: &[&str]) -> std::process::Output {
    let mut a = vec![
        "forward",
        "-u",
        queue,
        "-c",
        conf.dir.path().to_str().unwrap(),
        "--once",
    ];
    a.extend_from_slice(extra);
    private.d4(&a)
}

#[test]
fn a_private_capture_reaches_the_public_server_pseudonymised() {
    let private = Server::start(&[]);
    let public = Server::start(&[]);
    let q_private = private.create_queue("1", &["--description", "to the public server"]);
    let q_public = public.create_queue("1", &[]);
    let cap = private_capture(1200);
    // Two sessions: two files in the private queue, forwarded in order as one stream.
    Sensor::new(&private, 1).send(&cap);
    Sensor::new(&private, 1).send(&cap);
    private.wait_queue_len(&q_private, 2);

    let to_public = Sensor::new(&public, 1);
    let o = forward(
        &private,
        &q_private,
        &to_public,
        &[
            "--pnat",
            "10.1.0.0/16:192.168.0.0/16,172.16.0.0/12:10.1.0.0/24",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("2400 packets: 2400 rewritten"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(private.queue_len(&q_private), 0, "acknowledged once sent");

    public.wait_queue_len(&q_public, 1);
    let stored = public.drain("1", &q_public, &["-f"]);
    let after = packets(&stored);
    let before = packets(&cap);
    assert_eq!(after.len(), 2 * before.len(), "same packet count");
    for ((_, _, a), (_, _, b)) in after.iter().zip(before.iter().chain(&before)) {
        assert_eq!(&a[26..29], &[192, 168, 7], "10.1.7.x -> 192.168.7.x");
        assert_eq!(a[29], b[29], "host bits kept");
        assert_eq!(&a[30..34], &[10, 1, 0, 9], "172.16.5.9 -> 10.1.0.9");
        assert!(checksums_ok(a), "checksums right after rewriting");
        assert_eq!(a[34..40], b[34..40], "ports and length untouched");
        assert_eq!(a[42..], b[42..], "payload untouched");
    }
    // No original address anywhere in what the public server stored.
    for dir in [public.data_dir().join("data")] {
        for f in walk(&dir) {
            let bytes = read_maybe_gz(&f);
            for (_, _, p) in packets(&bytes) {
                assert_ne!(&p[26..29], &[10, 1, 7], "{}", f.display());
                assert_ne!(&p[30..34], &[172, 16, 5, 9], "{}", f.display());
            }
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.to_string_lossy().ends_with(".cap.gz") {
            out.push(p);
        }
    }
    out
}

fn read_maybe_gz(p: &std::path::Path) -> Vec<u8> {
    let mut v = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(p).unwrap()),
        &mut v,
    )
    .unwrap();
    v
}

#[test]
fn items_stay_queued_while_the_destination_is_down_and_go_once_it_is_up() {
    let private = Server::start(&[]);
    let q = private.create_queue("8", &[]);
    let lines = b"1322849924.408856||10.1.1.1||8.8.8.8||IN||a.example.||A||192.0.2.1||60||1\n\
1322849925.000001||10.1.1.1||8.8.8.8||IN||b.example.||A||192.0.2.2||60||1\n";
    Sensor::new(&private, 8).send(lines);
    private.wait_queue_len(&q, 2);

    // Nothing listens there: the items stay.
    let down = Sensor::new(&private, 8);
    down.set("destination", "127.0.0.1:1\n");
    let o = forward(&private, &q, &down, &["--max-retries", "2"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stay in the queue"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(private.queue_len(&q), 2);

    let public = Server::start(&[]);
    let q_public = public.create_queue("8", &[]);
    let o = forward(&private, &q, &Sensor::new(&public, 8), &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(private.queue_len(&q), 0);
    public.wait_queue_len(&q_public, 2);
    assert_eq!(public.drain("8", &q_public, &["-n"]), lines.to_vec());
}

#[test]
fn forward_refuses_a_type_mismatch_and_rewriting_lines() {
    let private = Server::start(&[]);
    let q = private.create_queue("8", &[]);
    let o = forward(&private, &q, &Sensor::new(&private, 1), &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("must match"));
    let o = forward(
        &private,
        &q,
        &Sensor::new(&private, 8),
        &["--pnat", "10.0.0.0/8:192.168.0.0/16"],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("pcap (type 1) queues"));
}

#[test]
fn the_old_pipe_still_works_with_d4_in_it() {
    let private = Server::start(&[]);
    let public = Server::start(&[]);
    let q_private = private.create_queue("1", &[]);
    let q_public = public.create_queue("1", &[]);
    let cap = private_capture(300);
    Sensor::new(&private, 1).send(&cap);
    private.wait_queue_len(&q_private, 1);
    let to_public = Sensor::new(&public, 1);
    // stdout -f | zcat -f | anonymize | client: the tutorial's shape.
    let pipe = format!(
        "{d4} stdout --data-dir {dd} -t 1 -u {q} -f --once | zcat -f | {d4} anonymize --pnat 10.1.0.0/16:192.168.0.0/16,172.16.0.0/12:10.1.0.0/24 | {d4} client -c {conf} --max-retries 3",
        d4 = D4,
        dd = private.data_dir().display(),
        q = q_private,
        conf = to_public.dir.path().display()
    );
    let o = Command::new("sh").arg("-c").arg(&pipe).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    public.wait_queue_len(&q_public, 1);
    let after = packets(&public.drain("1", &q_public, &["-f"]));
    assert_eq!(after.len(), 300);
    assert!(after
        .iter()
        .all(|(_, _, p)| p[26..28] == [192, 168] && p[30..34] == [10, 1, 0, 9] && checksums_ok(p)));
}

#[test]
fn one_sigterm_ends_a_forward_facing_a_closed_port_and_keeps_the_items() {
    let private = Server::start(&[]);
    let q = private.create_queue("8", &[]);
    let lines = b"1322849924.408856||10.1.1.1||8.8.8.8||IN||a.example.||A||192.0.2.1||60||1\n";
    Sensor::new(&private, 8).send(lines);
    private.wait_queue_len(&q, 1);
    // Nothing listens there; retrying for ever (the default).
    let down = Sensor::new(&private, 8);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = port.local_addr().unwrap().to_string();
    drop(port);
    down.set("destination", &format!("{addr}\n"));
    let mut c = Command::new(D4)
        .args(["forward", "-u", &q, "-c", down.dir.path().to_str().unwrap()])
        .arg("--data-dir")
        .arg(private.data_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(c.try_wait().unwrap().is_none(), "forward still retrying");
    assert!(Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status()
        .unwrap()
        .success());
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while c.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > end {
            let _ = c.kill();
            let o = c.wait_with_output().unwrap();
            panic!(
                "d4 forward still running 5 s after one SIGTERM: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = c.wait_with_output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("stay in the queue"), "{e}");
    assert_eq!(private.queue_len(&q), 1, "the items in hand stay queued");
}

/// A following `d4 backscatter -u QUEUE --victims` reports a window once the
/// queue has been quiet for a window's length, while it keeps running (it
/// printed nothing until Ctrl-C before).
#[test]
fn backscatter_follower_reports_windows_after_a_quiet_window() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::Duration;

    let server = Server::start(&[]);
    let q = server.create_queue("1", &[]);
    Sensor::new(&server, 1).send(&backscatter_capture());
    server.wait_queue_len(&q, 1);
    let mut child = Command::new(D4)
        .args(["backscatter", "--data-dir"])
        .arg(server.data_dir())
        .args(["-u", &q, "--victims", "--window", "2s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("no window reported while following the queue");
    assert!(running, "the follower exited instead of following");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["victim"], "203.0.113.9", "{line}");
    assert_eq!(v["window_secs"], 2, "{line}");
    assert_eq!(server.queue_len(&q), 0);
}
