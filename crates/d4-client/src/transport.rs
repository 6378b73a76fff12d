//! Destinations: stdout, or a D4 server over TLS, with reconnection.

use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// How long one TCP connection attempt may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// A write blocked longer than this (server stalled, peer gone) counts as a drop.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);
/// Write buffer in front of the socket or stdout.
const WRITE_BUFFER: usize = 256 * 1024;

/// A TLS connection to a D4 server.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// An open destination.
pub enum Sink {
    /// Standard output (unbuffered: frames are batched by the caller; std's
    /// stdout would scan every write for newlines).
    Stdout(std::fs::File),
    /// A TLS connection.
    Tls(Box<BufWriter<TlsStream>>),
}

impl Sink {
    /// The server's address (TLS), for the sensor's self-capture check.
    pub fn peer(&self) -> Option<std::net::SocketAddr> {
        match self {
            Sink::Stdout(_) => None,
            Sink::Tls(w) => w.get_ref().sock.peer_addr().ok(),
        }
    }

    /// Writes encoded frames.
    pub fn write_all(&mut self, frames: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout(w) => w.write_all(frames),
            Sink::Tls(w) => w.write_all(frames).map_err(peer_gone),
        }
    }

    /// Pushes buffered bytes out; for TLS, also notices a server that hung up.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(w) => w.flush(),
            Sink::Tls(w) => {
                w.flush().map_err(peer_gone)?;
                check_alive(w.get_mut()).map_err(peer_gone)
            }
        }
    }

    /// Ends the stream: flush, TLS close_notify, then wait (at most `wait`)
    /// for the server's close_notify, which it sends once it has stored
    /// everything. A connection closed without it (a refused sensor) is an
    /// error.
    pub fn close(self, confirm: bool, wait: Duration) -> io::Result<()> {
        match self {
            Sink::Stdout(mut w) => w.flush(),
            Sink::Tls(w) => close_tls(*w, confirm, wait).map_err(peer_gone),
        }
    }
}

/// A write to a server that has closed the connection fails with EPIPE:
/// that is the server's refusal or a drop, not a closed output (`| head`),
/// which is what callers take `BrokenPipe` to mean.
fn peer_gone(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(
            io::ErrorKind::ConnectionReset,
            "the server closed the connection (broken pipe)",
        )
    } else {
        e
    }
}

/// Completes the TLS handshake. A server that hangs up meanwhile (EPIPE) is
/// a lost connection, not a closed output: mapped as by [`Sink`].
fn handshake(conn: &mut ClientConnection, io: &mut (impl Read + Write)) -> io::Result<()> {
    while conn.is_handshaking() {
        conn.complete_io(io).map_err(peer_gone)?;
    }
    Ok(())
}

/// Sends close_notify and waits for the server's.
fn close_tls(w: BufWriter<TlsStream>, confirm: bool, wait: Duration) -> io::Result<()> {
    let mut s = w.into_inner().map_err(|e| e.into_error())?;
    s.conn.send_close_notify();
    s.flush()?;
    s.sock
        .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if !confirm
                    && matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                    ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(refused(e)),
        }
    }
}

/// What the sensor's operator reads when the server hangs up without its
/// close_notify: rustls says "peer closed connection without sending TLS
/// close_notify" with a link to its documentation, which tells them
/// nothing. The D4 server does that to refuse a session.
const REFUSED: &str = "refused by the server: it closed the session without confirming \
    (not approved yet? ask the operator to approve this sensor's UUID; or a wrong key, \
    a blocked address, a full server: its log and `d4 sensor list` say which)";

/// An end of stream without close_notify is the server's refusal.
fn refused(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        io::Error::new(io::ErrorKind::ConnectionAborted, REFUSED)
    } else {
        e
    }
}

/// The server never sends application data: anything readable is a close
/// (close_notify, EOF, reset). Session tickets are absorbed by rustls.
fn check_alive(s: &mut TlsStream) -> io::Result<()> {
    s.sock.set_nonblocking(true)?;
    let mut buf = [0u8; 64];
    let r = s.read(&mut buf);
    s.sock.set_nonblocking(false)?;
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(refused(e)),
        Ok(_) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, REFUSED)),
    }
}

/// Opens TLS connections to one server.
pub struct Connector {
    /// `host:port` as configured.
    addr: String,
    /// The name verified in the server certificate.
    name: ServerName<'static>,
    /// Shared rustls configuration.
    config: Arc<rustls::ClientConfig>,
}

fn split_host(addr: &str) -> Result<&str> {
    if let Some(rest) = addr.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| anyhow!("{addr:?}: missing ']'"))?;
        return Ok(&rest[..end]);
    }
    addr.rsplit_once(':')
        .map(|(h, _)| h)
        .ok_or_else(|| anyhow!("{addr:?} is not host:port"))
}

