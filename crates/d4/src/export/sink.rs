//! The destinations: datagram sockets (UDP, Unix) and streams (TCP, TLS).
//!
//! A stream is checked each time its buffer is about to go out (before a
//! `--rate` pause, a file, a full buffer, the end of a batch): a listener
//! that closed (EOF, TLS close_notify, reset) is replaced by a new
//! connection before anything more is written to it, so a listener that
//! shuts down gracefully (it says so, then reads until we close) loses
//! nothing. TCP has no application
//! acknowledgment: what a listener had received but not read when it closed
//! abruptly is lost with it.

use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use d4_client::transport::{Connector, Sink as D4Sink, TlsStream};

/// How long one TCP connection attempt may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// A write blocked longer than this (listener stalled) counts as a drop.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Write buffer in front of a stream.
const WRITE_BUFFER: usize = 64 * 1024;

/// Where items go, and how to (re)open it.
pub(crate) enum Target {
    Udp(String),
    Tcp(String),
    Tls(Box<Connector>, String),
    Unix(PathBuf),
}

impl Target {
    /// For messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Udp(a) => format!("udp://{a}"),
            Target::Tcp(a) => format!("tcp://{a}"),
            Target::Tls(_, a) => format!("tls://{a}"),
            Target::Unix(p) => format!("unix:{}", p.display()),
        }
    }

    /// Whether items go one per datagram.
    pub(crate) fn is_datagram(&self) -> bool {
        matches!(self, Target::Udp(_) | Target::Unix(_))
    }

    /// One connection attempt.
    pub(crate) fn open(&self) -> Result<Conn> {
        match self {
            Target::Udp(addr) => {
                let mut last = None;
                for a in resolve(addr)? {
                    let bind = if a.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                    let s = UdpSocket::bind(bind).context("cannot open a UDP socket")?;
                    // Connected: a refusal (ICMP port unreachable) is reported.
                    match s.connect(a) {
                        Ok(()) => return Ok(Conn::Udp(s)),
                        Err(e) => last = Some(anyhow!(e).context(format!("cannot reach {a}"))),
                    }
                }
                Err(last.unwrap_or_else(|| anyhow!("{addr} resolves to no address")))
            }
            Target::Tcp(addr) => {
                let mut last = None;
                for a in resolve(addr)? {
                    match TcpStream::connect_timeout(&a, DIAL_TIMEOUT) {
                        Ok(s) => {
                            s.set_nodelay(true)?;
                            s.set_write_timeout(Some(WRITE_TIMEOUT))?;
                            return Ok(Conn::Tcp(BufWriter::with_capacity(WRITE_BUFFER, s)));
                        }
                        Err(e) => last = Some(anyhow!(e).context(format!("cannot connect to {a}"))),
                    }
                }
                Err(last.unwrap_or_else(|| anyhow!("{addr} resolves to no address")))
            }
            Target::Tls(c, _) => match c.connect()? {
                D4Sink::Tls(w) => {
                    let s = w.into_inner().map_err(|e| anyhow!("{}", e.error()))?;
                    s.sock.set_write_timeout(Some(WRITE_TIMEOUT))?;
                    Ok(Conn::Tls(Box::new(BufWriter::with_capacity(
                        WRITE_BUFFER,
                        s,
                    ))))
                }
                D4Sink::Stdout(_) => Err(anyhow!("not a TLS connection")),
            },
            #[cfg(unix)]
            Target::Unix(p) => {
                let s = std::os::unix::net::UnixDatagram::unbound()
                    .context("cannot open a Unix datagram socket")?;
                s.connect(p)
                    .with_context(|| format!("cannot reach the socket {}", p.display()))?;
                Ok(Conn::Unix(s))
            }
            #[cfg(not(unix))]
            Target::Unix(_) => Err(anyhow!("Unix sockets need a Unix system")),
        }
    }
}

fn resolve(addr: &str) -> Result<Vec<std::net::SocketAddr>> {
    Ok(addr
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {addr}"))?
        .collect())
}

/// An open destination.
pub(crate) enum Conn {
    Udp(UdpSocket),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixDatagram),
    Tcp(BufWriter<TcpStream>),
    Tls(Box<BufWriter<TlsStream>>),
}

impl Conn {
    /// Sends one datagram (datagram sockets) or writes bytes (streams).
    pub(crate) fn send(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Conn::Udp(s) => s.send(b).map(|_| ()),
            #[cfg(unix)]
            Conn::Unix(s) => s.send(b).map(|_| ()),
            Conn::Tcp(w) => w.write_all(b),
            Conn::Tls(w) => w.write_all(b),
        }
    }

    /// A stream's writer, for copying a file into it.
    pub(crate) fn writer(&mut self) -> Option<&mut dyn Write> {
        match self {
            Conn::Tcp(w) => Some(w),
            Conn::Tls(w) => Some(w.as_mut()),
            _ => None,
        }
    }

    /// What a stream's buffer still takes before it would write to the
    /// socket by itself (datagrams: no limit).
    pub(crate) fn room(&self) -> usize {
        match self {
            Conn::Tcp(w) => w.capacity() - w.buffer().len(),
            Conn::Tls(w) => w.capacity() - w.buffer().len(),
            _ => usize::MAX,
        }
    }

    /// Pushes buffered bytes out.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(w) => w.flush(),
            Conn::Tls(w) => w.flush(),
            _ => Ok(()),
        }
    }

    /// Whether the listener is still there: a stream whose peer closed or
    /// reset, a UDP destination that answered with port unreachable.
    pub(crate) fn check(&mut self) -> io::Result<()> {
        match self {
            Conn::Udp(s) => match s.take_error()? {
                Some(e) => Err(e),
                None => Ok(()),
            },
            #[cfg(unix)]
            Conn::Unix(s) => match s.take_error()? {
                Some(e) => Err(e),
                None => Ok(()),
            },
            Conn::Tcp(w) => {
                let s = w.get_mut();
                s.set_nonblocking(true)?;
                let r = read_until_blocked(s);
                s.set_nonblocking(false)?;
                r
            }
            Conn::Tls(w) => {
                let s = w.get_mut();
                s.sock.set_nonblocking(true)?;
                let r = read_until_blocked(s);
                s.sock.set_nonblocking(false)?;
                r
            }
        }
    }

    /// Drops a broken connection without writing what its buffer holds
    /// (a `BufWriter` flushes when dropped: the items would reach the old
    /// connection and then be sent again on the new one).
    pub(crate) fn abandon(self) {
        match self {
            Conn::Tcp(w) => drop(w.into_parts()),
            Conn::Tls(w) => drop(w.into_parts()),
            _ => {}
        }
    }

    /// Ends a stream cleanly (TLS close_notify); errors do not matter now.
    pub(crate) fn close(mut self) {
        let _ = self.flush();
        if let Conn::Tls(w) = &mut self {
            let s = w.get_mut();
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }
}

/// Reads a non-blocking stream until it would block: a line listener does
/// not talk back, so anything it says is dropped; its end (EOF, TLS
/// close_notify) or a reset is an error.
fn read_until_blocked(s: &mut impl Read) -> io::Result<()> {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Err(closed()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the listener closed the connection",
    )
}
