//! The send loop.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use d4_packet::PcapSplitter;
use d4_proto::{FrameEncoder, Signer};

use crate::config::{ClientConfig, Destination};
use crate::transport::{stdout_sink, Backoff, Connector, Sink};

/// Bytes read from the input at a time (then cut into snaplen frames).
const READ_SIZE: usize = 256 * 1024;
/// Flush once this many frame bytes are waiting.
const FLUSH_AT: usize = 256 * 1024;
/// A connection up this long is healthy: the failure count and backoff reset.
const HEALTHY: Duration = Duration::from_secs(5);
/// Longest partial line kept for re-sending after a reconnection.
const MAX_RESUME_LINE: usize = 1024 * 1024;

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Frames sent (meta-header and resumption frames included).
    pub frames: u64,
    /// Payload bytes read from the source.
    pub bytes: u64,
    /// Connections re-established after a drop.
    pub reconnects: u64,
}

/// Remembers where the last whole record ends in what the server already has,
/// so that a new connection can restart the stream on a record boundary:
/// pcap needs its global header again, text its partial line.
enum Resume {
    /// Nothing to restore (stdout, or a type with no known framing).
    Nothing,
    /// A pcap stream (type 1).
    Pcap(PcapSplitter),
    /// A line-oriented stream: the bytes after the last newline.
    Lines(Vec<u8>),
}

impl Resume {
    fn for_type(ty: u8, to_server: bool) -> Resume {
        match (to_server, ty) {
            (false, _) => Resume::Nothing,
            (true, 1) => Resume::Pcap(PcapSplitter::new()),
            (true, 2 | 3 | 4 | 6 | 8 | 254) => Resume::Lines(Vec::new()),
            _ => Resume::Nothing,
        }
    }

    /// Records that `data` reached the server.
    fn sent(&mut self, data: &[u8]) {
        match self {
            Resume::Nothing => {}
            Resume::Pcap(s) => {
                if let Err(e) = s.push(data) {
                    tracing::warn!(
                        "input is not a valid pcap stream ({e}); the server will refuse it"
                    );
                    *self = Resume::Nothing;
                }
            }
            Resume::Lines(partial) => match data.iter().rposition(|&b| b == b'\n') {
                Some(i) => {
                    partial.clear();
                    partial.extend_from_slice(&data[i + 1..]);
                }
                None if partial.len() + data.len() <= MAX_RESUME_LINE => {
                    partial.extend_from_slice(data)
                }
                None => partial.clear(),
            },
        }
    }

    /// The bytes to send first on a new connection.
    fn prefix(&self) -> Vec<u8> {
        match self {
            Resume::Nothing => Vec::new(),
            Resume::Pcap(s) => {
                let mut v = s.header().map(|h| h.raw.to_vec()).unwrap_or_default();
                v.extend_from_slice(s.pending_bytes());
                v
            }
            Resume::Lines(p) => p.clone(),
        }
    }
}

/// Encoded frames and where their payloads are.
#[derive(Default)]
struct Batch {
    /// Whole frames, back to back.
    frames: Vec<u8>,
    /// Payload ranges inside `frames`.
    payloads: Vec<(usize, usize)>,
}

/// The frames of one stream, with what is needed to replay them.
struct Stream<'a> {
    cfg: &'a ClientConfig,
    /// Data frames (type 254 for extended types).
    data: FrameEncoder,
    /// Meta-header frames (type 2), for extended types.
    meta: Option<FrameEncoder>,
    /// `None` for stdout; otherwise the server connector.
    connector: Option<Connector>,
    sink: Option<Sink>,
    /// When the current connection was opened.
    connected_at: Instant,
    /// Frames not yet written.
    unflushed: Batch,
    /// Frames written on the current connection that the server may not have
    /// read yet (the protocol has no acknowledgement): sent again after a
    /// reconnection. At most `REPLAY_WINDOW` bytes (the newest batch always).
    window: VecDeque<Batch>,
    window_bytes: usize,
    /// Record boundaries as of the start of `window`.
    resume: Resume,
    /// Delay before the next connection attempt.
    backoff: Backoff,
    /// Connection failures in a row.
    failures: u32,
    stats: RunStats,
}

