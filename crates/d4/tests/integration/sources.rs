//! The sensor's sources beyond stdin and a file: `folder` (each closed
//! file once, across restarts of the server and of the sensor), `pcap`
//! replayed at a speed, `d4server` (a Redis list of another server).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// `d4 client -c DIR` in the background (following its source).
fn start_client(dir: &Path, extra: &[&str]) -> Child {
    Command::new(D4)
        .args(["client", "-c", dir.to_str().unwrap(), "--max-backoff", "1"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The lines of file `i`: two, the second without its newline for odd `i`
/// (the source adds it).
fn content(i: usize) -> String {
    let end = if i % 2 == 1 { "" } else { "\n" };
    format!(
        "file-{i:04} line-0 {}\nfile-{i:04} line-1{end}",
        "x".repeat(i % 97)
    )
}

/// How many times each line of files `0..n` is in `out`; panics on a line
/// that is no file's, or a file's lines out of order.
fn count_lines(out: &str, n: usize) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for l in out.lines() {
        assert!(l.starts_with("file-"), "unexpected line {l:?}");
        *seen.entry(l.to_string()).or_default() += 1;
    }
    for i in 0..n {
        for l in content(i).lines() {
            assert!(seen.contains_key(l), "file {i}: line {l:?} never arrived");
        }
    }
    seen
}

fn folder_sensor(s: &Server) -> Sensor {
    let sensor = Sensor::new(s, 3);
    std::fs::create_dir(sensor.dir.path().join("in")).unwrap();
    sensor.set("source", "folder\n");
    sensor.set("folder", "in\n");
    sensor.set("folder_settle_ms", "300\n");
    sensor
}

/// The acceptance test of issue 14: 1,000 files dropped into the folder
/// (one in fifty written slowly, in three parts, so that only the settle
/// rule keeps it from going out half written) while the server is stopped
/// (SIGTERM) and started again on the same data dir and port twice. Every
/// file arrives whole and once: D4 has no acknowledgement but the
/// session's end, and a stopping server gives an open session
/// `shutdown_grace_ms` to end its stream and be confirmed, so the batch in
/// flight at a stop is not sent again to the restarted server.
#[test]
fn folder_1000_files_each_once_while_the_server_restarts_twice() {
    let s = Server::start(&[]);
    let q = s.create_queue("3", &[]);
    let ingest = s.ingest.to_string();
    let sensor = folder_sensor(&s);
    let dir = sensor.dir.path().join("in");
    let client = start_client(sensor.dir.path(), &[]);
    const N: usize = 1000;
    let writer = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            for i in 0..N {
                let name = dir.join(format!("f{i:04}.log"));
                let c = content(i);
                if i % 50 == 7 {
                    // Slowly: three writes 120 ms apart (under the settle time).
                    use std::io::Write;
                    let mut f = std::fs::File::create(&name).unwrap();
                    let b = c.as_bytes();
                    let third = b.len() / 3;
                    for part in [&b[..third], &b[third..2 * third], &b[2 * third..]] {
                        f.write_all(part).unwrap();
                        f.flush().unwrap();
                        std::thread::sleep(Duration::from_millis(120));
                    }
                } else {
                    std::fs::write(&name, c).unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    let mut s = s;
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(1500));
        let data = s.stop();
        std::thread::sleep(Duration::from_millis(700));
        s = Server::start_in(data, &["--listen", &ingest]);
    }
    writer.join().unwrap();
    let want_lines = (2 * N) as u64;
    wait_for("every line in the queue", Duration::from_secs(120), || {
        (s.queue_len(&q) >= want_lines).then_some(())
    });
    // Give a resend, if any, time to land before counting.
    std::thread::sleep(Duration::from_millis(1500));
    let (ok, err) = terminate(client);
    assert!(ok, "d4 client: {err}");
    let out = String::from_utf8(s.drain("3", &q, &["-n"])).unwrap();
    let seen = count_lines(&out, N);
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    eprintln!(
        "{} lines, {} of them more than once",
        seen.len(),
        twice.len()
    );
    // Sessions are short and the journal is written once one is
    // confirmed; the session in flight at a stop ends within the server's
    // grace and is confirmed: no line arrives twice.
    assert!(twice.is_empty(), "{} lines twice: {twice:?}", twice.len());
    // The journal has every file, and only them.
    let journal = std::fs::read_to_string(sensor.dir.path().join("folder.sent")).unwrap();
    let names: std::collections::HashSet<&str> = journal
        .lines()
        .filter_map(|l| l.splitn(3, ' ').nth(2))
        .collect();
    assert_eq!(names.len(), N, "journal");
}

/// What makes the test above hold: a stopping server gives an open
/// session `shutdown_grace_ms` to end its stream. A sensor that ends it
/// within the grace is confirmed (exits 0 without a retry) and its line is
/// stored once; with `shutdown_grace_ms = 0` the same session is cut,
/// unconfirmed, and the sensor says so (exit non-zero, nothing to retry
/// with `--max-retries 0`).
#[test]
fn a_stopping_server_confirms_a_session_that_ends_within_its_grace() {
    use std::io::Write;
    for (grace, confirmed) in [(2000, true), (0, false)] {
        let cfg_dir = tempfile::tempdir().unwrap();
        let cfg = cfg_dir.path().join("server.toml");
        std::fs::write(&cfg, format!("shutdown_grace_ms = {grace}\n")).unwrap();
        let mut s = Server::start(&["--config", cfg.to_str().unwrap()]);
        let q = s.create_queue("3", &[]);
        let sensor = Sensor::new(&s, 3);
        let mut c = Command::new(D4)
            .args(["client", "-c", sensor.dir.path().to_str().unwrap()])
            .args(["--max-retries", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = c.stdin.take().unwrap();
        stdin.write_all(b"in flight\n").unwrap();
        stdin.flush().unwrap();
        wait_for("the line stored", Duration::from_secs(20), || {
            (s.queue_len(&q) >= 1).then_some(())
        });
        // One SIGTERM to the server; the sensor ends its stream 300 ms later.
        Command::new("kill")
            .args(["-TERM", &s.child.id().to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        drop(stdin);
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.success(), confirmed, "grace {grace}: {err}");
        wait_for("the server stopped", Duration::from_secs(20), || {
            s.child.try_wait().unwrap()
        });
        if confirmed {
            let s = Server::start_in(s.stop(), &[]);
            let out = String::from_utf8(s.drain("3", &q, &["-n"])).unwrap();
            assert_eq!(out, "in flight\n", "stored once");
        }
    }
}

/// A sensor restarted mid-way sends nothing twice (the journal); hidden
/// and partial names are never sent; `folder_done = move:DIR` moves what
/// was confirmed; SIGTERM between sessions exits 0.
#[test]
fn folder_sensor_restart_resends_nothing_and_skips_hidden_and_partial_files() {
    let s = Server::start(&[]);
    let q = s.create_queue("3", &[]);
    let sensor = folder_sensor(&s);
    sensor.set("folder_done", "move:done\n");
    let dir = sensor.dir.path().join("in");
    for i in 0..200 {
        std::fs::write(dir.join(format!("f{i:04}.log")), content(i)).unwrap();
    }
    for hidden in [".f9000.log", "f9001.log.part", "f9002.log~", "f9003.tmp"] {
        std::fs::write(dir.join(hidden), content(9000)).unwrap();
    }
    let client = start_client(sensor.dir.path(), &[]);
    wait_for("some lines", Duration::from_secs(60), || {
        (s.queue_len(&q) > 0).then_some(())
    });
    let (ok, err) = terminate(client);
    assert!(ok, "SIGTERM between sessions: {err}");
    for i in 200..300 {
        std::fs::write(dir.join(format!("f{i:04}.log")), content(i)).unwrap();
    }
    // The restart sends the rest and exits once nothing is left.
    let o = Command::new(D4)
        .args(["client", "-c", sensor.dir.path().to_str().unwrap()])
        .args(["--once", "--max-retries", "3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s.wait_queue_len(&q, 600);
    std::thread::sleep(Duration::from_millis(300));
    let out = String::from_utf8(s.drain("3", &q, &["-n"])).unwrap();
    let seen = count_lines(&out, 300);
    assert_eq!(seen.len(), 600);
    assert!(seen.values().all(|&n| n == 1), "a line came twice");
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [".f9000.log", "f9001.log.part", "f9002.log~", "f9003.tmp"]
    );
    assert_eq!(
        std::fs::read_dir(sensor.dir.path().join("done"))
            .unwrap()
            .count(),
        300
    );
}

/// A capture of `n` packets `gap_ms` apart.
fn paced_capture(n: u32, gap_ms: u32) -> Vec<u8> {
    let mut cap = synthetic_pcap(n as usize);
    // Rewrite the timestamps: packet i at i * gap_ms.
    let mut off = 24;
    for i in 0..n {
        let us = i * gap_ms * 1000;
        cap[off..off + 4].copy_from_slice(&(1_700_000_000 + us / 1_000_000).to_le_bytes());
        cap[off + 4..off + 8].copy_from_slice(&(us % 1_000_000).to_le_bytes());
        let len = u32::from_le_bytes(cap[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + len;
    }
    cap
}

#[test]
fn pcap_replay_sends_the_file_as_it_is_and_keeps_the_pace() {
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    let sensor = Sensor::new(&s, 1);
    let cap = paced_capture(21, 100); // 2 s
    let path = sensor.dir.path().join("c.pcap");
    std::fs::write(&path, &cap).unwrap();
    sensor.set("source", "pcap\n");
    sensor.set("file", "c.pcap\n");
    // Speed 0: as fast as possible, the file's bytes.
    sensor.set("speed", "0\n");
    let t = Instant::now();
    sensor.send(b"");
    let fast = t.elapsed();
    s.wait_queue_len(&q, 1);
    assert_eq!(s.drain("1", &q, &["-f"]), cap);
    // Four times the capture's pace: at least 0.5 s (2 s / 4).
    sensor.set("speed", "4\n");
    let t = Instant::now();
    sensor.send(b"");
    let paced = t.elapsed();
    s.wait_queue_len(&q, 1);
    assert_eq!(s.drain("1", &q, &["-f"]), cap);
    assert!(paced >= Duration::from_millis(450), "{paced:?}");
    eprintln!("speed 0: {fast:?}; speed 4: {paced:?}");
    // The flag does the same with --file.
    let t = Instant::now();
    let o = sensor.run(b"", &["--file", path.to_str().unwrap(), "--speed", "8"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t.elapsed() >= Duration::from_millis(220));
    s.wait_queue_len(&q, 1);
    assert_eq!(s.drain("1", &q, &["-f"]), cap);
}

#[test]
fn d4server_source_sends_a_redis_list_in_order_and_whole() {
    let Some(r) = RedisServer::start() else {
        return;
    };
    let s = Server::start(&[]);
    let q = s.create_queue("3", &[]);
    let sensor = Sensor::new(&s, 3);
    let list = "analyzer:3:0c4a0f8e-6a3b-4c55-9d3b-5a4c1f2e7d10";
    // A D4 server pushes new items at the head.
    let mut items: Vec<String> = (0..300).map(|i| format!("item {i}")).collect();
    items.insert(150, format!("long {}", "y".repeat(10_000))); // > snaplen
    for it in &items {
        r.cli(2, &["LPUSH", list, it]);
    }
    sensor.set("source", "d4server\n");
    sensor.set("redis_d4", &format!("127.0.0.1:{}/2\n", r.port));
    sensor.set("redis_queue", &format!("{list}\n"));
    let o = sensor.run(b"", &["--once"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s.wait_queue_len(&q, items.len() as u64);
    let out = String::from_utf8(s.drain("3", &q, &["-n"])).unwrap();
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got, items);
    assert_eq!(r.cli(2, &["LLEN", list]), "0");
    assert_eq!(
        r.cli(2, &["EXISTS", &format!("d4:processing:source:{list}")]),
        "0"
    );
    // A destination that is down: the items stay in Redis (held), and the
    // next run sends them.
    r.cli(2, &["LPUSH", list, "kept"]);
    let down = Sensor::new(&s, 3);
    for f in ["source", "redis_d4", "redis_queue"] {
        std::fs::copy(sensor.dir.path().join(f), down.dir.path().join(f)).unwrap();
    }
    down.set("destination", "127.0.0.1:1\n");
    let o = down.run(b"", &["--once", "--max-retries", "0"]);
    assert!(!o.status.success());
    assert_eq!(
        r.cli(
            2,
            &["LRANGE", &format!("d4:processing:source:{list}"), "0", "-1"]
        ),
        "kept"
    );
    let o = sensor.run(b"", &["--once"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s.wait_queue_len(&q, 1);
    assert_eq!(s.drain("3", &q, &["-n"]), b"kept\n");
}

#[test]
fn bad_source_settings_exit_non_zero_with_the_reason() {
    let s = Server::start(&[]);
    let sensor = Sensor::new(&s, 3);
    let fails = |want: &str| {
        let o = sensor.run(b"", &["--once", "--max-retries", "0"]);
        let e = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success() && e.contains(want), "{want}: {e}");
    };
    sensor.set("source", "folder\n");
    fails("needs the folder to watch");
    sensor.set("folder", "nowhere\n");
    fails("not a directory");
    sensor.set("source", "d4server\n");
    sensor.set("redis_d4", "localhost\n");
    sensor.set("redis_queue", "analyzer:3:x\n");
    fails("is not host:port/db");
    sensor.set("redis_d4", "127.0.0.1:1/2\n");
    fails("cannot reach Redis");
    sensor.set("source", "pcap\n");
    sensor.set("file", "missing.pcap\n");
    sensor.set("speed", "2\n");
    fails("missing.pcap");
    sensor.set("speed", "-1\n");
    fails("speed -1");
    std::fs::write(sensor.dir.path().join("bad.pcap"), "not a capture").unwrap();
    sensor.set("file", "bad.pcap\n");
    sensor.set("speed", "1\n");
    fails("not a pcap or pcapng capture");
    sensor.set("source", "stdin\n");
    let o = sensor.run(b"", &["--speed", "2"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--speed replays a capture"));
}
