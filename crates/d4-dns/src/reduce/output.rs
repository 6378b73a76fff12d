//! Where the reducers' lines go: each line is the reference's envelope
//! `{"type": <reducer>, "serverId": <id>, "data": <data>}`, sent to the
//! outputs its reducer is routed to —
//!
//! - stdout, one line each, flushed at the end of each window;
//! - a file, appended to, flushed likewise;
//! - a Redis pub/sub channel: `PUBLISH <channel> <line>` (pub/sub keeps
//!   nothing: while Redis is away lines are dropped, counted, and the
//!   connection is tried again at most every 2 s);
//! - a D4 server: a type-254 session whose meta-header is
//!   `{"type":"dns-stats"}`, through `d4_client::run_until` (the sensor's
//!   send loop: TLS, HMAC, reconnection, confirmation at the end), fed by
//!   a bounded channel of lines (4,096: past it, while the server is away,
//!   lines are dropped and counted) — on the server they land in the
//!   `dns-stats` queues, one item a line.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::reducers::Kind;
use crate::cli::Shutdown;
use crate::message::json_str;

/// The default Redis channel.
pub const DEFAULT_CHANNEL: &str = "d4:dns";

/// The extended type of the D4 output.
pub const D4_TYPE: &str = "dns-stats";

/// How to reach an output (from flags or the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Standard output.
    Stdout,
    /// A file, appended to.
    File(PathBuf),
    /// A Redis channel.
    Redis {
        /// `redis://HOST:PORT[/DB]` (or `rediss://`).
        url: String,
        /// The channel.
        channel: String,
    },
    /// A D4 server, through a sensor configuration (a reference directory
    /// or a TOML file: destination, key, uuid, rootCA.crt).
    D4(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Stdout => f.write_str("stdout"),
            Target::File(p) => write!(f, "file {}", p.display()),
            Target::Redis { url, channel } => write!(f, "redis {url} channel {channel}"),
            Target::D4(p) => write!(f, "d4 server of {}", p.display()),
        }
    }
}

/// One open output.
enum Out {
    Stdout(BufWriter<io::Stdout>),
    File(BufWriter<File>),
    Redis(Box<RedisOut>),
    D4(D4Out),
}

struct RedisOut {
    client: redis::Client,
    conn: Option<redis::Connection>,
    channel: String,
    /// When a connection was last tried and failed.
    failed_at: Option<Instant>,
    published: u64,
    dropped: u64,
}

impl RedisOut {
    fn send(&mut self, line: &str) {
        if self.conn.is_none() {
            if self
                .failed_at
                .is_some_and(|t| t.elapsed() < Duration::from_secs(2))
            {
                self.dropped += 1;
                return;
            }
            match self
                .client
                .get_connection_with_timeout(Duration::from_secs(2))
            {
                Ok(c) => {
                    if self.failed_at.take().is_some() {
                        tracing::info!("redis channel {}: connected again", self.channel);
                    }
                    self.conn = Some(c);
                }
                Err(e) => {
                    if self.failed_at.is_none() {
                        tracing::warn!(
                            "redis channel {}: cannot connect ({e}); lines are dropped until it is back",
                            self.channel
                        );
                    }
                    self.failed_at = Some(Instant::now());
                    self.dropped += 1;
                    return;
                }
            }
        }
        let Some(c) = self.conn.as_mut() else {
            return;
        };
        let r: redis::RedisResult<i64> =
            redis::cmd("PUBLISH").arg(&self.channel).arg(line).query(c);
        match r {
            Ok(_) => self.published += 1,
            Err(e) => {
                tracing::warn!("redis channel {}: {e}", self.channel);
                self.conn = None;
                self.failed_at = Some(Instant::now());
                self.dropped += 1;
            }
        }
    }
}

struct D4Out {
    tx: Option<SyncSender<Vec<u8>>>,
    sender: Option<JoinHandle<Result<d4_client::RunStats>>>,
    sent: u64,
    dropped: u64,
}

