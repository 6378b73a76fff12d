//! The send loop: a stream in, D4 frames out, across dropped connections.
//!
//! [`run`] reads up to 256 KiB at a time (stdin unbuffered) and cuts it into
//! frames of at most `snaplen` bytes: for a regular file these are exactly
//! the reference C client's frames (with `--timestamp` and `--end-frame` the
//! output is byte-identical to its vectors). Frames accumulate in a buffer
//! flushed at 256 KiB or whenever the input has no more data ready; after a
//! flush the sensor checks that the server has not closed the connection.
//!
//! A reader thread feeds the send loop, so that after `--keepalive` seconds
//! (10) without input the sensor sends an empty frame: a quiet source keeps
//! its connection (the server closes sessions with no frame for 30 s).
//!
//! D4 has no acknowledgement, so the sensor keeps a replay window: the last
//! flushed batches (small ones merged), up to 4 MiB (`--replay-window`) — and
//! while a connection is unproven (younger than 5 s, or after failures: the
//! server may be refusing it) up to 8 times that. On a failed write or a
//! closed connection it waits (capped exponential backoff, 250 ms doubling to
//! 30 s, ±20 % jitter, reset after 5 s of healthy connection; `--max-retries`
//! bounds the attempts), reconnects, sends the meta-header again (types
//! 2/254), then the bytes that restart the stream on a record boundary as of
//! the start of the window ([`d4_packet::records::Resumption`]: for pcap the
//! global header and the start of the cut record, for pcapng the section
//! header and interface blocks and the start of the cut block, for IPFIX the
//! cut message, for line types the start of the cut line; type 4 is followed
//! as pcap or text from its first bytes), then the window, then what was not
//! flushed. What the old connection had delivered may arrive twice, at most
//! the window; bytes beyond the window that were still in kernel buffers
//! when a connection broke can be lost (the window is sized above the usual
//! socket buffers). At the end the sensor sends close_notify and waits for
//! the server's: without it (a refused sensor) it retries as above, and fails
//! with a clear message after `--max-retries` retries in a row (0: none;
//! default: for ever). Only that confirmation is success: a write that fails
//! because the server hung up (EPIPE) is a lost connection, reported as a
//! reset, never mistaken for a closed output.
//!
//! With a spool (`--spool DIR`, [`crate::spool`]) every payload is also
//! appended to disk before it is sent, and the spool is cleared once the
//! server confirmed the end of the stream; a run that ends otherwise
//! (killed, stopped, given up) leaves it, and the next run sends it first,
//! in a session of its own restarting on a record boundary, before its own
//! input (a spool the server would refuse as a bad stream is set aside in
//! `rejected-<time>/` instead). The window above still serves
//! reconnections within a run; the spool serves restarts: duplicates
//! after one are at most what it held.
//! While away from the server, backoff waits read a quiet input (the reader
//! thread's) on into the spool; that backlog, the spool's tail, is sent in
//! order before newer input once a connection is back. If the full spool
//! dropped the start of the backlog, the window and the unsent batch (older
//! still) are given up and the stream goes on in a new session from the
//! spool's start, on a record boundary. A spool that cannot be written (a
//! full disk) keeps what it holds but takes no more this run: the chunk it
//! refused is held in memory and sent after the backlog, and backoff waits
//! no longer read the input (back-pressure, as without a spool). Input
//! read that reaches neither the server nor the spool (a spool that cannot
//! be read back) makes the run fail even if the rest is confirmed.
//!
//! [`run_until`] takes a stop check (`d4 client` on SIGTERM): once it is
//! true no more input is read, no connection is attempted and a backoff
//! wait ends at once; what was read goes out on a connection that is up and
//! the confirmation is awaited for at most 10 s. The run fails ("stopped on
//! request before the server confirmed the stream") unless it came.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use d4_packet::records::{Format, Resumption};
use d4_proto::{FrameEncoder, Signer};

use crate::config::{ClientConfig, Destination};
use crate::spool::Spool;
use crate::transport::{stdout_sink, Backoff, Connector, Sink};

