//! `swarm`: connection floods against a d4 server, for
//! `scripts/fault-campaign.sh` (and, as a module, the `floods` integration
//! tests).
//!
//! ```text
//! swarm tls-idle  --server HOST:PORT --count N --from A[-B] --hold SECS
//! swarm tcp-idle  --server HOST:PORT --count N --from A[-B] --hold SECS
//! swarm slow-post --server HOST:PORT --count N --from A[-B] --hold SECS
//! ```
//!
//! N connections spread over the source addresses A..B (IPv4, e.g.
//! `127.0.0.2-127.0.0.18`, or last bytes of 127.0.0.x: `2-18`), each bound
//! as its source. `tls-idle` completes a TLS handshake (any certificate;
//! one the server does not complete within [`HANDSHAKE`] counts as failed)
//! and sends nothing; `tcp-idle` only connects; `slow-post` sends the
//! headers of `POST /login` with a Content-Length of 1,000 and then one body
//! byte every [`TRICKLE`]. Once all are open they are held SECS seconds;
//! then one JSON line on stdout: `opened`, `failed`, `closed_by_server`,
//! `still_open`, the HTTP answers seen (`answers`), and `open_secs`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// Longest wait for a TLS handshake (past it the connection counts as failed).
pub const HANDSHAKE: Duration = Duration::from_secs(3);

/// How often `slow-post` sends one more body byte.
pub const TRICKLE: Duration = Duration::from_secs(2);

/// What each connection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// TLS handshake, then silence.
    TlsIdle,
    /// TCP connect, then silence.
    TcpIdle,
    /// TLS, `POST /login` headers, a body byte now and then.
    SlowPost,
}

/// One connection of the flood.
pub struct Conn {
    tcp: TcpStream,
    tls: Option<ClientConnection>,
    /// The server closed it.
    pub closed: bool,
    /// What the server answered (plain text).
    pub answer: Vec<u8>,
}

impl Conn {
    /// The HTTP status the server answered, if any.
    pub fn status(&self) -> Option<u16> {
        let t = std::str::from_utf8(self.answer.get(..12)?).ok()?;
        t.strip_prefix("HTTP/1.1 ")?.trim().parse().ok()
    }