/// The lines as a byte stream for the sensor's send loop.
struct Lines {
    rx: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for Lines {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(v) => (self.cur, self.pos) = (v, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl D4Out {
    fn start(conf: &Path, shutdown: Shutdown) -> Result<D4Out> {
        let mut cfg = if conf.is_dir() {
            d4_client::ClientConfig::from_dir(conf)
        } else {
            d4_client::ClientConfig::from_toml(conf)
        }
        .with_context(|| format!("the D4 output's sensor configuration {}", conf.display()))?;
        cfg.ty = 254;
        cfg.meta_header = Some(format!("{{\"type\":\"{D4_TYPE}\"}}").into_bytes());
        let (tx, rx) = sync_channel(4096);
        let sender = std::thread::Builder::new()
            .name("d4-dns-d4out".into())
            .spawn(move || {
                let lines = Lines {
                    rx,
                    cur: Vec::new(),
                    pos: 0,
                };
                d4_client::run_until(&cfg, lines, &|| shutdown.is_triggered())
            })
            .context("starting the D4 output")?;
        Ok(D4Out {
            tx: Some(tx),
            sender: Some(sender),
            sent: 0,
            dropped: 0,
        })
    }

    fn send(&mut self, line: &str) -> Result<()> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        let mut v = Vec::with_capacity(line.len() + 1);
        v.extend_from_slice(line.as_bytes());
        v.push(b'\n');
        match tx.try_send(v) {
            Ok(()) => self.sent += 1,
            Err(TrySendError::Full(_)) => {
                if self.dropped == 0 {
                    tracing::warn!("d4 output: the server is not keeping up; lines are dropped");
                }
                self.dropped += 1;
            }
            Err(TrySendError::Disconnected(_)) => {
                // The send loop ended: its error.
                self.tx = None;
                return self.finish();
            }
        }
        Ok(())
    }

    /// Ends the session: the server confirms it stored every line.
    fn finish(&mut self) -> Result<()> {
        self.tx = None;
        match self.sender.take().map(JoinHandle::join) {
            Some(Ok(r)) => r.map(|_| ()).context("d4 output"),
            Some(Err(_)) => bail!("d4 output: the sender failed"),
            None => Ok(()),
        }
    }
}

impl Out {
    fn open(t: &Target, shutdown: &Shutdown) -> Result<Out> {
        Ok(match t {
            Target::Stdout => Out::Stdout(BufWriter::new(io::stdout())),
            Target::File(p) => Out::File(BufWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("cannot open {} to append to it", p.display()))?,
            )),
            Target::Redis { url, channel } => Out::Redis(Box::new(RedisOut {
                client: redis::Client::open(url.as_str())
                    .with_context(|| format!("{url} is not a Redis URL"))?,
                conn: None,
                channel: channel.clone(),
                failed_at: None,
                published: 0,
                dropped: 0,
            })),
            Target::D4(p) => Out::D4(D4Out::start(p, shutdown.clone())?),
        })
    }

    fn send(&mut self, line: &str) -> Result<()> {
        match self {
            Out::Stdout(w) => writeln!(w, "{line}")?,
            Out::File(w) => writeln!(w, "{line}")?,
            Out::Redis(r) => r.send(line),
            Out::D4(d) => d.send(line)?,
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        match self {
            Out::Stdout(w) => w.flush()?,
            Out::File(w) => w.flush()?,
            Out::Redis(_) | Out::D4(_) => {}
        }
        Ok(())
    }
}

/// The outputs and which reducer goes where.
pub struct Router {
    server_id: String,
    outs: Vec<(Target, Out)>,
    /// Per reducer ([`Kind::ALL`] order), the outputs it goes to.
    routes: Vec<(Kind, Vec<usize>)>,
    line: Vec<u8>,
    /// Lines written (to any output).
    pub lines: u64,
}

impl Router {
    /// Opens `targets`; `routes` gives for each reducer the indices of its
    /// targets.
    pub fn open(
        server_id: &str,
        targets: &[Target],
        routes: Vec<(Kind, Vec<usize>)>,
        shutdown: &Shutdown,
    ) -> Result<Router> {
        let mut outs = Vec::new();
        for t in targets {
            outs.push((t.clone(), Out::open(t, shutdown)?));
        }
        Ok(Router {
            server_id: server_id.to_string(),
            outs,
            routes,
            line: Vec::new(),
            lines: 0,
        })
    }

    /// The envelope of one reducer's data (JSON text).
    pub fn envelope(server_id: &str, kind: Kind, data: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":");
        json_str(out, kind.name());
        out.extend_from_slice(b",\"serverId\":");
        json_str(out, server_id);
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data);
        out.push(b'}');
    }

    /// Sends one window's lines.
    pub fn window(&mut self, data: &[(Kind, Vec<u8>)]) -> Result<()> {
        for (k, v) in data {
            let Some((_, to)) = self.routes.iter().find(|(r, _)| r == k) else {
                continue;
            };
            if to.is_empty() {
                continue;
            }
            self.line.clear();
            Router::envelope(&self.server_id, *k, v, &mut self.line);
            let line = std::str::from_utf8(&self.line).unwrap_or_default();
            for &i in to {
                if let Some((_, o)) = self.outs.get_mut(i) {
                    o.send(line)?;
                    self.lines += 1;
                }
            }
        }
        self.flush()
    }

    /// Flushes the streams.
    pub fn flush(&mut self) -> Result<()> {
        for (_, o) in &mut self.outs {
            o.flush()?;
        }
        Ok(())
    }

    /// Closes every output (a D4 session waits for the server's
    /// confirmation); the `-s` text of the outputs that count something.
    pub fn finish(mut self) -> Result<String> {
        self.flush()?;
        let mut notes = Vec::new();
        let mut first_err = None;
        for (t, o) in &mut self.outs {
            match o {
                Out::Redis(r) => notes.push(format!(
                    "{t}: {} published, {} dropped",
                    r.published, r.dropped
                )),
                Out::D4(d) => {
                    let r = d.finish();
                    notes.push(format!("{t}: {} lines sent, {} dropped", d.sent, d.dropped));
                    if let Err(e) = r {
                        first_err.get_or_insert(e);
                    }
                }
                _ => {}
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(notes.join("; "))
    }
}
