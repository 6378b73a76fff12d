//! The sensor facing faults: a server that is down or refuses it, SIGTERM,
//! `timeout`, inputs of every size; its spool across restarts and outages.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// A loopback port nothing listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a.to_string()
}

/// `d4 client -c DIR ARGS` with stdin piped (left open).
fn spawn_client(dir: &std::path::Path, args: &[&str]) -> std::process::Child {
    Command::new(D4)
        .args(["client", "-c", dir.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (generously) for a child to exit; kills it and fails otherwise.
fn exits_within(mut c: std::process::Child, t: Duration, what: &str) -> std::process::Output {
    let end = std::time::Instant::now() + t;
    while std::time::Instant::now() < end {
        if let Ok(Some(_)) = c.try_wait() {
            return c.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let o = c.wait_with_output().unwrap();
    panic!(
        "{what}: still running after {t:?}; stderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn sigterm(pid: u32) {
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// A sensor configuration sending type 3 to `dest`, with the CA of `s`.
fn sensor_to(s: &Server, dest: &str) -> Sensor {
    let sensor = Sensor::new(s, 3);
    sensor.set("destination", &format!("{dest}\n"));
    sensor
}

#[test]
fn one_sigterm_ends_a_client_facing_a_closed_port() {
    let s = Server::start(&[]);
    let sensor = sensor_to(&s, &closed_port());
    // Retrying for ever (the default), input still open.
    let mut c = spawn_client(sensor.dir.path(), &["--max-backoff", "2"]);
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    sigterm(c.id());
    let o = exits_within(c, Duration::from_secs(8), "client after one SIGTERM");
    drop(stdin);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("SIGTERM"), "{e}");
    assert!(e.contains("not confirmed"), "{e}");
}

#[test]
fn one_sigterm_ends_a_client_the_server_refuses() {
    let s = Server::start(&["--mode", "registration"]);
    let sensor = Sensor::new(&s, 3);
    let mut c = spawn_client(sensor.dir.path(), &["--max-backoff", "2"]);
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(b"refused line\n").unwrap();
    drop(stdin);
    s.wait_error(&sensor.uuid, "not approved");
    std::thread::sleep(Duration::from_millis(300));
    sigterm(c.id());
    let o = exits_within(
        c,
        Duration::from_secs(15),
        "refused client after one SIGTERM",
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("stopped on request before the server confirmed"),
        "{e}"
    );
}

/// The `ps` table: every process whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                out.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

#[test]
fn timeout_ends_a_client_pipeline_and_leaves_no_process() {
    let s = Server::start(&[]);
    let sensor = sensor_to(&s, &closed_port());
    let dir = sensor.dir.path().to_str().unwrap().to_string();
    let c = Command::new("bash")
        .arg("-c")
        .arg(format!("echo hello | timeout 2 {D4} client -c {dir}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = exits_within(c, Duration::from_secs(15), "echo | timeout 2 d4 client");
    let e = String::from_utf8_lossy(&o.stderr);
    // 124: timeout's own status once it had to stop the command.
    assert_eq!(o.status.code(), Some(124), "{e}");
    assert!(e.contains("not confirmed"), "{e}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(processes_with(&dir), Vec::<String>::new());
}

#[test]
fn max_retries_0_means_one_attempt() {
    let s = Server::start(&[]);
    let sensor = sensor_to(&s, &closed_port());
    let o = sensor.run(b"x\n", &["--max-retries", "0"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("giving up after 1 attempt "), "{e}");
    assert!(!e.contains("retrying"), "{e}");
}

/// Lines of text, `n` bytes in all.
fn lines(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 64);
    let mut i = 0u64;
    while v.len() < n {
        v.extend_from_slice(format!("line {i} of the sensor's stream\n").as_bytes());
        i += 1;
    }
    v.truncate(n);
    if let Some(last) = v.last_mut() {
        *last = b'\n';
    }
    v
}

#[test]
fn a_refused_sensor_fails_whatever_the_size_of_its_input() {
    let s = Server::start(&["--mode", "registration"]);
    let sensor = Sensor::new(&s, 3);
    let work = tempfile::tempdir().unwrap();
    for size in [9, 1 << 20, 4 << 20, 16 << 20] {
        let input = lines(size);
        let path = work.path().join(format!("in-{size}.txt"));
        std::fs::write(&path, &input).unwrap();
        for (how, o) in [
            (
                "file",
                sensor.run(
                    b"",
                    &["--max-retries", "1", "--file", path.to_str().unwrap()],
                ),
            ),
            ("stdin", sensor.run(&input, &["--max-retries", "1"])),
        ] {
            let e = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{size} bytes on {how}: {e}");
            assert!(
                e.contains("giving up after 2 attempts"),
                "{size} bytes on {how}: {e}"
            );
        }
    }
    assert!(s.log().contains("not approved"));
}

#[test]
fn an_accepting_server_stores_every_byte_whatever_the_size() {
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    let work = tempfile::tempdir().unwrap();
    // About 100 B, 1 MB, 4 MB and 16 MB of capture (760 B per packet on average).
    for n in [1, 1_400, 5_600, 22_000] {
        let cap = synthetic_pcap(n);
        let path = work.path().join(format!("in-{n}.pcap"));
        std::fs::write(&path, &cap).unwrap();
        for how in ["file", "stdin"] {
            let sensor = Sensor::new(&s, 1);
            let o = if how == "file" {
                sensor.run(b"", &["--file", path.to_str().unwrap()])
            } else {
                sensor.run(&cap, &[])
            };
            let e = String::from_utf8_lossy(&o.stderr);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{} bytes on {how}: {e}",
                cap.len()
            );
            s.wait_queue_len(&q, 1);
            let out = s.drain("1", &q, &["-f"]);
            assert_eq!(packets(&out), packets(&cap), "{} bytes on {how}", cap.len());
        }
    }
}
