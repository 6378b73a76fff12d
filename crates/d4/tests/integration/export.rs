//! `d4 export udp|tcp|tls|syslog|unix` against real listeners on loopback,
//! and the Maltrail chain: sensor lines → `d4 client` (TLS) → `d4 server` →
//! `maltrail` queue → `d4 export udp` → a listener that takes datagrams as
//! Maltrail's server does.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{terminate, wait_for, Sensor, Server, D4};

/// A server with a queue of type `ty` holding `lines` (sent by a sensor).
fn queue_with(ty: &str, sensor_ty: u8, meta: Option<&str>, lines: &[String]) -> (Server, String) {
    let s = Server::start(&[]);
    let q = s.create_queue(ty, &[]);
    let sensor = Sensor::new(&s, sensor_ty);
    if let Some(m) = meta {
        sensor.set("metaheader.json", m);
    }
    sensor.send(lines.concat().as_bytes());
    s.wait_queue_len(&q, lines.len() as u64);
    (s, q)
}

fn numbered(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("line {i:05} of the export test\n"))
        .collect()
}

/// `d4 export ARGS` against `s`, waited for.
fn export(s: &Server, args: &[&str]) -> std::process::Output {
    Command::new(D4)
        .arg("export")
        .args(args)
        .arg("--data-dir")
        .arg(s.data_dir())
        .output()
        .unwrap()
}

