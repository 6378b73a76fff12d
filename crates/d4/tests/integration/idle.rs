//! Idle sensors (issue 19, point 9): a quiet session parks — its data file
//! closed, its buffers freed — so that it costs one file descriptor and a
//! few KB; memory goes back to the system when sensors leave; and data sent
//! after a park lands in the same file, every byte stored and announced.

use std::path::Path;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::harness::{frame, synthetic_pcap, wait_for, Raw, Server, KEY};

/// Idle sensors held at once.
const SENSORS: usize = 600;
/// Sensors per loopback address (under `max_connections_per_ip`).
const PER_ADDR: usize = 50;

/// Sets this process's soft limit of open files to its hard limit (children,
/// the server among them, inherit it): 600 sensors and a server
/// holding them need more than a default soft limit of 1,024.
fn raise_fd_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    if let Some(l) = limits.lines().find(|l| l.starts_with("Max open files")) {
        let hard = l.split_whitespace().nth(4).unwrap_or("");
        let _ = std::process::Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={hard}:{hard}"),
            ])
            .status();
    }
}

/// (open file descriptors, of which files under `data`) of a process.
fn fds(pid: u32, data: &Path) -> (usize, usize) {
    let mut all = 0;
    let mut files = 0;
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        all += 1;
        if std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(data)) {
            files += 1;
        }
    }
    (all, files)
}

/// Resident memory of a process, bytes.
fn rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb * 1024
}

/// A sensor that sent one type-3 line, from `127.3.X.Y`.
fn idle_sensor(s: &Server, i: usize) -> Raw {
    let a = i / PER_ADDR;
    let from = format!("127.3.{}.{}", a / 250, a % 250 + 1);
    let mut r = Raw::connect(s, Some(&from));
    let f = frame(
        Uuid::new_v4(),
        3,
        KEY.as_bytes(),
        format!("sensor {i}\n").as_bytes(),
    );
    assert!(r.write(&f), "sensor {i} refused");
    r
}

/// Runs `f` on `items` in four threads.
fn in_parallel<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let mut parts: Vec<Vec<T>> = (0..4).map(|_| Vec::new()).collect();
    for (i, x) in items.into_iter().enumerate() {
        parts[i % 4].push(x);
    }
    std::thread::scope(|sc| {
        let hs: Vec<_> = parts
            .into_iter()
            .map(|p| sc.spawn(|| p.into_iter().map(&f).collect::<Vec<R>>()))
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// 600 authenticated sensors that sent one frame each and went quiet: each
/// costs one file descriptor (its socket; its data file is closed once it
/// parks) and little memory, and that memory goes back when they leave.
#[test]
fn idle_sensors_hold_one_fd_each_and_give_memory_back() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("server.toml");
    std::fs::write(
        &conf,
        "max_connections = 4000\nidle_timeout_secs = 600\ngzip_level = 0\n",
    )
    .unwrap();
    let s = Server::start_in(dir, &["--config", conf.to_str().unwrap()]);
    let pid = s.child.id();
    let data = s.data_dir().join("data");
    // One sensor in and out first: TLS, the worker, the registry warmed up.
    idle_sensor(&s, SENSORS).close();
    std::thread::sleep(Duration::from_millis(300));
    let (fd0, _) = fds(pid, &data);
    let rss0 = rss(pid);

    let t = Instant::now();
    let sensors = in_parallel((0..SENSORS).collect(), |i| idle_sensor(&s, i));
    let connect = t.elapsed();
    // Every session parks 2 s after its frame: its file closed.
    let held = wait_for(
        "quiet sessions to close their files",
        Duration::from_secs(10),
        || {
            let (all, files) = fds(pid, &data);
            (files == 0).then_some(all)
        },
    );
    let per_session_fds = (held - fd0) as f64 / SENSORS as f64;
    let rss1 = rss(pid);
    let per_session = rss1.saturating_sub(rss0) / SENSORS as u64;
    eprintln!(
        "{SENSORS} idle sensors in {connect:?}: {per_session_fds:.2} fds and {} KB each ({} -> {} MB)",
        per_session / 1024,
        rss0 >> 20,
        rss1 >> 20
    );
    assert!(
        per_session_fds <= 1.05,
        "{per_session_fds:.2} fds per idle session"
    );
    assert!(
        per_session <= 40 * 1024,
        "{} KB per idle session",
        per_session / 1024
    );

    // They leave (close_notify): the memory goes back.
    let t = Instant::now();
    in_parallel(sensors, Raw::close);
    let left = t.elapsed();
    wait_for("the sessions to end", Duration::from_secs(20), || {
        (fds(pid, &data).0 <= fd0 + 2).then_some(())
    });
    let grown = rss1.saturating_sub(rss0);
    let back = wait_for("memory to go back", Duration::from_secs(15), || {
        let now = rss(pid);
        (now <= rss0 + grown / 2).then_some(now)
    });
    eprintln!(
        "left in {left:?}; RSS {} MB after {:?}",
        back >> 20,
        t.elapsed()
    );
}

/// Stored bytes of the one file in `dir` (compressed or not).
fn one_file(dir: &Path) -> Vec<u8> {
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "one file in {}: {files:?}", dir.display());
    let mut b = Vec::new();
    std::io::Read::read_to_end(
        &mut d4_packet::gz::open_maybe_gz(&files[0].path()).unwrap(),
        &mut b,
    )
    .unwrap();
    b
}