mod send;
#[cfg(test)]
mod tests;

use send::{replay, send};

/// Bytes read from the input at a time (then cut into snaplen frames).
const READ_SIZE: usize = 256 * 1024;
/// Flush once this many frame bytes are waiting.
const FLUSH_AT: usize = 256 * 1024;
/// A connection up this long is healthy: the failure count and backoff reset.
const HEALTHY: Duration = Duration::from_secs(5);
/// How long the server may take to confirm the end of a stream (longer than
/// its stall timeout).
const CONFIRM_WAIT: Duration = Duration::from_secs(150);
/// The same once asked to stop: what the server has not confirmed by then
/// is reported as such.
const STOP_CONFIRM_WAIT: Duration = Duration::from_secs(10);
/// How often waits (backoff, a quiet input) look at the stop check.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Frames sent (meta-header and resumption frames included).
    pub frames: u64,
    /// Payload bytes read from the source.
    pub bytes: u64,
    /// Connections re-established after a drop.
    pub reconnects: u64,
    /// Bytes of an earlier run's spool sent (and confirmed) first.
    pub spool_replayed: u64,
    /// Bytes dropped from the spool, oldest first, to keep its bound.
    pub spool_dropped: u64,
}

/// Remembers where the last whole record ends in what the server already
/// has, so that a new connection can restart the stream on a record
/// boundary: pcap needs its global header again, pcapng its section and
/// interface blocks, text its partial line, IPFIX its partial message. The
/// record structure is [`d4_packet::records`]'s (the server cuts its files
/// with the same tracker); a record cut over `MAX_HELD_RECORD` bytes (a
/// long line) is not re-sent.
struct Resume(Resumption);

impl Resume {
    fn for_type(ty: u8, to_server: bool) -> Resume {
        Resume(Resumption::new(
            to_server.then(|| Format::for_d4_type(ty)).flatten(),
        ))
    }

    /// Records that `data` reached the server.
    fn sent(&mut self, data: &[u8]) {
        if let Err(e) = self.0.sent(data) {
            tracing::warn!(
                "cannot follow the record structure of the input ({e}): the server will refuse it, or a reconnection may start mid-record"
            );
        }
    }