fn now(cfg: &ClientConfig) -> u64 {
    cfg.fixed_timestamp.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

impl<'a> Stream<'a> {
    fn new(cfg: &'a ClientConfig) -> Result<Stream<'a>> {
        let signer = Signer::new(&cfg.key);
        let extended = matches!(cfg.ty, 2 | 254);
        let data_ty = if extended { 254 } else { cfg.ty };
        let base = FrameEncoder::new(signer, cfg.version, data_ty, cfg.uuid);
        let meta = extended.then(|| base.with_type(2));
        let connector = match &cfg.destination {
            Destination::Stdout => None,
            Destination::Server(addr) => Some(Connector::new(
                addr,
                cfg.root_ca.as_deref(),
                cfg.insecure,
                cfg.tls_name.as_deref(),
            )?),
        };
        let to_server = connector.is_some();
        Ok(Stream {
            cfg,
            data: base,
            meta,
            sink: if to_server {
                None
            } else {
                Some(stdout_sink().context("cannot use standard output")?)
            },
            connector,
            connected_at: Instant::now(),
            unflushed: Batch {
                frames: Vec::with_capacity(FLUSH_AT + 128 * 1024),
                payloads: Vec::new(),
            },
            window: VecDeque::new(),
            window_bytes: 0,
            resume: Resume::for_type(cfg.ty, to_server),
            backoff: Backoff::new(Duration::from_secs(cfg.max_backoff_secs.max(1))),
            failures: 0,
            stats: RunStats::default(),
        })
    }

    /// Appends one frame to the output buffer.
    fn push(&mut self, payload: &[u8]) {
        let h = self.data.header(now(self.cfg), payload);
        let b = &mut self.unflushed;
        b.frames.extend_from_slice(&h);
        let start = b.frames.len();
        b.frames.extend_from_slice(payload);
        b.payloads.push((start, b.frames.len()));
        self.stats.frames += 1;
    }

    /// Frames that open every connection: the meta-header (types 2/254), the
    /// bytes needed to restart on a record boundary, then the replay window.
    fn opening_frames(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let ts = now(self.cfg);
        if let (Some(enc), Some(m)) = (&self.meta, &self.cfg.meta_header) {
            for chunk in m.chunks(self.cfg.snaplen) {
                enc.encode_into(ts, chunk, &mut out);
                self.stats.frames += 1;
            }
        }
        for chunk in self.resume.prefix().chunks(self.cfg.snaplen) {
            self.data.encode_into(ts, chunk, &mut out);
            self.stats.frames += 1;
        }
        for b in &self.window {
            out.extend_from_slice(&b.frames);
        }
        out
    }

    /// Counts a failure; waits the backoff delay, or gives up after `max_retries`.
    fn failed(&mut self, e: anyhow::Error) -> Result<()> {
        self.failures += 1;
        if self.cfg.max_retries > 0 && self.failures >= self.cfg.max_retries {
            return Err(e.context(format!("giving up after {} attempts", self.failures)));
        }
        let d = self.backoff.delay();
        tracing::warn!("{e:#}; retrying in {:.1} s", d.as_secs_f64());
        std::thread::sleep(d);
        Ok(())
    }

    fn connect(&mut self) -> Result<()> {
        loop {
            let Some(connector) = &self.connector else {
                unreachable!("stdout never reconnects")
            };
            match connector.connect() {
                Ok(s) => {
                    self.sink = Some(s);
                    self.connected_at = Instant::now();
                    return Ok(());
                }
                Err(e) => self.failed(e)?,
            }
        }
    }

    /// Sends what is buffered. On a server, a failed write or a server that
    /// hung up leads to reconnection (with backoff) and re-sending of the
    /// replay window and everything not yet flushed, after the opening frames.
    fn flush(&mut self) -> Result<()> {
        loop {
            let fresh = self.sink.is_none();
            if fresh {
                self.connect()?;
            }
            let opening = if fresh {
                self.opening_frames()
            } else {
                Vec::new()
            };
            let Some(sink) = self.sink.as_mut() else {
                continue;
            };
            let r = sink
                .write_all(&opening)
                .and_then(|_| sink.write_all(&self.unflushed.frames))
                .and_then(|_| sink.flush());
            match r {
                Ok(()) => break,
                Err(e) if self.connector.is_none() => {
                    return Err(e).context("cannot write to stdout");
                }
                Err(e) => {
                    self.sink = None;
                    self.stats.reconnects += 1;
                    self.failed(anyhow::Error::new(e).context("connection lost"))?;
                }
            }
        }
        if self.connected_at.elapsed() >= HEALTHY {
            self.failures = 0;
            self.backoff.reset();
        }
        if self.connector.is_none() {
            self.unflushed.frames.clear();
            self.unflushed.payloads.clear();
            return Ok(());
        }
        // Keep what was just written for replay; let the oldest batches go.
        let fresh = Batch {
            frames: Vec::with_capacity(self.unflushed.frames.capacity()),
            payloads: Vec::new(),
        };
        let done = std::mem::replace(&mut self.unflushed, fresh);
        self.window_bytes += done.frames.len();
        self.window.push_back(done);
        while self.window.len() > 1 && self.window_bytes > self.cfg.replay_window {
            if let Some(old) = self.window.pop_front() {
                self.window_bytes -= old.frames.len();
                for &(a, b) in &old.payloads {
                    self.resume.sent(&old.frames[a..b]);
                }
            }
        }
        Ok(())
    }

    /// Ends the stream: the server must confirm (TLS close_notify after it
    /// has stored everything); otherwise reconnect and send the window again.
    fn finish(&mut self) -> Result<()> {
        loop {
            self.flush()?;
            let Some(sink) = self.sink.take() else {
                return Ok(());
            };
            match sink.close(self.cfg.confirm) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.stats.reconnects += 1;
                    self.failed(anyhow::Error::new(e).context(
                        "the server did not confirm the end of the stream (sensor refused? see `d4 sensor list` on the server)",
                    ))?;
                }
            }
        }
    }
}