    /// Reads what the server sent without waiting; notes a close.
    pub fn poll(&mut self) {
        if self.closed {
            return;
        }
        let _ = self.tcp.set_nonblocking(true);
        let mut buf = [0u8; 4096];
        loop {
            match self.tcp.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => {
                    if let Some(c) = &mut self.tls {
                        let _ = c.read_tls(&mut &buf[..n]);
                        if c.process_new_packets().is_err() {
                            self.closed = true;
                            break;
                        }
                        let mut plain = [0u8; 4096];
                        while let Ok(k) = c.reader().read(&mut plain) {
                            if k == 0 {
                                break;
                            }
                            self.answer.extend_from_slice(&plain[..k]);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
        }
        let _ = self.tcp.set_nonblocking(false);
    }

    /// Sends plain bytes (TLS if the connection has it); false if that failed.
    pub fn send(&mut self, b: &[u8]) -> bool {
        let ok = match &mut self.tls {
            Some(c) => {
                c.writer().write_all(b).is_ok()
                    && c.complete_io(&mut self.tcp).is_ok()
                    && self.tcp.flush().is_ok()
            }
            None => self.tcp.write_all(b).is_ok(),
        };
        if !ok {
            self.closed = true;
        }
        ok
    }
}

/// Any server certificate is accepted: a flood does not care who it floods.
fn client_config() -> Arc<ClientConfig> {
    let mut cfg =
        d4_client::transport::insecure_client_config().expect("ring supports the default versions");
    cfg.alpn_protocols = Vec::new();
    Arc::new(cfg)
}

/// `A[-B]`: IPv4 addresses, or last bytes of 127.0.0.x.
pub fn parse_range(s: &str) -> Result<Vec<Ipv4Addr>, String> {
    let one = |p: &str| -> Result<u32, String> {
        let p = p.trim();
        if let Ok(a) = p.parse::<Ipv4Addr>() {
            return Ok(u32::from(a));
        }
        p.parse::<u8>()
            .map(|b| u32::from(Ipv4Addr::new(127, 0, 0, b)))
            .map_err(|_| format!("{p:?} is neither an IPv4 address nor a number 0-255"))
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (one(a)?, one(b)?),
        None => (one(s)?, one(s)?),
    };
    if b < a || b - a > 65_535 {
        return Err(format!(
            "{s:?}: the range must go up, 65,536 addresses at most"
        ));
    }
    Ok((a..=b).map(Ipv4Addr::from).collect())
}

/// One connection from `src` (TLS handshake done, POST headers sent, as `mode` says).
fn connect(mode: Mode, server: SocketAddr, src: Ipv4Addr, cfg: &Arc<ClientConfig>) -> Option<Conn> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    s.bind(&SocketAddr::from((src, 0)).into()).ok()?;
    s.connect_timeout(&server.into(), Duration::from_secs(10))
        .ok()?;
    let tcp: TcpStream = s.into();
    let _ = tcp.set_read_timeout(Some(HANDSHAKE));
    let _ = tcp.set_write_timeout(Some(HANDSHAKE));
    let mut c = Conn {
        tcp,
        tls: None,
        closed: false,
        answer: Vec::new(),
    };
    if mode == Mode::TcpIdle {
        return Some(c);
    }
    let name = ServerName::IpAddress(server.ip().into());
    let mut tls = ClientConnection::new(cfg.clone(), name).ok()?;
    while tls.is_handshaking() {
        tls.complete_io(&mut c.tcp).ok()?;
    }
    c.tls = Some(tls);
    if mode == Mode::SlowPost {
        let head = format!(
            "POST /login HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nu"
        );
        if !c.send(head.as_bytes()) {
            return None;
        }
    }
    Some(c)
}

/// Opens `count` connections over the source addresses `from` (one thread
/// per address, `count` spread evenly); returns them and how many failed.
pub fn open(mode: Mode, server: SocketAddr, count: usize, from: &[Ipv4Addr]) -> (Vec<Conn>, usize) {
    open_counting(mode, server, count, from, Arc::default())
}

/// [`open`], counting the connections tried so far in `done`.
pub fn open_counting(
    mode: Mode,
    server: SocketAddr,
    count: usize,
    from: &[Ipv4Addr],
    done: Arc<AtomicUsize>,
) -> (Vec<Conn>, usize) {
    let cfg = client_config();
    let from = if from.is_empty() {
        &[Ipv4Addr::LOCALHOST][..]
    } else {
        from
    };
    let per = |i: usize| count / from.len() + usize::from(i < count % from.len());
    let threads: Vec<_> = from
        .iter()
        .enumerate()
        .map(|(i, src)| {
            let (n, src, cfg, done) = (per(i), *src, cfg.clone(), done.clone());
            std::thread::spawn(move || {
                let mut ok = Vec::with_capacity(n);
                let mut failed = 0;
                for _ in 0..n {
                    match connect(mode, server, src, &cfg) {
                        Some(c) => ok.push(c),
                        None => failed += 1,
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                (ok, failed)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    let mut failed = 0;
    for t in threads {
        let (ok, f) = t.join().unwrap_or_default();
        all.extend(ok);
        failed += f;
    }
    (all, failed)
}

/// Holds the connections `hold` (trickling bodies for `slow-post`),
/// watching for the server's answers and closes.
pub fn hold(mode: Mode, conns: &mut [Conn], hold: Duration) {
    let end = Instant::now() + hold;
    let mut next_byte = Instant::now() + TRICKLE;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200).min(end - Instant::now()));
        let trickle = mode == Mode::SlowPost && Instant::now() >= next_byte;
        if trickle {
            next_byte += TRICKLE;
        }
        for c in conns.iter_mut() {
            c.poll();
            if trickle && !c.closed {
                c.send(b"x");
            }
        }
    }
    for c in conns.iter_mut() {
        c.poll();
    }
}

/// The JSON report of a flood.
pub fn report(
    mode: Mode,
    count: usize,
    conns: &[Conn],
    failed: usize,
    open_secs: f64,
) -> serde_json::Value {
    let mut answers = std::collections::BTreeMap::<String, usize>::new();
    for c in conns {
        if let Some(s) = c.status() {
            *answers.entry(s.to_string()).or_default() += 1;
        }
    }
    let closed = conns.iter().filter(|c| c.closed).count();
    serde_json::json!({
        "mode": format!("{mode:?}"),
        "count": count,
        "opened": conns.len(),
        "failed": failed,
        "closed_by_server": closed,
        "still_open": conns.len() - closed,
        "answers": answers,
        "open_secs": (open_secs * 100.0).round() / 100.0,
    })
}

#[derive(clap::Parser)]
#[command(about = "Connection floods against a d4 server (fault campaign)")]
struct Args {
    /// What each connection does.
    #[arg(value_enum)]
    mode: Mode,
    /// HOST:PORT to flood.
    #[arg(long)]
    server: String,
    /// How many connections.
    #[arg(long)]
    count: usize,
    /// Source addresses: A[-B] (IPv4, or last bytes of 127.0.0.x).
    #[arg(long, default_value = "127.0.0.1")]
    from: String,
    /// Seconds to hold them once open.
    #[arg(long, default_value_t = 10)]
    hold: u64,
}

fn main() {
    let a = <Args as clap::Parser>::parse();
    let from = parse_range(&a.from).unwrap_or_else(|e| {
        eprintln!("swarm: --from {e}");
        std::process::exit(2)
    });
    let server = a
        .server
        .to_socket_addrs()
        .ok()
        .and_then(|mut v| v.find(SocketAddr::is_ipv4))
        .unwrap_or_else(|| {
            eprintln!("swarm: --server {:?} is no IPv4 HOST:PORT", a.server);
            std::process::exit(2)
        });
    let t0 = Instant::now();
    let (mut conns, failed) = open(a.mode, server, a.count, &from);
    let open_secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "swarm {:?}: {} open, {failed} failed in {open_secs:.2} s; holding {} s",
        a.mode,
        conns.len(),
        a.hold
    );
    hold(a.mode, &mut conns, Duration::from_secs(a.hold));
    println!("{}", report(a.mode, a.count, &conns, failed, open_secs));
}