/// A line sensor and a pcap sensor (its last record half sent) go quiet:
/// both sessions park and close their files. Then the rest arrives: it is
/// appended to the same files (same rotation period), every byte stored,
/// every line queued, the capture announced once, whole.
#[test]
fn data_after_a_park_lands_in_the_same_file() {
    let s = Server::start(&[]);
    let pid = s.child.id();
    let data = s.data_dir().join("data");
    let q3 = s.create_queue("3", &[]);
    let q1 = s.create_queue("1", &[]);
    let (u3, u1) = (Uuid::new_v4(), Uuid::new_v4());
    let pcap = synthetic_pcap(3);
    let cut = pcap.len() - 30; // inside the last record
    let mut lines = Raw::connect(&s, None);
    let mut cap = Raw::connect(&s, None);
    assert!(lines.write(&frame(u3, 3, KEY.as_bytes(), b"before the pause\n")));
    assert!(cap.write(&frame(u1, 1, KEY.as_bytes(), &pcap[..cut])));
    wait_for("both files written", Duration::from_secs(10), || {
        (s.day_dir(&u3, "3").exists() && s.day_dir(&u1, "1").exists()).then_some(())
    });
    // Quiet for 2 s: the files are closed, the sessions still open.
    wait_for(
        "the quiet sessions to close their files",
        Duration::from_secs(10),
        || (fds(pid, &data).1 == 0).then_some(()),
    );
    assert!(lines.write(&frame(u3, 3, KEY.as_bytes(), b"after the pause\n")));
    assert!(cap.write(&frame(u1, 1, KEY.as_bytes(), &pcap[cut..])));
    wait_for("the files open again", Duration::from_secs(10), || {
        (fds(pid, &data).1 == 2).then_some(())
    });
    lines.close();
    cap.close();
    s.wait_queue_len(&q3, 2);
    s.wait_queue_len(&q1, 1);
    assert_eq!(
        s.drain("3", &q3, &["-n"]),
        b"before the pause\nafter the pause\n"
    );
    assert_eq!(
        one_file(&s.day_dir(&u3, "3")),
        b"before the pause\nafter the pause\n"
    );
    assert_eq!(one_file(&s.day_dir(&u1, "1")), pcap);
    assert_eq!(
        s.drain("1", &q1, &["-f"]),
        pcap,
        "the capture announced, whole"
    );
    assert_eq!(fds(pid, &data).1, 0);
}
