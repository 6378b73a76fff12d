//! A full disk (issue 19): the server runs on a 20 MB tmpfs that a ballast
//! file fills while two paced sensors stream (type 3 lines, type 1 pcap);
//! the space is freed a few seconds later. The store must come back by
//! itself, every line and every packet the sensors were told was stored
//! must reach its queue exactly once, and no empty or cut file may be
//! announced. Needs root (to mount the tmpfs): skipped with a message
//! otherwise.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{synthetic_pcap, wait_for, Sensor, Server, D4};

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mb` MB, or says why not.
    fn mount(mb: u32) -> Result<Tmpfs, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("cannot run id: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not root".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// `d4 client` fed `chunks` on stdin, one every `pause`.
fn paced_client(sensor: &Sensor, chunks: Vec<Vec<u8>>, pause: Duration) -> Child {
    let mut c = Command::new(D4)
        .args(["client", "-c", sensor.dir.path().to_str().unwrap()])
        .args(["--max-backoff", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    std::thread::spawn(move || {
        for ch in chunks {
            if stdin.write_all(&ch).is_err() {
                return;
            }
            std::thread::sleep(pause);
        }
    });
    c
}

/// Waits for a sensor to end; it must exit 0 (everything confirmed).
fn confirmed(mut c: Child, what: &str, s: &Server) {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            assert!(
                st.success(),
                "{what}: the sensor exited {st}: {err}\n--- server log ---\n{}",
                s.log()
            );
            return;
        }
        if Instant::now() > end {
            let _ = c.kill();
            panic!("{what}: the sensor did not finish\n{}", s.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A metric's value (`None` if absent).
fn metric(s: &Server, name: &str) -> Option<f64> {
    s.metrics().lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

/// Pops every item of a queue through the API.
fn pop_all(s: &Server, q: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let body = s
            .http
            .post(format!("{}/api/v1/queues/{q}/pop?count=10000", s.api))
            .header("Authorization", &s.token)
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        let mut b = &body[..];
        let before = out.len();
        while b.len() >= 4 {
            let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
            out.push(b[4..4 + n].to_vec());
            b = &b[4 + n..];
        }
        if out.len() == before {
            return out;
        }
    }
}

/// The records of a whole pcap file (panics on a cut one): their numbers
/// (the synthetic capture numbers its packets by their timestamps).
fn pcap_records(path: &Path) -> Vec<u32> {
    let mut b = Vec::new();
    d4_packet::gz::open_maybe_gz(path)
        .unwrap()
        .read_to_end(&mut b)
        .unwrap();
    assert!(b.len() > 24, "{path:?}: an empty capture was announced");
    let mut p = 24;
    let mut out = Vec::new();
    while p < b.len() {
        assert!(p + 16 <= b.len(), "{path:?}: cut inside a record header");
        let ts = u32::from_le_bytes(b[p..p + 4].try_into().unwrap());
        let incl = u32::from_le_bytes(b[p + 8..p + 12].try_into().unwrap()) as usize;
        assert!(p + 16 + incl <= b.len(), "{path:?}: cut inside a record");
        out.push(ts - 1_700_000_000);
        p += 16 + incl;
    }
    out
}

/// Fills the file system of `dir` with a ballast file; its path.
fn fill(dir: &Path) -> PathBuf {
    let p = dir.join("ballast");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // The last bytes, to the last page.
    while f.write_all(&[0u8; 512]).is_ok() {}
    let _ = f.flush();
    p
}

#[test]
fn a_full_disk_loses_nothing_and_heals_without_a_restart() {
    let fs = match Tmpfs::mount(20) {
        Ok(t) => t,
        Err(why) => {
            eprintln!("disk_full: skipped ({why}; the test mounts a tmpfs as root)");
            return;
        }
    };
    let t0 = Instant::now();
    let dir = tempfile::tempdir_in(fs.path()).unwrap();
    let s = Server::start_in(dir, &["--rotation-secs", "1"]);
    let q3 = s.create_queue("3", &["--max-size", "100000"]);
    let q1 = s.create_queue("1", &[]);
    assert_eq!(metric(&s, "d4_store_writable"), Some(1.0));

    // 20,000 numbered lines over about 6 s, and 3,000 packets likewise.
    const LINES: usize = 20_000;
    const PACKETS: usize = 3_000;
    let lines: Vec<Vec<u8>> = (0..LINES / 100)
        .map(|c| {
            (c * 100 + 1..=c * 100 + 100)
                .map(|k| format!("line {k}\n"))
                .collect::<String>()
                .into_bytes()
        })
        .collect();
    let cap = synthetic_pcap(PACKETS);
    let caps: Vec<Vec<u8>> = cap.chunks(cap.len() / 60 + 1).map(<[u8]>::to_vec).collect();
    let text = Sensor::new(&s, 3);
    let pcap = Sensor::new(&s, 1);
    let c3 = paced_client(&text, lines, Duration::from_millis(30));
    let c1 = paced_client(&pcap, caps, Duration::from_millis(100));

    std::thread::sleep(Duration::from_millis(1500));
    let ballast = fill(fs.path());
    wait_for("the disk seen full", Duration::from_secs(10), || {
        (metric(&s, "d4_store_writable") == Some(0.0)).then_some(())
    });
    // While full: API writes are refused with 503, not 500.
    let (code, body) = s.call(
        "POST",
        "/queues",
        Some(&s.token),
        Some(json!({"type": "3"})),
    );
    assert_eq!(code, 503, "{body}");
    assert!(metric(&s, "d4_disk_full_events_total").unwrap_or(0.0) >= 1.0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(metric(&s, "d4_store_writable"), Some(0.0), "still full");
    std::fs::remove_file(&ballast).unwrap();

    // Back without a restart.
    wait_for("the store writable again", Duration::from_secs(10), || {
        (metric(&s, "d4_store_writable") == Some(1.0)).then_some(())
    });
    let (code, body) = s.call(
        "POST",
        "/queues",
        Some(&s.token),
        Some(json!({"type": "3"})),
    );
    assert!(
        code < 300,
        "queue creation after the disk healed: {code} {body}"
    );
    confirmed(c3, "type 3", &s);
    confirmed(c1, "type 1", &s);

    // Every line once, in order.
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while got.len() < LINES && Instant::now() < end {
        got.extend(pop_all(&s, &q3));
        std::thread::sleep(Duration::from_millis(100));
    }
    let want: Vec<Vec<u8>> = (1..=LINES)
        .map(|k| format!("line {k}").into_bytes())
        .collect();
    if got != want {
        let have: std::collections::HashSet<&Vec<u8>> = got.iter().collect();
        let missing: Vec<usize> = (1..=LINES)
            .filter(|k| !have.contains(&format!("line {k}").into_bytes()))
            .collect();
        panic!(
            "{} lines queued ({} distinct), {} missing (first {:?}; last {:?})\n--- server log ---\n{}",
            got.len(),
            have.len(),
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>(),
            missing.iter().rev().take(3).collect::<Vec<_>>(),
            s.log()
        );
    }

    // Every packet once, in whole files only.
    let mut packets = Vec::new();
    wait_for("every packet announced", Duration::from_secs(20), || {
        for item in pop_all(&s, &q1) {
            let path = PathBuf::from(String::from_utf8(item).unwrap());
            packets.extend(pcap_records(&path));
        }
        (packets.len() >= PACKETS).then_some(())
    });
    packets.sort_unstable();
    let want: Vec<u32> = (0..PACKETS as u32).collect();
    assert_eq!(packets.len(), PACKETS, "no packet announced twice");
    assert!(packets == want, "every packet announced");
    assert_eq!(metric(&s, "d4_files_stuck"), Some(0.0));
    assert_eq!(metric(&s, "d4_items_waiting"), Some(0.0));
    assert!(
        s.log().contains("re-opened") || s.log().contains("writable again"),
        "{}",
        s.log()
    );
    eprintln!("disk_full: {:.1} s", t0.elapsed().as_secs_f64());
    drop(s);
    drop(fs);
}