    /// The bytes to send first on a new connection.
    fn prefix(&self) -> Vec<u8> {
        self.0.prefix()
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
    /// The caller's stop check (SIGTERM): no new connection, no more input.
    stop: &'a dyn Fn() -> bool,
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
    /// Buffers of batches that left the window, for the next ones.
    spare: Vec<Batch>,
    /// Record boundaries as of the start of `window`.
    resume: Resume,
    /// Delay before the next connection attempt.
    backoff: Backoff,
    /// Connection failures in a row.
    failures: u32,
    /// What the server has not confirmed, on disk (`--spool`).
    spool: Option<Spool>,
    /// The reader thread's output (input that can be quiet): with a spool,
    /// backoff waits read it on into the spool.
    input: Option<Input>,
    /// Bytes at the end of the spool read while away from the server, not
    /// yet framed: sent, in order, before any newer input.
    backlog: u64,
    /// A read error met during a backoff wait, for the send loop.
    input_error: Option<io::Error>,
    /// The spool could not be written (a full disk): it keeps what it
    /// holds, takes no more this run, and input is no longer read while
    /// the server is away (back-pressure, as without a spool).
    spool_broken: bool,
    /// A chunk read while away that the spool could not take: sent after
    /// the backlog.
    held: Option<(Vec<u8>, usize)>,
    /// Bytes read that reached neither the server nor the spool (the
    /// spool could not be read back): the run fails.
    lost: u64,
    /// Whether the capture sent holds the sensor's own upload (type 1).
    echo: crate::echo::EchoCheck,
    stats: RunStats,
}

/// Chunks of input from the reader thread, and the way back for their buffers.
struct Input {
    rx: std::sync::mpsc::Receiver<io::Result<(Vec<u8>, usize)>>,
    free: std::sync::mpsc::Sender<Vec<u8>>,
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
    fn new(
        cfg: &'a ClientConfig,
        stop: &'a dyn Fn() -> bool,
        spool: Option<Spool>,
    ) -> Result<Stream<'a>> {
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
            stop,
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
            spare: Vec::new(),
            resume: Resume::for_type(cfg.ty, to_server),
            backoff: Backoff::new(Duration::from_secs(cfg.max_backoff_secs.max(1))),
            failures: 0,
            spool,
            input: None,
            backlog: 0,
            input_error: None,
            spool_broken: false,
            held: None,
            lost: 0,
            echo: crate::echo::EchoCheck::new(to_server && cfg.ty == 1),
            stats: RunStats::default(),
        })
    }

    /// A spool that cannot be written (a full disk) keeps what it holds
    /// (the stream up to there, for the next run if this one is not
    /// confirmed) but takes no more this run: a gap would corrupt it. Input
    /// is then no longer read while the server is away.
    fn spool_failed(&mut self, e: anyhow::Error) {
        if self.spool_broken {
            return;
        }
        self.spool_broken = true;
        if let Some(sp) = &self.spool {
            tracing::warn!(
                "{e:#}: spool {} keeps its {} bytes but takes no more this run; while the server is away the input waits",
                sp.dir().display(),
                sp.bytes()
            );
        }
    }

    /// Appends one frame to the output buffer (its payload to the spool).
    fn push(&mut self, payload: &[u8]) {
        self.echo.feed(payload);
        if !payload.is_empty() && !self.spool_broken {
            if let Some(Err(e)) = self.spool.as_mut().map(|sp| sp.append(payload)) {
                self.spool_failed(e);
            }
        }
        self.push_frame(payload);
    }

    /// Sends, in order, what was read into the spool while away from the
    /// server. If the full spool dropped the oldest of it, the stream goes
    /// on from the spool's start, on a record boundary, in a new session.
    fn drain_backlog(&mut self) -> Result<()> {
        let mut buf = Vec::new();
        while self.backlog > 0 && !(self.stop)() {
            self.check_gap();
            let Some(sp) = self.spool.as_mut() else {
                self.backlog = 0;
                break;
            };
            let want = self.backlog.min(FLUSH_AT as u64) as usize;
            buf.resize(want, 0);
            let r = sp
                .tail_reader(self.backlog)
                .and_then(|mut r| r.read_exact(&mut buf).map_err(anyhow::Error::from));
            if let Err(e) = r {
                self.lost += self.backlog;
                self.backlog = 0;
                self.spool_failed(e.context("cannot read back the spool"));
                break;
            }
            self.backlog -= want as u64;
            for piece in buf.chunks(self.cfg.snaplen) {
                self.push_frame(piece);
            }
            self.flush()?;
        }
        // Then what the spool could not take, read after the backlog.
        if self.backlog == 0 && !(self.stop)() {
            if let Some((buf, n)) = self.held.take() {
                for piece in buf[..n].chunks(self.cfg.snaplen) {
                    self.push_frame(piece);
                }
                if let Some(input) = &self.input {
                    let _ = input.free.send(buf);
                }
                self.flush()?;
            }
        }
        Ok(())
    }

    /// If the full spool dropped the start of the backlog, what is older
    /// (the window, the unsent batch) is gone from it too: the stream goes
    /// on from the spool's start, on a record boundary, in a new session.
    fn check_gap(&mut self) {
        let Some(sp) = self.spool.as_ref() else {
            return;
        };
        let held = sp.bytes();
        if self.backlog <= held {
            return;
        }
        tracing::warn!(
            "{} bytes read while the server was away were dropped from the full spool {}",
            self.backlog - held,
            sp.dir().display()
        );
        self.backlog = held;
        self.resume = Resume(sp.start().clone());
        self.window.clear();
        self.window_bytes = 0;
        self.unflushed.frames.clear();
        self.unflushed.payloads.clear();
        self.sink = None;
    }

    /// Appends one frame to the output buffer.
    fn push_frame(&mut self, payload: &[u8]) {
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

    /// Counts a failure; waits the backoff delay, or gives up after
    /// `max_retries` retries in a row, or at once when asked to stop.
    fn failed(&mut self, e: anyhow::Error) -> Result<()> {
        self.failures += 1;
        if (self.stop)() {
            return Err(self.stopped(e));
        }
        if let Some(max) = self.cfg.max_retries {
            if self.failures > max {
                let n = self.failures;
                return Err(e.context(format!(
                    "giving up after {n} attempt{} (max retries: {max}); the server did not confirm the stream",
                    if n == 1 { "" } else { "s" }
                )));
            }
        }
        let d = self.backoff.delay();
        tracing::warn!("{e:#}; retrying in {:.1} s", d.as_secs_f64());
        if self.pause(d) {
            return Err(self.stopped(e));
        }
        Ok(())
    }

    /// Sleeps `d`; true (early) if asked to stop meanwhile. With a spool
    /// and an input that can be quiet, reads on into the spool meanwhile.
    fn pause(&mut self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if (self.stop)() {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            let wait = (end - now).min(STOP_CHECK);
            let (Some(input), Some(sp)) = (&self.input, self.spool.as_mut()) else {
                std::thread::sleep(wait);
                continue;
            };
            if self.input_error.is_some() || self.spool_broken || self.held.is_some() {
                std::thread::sleep(wait);
                continue;
            }
            match input.rx.recv_timeout(wait) {
                Ok(Ok((buf, n))) => {
                    // On disk at once: nothing else holds it.
                    let r = sp.append(&buf[..n]).and_then(|()| sp.flush());
                    self.stats.bytes += n as u64;
                    match r {
                        Ok(()) => {
                            let _ = input.free.send(buf);
                            self.backlog += n as u64;
                            self.check_gap();
                        }
                        Err(e) => {
                            // Kept in memory, sent after the backlog; no
                            // more input is read while away.
                            self.held = Some((buf, n));
                            self.spool_failed(e);
                        }
                    }
                }
                Ok(Err(e)) => self.input_error = Some(e),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// The error of a run stopped before the server confirmed the stream.
    fn stopped(&self, last: anyhow::Error) -> anyhow::Error {
        let kept = match &self.spool {
            Some(sp) => format!(
                "; the spool {} keeps {} bytes for the next run",
                sp.dir().display(),
                sp.bytes()
            ),
            None => String::new(),
        };
        last.context(format!(
            "stopped on request before the server confirmed the stream ({} bytes of input read, not confirmed{kept})",
            self.stats.bytes
        ))
    }

    fn connect(&mut self) -> Result<()> {
        loop {
            if (self.stop)() {
                return Err(self.stopped(anyhow::anyhow!("no connection to the server")));
            }
            let Some(connector) = &self.connector else {
                unreachable!("stdout never reconnects")
            };
            match connector.connect() {
                Ok(s) => {
                    self.echo.server(s.peer());
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
        // On disk (for the next run) before it goes out.
        if !self.spool_broken {
            if let Some(Err(e)) = self.spool.as_mut().map(|sp| sp.flush()) {
                self.spool_failed(e);
            }
        }
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
                    if self.connected_at.elapsed() >= HEALTHY {
                        // A connection that worked for a while: a new incident.
                        self.failures = 0;
                        self.backoff.reset();
                    }
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
        // Keep what was just written for replay; let the oldest batches go
        // (their buffers are reused: no fresh memory per flush).
        let fresh = self.spare.pop().unwrap_or_else(|| Batch {
            frames: Vec::with_capacity(FLUSH_AT + 128 * 1024),
            payloads: Vec::new(),
        });
        let done = std::mem::replace(&mut self.unflushed, fresh);
        self.window_bytes += done.frames.len();
        match self.window.back_mut() {
            // Small batches (a slow source) are merged, not kept one per flush.
            Some(last) if last.frames.len() + done.frames.len() <= FLUSH_AT => {
                let base = last.frames.len();
                last.frames.extend_from_slice(&done.frames);
                last.payloads
                    .extend(done.payloads.iter().map(|&(a, b)| (a + base, b + base)));
            }
            _ => self.window.push_back(done),
        }
        // While a connection is unproven (young, or after failures) the server
        // may be refusing it: keep what it may not have stored, up to a hard cap.
        let proven = self.failures == 0 && self.connected_at.elapsed() >= HEALTHY;
        let limit = if proven {
            self.cfg.replay_window
        } else {
            self.cfg.replay_window.saturating_mul(8)
        };
        while self.window.len() > 1 && self.window_bytes > limit {
            if let Some(mut old) = self.window.pop_front() {
                self.window_bytes -= old.frames.len();
                for &(a, b) in &old.payloads {
                    self.resume.sent(&old.frames[a..b]);
                }
                if self.spare.len() < 2 && old.frames.capacity() >= FLUSH_AT {
                    old.frames.clear();
                    old.payloads.clear();
                    self.spare.push(old);
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
            let wait = if (self.stop)() {
                STOP_CONFIRM_WAIT
            } else {
                CONFIRM_WAIT
            };
            match sink.close(self.cfg.confirm, wait) {
                Ok(()) if self.backlog > 0 || self.held.is_some() => {
                    // Stopped while input read during an outage waits in
                    // the spool (or in memory): the spool keeps it for the
                    // next run.
                    return Err(self.stopped(anyhow::anyhow!(
                        "{} bytes read while the server was away are not sent",
                        self.backlog + self.held.as_ref().map_or(0, |h| h.1 as u64)
                    )));
                }
                Ok(()) => {
                    // Everything is confirmed: nothing to keep.
                    if let Some(sp) = self.spool.as_mut() {
                        self.stats.spool_dropped += sp.dropped();
                        if let Err(e) = sp.clear(self.cfg.ty) {
                            tracing::warn!("{e:#}: the next run will send the spool again");
                        }
                    }
                    if self.lost > 0 {
                        bail!(
                            "{} bytes read while the server was away were lost (the spool could not be read back); the rest was confirmed",
                            self.lost
                        );
                    }
                    return Ok(());
                }
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
pub fn run(cfg: &ClientConfig, input: impl Read + Send + 'static) -> Result<RunStats> {
    run_until(cfg, input, &|| false)
}

/// [`run`], stopping early when `stop` returns true (the caller's SIGTERM):
/// no more input is read, no new connection is made and backoff waits end;
/// what was read is sent on a connection that is up, and the server's
/// confirmation is awaited for at most 10 s. Returns an error unless the
/// server confirmed everything that was read.
pub fn run_until(
    cfg: &ClientConfig,
    input: impl Read + Send + 'static,
    stop: &dyn Fn() -> bool,
) -> Result<RunStats> {
    if cfg.snaplen == 0 || cfg.snaplen > d4_proto::MAX_SNAPLEN {
        bail!(
            "snaplen {} is outside 1..={}",
            cfg.snaplen,
            d4_proto::MAX_SNAPLEN
        );
    }
    let spool = match (&cfg.spool_dir, &cfg.destination) {
        (Some(d), Destination::Server(_)) => Some(Spool::open(d, cfg.spool_max_bytes, cfg.ty)?),
        _ => None,
    };
    let mut replayed = 0;
    let spool = match spool {
        Some(mut sp) if !sp.is_empty() => {
            if let Some(why) = sp.verify()? {
                // A stream the server's record tracker cannot follow (a
                // damaged spool): the server would refuse it, for ever.
                sp.set_aside(cfg.ty, &why)?;
            } else {
                replayed = replay(cfg, &mut sp, stop)?;
            }
            Some(sp)
        }
        sp => sp,
    };
    let mut stats = send(cfg, input, stop, spool)?;
    stats.spool_replayed = replayed;
    Ok(stats)
}
