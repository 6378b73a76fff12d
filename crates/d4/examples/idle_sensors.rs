//! Many legitimate idle sensors, for measuring what a quiet sensor costs the
//! server (`scripts/idle-sensors.sh`).
//!
//! Opens COUNT TLS connections to a D4 server, each from a loopback address
//! `127.2.X.Y` (PER_ADDR sensors per address, so that the server's
//! per-address limit can be kept), each with its own sensor UUID; each
//! sensor sends one valid type-3 frame (one line, signed with KEY) and then
//! stays quiet. Prints `in OK MS FAILED` once every sensor's frame is
//! written (or its connection failed: refused, or no answer in 60 s), then
//! holds the connections until standard input ends, closes them all cleanly
//! (TLS close_notify) and prints `left`.
//!
//! ```sh
//! cargo run --release -p d4 --example idle_sensors -- 127.0.0.1:4443 ca.crt 10000 [PER_ADDR=50] [FIRST_ADDR=0] [KEY]
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use d4_proto::{FrameEncoder, Signer};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use uuid::Uuid;

type Conn = StreamOwned<ClientConnection, TcpStream>;

/// Threads that open connections.
const DIALERS: usize = 8;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        bail!("usage: idle_sensors SERVER CA_CERT COUNT [PER_ADDR=50] [FIRST_ADDR=0] [KEY]");
    }
    let server: SocketAddr = args[0].parse().context("SERVER")?;
    let ca = PathBuf::from(&args[1]);
    let count: usize = args[2].parse().context("COUNT")?;
    let per_addr: usize = args.get(3).map_or(Ok(50), |s| s.parse())?;
    let first_addr: usize = args.get(4).map_or(Ok(0), |s| s.parse())?;
    let key = args
        .get(5)
        .cloned()
        .unwrap_or_else(|| "private key to change".into());
    if per_addr == 0 {
        bail!("PER_ADDR must be at least 1");
    }

    let mut roots = rustls::RootCertStore::empty();
    for c in d4_client::transport::load_certs(&ca)? {
        roots.add(c)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );

    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut dialers = Vec::new();
    for _ in 0..DIALERS.min(count.max(1)) {
        let (next, cfg, key) = (next.clone(), cfg.clone(), key.clone());
        dialers.push(std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return (held, failed);
                }
                let a = first_addr + i / per_addr;
                let from = Ipv4Addr::new(127, 2, (a / 250) as u8, (a % 250 + 1) as u8);
                match sensor(server, from, &cfg, key.as_bytes(), i) {
                    Ok(c) => held.push(c),
                    Err(e) => {
                        if failed == 0 {
                            eprintln!("sensor {i} from {from}: {e:#}");
                        }
                        failed += 1;
                    }
                }
            }
        }));
    }
    let mut conns = Vec::with_capacity(count);
    let mut failed = 0;
    for d in dialers {
        match d.join() {
            Ok((c, f)) => {
                conns.extend(c);
                failed += f;
            }
            Err(_) => bail!("a dialer thread panicked"),
        }
    }
    println!(
        "in {} {} {failed}",
        conns.len(),
        start.elapsed().as_millis()
    );
    std::io::stdout().flush()?;

    // Hold until standard input ends.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    for c in &mut conns {
        c.conn.send_close_notify();
        let _ = c.flush();
    }
    // Give the server a moment to read the close_notify before the sockets go.
    std::thread::sleep(Duration::from_millis(500));
    drop(conns);
    println!("left");
    Ok(())
}

/// One sensor: connect from `from`, handshake, one type-3 frame.
fn sensor(
    server: SocketAddr,
    from: Ipv4Addr,
    cfg: &Arc<ClientConfig>,
    key: &[u8],
    i: usize,
) -> Result<Conn> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((from, 0)).into())?;
    s.connect_timeout(&server.into(), Duration::from_secs(60))?;
    let tcp: TcpStream = s.into();
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(60)))?;
    let name = ServerName::IpAddress(server.ip().into());
    let conn = ClientConnection::new(cfg.clone(), name)?;
    let mut tls = StreamOwned::new(conn, tcp);
    let uuid = Uuid::new_v4();
    let enc = FrameEncoder::new(Signer::new(key), 1, 3, uuid);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut frame = Vec::new();
    enc.encode_into(now, format!("idle sensor {i}\n").as_bytes(), &mut frame);
    // The handshake happens on the first write.
    tls.write_all(&frame)?;
    tls.flush()?;
    Ok(tls)
}
