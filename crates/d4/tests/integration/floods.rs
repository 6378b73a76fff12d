//! Connection floods (issue 19): connections that never authenticate, on
//! the ingest port and on the HTTPS port, from a few loopback addresses,
//! must not keep out a sensor that signs its frames or an API caller with
//! a token. The floods are the fault campaign's tool, `examples/swarm.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::swarm::{self, Mode};

/// A metric's value (the first row whose name and labels start with `key`).
fn metric(s: &Server, key: &str) -> u64 {
    s.metrics()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// 1,100 connections from 17 addresses that never send a frame (TLS
/// handshakes done, or only TCP); once 1,000 are open, a sensor: it must be
/// in (its lines confirmed) within a few seconds, while the flood goes on.
fn flood_then_sensor(s: &Server, mode: Mode) {
    let q = s.create_queue("3", &[]);
    let from = swarm::parse_range("127.0.0.2-127.0.0.18").unwrap();
    let t0 = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let (d, ingest) = (done.clone(), s.ingest);
    let flood = std::thread::spawn(move || swarm::open_counting(mode, ingest, 1100, &from, d));
    wait_for(
        "1,000 connections of the flood",
        Duration::from_secs(60),
        || (done.load(Ordering::Relaxed) >= 1000).then_some(()),
    );
    let sensor = Sensor::new(s, 3);
    let t1 = Instant::now();
    let o = sensor.run(b"in despite the flood\n", &["--max-backoff", "1"]);
    let got_in = t1.elapsed();
    assert!(
        o.status.success(),
        "the sensor did not get in: {}\n--- server log (end) ---\n{}",
        String::from_utf8_lossy(&o.stderr),
        tail(&s.log())
    );
    assert!(
        got_in < Duration::from_secs(5),
        "the sensor took {got_in:?}"
    );
    s.wait_queue_len(&q, 1);
    let (mut flood, failed) = flood.join().unwrap();
    let opened = t0.elapsed();
    // The flood was churned through itself.
    // Once the server has accepted all (a TCP connect is done when it
    // waits in the backlog): the /24's 64 places, of which the sensor took
    // one for a moment (the flood filled it again if it was still going).
    let (evicted, open) = wait_for("the flood accepted", Duration::from_secs(10), || {
        let evicted = metric(s, "d4_connections_evicted_total{listener=\"ingest\"}");
        let open = metric(
            s,
            "d4_connections_open{listener=\"ingest\",state=\"unauthenticated\"}",
        );
        (evicted + open == 1100).then_some((evicted, open))
    });
    assert!(open == 63 || open == 64, "{open} open");
    let closed = wait_for("the evicted closed", Duration::from_secs(10), || {
        swarm::hold(mode, &mut flood, Duration::ZERO);
        let closed = flood.iter().filter(|c| c.closed).count() as u64;
        (closed == evicted).then_some(closed)
    });
    eprintln!(
        "flood: {} open, {failed} failed in {opened:?}; sensor in {got_in:?}; {closed} closed by the server, {evicted} evicted",
        flood.len()
    );
    let r = s.api_get("/rejections");
    assert!(r.to_string().contains("evicted"), "{r}");
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[test]
fn a_tls_flood_that_never_authenticates_does_not_keep_a_sensor_out() {
    let s = Server::start(&[]);
    flood_then_sensor(&s, Mode::TlsIdle);
}

/// The same (TCP only: the descriptors are what counts) under the soft
/// limit servers are often started with: the server raises it to the hard
/// limit at start.
#[test]
fn a_flood_under_a_soft_limit_of_1024_descriptors() {
    let s = Server::start_wrapped(&["sh", "-c", "ulimit -Sn 1024 && exec \"$0\" \"$@\""], &[]);
    assert!(
        s.log().contains("soft limit raised from 1024"),
        "{}",
        s.log()
    );
    assert!(
        s.metrics()
            .contains("d4_open_files_limit{limit=\"at_start\"} 1024"),
        "{}",
        s.metrics()
    );
    flood_then_sensor(&s, Mode::TcpIdle);
}

/// 300 idle TCP connections from one address to the HTTPS port: the API
/// still answers a caller with a token, from another address of the /24.
#[test]
fn idle_tcp_connections_from_one_address_leave_the_api_up() {
    let s = Server::start(&[]);
    let web: std::net::SocketAddr = s.api.trim_start_matches("https://").parse().unwrap();
    let from = swarm::parse_range("127.0.0.30").unwrap();
    let (mut flood, failed) = swarm::open(Mode::TcpIdle, web, 300, &from);
    assert_eq!(failed, 0);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let (code, body) = s.call("GET", "/queues", Some(&s.token), None);
    let took = t0.elapsed();
    assert_eq!(code, 200, "{body}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The address holds its 32 places; the rest were closed, oldest first.
    wait_for("268 evicted", Duration::from_secs(10), || {
        (metric(&s, "d4_connections_evicted_total{listener=\"web\"}") == 268).then_some(())
    });
    let closed = wait_for("268 closed", Duration::from_secs(10), || {
        swarm::hold(Mode::TcpIdle, &mut flood, Duration::ZERO);
        let closed = flood.iter().filter(|c| c.closed).count();
        (closed == 268).then_some(closed)
    });
    eprintln!("300 idle TCP: API answered in {took:?}; {closed} closed by the server");
}

/// 300 slow `POST /login` bodies from 4 addresses: the API answers during
/// the flood, and a body that does not arrive in time gets 408.
#[test]
fn slow_login_bodies_time_out_and_leave_the_api_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("server.toml");
    std::fs::write(&cfg, "web_body_timeout_secs = 2\n").unwrap();
    let s = Server::start(&["--config", cfg.to_str().unwrap()]);
    let web: std::net::SocketAddr = s.api.trim_start_matches("https://").parse().unwrap();
    let from = swarm::parse_range("127.0.0.31-127.0.0.34").unwrap();
    let (mut flood, failed) = swarm::open(Mode::SlowPost, web, 300, &from);
    assert_eq!(failed, 0);
    let t0 = Instant::now();
    let (code, body) = s.call("GET", "/queues", Some(&s.token), None);
    let took = t0.elapsed();
    assert_eq!(code, 200, "{body}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The last 64 (the /24's places) keep trickling: 408 within the timeout.
    swarm::hold(Mode::SlowPost, &mut flood, Duration::from_secs(3));
    wait_for("every slow body closed", Duration::from_secs(10), || {
        swarm::hold(Mode::SlowPost, &mut flood, Duration::from_millis(200));
        flood.iter().all(|c| c.closed).then_some(())
    });
    let timed_out = flood.iter().filter(|c| c.status() == Some(408)).count();
    eprintln!("300 slow POST: API answered in {took:?}; {timed_out} answered 408, all closed");
    assert!(timed_out >= 1, "no 408 seen");
    let (code, _) = s.call("GET", "/queues", Some(&s.token), None);
    assert_eq!(code, 200);
}
