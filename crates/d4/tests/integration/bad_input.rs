//! Bad input, one test per class: the session is closed, a clear error is
//! recorded for that sensor, and nothing else is affected — a good sensor
//! streaming at the same time loses nothing.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use uuid::Uuid;

use crate::harness::*;

/// A well-behaved sensor streaming type-3 lines while bad sessions come and go.
struct GoodSensor {
    child: Child,
    writer: std::thread::JoinHandle<()>,
    queue: String,
    lines: usize,
}

impl GoodSensor {
    fn start(s: &Server) -> GoodSensor {
        let sensor = Sensor::new(s, 3);
        // Only this sensor's lines: bad sessions may send valid frames first.
        let queue = s.create_queue("3", &["--sensor", &sensor.uuid.to_string()]);
        let mut child = Command::new(D4)
            .args(["client", "-c", sensor.dir.path().to_str().unwrap()])
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let lines = 400;
        let writer = std::thread::spawn(move || {
            let _keep = sensor;
            for i in 0..lines {
                writeln!(stdin, "good line {i}").unwrap();
                stdin.flush().unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        GoodSensor {
            child,
            writer,
            queue,
            lines,
        }
    }

    /// Ends the stream and checks that every line arrived, in order.
    fn check(mut self, s: &Server) {
        self.writer.join().unwrap();
        assert!(self.child.wait().unwrap().success());
        s.wait_queue_len(&self.queue, self.lines as u64);
        let out = String::from_utf8(s.drain("3", &self.queue, &["-n"])).unwrap();
        let want: String = (0..self.lines)
            .map(|i| format!("good line {i}\n"))
            .collect();
        assert_eq!(out, want, "the good sensor lost data");
    }
}

/// Sends `bytes` on a raw session and expects the server to close it.
fn rejected(s: &Server, bytes: &[u8]) {
    let mut raw = Raw::connect(s, None);
    raw.write(bytes);
    assert!(raw.closed_by_server(), "the server kept the session open");
}

fn check_rejection(extra: &[&str], make: impl FnOnce(&Server, Uuid) -> Vec<u8>, needle: &str) {
    let s = Server::start(extra);
    let good = GoodSensor::start(&s);
    let bad = Uuid::new_v4();
    let bytes = make(&s, bad);
    rejected(&s, &bytes);
    let e = s.wait_error(&bad, needle);
    eprintln!("recorded: {e}");
    good.check(&s);
    assert!(s.log().contains(needle), "the log names the reason");
}

#[test]
fn wrong_hmac() {
    check_rejection(
        &[],
        |_, u| frame(u, 3, b"not the key", b"line\n"),
        "HMAC does not match",
    );
}

#[test]
fn oversized_size() {
    check_rejection(
        &[],
        |_, u| {
            let mut f = frame(u, 3, KEY.as_bytes(), b"");
            f[58..62].copy_from_slice(&2_000_000u32.to_le_bytes());
            f
        },
        "exceeds the limit",
    );
}

#[test]
fn type_zero() {
    check_rejection(
        &[],
        |_, u| frame(u, 0, KEY.as_bytes(), b"x"),
        "type 0 is reserved",
    );
}

#[test]
fn type_254_first() {
    check_rejection(
        &[],
        |_, u| frame(u, 254, KEY.as_bytes(), b"x\n"),
        "type 2 frame (meta-header) must come before",
    );
}

#[test]
fn type_change() {
    check_rejection(
        &[],
        |_, u| {
            [
                frame(u, 3, KEY.as_bytes(), b"a\n"),
                frame(u, 8, KEY.as_bytes(), b"b\n"),
            ]
            .concat()
        },
        "type changed inside the session (from 3 to 8)",
    );
}

#[test]
fn uuid_change() {
    let s = Server::start(&[]);
    let good = GoodSensor::start(&s);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    rejected(
        &s,
        &[
            frame(a, 3, KEY.as_bytes(), b"a\n"),
            frame(b, 3, KEY.as_bytes(), b"b\n"),
        ]
        .concat(),
    );
    // Recorded for the session's sensor, not for the UUID it switched to.
    s.wait_error(&a, "UUID changed inside the session");
    assert!(s.sensor(&b)["last_error"].is_null());
    good.check(&s);
}

#[test]
fn second_connection_for_same_uuid_and_type() {
    let s = Server::start(&[]);
    let good = GoodSensor::start(&s);
    let u = Uuid::new_v4();
    // A squatter that sends only a (forged) header does not take the slot.
    let mut squatter = Raw::connect(&s, None);
    assert!(squatter.write(&frame(u, 3, b"forged", b"never sent\n")[..62]));
    std::thread::sleep(Duration::from_millis(200));
    let mut first = Raw::connect(&s, None);
    assert!(first.write(&frame(u, 3, KEY.as_bytes(), b"first\n")));
    std::thread::sleep(Duration::from_millis(300));
    rejected(&s, &frame(u, 3, KEY.as_bytes(), b"second\n"));
    s.wait_error(&u, "already has a live connection for type 3");
    // The first connection is untouched; types 2/254 may have several.
    assert!(first.write(&frame(u, 3, KEY.as_bytes(), b"still here\n")));
    first.close();
    drop(squatter);
    good.check(&s);
}

#[test]
fn blocked_uuid() {
    let s = Server::start(&[]);
    let good = GoodSensor::start(&s);
    let u = Uuid::new_v4();
    s.d4_ok(&["sensor", "block", &u.to_string()]);
    rejected(&s, &frame(u, 3, KEY.as_bytes(), b"x\n"));
    s.wait_error(&u, "sensor UUID is blocklisted");
    good.check(&s);
}

#[test]
fn blocked_ip_and_cidr() {
    let s = Server::start(&[]);
    let good = GoodSensor::start(&s);
    s.d4_ok(&["sensor", "block-ip", "127.0.0.2"]);
    s.d4_ok(&["sensor", "block-ip", "127.0.1.0/24"]);
    for src in ["127.0.0.2", "127.0.1.9"] {
        let mut raw = Raw::connect(&s, Some(src));
        raw.write(&frame(Uuid::new_v4(), 3, KEY.as_bytes(), b"x\n"));
        assert!(raw.closed_by_server());
    }
    // Recorded server-wide (no sensor was identified).
    let rej = s.api_get("/rejections");
    let reasons: Vec<&str> = rej
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("127.0.0.2 is blocklisted")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("127.0.1.9 is blocklisted")),
        "{reasons:?}"
    );
    // Another loopback address is not blocked.
    let mut ok = Raw::connect(&s, Some("127.0.0.3"));
    let u = Uuid::new_v4();
    assert!(ok.write(&frame(u, 3, KEY.as_bytes(), b"fine\n")));
    ok.close();
    wait_for(
        "sensor from 127.0.0.3 seen",
        Duration::from_secs(10),
        || (s.sensor(&u)["last_seen"].as_i64()? > 0).then_some(()),
    );
    good.check(&s);
}

#[test]
fn non_v4_uuid() {
    let s = Server::start(&[]);
    let good = GoodSensor::start(&s);
    let u = Uuid::parse_str("9a7c4b56-1c1f-1b74-9b0e-3c1f2a1b7e01").unwrap(); // version 1
    rejected(&s, &frame(u, 3, KEY.as_bytes(), b"x\n"));
    let rej = s.api_get("/rejections");
    let r = rej[0]["reason"].as_str().unwrap().to_string();
    assert!(r.contains("is not a version 4 UUID"), "{r}");
    good.check(&s);
}

#[test]
fn garbage_bytes() {
    let s = Server::start(&[]);
    let good = GoodSensor::start(&s);
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    rejected(&s, &garbage);
    wait_for("a rejection", Duration::from_secs(10), || {
        (!s.api_get("/rejections").as_array()?.is_empty()).then_some(())
    });
    good.check(&s);
}

#[test]
fn truncated_frame_then_disconnect() {
    let s = Server::start(&[]);
    let good = GoodSensor::start(&s);
    let u = Uuid::new_v4();
    let q = s.create_queue("8", &[]);
    let whole = frame(u, 8, KEY.as_bytes(), b"complete||line\n");
    let cut = frame(u, 8, KEY.as_bytes(), b"this frame is cut short\n");
    let mut raw = Raw::connect(&s, None);
    raw.write(&[whole, cut[..70].to_vec()].concat());
    raw.close();
    s.wait_error(&u, "connection closed inside a frame");
    // What came before the cut is kept.
    s.wait_queue_len(&q, 1);
    assert_eq!(s.drain("8", &q, &["-n"]), b"complete||line\n");
    good.check(&s);
}

#[test]
fn one_byte_per_second() {
    let s = Server::start(&["--idle-timeout-secs", "3"]);
    let good = GoodSensor::start(&s);
    let u = Uuid::new_v4();
    let f = frame(u, 3, KEY.as_bytes(), b"slow\n");
    let mut raw = Raw::connect(&s, None);
    let mut closed = false;
    // One byte per 100 ms against a 3 s idle timeout: the same ratio as one
    // byte per second against the default 30 s.
    for b in &f {
        if !raw.write(std::slice::from_ref(b)) {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed || raw.closed_by_server());
    s.wait_error(&u, "no complete frame header within 3 s");
    good.check(&s);
}

#[test]
fn kick_closes_and_refuses_for_a_while() {
    let s = Server::start(&[]);
    let u = Uuid::new_v4();
    let mut raw = Raw::connect(&s, None);
    assert!(raw.write(&frame(u, 3, KEY.as_bytes(), b"a\n")));
    wait_for("live session", Duration::from_secs(10), || {
        s.sensor(&u)["connected"].as_bool()?.then_some(())
    });
    let out = String::from_utf8(s.d4(&["sensor", "kick", &u.to_string()]).stderr).unwrap();
    assert!(out.contains("1 sessions closed"), "{out}");
    assert!(raw.closed_by_server());
    rejected(&s, &frame(u, 3, KEY.as_bytes(), b"again\n"));
    s.wait_error(&u, "sensor was kicked");
}

#[test]
fn type1_stream_that_is_not_pcap() {
    check_rejection(
        &[],
        |_, u| {
            frame(
                u,
                1,
                KEY.as_bytes(),
                b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
            )
        },
        "not a pcap stream",
    );
}

#[test]
fn pcapng_sent_as_type1() {
    check_rejection(
        &[],
        |_, u| {
            frame(
                u,
                1,
                KEY.as_bytes(),
                &[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a],
            )
        },
        "send it as D4 type 5",
    );
}

#[test]
fn a_slow_frame_is_not_cut_by_the_idle_timeout() {
    // The idle timeout is for a missing header; a frame whose header arrived
    // may take longer (the reference drops such a partial frame).
    let s = Server::start(&["--idle-timeout-secs", "2"]);
    let q = s.create_queue("3", &[]);
    let u = Uuid::new_v4();
    let f = frame(u, 3, KEY.as_bytes(), &b"a slow but honest line\n".repeat(8));
    let mut raw = Raw::connect(&s, None);
    assert!(raw.write(&f[..62]));
    for chunk in f[62..].chunks(40) {
        std::thread::sleep(Duration::from_millis(700));
        assert!(raw.write(chunk), "closed while the frame was arriving");
    }
    raw.close();
    s.wait_queue_len(&q, 8);
    assert!(s.sensor(&u)["last_error"].is_null());
}

/// A connection past `max_connections_per_ip` meets the server's limit: it
/// is counted as such in `/metrics` (and as the server's fault), not as a
/// sensor's timeout.
#[test]
fn too_many_connections_are_the_servers_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("server.toml");
    std::fs::write(&cfg, "max_connections_per_ip = 1\n").unwrap();
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let u = Uuid::new_v4();
    let mut first = Raw::connect(&s, None);
    assert!(first.write(&frame(u, 3, KEY.as_bytes(), b"first\n")));
    std::thread::sleep(Duration::from_millis(200));
    let mut second = Raw::connect(&s, None);
    assert!(second.closed_by_server(), "the second connection is closed");
    wait_for("the limit in /metrics", Duration::from_secs(10), || {
        let m = s.metrics();
        (m.contains("d4_rejects_total{reason=\"too_many_connections\"} 1")
            && m.contains("d4_session_faults_total{whose=\"server\"} 1")
            && !m.contains("reason=\"timeout\""))
        .then_some(())
    });
    // The first connection is untouched.
    assert!(first.write(&frame(u, 3, KEY.as_bytes(), b"still here\n")));
    first.close();
}

/// A failure of the server's disk is the server's fault: recorded for the
/// sensor with kind `server_io` and `whose: server`, and counted so in
/// `/metrics` — never as the sensor's `bad_payload`.
#[test]
fn a_disk_failure_is_the_servers_fault() {
    let s = Server::start(&[]);
    let u = Uuid::new_v4();
    // The day's folder cannot be made: a file stands where it goes.
    let day = s.day_dir(&u, "3");
    std::fs::create_dir_all(day.parent().unwrap()).unwrap();
    std::fs::write(&day, b"").unwrap();
    let mut c = Raw::connect(&s, None);
    c.write(&frame(u, 3, KEY.as_bytes(), b"a line\n"));
    assert!(c.closed_by_server(), "the session is closed");
    let e = wait_for("the error record", Duration::from_secs(20), || {
        let e = s.sensor(&u)["last_error"].clone();
        (e["kind"] == "server_io").then_some(e)
    });
    assert_eq!(e["whose"], "server", "{e}");
    assert!(e["reason"].as_str().unwrap().starts_with("cannot "), "{e}");
    let m = s.metrics();
    assert!(
        m.contains("d4_rejects_total{reason=\"server_io\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("d4_session_faults_total{whose=\"server\"} 1"),
        "{m}"
    );
    assert!(!m.contains("reason=\"bad_payload\""), "{m}");
}

/// A registration-mode server, its admin key, and earlier evidence a flood
/// must not erase: a wrong HMAC from the approved sensor returned.
fn server_with_earlier_evidence() -> (Server, String) {
    let s = Server::start(&["--mode", "registration"]);
    let (_, admin) = s.admin_credentials();
    let known = Uuid::new_v4();
    rejected(&s, &frame(known, 3, KEY.as_bytes(), b"x\n"));
    let path = format!("/sensors/{known}/approve");
    assert_eq!(s.call("POST", &path, Some(&admin), None).0, 200);
    rejected(&s, &frame(known, 3, b"not the key", b"x\n"));
    s.wait_error(&known, "HMAC does not match");
    (s, admin)
}

#[test]
fn a_flood_of_unknown_sensors_fills_neither_the_pending_list_nor_the_rejections() {
    let (s, admin) = server_with_earlier_evidence();
    // The flood: random UUIDs from one address, then from ten more of its /24.
    let flood = |from: &str, n: usize| {
        for _ in 0..n {
            let mut raw = Raw::connect(&s, Some(from));
            raw.write(&frame(Uuid::new_v4(), 3, KEY.as_bytes(), b"x\n"));
            assert!(raw.closed_by_server());
        }
    };
    let pending = || {
        s.api_get("/sensors")
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["status"] == "pending")
            .count()
    };
    flood("127.0.0.2", 40);
    assert_eq!(pending(), 16, "one address");
    for i in 3..13 {
        flood(&format!("127.0.0.{i}"), 10);
    }
    assert_eq!(pending(), 64, "one /24");
    // An operator's registration still gets in.
    let u = Uuid::new_v4();
    let (code, v) = s.call(
        "POST",
        "/add/sensor/register",
        Some(&admin),
        Some(serde_json::json!({"uuid": u.to_string(), "hmac_key": "k"})),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(s.sensor(&u)["status"], "pending");
    let m = s.metrics();
    for line in [
        "d4_pending_refused_total{budget=\"address\"} 24",
        "d4_pending_refused_total{budget=\"prefix\"} 52",
        "d4_pending_refused_total{budget=\"list\"} 0",
        "d4_pending_sensors{source=\"connection\"} 64",
        "d4_pending_sensors{source=\"registration\"} 1",
        "d4_rejection_rows 13",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} not in {m}");
    }
    // The rejections: one row per (reason, address), the earlier one kept.
    let rows = s.api_get("/rejections");
    let rows = rows.as_array().unwrap();
    let row = |kind: &str, ip: &str| {
        rows.iter()
            .find(|r| r["kind"] == kind && r["ip"] == ip)
            .unwrap_or_else(|| panic!("no {kind} from {ip}: {rows:?}"))
    };
    assert_eq!(row("not_approved", "127.0.0.2")["count"], 40);
    let h = row("bad_hmac", "127.0.0.1");
    assert_eq!(h["count"], 1);
    assert!(h["first"].as_i64().unwrap() > 0 && h["last"] == h["time"]);
    assert!(h["reason"].as_str().unwrap().contains("HMAC"));
    assert_eq!(rows.len(), 1 + 1 + 11, "{rows:?}");
}

#[test]
fn an_operator_registration_gets_in_after_a_flood_filled_the_pending_list() {
    let (s, admin) = server_with_earlier_evidence();
    // 1,088 sessions with random UUIDs from 68 addresses in 17 /24s, each
    // within its own budgets: the unauthenticated list fills (1,000).
    std::thread::scope(|scope| {
        for net in 1..=17 {
            let s = &s;
            scope.spawn(move || {
                for host in 1..=4 {
                    for _ in 0..16 {
                        let mut raw = Raw::connect(s, Some(&format!("127.0.{net}.{host}")));
                        raw.write(&frame(Uuid::new_v4(), 3, KEY.as_bytes(), b"x\n"));
                        assert!(raw.closed_by_server());
                    }
                }
            });
        }
    });
    let all = s.api_get("/sensors");
    let pending = all.as_array().unwrap().iter();
    assert_eq!(pending.filter(|v| v["status"] == "pending").count(), 1000);
    let u = Uuid::new_v4();
    let (code, v) = s.call(
        "POST",
        "/add/sensor/register",
        Some(&admin),
        Some(serde_json::json!({"uuid": u.to_string(), "hmac_key": "k"})),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(s.sensor(&u)["status"], "pending");
    // The flood is 68 rows of 16, and the wrong HMAC is still there.
    let rows = s.api_get("/rejections");
    let rows = rows.as_array().unwrap();
    let flood: Vec<_> = rows
        .iter()
        .filter(|r| r["kind"] == "not_approved" && r["ip"] != "127.0.0.1")
        .collect();
    assert_eq!(flood.len(), 68);
    assert!(flood.iter().all(|r| r["count"] == 16), "{flood:?}");
    let h = rows
        .iter()
        .find(|r| r["kind"] == "bad_hmac")
        .expect("the earlier rejection");
    assert_eq!(
        (h["ip"].as_str(), h["count"].as_u64()),
        (Some("127.0.0.1"), Some(1))
    );
}
