//! Idle sensors (issue 19, point 9): a quiet session parks — its data file
//! closed, its buffers freed — so that it costs one file descriptor and a
//! few KB; memory goes back to the system when sensors leave; and data sent
//! after a park lands in the same file, every byte stored and announced.

use std::path::Path;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::harness::{frame, wait_for, Raw, Server, KEY};

/// Idle sensors held at once.
const SENSORS: usize = 1000;
/// Sensors per loopback address (under `max_connections_per_ip`).
const PER_ADDR: usize = 50;

/// Sets this process's soft limit of open files to its hard limit (children,
/// the server among them, inherit it): 1,000 sensors need more than 1,024.
fn raise_fd_limit() {
    let _ = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            "--nofile=unlimited:",
        ])
        .status();
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

/// 1,000 authenticated sensors that sent one frame each and went quiet: each
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
    let sensors: Vec<Raw> = std::thread::scope(|sc| {
        let parts: Vec<_> = (0..4)
            .map(|k| {
                let s = &s;
                sc.spawn(move || {
                    (k * SENSORS / 4..(k + 1) * SENSORS / 4)
                        .map(|i| idle_sensor(s, i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|p| p.join().unwrap()).collect()
    });
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
    for r in sensors {
        r.close();
    }
    let left = t.elapsed();
    wait_for("the sessions to end", Duration::from_secs(20), || {
        (fds(pid, &data).0 <= fd0 + 2).then_some(())
    });
    let grown = rss1.saturating_sub(rss0);
    let back = wait_for("memory to go back", Duration::from_secs(15), || {
        let now = rss(pid);
        (now <= rss0 + grown / 4).then_some(now)
    });
    eprintln!(
        "left in {left:?}; RSS {} MB after {:?}",
        back >> 20,
        t.elapsed()
    );
}