/// Reads `input` to its end and sends it as D4 frames to the configured destination.
pub fn run(cfg: &ClientConfig, mut input: impl Read) -> Result<RunStats> {
    if cfg.snaplen == 0 || cfg.snaplen > d4_proto::MAX_SNAPLEN {
        bail!(
            "snaplen {} is outside 1..={}",
            cfg.snaplen,
            d4_proto::MAX_SNAPLEN
        );
    }
    let mut s = Stream::new(cfg)?;
    if s.connector.is_some() {
        // Connect before reading, so a wrong address or CA fails fast.
        s.flush()?;
    } else if s.meta.is_some() {
        let opening = s.opening_frames();
        s.unflushed.frames.extend_from_slice(&opening);
    }
    // Large reads cut into snaplen frames: for a regular file this gives the
    // reference client's frames (each of its reads returns min(snaplen, rest))
    // at a fraction of the system calls; a pipe gives frames of what is there.
    let mut buf = vec![0u8; (READ_SIZE / cfg.snaplen).max(1) * cfg.snaplen];
    loop {
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("cannot read the input"),
        };
        if n == 0 {
            break;
        }
        s.stats.bytes += n as u64;
        for chunk in buf[..n].chunks(cfg.snaplen) {
            s.push(chunk);
        }
        if s.unflushed.frames.len() >= FLUSH_AT || n < buf.len() {
            s.flush()?;
        }
    }
    if cfg.end_frame {
        s.push(&[]);
    }
    s.finish()?;
    Ok(s.stats)
}