/// Loads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

impl Connector {
    /// Prepares TLS: verify the server against `root_ca`, or (only when
    /// `insecure`) skip verification.
    pub fn new(
        addr: &str,
        root_ca: Option<&Path>,
        insecure: bool,
        tls_name: Option<&str>,
    ) -> Result<Connector> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS setup")?;
        let config = if insecure {
            tracing::warn!("TLS server verification is OFF (--insecure): anyone on the path can read and alter this stream");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth()
        } else {
            let Some(ca) = root_ca else {
                bail!("no rootCA.crt to verify the server with: copy the server's <data-dir>/tls/ca.crt into the sensor directory as rootCA.crt (or pass --insecure to skip verification)");
            };
            let mut roots = rustls::RootCertStore::empty();
            for c in load_certs(ca)? {
                roots
                    .add(c)
                    .with_context(|| format!("{}: unusable CA certificate", ca.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let host = tls_name.unwrap_or(split_host(addr)?);
        let name = ServerName::try_from(host.to_string())
            .with_context(|| format!("{host:?} is not a valid server name"))?;
        Ok(Connector {
            addr: addr.to_string(),
            name,
            config: Arc::new(config),
        })
    }

    /// One connection attempt (TCP with a timeout, then the TLS handshake).
    pub fn connect(&self) -> Result<Sink> {
        let addrs: Vec<_> = self
            .addr
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", self.addr))?
            .collect();
        let mut last = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, DIAL_TIMEOUT) {
                Ok(tcp) => {
                    tcp.set_nodelay(true)?;
                    tcp.set_write_timeout(Some(WRITE_TIMEOUT))?;
                    tcp.set_read_timeout(Some(DIAL_TIMEOUT))?;
                    let conn = ClientConnection::new(self.config.clone(), self.name.clone())?;
                    let mut s = StreamOwned::new(conn, tcp);
                    handshake(&mut s.conn, &mut s.sock)
                        .with_context(|| format!("TLS handshake with {a} failed"))?;
                    s.sock.set_read_timeout(None)?;
                    return Ok(Sink::Tls(Box::new(BufWriter::with_capacity(
                        WRITE_BUFFER,
                        s,
                    ))));
                }
                Err(e) => last = Some(anyhow!(e).context(format!("cannot connect to {a}"))),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("{} resolves to no address", self.addr)))
    }
}

/// Standard output as a destination.
pub fn stdout_sink() -> io::Result<Sink> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = io::stdout().as_fd().try_clone_to_owned()?;
        Ok(Sink::Stdout(std::fs::File::from(fd)))
    }
    #[cfg(not(unix))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "stdout output needs a Unix system",
        ))
    }
}

/// Capped exponential backoff with jitter.
#[derive(Debug)]
pub struct Backoff {
    /// Next delay.
    next: Duration,
    /// Upper bound.
    max: Duration,
}

impl Backoff {
    /// Starts at 250 ms, doubles, never above `max`.
    pub fn new(max: Duration) -> Backoff {
        Backoff {
            next: Duration::from_millis(250),
            max,
        }
    }

    /// The delay to wait now (with ±20 % jitter), and doubles the next one.
    pub fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        d.mul_f64(jitter).min(self.max)
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.next = Duration::from_millis(250);
    }
}

/// A TLS client configuration that accepts any server certificate: for
/// `--insecure` and for test tools (the fault campaign's floods), never a
/// default.
pub fn insecure_client_config() -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS setup")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth(),
    )
}

/// Accepts any server certificate (`--insecure` only).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that hung up: every write fails with EPIPE.
    struct HungUp;

    impl Read for HungUp {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    impl Write for HungUp {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_pipe_in_the_handshake_is_not_a_closed_output() {
        let c = Connector::new("127.0.0.1:4443", None, true, None).unwrap();
        let mut conn = ClientConnection::new(c.config.clone(), c.name.clone()).unwrap();
        let e = handshake(&mut conn, &mut HungUp).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    }

    #[test]
    fn host_split_and_backoff_cap() {
        assert_eq!(split_host("127.0.0.1:4443").unwrap(), "127.0.0.1");
        assert_eq!(split_host("[::1]:4443").unwrap(), "::1");
        assert_eq!(split_host("d4.example.org:4443").unwrap(), "d4.example.org");
        let mut b = Backoff::new(Duration::from_secs(2));
        let ds: Vec<_> = (0..8).map(|_| b.delay()).collect();
        assert!(ds.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(ds[7] >= Duration::from_millis(1600));
    }
}