/// `d4 export ARGS` against `s`, which must succeed.
fn export_ok(s: &Server, args: &[&str]) -> std::process::Output {
    let o = export(s, args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// `d4 export ARGS` against `s`, running.
fn spawn_export(s: &Server, args: &[&str]) -> Child {
    Command::new(D4)
        .arg("export")
        .args(args)
        .arg("--data-dir")
        .arg(s.data_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Datagrams received on a socket until `n` came or 20 s passed.
fn receive(sock: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 65536];
    while got.len() < n && Instant::now() < end {
        if let Ok(k) = sock.recv(&mut buf) {
            got.push(buf[..k].to_vec());
        }
    }
    got
}

fn udp_listener() -> (UdpSocket, String) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    // Room for a whole run: nothing lost to a full buffer on a busy machine.
    let _ = sock.set_recv_buffer_size(8 << 20);
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let sock: UdpSocket = sock.into();
    let port = sock.local_addr().unwrap().port().to_string();
    (sock, port)
}

/// `n` lines in a type-3 queue, and a UDP listener (its socket and port).
fn udp_case(n: usize) -> (Vec<String>, Server, String, UdpSocket, String) {
    let lines = numbered(n);
    let (s, q) = queue_with("3", 3, None, &lines);
    let (sock, port) = udp_listener();
    (lines, s, q, sock, port)
}

#[test]
fn udp_export_sends_each_item_once_in_order() {
    let (lines, s, q, sock, port) = udp_case(300);
    let o = export_ok(
        &s,
        &["udp", "-t", "3", "-u", &q, "-p", &port, "-n", "--once"],
    );
    let got = receive(&sock, lines.len());
    let want: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    assert_eq!(got, want);
    assert_eq!(s.queue_len(&q), 0, "acknowledged once sent");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("300 items"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// An RFC 5424 message, parsed as a syslog receiver does (§6):
/// `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]`.
fn parse_rfc5424(m: &[u8]) -> Result<(u8, Vec<String>, Vec<u8>), String> {
    let text = std::str::from_utf8(m).map_err(|e| e.to_string())?;
    let rest = text.strip_prefix('<').ok_or("no PRI")?;
    let (pri, rest) = rest.split_once('>').ok_or("PRI not closed")?;
    let pri: u8 = pri.parse().map_err(|_| "PRI not a number")?;
    if pri > 191 {
        return Err("PRI out of range".into());
    }
    let (version, rest) = rest.split_once(' ').ok_or("no VERSION")?;
    if version != "1" {
        return Err(format!("VERSION {version}"));
    }
    let mut fields = Vec::new();
    let mut rest = rest;
    for (name, max) in [
        ("TIMESTAMP", 64),
        ("HOSTNAME", 255),
        ("APP-NAME", 48),
        ("PROCID", 128),
        ("MSGID", 32),
    ] {
        let (f, r) = rest.split_once(' ').ok_or(format!("no {name}"))?;
        if f.is_empty() || f.len() > max || !f.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(format!("bad {name} {f:?}"));
        }
        fields.push(f.to_string());
        rest = r;
    }
    if fields[0] != "-" {
        chrono::DateTime::parse_from_rfc3339(&fields[0]).map_err(|e| format!("TIMESTAMP: {e}"))?;
    }
    // Structured data: the nil value here.
    let msg = match rest.split_once(' ') {
        Some(("-", msg)) => msg,
        None if rest == "-" => "",
        _ => return Err("STRUCTURED-DATA is not -".into()),
    };
    Ok((pri, fields, msg.as_bytes().to_vec()))
}

#[test]
fn syslog_export_sends_rfc5424_messages() {
    let (lines, s, q, sock, port) = udp_case(100);
    export_ok(
        &s,
        &[
            "syslog",
            "-t",
            "3",
            "-u",
            &q,
            "-p",
            &port,
            "-l",
            "WARNING",
            "--facility",
            "local0",
            "--hostname",
            "sensor-1",
            "--once",
        ],
    );
    let got = receive(&sock, lines.len());
    assert_eq!(got.len(), lines.len());
    for (m, line) in got.iter().zip(&lines) {
        let (pri, f, msg) = parse_rfc5424(m).unwrap_or_else(|e| panic!("{e}: {m:?}"));
        assert_eq!(pri, 16 * 8 + 4);
        assert_eq!(
            (f[1].as_str(), f[2].as_str(), f[4].as_str()),
            ("sensor-1", "d4", "3")
        );
        assert_eq!(msg, line.trim_end().as_bytes());
    }
}

#[cfg(unix)]
#[test]
fn unix_export_sends_one_datagram_per_item() {
    let lines = numbered(200);
    let (s, q) = queue_with("3", 3, None, &lines);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ids.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        let end = Instant::now() + Duration::from_secs(30);
        while got.len() < 200 && Instant::now() < end {
            if let Ok(k) = sock.recv(&mut buf) {
                got.push(String::from_utf8(buf[..k].to_vec()).unwrap());
            }
        }
        got
    });
    export_ok(
        &s,
        &[
            "unix",
            "-t",
            "3",
            "-u",
            &q,
            "--socket",
            path.to_str().unwrap(),
            "--once",
        ],
    );
    let got = reader.join().unwrap();
    let want: Vec<String> = lines.iter().map(|l| l.trim_end().to_string()).collect();
    assert_eq!(got, want);
}

/// A TCP (or TLS) line listener on a fixed address that can be stopped and
/// started again. It stops as a well-behaved server does: it says it is
/// closing (FIN, or TLS close_notify), reads what the client had already
/// sent until the client closes, then closes the listening socket.
struct LineListener {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    data: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<u32>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LineListener {
    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> LineListener {
        let mut l = LineListener {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls,
            data: Arc::default(),
            connections: Arc::default(),
            stop: Arc::default(),
            thread: None,
        };
        l.open();
        l
    }

    fn open(&mut self) {
        let listener = TcpListener::bind(self.addr).unwrap();
        self.addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        self.stop.store(false, Ordering::SeqCst);
        let (data, stop, conns, tls) = (
            self.data.clone(),
            self.stop.clone(),
            self.connections.clone(),
            self.tls.clone(),
        );
        self.thread = Some(std::thread::spawn(move || {
            let mut handlers = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((c, _)) => {
                        *conns.lock().unwrap() += 1;
                        let (data, stop, tls) = (data.clone(), stop.clone(), tls.clone());
                        handlers.push(std::thread::spawn(move || serve(c, tls, &data, &stop)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            for h in handlers {
                let _ = h.join();
            }
        }));
    }

    fn close(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.data.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// One connection: the whole lines read go to `data`, in order.
fn serve(
    c: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    data: &Mutex<Vec<u8>>,
    stop: &AtomicBool,
) {
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut own = Vec::new();
    let mut buf = [0u8; 16384];
    let mut closing_since: Option<Instant> = None;
    let mut tls_conn = tls.map(|cfg| rustls::ServerConnection::new(cfg).unwrap());
    let mut sock = c;
    loop {
        if stop.load(Ordering::SeqCst) && closing_since.is_none() {
            closing_since = Some(Instant::now());
            match tls_conn.as_mut() {
                Some(t) => {
                    t.send_close_notify();
                    let _ = t.write_tls(&mut sock);
                }
                None => {
                    let _ = sock.shutdown(std::net::Shutdown::Write);
                }
            }
        }
        if closing_since.is_some_and(|t| t.elapsed() > Duration::from_secs(5)) {
            break;
        }
        let r = match tls_conn.as_mut() {
            Some(t) => {
                let mut s = rustls::Stream::new(t, &mut sock);
                s.read(&mut buf)
            }
            None => sock.read(&mut buf),
        };
        match r {
            Ok(0) => break,
            Ok(k) => {
                own.extend_from_slice(&buf[..k]);
                // Whole lines are handed on as they come.
                if let Some(p) = own.iter().rposition(|&b| b == b'\n') {
                    data.lock().unwrap().extend(own.drain(..=p));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    // A line cut by a dropped connection (left in `own`) is not a line.
}

/// A CA and a server certificate for `localhost`, made with rcgen: the CA's
/// PEM and the rustls configuration of a server.
fn test_ca() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &Issuer::new(ca, ca_key))
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    (ca_cert.pem(), Arc::new(cfg))
}

/// The stream exporters: 1,000 lines at 100 items/s; the listener goes
/// away for 10 s after the first 200 and comes back on the same port.
/// Every line arrives exactly once, in order (the listener shuts down
/// gracefully, so nothing written is lost and nothing is sent twice).
fn stream_outage(tls: bool) {
    let lines = numbered(1000);
    let (s, q) = queue_with("3", 3, None, &lines);
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, cfg) = test_ca();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let mut l = LineListener::start(tls.then_some(cfg));
    let port = l.addr.port().to_string();
    let mut args = vec![if tls { "tls" } else { "tcp" }, "-t", "3", "-u", &q];
    args.extend([
        "-i",
        "localhost",
        "-p",
        &port,
        "--rate",
        "100",
        "--max-backoff",
        "2",
    ]);
    if tls {
        args.extend(["-c", ca.to_str().unwrap()]);
    }
    let c = spawn_export(&s, &args);
    wait_for("200 lines", Duration::from_secs(30), || {
        (l.lines().len() >= 200).then_some(())
    });
    l.close();
    std::thread::sleep(Duration::from_secs(10));
    l.open();
    wait_for("every line", Duration::from_secs(60), || {
        (l.lines().len() >= lines.len() && s.queue_len(&q) == 0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let (ok, err) = terminate(c);
    assert!(ok, "{err}");
    l.close();
    let want: Vec<String> = lines.iter().map(|l| l.trim_end().to_string()).collect();
    assert_eq!(l.lines(), want, "{err}");
    assert!(*l.connections.lock().unwrap() >= 2, "reconnected");
    assert!(
        err.contains("1000 items") && err.contains("reconnects"),
        "{err}"
    );
}

#[test]
fn tcp_export_survives_a_listener_outage_without_loss() {
    stream_outage(false);
}

#[test]
fn tls_export_survives_a_listener_outage_without_loss() {
    stream_outage(true);
}

#[test]
fn export_failures_say_what_is_wrong() {
    let (s, q) = queue_with("3", 3, None, &numbered(3));
    // Nothing listens on a port just closed.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let o = export(
        &s,
        &[
            "tcp",
            "-t",
            "3",
            "-u",
            &q,
            "-p",
            &port,
            "--once",
            "--max-retries",
            "2",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("cannot reach tcp://127.0.0.1:"),
        "{err}"
    );
    assert_eq!(s.queue_len(&q), 3, "nothing acknowledged");

    let udp_port = {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.local_addr().unwrap().port().to_string()
    };
    let o = export(&s, &["udp", "-t", "3", "-u", &q, "-p", &udp_port, "--once"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("refused"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ca.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let o = export(
        &s,
        &[
            "tls",
            "-t",
            "3",
            "-u",
            &q,
            "-p",
            &port,
            "-c",
            bad.to_str().unwrap(),
            "--once",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("not a usable CA certificate"),
        "{err}"
    );

    let o = export(&s, &["udp", "-t", "3", "-u", &q, "-p", &udp_port, "-f"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("only a stream"),
        "{err}"
    );
    let o = export(&s, &["udp", "-t", "8", "-u", &q, "-p", &udp_port]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is of type 3"));
}

/// Maltrail's server (`core/log.py`, `start_logd`), for one datagram: an
/// `MTS1 <mac> ` frame is stripped (no secret set); a datagram that starts
/// with a digit is `<sec> <event>` split at the first space (`int(sec)`
/// must succeed); otherwise the event's `"YYYY-MM-DD HH:MM:SS` up to the
/// first `.` gives the time. The event is stored with its trailing CR/LF
/// removed, inner ones made spaces, and one `\n`. `None`: Maltrail drops it.
pub fn maltrail_accepts(data: &[u8]) -> Option<(i64, Vec<u8>)> {
    let data = match data.strip_prefix(b"MTS1 ") {
        Some(rest) if rest.len() > 32 => &rest[33..],
        Some(_) => return None,
        None => data,
    };
    let (sec, event) = if data.first()?.is_ascii_digit() {
        let sp = data.iter().position(|&b| b == b' ')?;
        let sec: i64 = std::str::from_utf8(&data[..sp]).ok()?.trim().parse().ok()?;
        (sec, &data[sp + 1..])
    } else {
        let dot = data.iter().position(|&b| b == b'.')?;
        let text = std::str::from_utf8(data.get(1..dot)?).ok()?;
        let t = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()?;
        let sec = t.and_local_timezone(chrono::Local).earliest()?.timestamp();
        (sec, data)
    };
    let mut e = event.to_vec();
    while e.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        e.pop();
    }
    for b in e.iter_mut() {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    e.push(b'\n');
    Some((sec, e))
}

/// A Maltrail log line's fields, split as Maltrail's reader does (spaces,
/// double-quoted fields with `""` escapes).
pub fn maltrail_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut chars) = (false, line.trim_end().chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ' ' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The tutorial's chain with d4 in every place, over real TLS from sensor
/// to server: every event reaches the "Maltrail server" in the form it
/// files under the right day.
#[test]
fn maltrail_chain_delivers_every_event_as_maltrail_parses_it() {
    let events: Vec<String> = (0..250)
        .map(|i| {
            format!(
                "\"2026-11-21 {:02}:{:02}:{:02}.{:06}\" d4-sensor-1 192.0.2.{} {} 198.51.100.{} 80 TCP URL evil{i}.example/\"path\" \"malware (static)\" abuse.ch\n",
                i / 3600 % 24,
                i / 60 % 60,
                i % 60,
                i * 7,
                i % 250,
                1024 + i,
                i % 200
            )
        })
        .collect();
    let (s, q) = queue_with("maltrail", 254, Some(r#"{"type": "maltrail"}"#), &events);
    let (sock, port) = udp_listener();
    export_ok(
        &s,
        &[
            "udp",
            "-t",
            "maltrail",
            "-u",
            &q,
            "-i",
            "127.0.0.1",
            "-p",
            &port,
            "--once",
        ],
    );
    let got = receive(&sock, events.len());
    assert_eq!(got.len(), events.len());
    for (d, line) in got.iter().zip(&events) {
        let (sec, event) = maltrail_accepts(d)
            .unwrap_or_else(|| panic!("Maltrail drops {:?}", String::from_utf8_lossy(d)));
        assert!(
            d[0].is_ascii_digit(),
            "sent with the seconds in front, as its sensor does"
        );
        assert_eq!(event, line.as_bytes());
        let ts = &line[1..20];
        let t = chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(
            sec,
            t.and_local_timezone(chrono::Local)
                .earliest()
                .unwrap()
                .timestamp()
        );
        let f = maltrail_fields(std::str::from_utf8(&event).unwrap());
        assert_eq!(f.len(), 11, "{f:?}");
        assert_eq!((f[1].as_str(), f[6].as_str()), ("d4-sensor-1", "TCP"));
    }
    assert_eq!(s.queue_len(&q), 0);
}

/// The tutorial's server steps done the web UI's way, through the REST API
/// its pages call: accept the extended type, create its queue; then the
/// exporter as above.
#[test]
fn maltrail_queue_made_through_the_api_feeds_the_exporter() {
    let s = Server::start(&[]);
    let k = Some(s.token.as_str());
    let (code, types) = s.call("GET", "/types", k, None);
    assert_eq!(code, 200, "{types}");
    let mut accepted: Vec<serde_json::Value> =
        types["types"].as_array().cloned().unwrap_or_default();
    accepted.retain(|t| t.is_u64());
    if !accepted.iter().any(|t| t == 254) {
        accepted.push(254.into());
    }
    let (code, v) = s.call(
        "POST",
        "/types",
        k,
        Some(serde_json::json!({"types": accepted, "extended": ["maltrail"]})),
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = s.call(
        "POST",
        "/queues",
        k,
        Some(serde_json::json!({"type": "maltrail", "description": "to Maltrail"})),
    );
    assert_eq!(code, 201, "{v}");
    let q = v["uuid"].as_str().unwrap().to_string();
    let sensor = Sensor::new(&s, 254);
    sensor.set("metaheader.json", r#"{"type": "maltrail"}"#);
    let events: Vec<String> = (0..20)
        .map(|i| format!("\"2026-11-21 10:00:{i:02}.000000\" s 192.0.2.1 1234 198.51.100.1 53 UDP DNS evil{i}.example \"malware\" (static)\n"))
        .collect();
    sensor.send(events.concat().as_bytes());
    s.wait_queue_len(&q, 20);
    let (sock, port) = udp_listener();
    export_ok(
        &s,
        &["udp", "-t", "maltrail", "-u", &q, "-p", &port, "--once"],
    );
    let got: Vec<Vec<u8>> = receive(&sock, 20)
        .iter()
        .map(|d| maltrail_accepts(d).expect("accepted by Maltrail").1)
        .collect();
    let want: Vec<Vec<u8>> = events.iter().map(|e| e.as_bytes().to_vec()).collect();
    assert_eq!(got, want);
}

/// `-f` over TCP: the capture a type-1 item names goes out whole,
/// gunzipped, and the connection ends cleanly with `--once`.
#[test]
fn tcp_export_sends_the_files_items_name() {
    let s = Server::start(&[]);
    let q = s.create_queue("1", &[]);
    let sensor = Sensor::new(&s, 1);
    let cap = crate::harness::synthetic_pcap(500);
    sensor.send(&cap);
    s.wait_queue_len(&q, 1);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let reader = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut b = Vec::new();
        c.read_to_end(&mut b).unwrap();
        b
    });
    export_ok(
        &s,
        &["tcp", "-t", "1", "-u", &q, "-p", &port, "-f", "--once"],
    );
    let got = reader.join().unwrap();
    assert_eq!(crate::harness::packets(&got), crate::harness::packets(&cap));
    assert_eq!(s.queue_len(&q), 0);
}

/// One SIGTERM ends the export after the item in flight: exit 0, and what
/// was not sent is still in the queue (sent + left = all, nothing twice).
#[test]
fn sigterm_ends_the_export_after_the_item_in_flight() {
    let (lines, s, q, sock, port) = udp_case(200);
    let c = spawn_export(
        &s,
        &["udp", "-t", "3", "-u", &q, "-p", &port, "--rate", "50"],
    );
    let first = receive(&sock, 20);
    assert_eq!(first.len(), 20);
    let (ok, err) = terminate(c);
    assert!(ok, "{err}");
    let mut got = first;
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    while let Ok(k) = sock.recv(&mut buf) {
        got.push(buf[..k].to_vec());
    }
    let left = s.queue_len(&q) as usize;
    assert!(got.len() < lines.len(), "stopped early: {}", got.len());
    assert_eq!(got.len() + left, lines.len(), "{err}");
    let want: Vec<Vec<u8>> = lines[..got.len()]
        .iter()
        .map(|l| l.trim_end().as_bytes().to_vec())
        .collect();
    assert_eq!(got, want);
    assert!(err.contains(&format!("{} items", got.len())), "{err}");
}
