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

/// Bytes of stream data in a spool directory, and its oldest segment number.
/// Writes `data` to the sensor's stdin on a thread (the write blocks while
/// the sensor does not read); the pipe comes back on the channel once all
/// of it was taken.
fn write_in_background(
    mut stdin: std::process::ChildStdin,
    data: String,
) -> std::sync::mpsc::Receiver<std::process::ChildStdin> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        stdin.write_all(data.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let _ = tx.send(stdin);
    });
    rx
}

fn spool_state(dir: &std::path::Path) -> (u64, Option<u64>) {
    let mut total = 0;
    let mut oldest = None;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(seq) = name.strip_suffix(".seg") {
            // The client drops its oldest segment while we list: a file gone
            // between read_dir and metadata counts as already dropped.
            let Ok(meta) = e.metadata() else { continue };
            total += meta.len();
            let seq: u64 = seq.parse().unwrap();
            oldest = Some(oldest.map_or(seq, |o: u64| o.min(seq)));
        }
    }
    (total, oldest)
}

#[test]
fn a_sensor_killed_during_an_outage_sends_its_spool_after_restart() {
    let s = Server::start(&[]);
    let q = s.create_queue("3", &["--max-size", "100000"]);
    let sensor = Sensor::new(&s, 3);
    let spool = tempfile::tempdir().unwrap();
    let sp = spool.path().to_str().unwrap();
    let batch = |name: &str| -> String { (0..200).map(|i| format!("{name} {i}\n")).collect() };
    let (before, during, after) = (batch("before"), batch("during"), batch("after"));
    let mut c = spawn_client(sensor.dir.path(), &["--spool", sp, "--max-backoff", "1"]);
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(before.as_bytes()).unwrap();
    stdin.flush().unwrap();
    s.wait_queue_len(&q, 200);
    // The server goes down; the sensor reads on, then is killed (-9).
    let ingest = s.ingest;
    let dir = s.stop();
    stdin.write_all(during.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let want = (before.len() + during.len()) as u64;
    wait_for(
        "the lines read during the outage spooled",
        Duration::from_secs(20),
        || (spool_state(spool.path()).0 >= want).then_some(()),
    );
    c.kill().unwrap();
    let _ = c.wait();
    drop(stdin);
    // Both come back; the restarted sensor sends its spool first.
    let s = Server::start_in(dir, &["--listen", &ingest.to_string()]);
    let o = sensor.run(after.as_bytes(), &["--spool", sp]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("spooled by an earlier run"), "{e}");
    assert_eq!(
        spool_state(spool.path()).0,
        0,
        "the spool is cleared once confirmed"
    );
    s.wait_queue_len(&q, 800);
    let got = String::from_utf8(s.drain("3", &q, &["-n"])).unwrap();
    let mut count = std::collections::HashMap::new();
    for l in got.lines() {
        *count.entry(l.to_string()).or_insert(0) += 1;
    }
    // Every line arrived; only what the server had before the kill twice
    // (at most what the spool held).
    for l in before.lines() {
        assert_eq!(count.get(l), Some(&2), "{l}");
    }
    for l in during.lines().chain(after.lines()) {
        assert_eq!(count.get(l), Some(&1), "{l}");
    }
    assert_eq!(got.lines().count(), 800);
}

#[test]
fn the_spool_is_bounded_counts_its_drops_and_restarts_on_a_record() {
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    let sensor = Sensor::new(&s, 1);
    let spool = tempfile::tempdir().unwrap();
    let sp = spool.path().to_str().unwrap();
    let bound: u64 = 1 << 20;
    let bound_arg = bound.to_string();
    let args = ["--spool", sp, "--spool-max-bytes", bound_arg.as_str()];
    let cap = synthetic_pcap(5_600); // about 4 MB
    let mut c = spawn_client(sensor.dir.path(), &args);
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(&cap).unwrap();
    stdin.flush().unwrap();
    wait_for(
        "the spool full and rolling",
        Duration::from_secs(20),
        || {
            let (total, oldest) = spool_state(spool.path());
            (total >= bound / 2 && oldest > Some(0)).then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let (total, _) = spool_state(spool.path());
    assert!(
        total <= bound,
        "{total} bytes in a spool bounded to {bound}"
    );
    assert!(spool.path().join("head").is_file());
    // Killed mid-stream (its input still open): the restart resends the spool.
    c.kill().unwrap();
    let o = c.wait_with_output().unwrap();
    drop(stdin);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("full") && e.contains("dropping its oldest"),
        "{e}"
    );
    let o = sensor.run(b"", &args);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("spooled by an earlier run"), "{e}");
    s.wait_queue_len(&q, 2);
    let got = packets(&s.drain("1", &q, &["-f"]));
    let want = packets(&cap);
    assert!(got.len() > want.len(), "the spool was sent again");
    let n = want.len();
    assert_eq!(&got[..n], &want[..], "the killed session's packets");
    let dup = got.len() - n;
    // The spool starts on a record boundary (its head) and ends at the end.
    assert_eq!(&got[n..], &want[n - dup..]);
    let dup_bytes: u64 = want[n - dup..].iter().map(|p| p.2.len() as u64 + 16).sum();
    assert!(dup_bytes <= bound + 65_536, "{dup_bytes} bytes sent again");
    assert!(dup_bytes >= bound / 2, "{dup_bytes} bytes sent again");
}

#[test]
fn a_spooled_sensor_reads_on_while_the_server_is_away() {
    let s = Server::start(&[]);
    let q = s.create_queue("3", &["--max-size", "1000000"]);
    let sensor = Sensor::new(&s, 3);
    let spool = tempfile::tempdir().unwrap();
    let sp = spool.path().to_str().unwrap();
    let before: String = (0..200).map(|i| format!("before {i}\n")).collect();
    let during: String = (0..60_000).map(|i| format!("during {i}\n")).collect();
    let after: String = (0..200).map(|i| format!("after {i}\n")).collect();
    let mut c = spawn_client(sensor.dir.path(), &["--spool", sp, "--max-backoff", "1"]);
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(before.as_bytes()).unwrap();
    stdin.flush().unwrap();
    s.wait_queue_len(&q, 200);
    let ingest = s.ingest;
    let dir = s.stop();
    // Far more than a pipe and the reader's buffers hold: the writer gets
    // through only if the sensor reads on while the server is away.
    let rx = write_in_background(stdin, during.clone());
    let mut stdin = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the sensor reads its input while the server is away");
    let full = (before.len() + during.len()) as u64;
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while spool_state(spool.path()).0 < full {
        if std::time::Instant::now() > end {
            let _ = c.kill();
            let o = c.wait_with_output().unwrap();
            panic!(
                "the outage's input not spooled: {:?} of {full}: {}",
                spool_state(spool.path()),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = Server::start_in(dir, &["--listen", &ingest.to_string()]);
    stdin.write_all(after.as_bytes()).unwrap();
    drop(stdin);
    let o = exits_within(
        c,
        Duration::from_secs(60),
        "the sensor once the server is back",
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert_eq!(
        spool_state(spool.path()).0,
        0,
        "the spool is cleared once confirmed"
    );
    s.wait_queue_len(&q, 60_400);
    let got = String::from_utf8(s.drain("3", &q, &["-n"])).unwrap();
    let mut count = std::collections::HashMap::new();
    for l in got.lines() {
        *count.entry(l).or_insert(0) += 1;
    }
    // In order and once each; what preceded the outage may come twice
    // (the replay window).
    for l in during.lines().chain(after.lines()) {
        assert_eq!(count.get(l), Some(&1), "{l}");
    }
    for l in before.lines() {
        assert!(matches!(count.get(l), Some(1 | 2)), "{l}");
    }
    let rest: Vec<&str> = got.lines().filter(|l| !l.starts_with("before")).collect();
    let want: Vec<&str> = during.lines().chain(after.lines()).collect();
    assert_eq!(rest, want);
}

#[test]
fn an_outage_longer_than_the_spool_keeps_its_newest_whole_lines() {
    let s = Server::start(&[]);
    let q = s.create_queue("3", &["--max-size", "1000000"]);
    let sensor = Sensor::new(&s, 3);
    let spool = tempfile::tempdir().unwrap();
    let sp = spool.path().to_str().unwrap();
    let args = [
        "--spool",
        sp,
        "--spool-max-bytes",
        "262144",
        "--max-backoff",
        "1",
    ];
    let during: String = (0..60_000).map(|i| format!("during {i}\n")).collect();
    let mut c = spawn_client(sensor.dir.path(), &args);
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(b"before\n").unwrap();
    stdin.flush().unwrap();
    s.wait_queue_len(&q, 1);
    let ingest = s.ingest;
    let dir = s.stop();
    let rx = write_in_background(stdin, during.clone());
    let mut stdin = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the sensor reads its input while the server is away");
    std::thread::sleep(Duration::from_secs(1));
    let (total, oldest) = spool_state(spool.path());
    assert!(total <= 262_144 && oldest > Some(0), "{total} {oldest:?}");
    let s = Server::start_in(dir, &["--listen", &ingest.to_string()]);
    stdin.write_all(b"after\n").unwrap();
    drop(stdin);
    let o = exits_within(
        c,
        Duration::from_secs(60),
        "the sensor once the server is back",
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("dropped from the full spool"), "{e}");
    s.wait_queue_len(&q, 2 + 262_144 / 14);
    std::thread::sleep(Duration::from_millis(500));
    let got = String::from_utf8(s.drain("3", &q, &["-n"])).unwrap();
    let rest: Vec<&str> = got.lines().filter(|l| *l != "before").collect();
    // The newest lines of the outage, whole and in order, then the rest.
    assert_eq!(rest.last(), Some(&"after"));
    let kept = &rest[..rest.len() - 1];
    let all: Vec<&str> = during.lines().collect();
    assert!(kept.len() > 262_144 / 14 / 2, "{} lines", kept.len());
    assert_eq!(kept, &all[all.len() - kept.len()..]);
}

#[test]
fn a_sigterm_during_the_replay_of_the_spool_keeps_all_of_it() {
    let s = Server::start(&[]);
    // An earlier run's spool: 24 MB of lines, more than socket buffers hold.
    let spool = tempfile::tempdir().unwrap();
    let sp = spool.path().to_str().unwrap();
    let earlier = lines(24 << 20);
    std::fs::write(spool.path().join("type"), "3\n").unwrap();
    std::fs::write(spool.path().join(format!("{:020}.seg", 0)), &earlier).unwrap();
    // The server stops reading 1 MB into the replay.
    let relay = StallingRelay::start(s.ingest, 1 << 20);
    let sensor = sensor_to(&s, &relay.addr.to_string());
    let mut c = spawn_client(sensor.dir.path(), &["--spool", sp, "--max-backoff", "1"]);
    let stdin = c.stdin.take().unwrap();
    wait_for("the replay under way", Duration::from_secs(20), || {
        (relay.forwarded() >= 1 << 20).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    sigterm(c.id());
    std::thread::sleep(Duration::from_millis(300));
    // The server reads again: the connection is up, the session can end.
    relay.release();
    let o = exits_within(c, Duration::from_secs(30), "client after one SIGTERM");
    drop(stdin);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("kept, to be sent by the next run"), "{e}");
    assert_eq!(
        spool_state(spool.path()).0,
        earlier.len() as u64,
        "the whole spool is kept: {e}"
    );
    // The next run sends it, then its own input.
    sensor.set("destination", &format!("{}\n", s.ingest));
    let o = sensor.run(b"after\n", &["--spool", sp]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("spooled by an earlier run"), "{e}");
    assert_eq!(spool_state(spool.path()).0, 0);
    // Its last line (sent only by the replay) and the new input, stored.
    let last = earlier[..earlier.len() - 1]
        .rsplit(|&b| b == b'\n')
        .next()
        .unwrap();
    let last = [b"\n", last, b"\n"].concat();
    wait_for(
        "the spool and the new input stored",
        Duration::from_secs(20),
        || {
            let got = stored(&s, &sensor, "3");
            let has = |w: &[u8]| got.windows(w.len()).any(|x| x == w);
            (has(&last) && (got.starts_with(b"after\n") || has(b"\nafter\n"))).then_some(())
        },
    );
}

/// A small tmpfs mounted (as root) for the life of the value.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_under_the_spool_loses_nothing_during_an_outage() {
    let Some(disk) = SmallDisk::mount("384k") else {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    };
    let s = Server::start(&[]);
    let q = s.create_queue("3", &["--max-size", "1000000"]);
    let sensor = Sensor::new(&s, 3);
    let spool = disk.dir.path().join("spool");
    let sp = spool.to_str().unwrap();
    let before: String = (0..200).map(|i| format!("before {i}\n")).collect();
    let during: String = (0..60_000).map(|i| format!("during {i}\n")).collect();
    let args = [
        "--spool",
        sp,
        "--spool-max-bytes",
        "4194304",
        "--max-backoff",
        "1",
    ];
    let mut c = spawn_client(sensor.dir.path(), &args);
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(before.as_bytes()).unwrap();
    stdin.flush().unwrap();
    s.wait_queue_len(&q, 200);
    let ingest = s.ingest;
    let dir = s.stop();
    // More than the disk holds: once it is full the input waits.
    let rx = write_in_background(stdin, during.clone());
    wait_for("the spool full", Duration::from_secs(20), || {
        (spool_state(&spool).0 >= 200_000).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    // Kept, not emptied, on the write error.
    assert!(
        spool_state(&spool).0 >= 200_000,
        "{:?}",
        spool_state(&spool)
    );
    let s = Server::start_in(dir, &["--listen", &ingest.to_string()]);
    let mut stdin = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the input read once the server is back");
    stdin.write_all(b"after\n").unwrap();
    drop(stdin);
    let o = exits_within(
        c,
        Duration::from_secs(60),
        "the sensor once the server is back",
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("takes no more this run"), "{e}");
    s.wait_queue_len(&q, 60_201);
    std::thread::sleep(Duration::from_millis(500));
    let got = String::from_utf8(s.drain("3", &q, &["-n"])).unwrap();
    // Every line read during the outage, once and in order.
    let rest: Vec<&str> = got.lines().filter(|l| !l.starts_with("before")).collect();
    let want: Vec<&str> = during.lines().chain(["after"]).collect();
    assert_eq!(rest.len(), want.len());
    assert!(rest == want, "lines lost or out of order");
}

#[test]
fn a_spool_the_server_would_refuse_is_set_aside_not_retried_for_ever() {
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    let sensor = Sensor::new(&s, 1);
    // A damaged type-1 spool: not a pcap stream.
    let spool = tempfile::tempdir().unwrap();
    let sp = spool.path().to_str().unwrap();
    std::fs::write(spool.path().join("type"), "1\n").unwrap();
    std::fs::write(spool.path().join(format!("{:020}.seg", 3)), [7u8; 5000]).unwrap();
    let cap = synthetic_pcap(50);
    let o = sensor.run(&cap, &["--spool", sp]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("set aside"), "{e}");
    let rejected: Vec<_> = std::fs::read_dir(spool.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rejected-"))
        .collect();
    assert_eq!(rejected.len(), 1);
    let kept = rejected[0].path().join(format!("{:020}.seg", 3));
    assert_eq!(std::fs::read(kept).unwrap(), [7u8; 5000]);
    assert_eq!(spool_state(spool.path()).0, 0);
    s.wait_queue_len(&q, 1);
    assert_eq!(packets(&s.drain("1", &q, &["-f"])), packets(&cap));
}
