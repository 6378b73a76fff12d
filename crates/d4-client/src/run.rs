//! The send loop.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use d4_packet::PcapScanner;
use d4_proto::{FrameEncoder, Signer};

use crate::config::{ClientConfig, Destination};
use crate::transport::{stdout_sink, Backoff, Connector, Sink};

/// Bytes read from the input at a time (then cut into snaplen frames).
const READ_SIZE: usize = 256 * 1024;
/// Flush once this many frame bytes are waiting.
const FLUSH_AT: usize = 256 * 1024;
/// A connection up this long is healthy: the failure count and backoff reset.
const HEALTHY: Duration = Duration::from_secs(5);
/// Longest partial record (line, block) kept for re-sending after a reconnection.
const MAX_RESUME_RECORD: usize = 16 * 1024 * 1024;

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

/// Remembers where the last whole record ends in what the server already
/// has, so that a new connection can restart the stream on a record
/// boundary: pcap needs its global header again, pcapng its section and
/// interface blocks, text its partial line, IPFIX its partial message.
enum Resume {
    /// Nothing to restore (stdout, YAF-less types, or a stream we could not follow).
    Nothing,
    /// Type 4 until its first bytes say pcap or text.
    Undecided(Vec<u8>),
    /// A pcap stream (type 1, or type 4 from `dnscap -w -`): record
    /// boundaries found without copying; only the cut record is kept.
    Pcap {
        scanner: PcapScanner,
        /// The bytes of the record not yet complete.
        partial: Vec<u8>,
    },
    /// A line-oriented stream: the bytes after the last newline.
    Lines(Vec<u8>),
    /// pcapng (type 5) or IPFIX (type 7): whole blocks or messages.
    Blocks(Blocks),
}

/// Block-structured streams: the bytes of the block being cut, and for
/// pcapng the blocks every new connection must start with.
struct Blocks {
    pcapng: bool,
    big_endian: bool,
    /// pcapng: the current section header and interface description blocks.
    preamble: Vec<u8>,
    /// The start of the block not yet complete.
    partial: Vec<u8>,
}

impl Blocks {
    /// Consumes whole blocks from `partial`; false if the stream cannot be followed.
    fn advance(&mut self) -> bool {
        loop {
            let (need, len) = if self.pcapng {
                let Some(h) = self.partial.get(..12) else {
                    return true;
                };
                if h[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
                    self.big_endian = match h[8..12] {
                        [0x1a, 0x2b, 0x3c, 0x4d] => true,
                        [0x4d, 0x3c, 0x2b, 0x1a] => false,
                        _ => return false,
                    };
                }
                let l = [h[4], h[5], h[6], h[7]];
                let len = if self.big_endian {
                    u32::from_be_bytes(l)
                } else {
                    u32::from_le_bytes(l)
                } as usize;
                (12, len)
            } else {
                let Some(h) = self.partial.get(..4) else {
                    return true;
                };
                (16, u16::from_be_bytes([h[2], h[3]]) as usize)
            };
            if len < need || len > MAX_RESUME_RECORD {
                return false;
            }
            if self.partial.len() < len {
                return true;
            }
            let block: Vec<u8> = self.partial.drain(..len).collect();
            if self.pcapng {
                match &block[..4] {
                    [0x0a, 0x0d, 0x0d, 0x0a] => self.preamble = block,
                    _ if self.block_type(&block) == 1 => self.preamble.extend_from_slice(&block),
                    _ => {}
                }
            }
        }
    }

    fn block_type(&self, b: &[u8]) -> u32 {
        let t = [b[0], b[1], b[2], b[3]];
        if self.big_endian {
            u32::from_be_bytes(t)
        } else {
            u32::from_le_bytes(t)
        }
    }
}

impl Resume {
    fn pcap() -> Resume {
        Resume::Pcap {
            scanner: PcapScanner::new(),
            partial: Vec::new(),
        }
    }

    fn for_type(ty: u8, to_server: bool) -> Resume {
        match (to_server, ty) {
            (false, _) => Resume::Nothing,
            (true, 1) => Resume::pcap(),
            (true, 4) => Resume::Undecided(Vec::new()),
            (true, 5 | 7) => Resume::Blocks(Blocks {
                pcapng: ty == 5,
                big_endian: false,
                preamble: Vec::new(),
                partial: Vec::new(),
            }),
            (true, 2 | 3 | 6 | 8 | 254) => Resume::Lines(Vec::new()),
            _ => Resume::Nothing,
        }
    }

    /// Records that `data` reached the server.
    fn sent(&mut self, data: &[u8]) {
        match self {
            Resume::Nothing => {}
            Resume::Undecided(head) => {
                head.extend_from_slice(data);
                if head.len() >= 4 {
                    let head = std::mem::take(head);
                    let pcap = matches!(
                        head[..4],
                        [0xd4, 0xc3, 0xb2, 0xa1]
                            | [0xa1, 0xb2, 0xc3, 0xd4]
                            | [0x4d, 0x3c, 0xb2, 0xa1]
                            | [0xa1, 0xb2, 0x3c, 0x4d]
                    );
                    *self = if pcap {
                        Resume::pcap()
                    } else {
                        Resume::Lines(Vec::new())
                    };
                    self.sent(&head);
                }
            }
            Resume::Pcap { scanner, partial } => match scanner.feed(data) {
                Ok(scan) => match scan.last_boundary {
                    Some(b) => {
                        partial.clear();
                        partial.extend_from_slice(&data[b..]);
                    }
                    None => partial.extend_from_slice(&data[scan.records_start..]),
                },
                Err(e) => {
                    tracing::warn!(
                        "input is not a valid pcap stream ({e}); the server will refuse it"
                    );
                    *self = Resume::Nothing;
                }
            },
            Resume::Lines(partial) => match data.iter().rposition(|&b| b == b'\n') {
                Some(i) => {
                    partial.clear();
                    partial.extend_from_slice(&data[i + 1..]);
                }
                None if partial.len() + data.len() <= MAX_RESUME_RECORD => {
                    partial.extend_from_slice(data)
                }
                None => partial.clear(),
            },
            Resume::Blocks(b) => {
                b.partial.extend_from_slice(data);
                if !b.advance() {
                    tracing::warn!("cannot follow the record structure of the input; a reconnection may start mid-record");
                    *self = Resume::Nothing;
                }
            }
        }
    }

    /// The bytes to send first on a new connection.
    fn prefix(&self) -> Vec<u8> {
        match self {
            Resume::Nothing => Vec::new(),
            Resume::Undecided(head) => head.clone(),
            Resume::Pcap { scanner, partial } => {
                [scanner.header_bytes(), partial.as_slice()].concat()
            }
            Resume::Lines(p) => p.clone(),
            Resume::Blocks(b) => [b.preamble.as_slice(), b.partial.as_slice()].concat(),
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
    /// Buffers of batches that left the window, for the next ones.
    spare: Vec<Batch>,
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
            spare: Vec::new(),
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
pub fn run(cfg: &ClientConfig, mut input: impl Read + Send + 'static) -> Result<RunStats> {
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
    // A reader thread lets the sender send keepalives while the input is quiet.
    let read_size = (READ_SIZE / cfg.snaplen).max(1) * cfg.snaplen;
    if s.connector.is_none() || cfg.keepalive_secs == 0 {
        // No keepalive needed (stdout, or a file that is never quiet): read
        // inline, the data stays in this core's cache.
        let mut buf = vec![0u8; read_size];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("cannot read the input"),
            };
            s.stats.bytes += n as u64;
            for piece in buf[..n].chunks(cfg.snaplen) {
                s.push(piece);
            }
            if s.unflushed.frames.len() >= FLUSH_AT || n < read_size {
                s.flush()?;
            }
        }
    } else {
        send_with_keepalive(&mut s, cfg, input, read_size)?;
    }
    if cfg.end_frame {
        s.push(&[]);
    }
    s.finish()?;
    Ok(s.stats)
}

/// The send loop with a reader thread, so that an empty frame goes out after
/// `keepalive_secs` without input (a quiet pipe keeps its connection).
fn send_with_keepalive(
    s: &mut Stream<'_>,
    cfg: &ClientConfig,
    mut input: impl Read + Send + 'static,
    read_size: usize,
) -> Result<()> {
    // Buffers go back and forth between the reader and the sender (no
    // allocation per read).
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(4);
    let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..4 {
        let _ = free_tx.send(vec![0u8; read_size]);
    }
    std::thread::Builder::new()
        .name("d4-client-input".into())
        .spawn(move || {
            while let Ok(mut buf) = free_rx.recv() {
                loop {
                    match input.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if tx.send(Ok((buf, n))).is_err() {
                                return;
                            }
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            }
        })
        .context("starting the input reader")?;
    loop {
        let (buf, n) = match rx.recv_timeout(Duration::from_secs(cfg.keepalive_secs.max(1))) {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(e).context("cannot read the input"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                s.push(&[]);
                s.flush()?;
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        s.stats.bytes += n as u64;
        for piece in buf[..n].chunks(cfg.snaplen) {
            s.push(piece);
        }
        let _ = free_tx.send(buf);
        if s.unflushed.frames.len() >= FLUSH_AT || n < read_size {
            s.flush()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcapng_block(ty: u32, body: usize) -> Vec<u8> {
        let len = (12 + body) as u32;
        let mut b = ty.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        if ty == 0x0a0d_0d0a {
            b.extend_from_slice(&[0x4d, 0x3c, 0x2b, 0x1a]);
            b.resize(8 + body, 0);
        } else {
            b.resize(8 + body, 7);
        }
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    #[test]
    fn resume_restarts_pcapng_with_its_preamble_and_the_cut_block() {
        let shb = pcapng_block(0x0a0d_0d0a, 16);
        let idb = pcapng_block(1, 8);
        let epb = pcapng_block(6, 40);
        let stream = [shb.clone(), idb.clone(), epb.clone(), epb.clone()].concat();
        let mut r = Resume::for_type(5, true);
        let cut = stream.len() - 10;
        for c in stream[..cut].chunks(7) {
            r.sent(c);
        }
        let want = [shb, idb, epb[..epb.len() - 10].to_vec()].concat();
        assert_eq!(r.prefix(), want);
    }

    #[test]
    fn resume_ipfix_lines_and_type4() {
        let msg = |len: u16| {
            let mut m = vec![0, 10];
            m.extend_from_slice(&len.to_be_bytes());
            m.resize(len as usize, 1);
            m
        };
        let mut r = Resume::for_type(7, true);
        r.sent(&[msg(20), msg(30)[..12].to_vec()].concat());
        assert_eq!(r.prefix(), msg(30)[..12].to_vec());
        let mut r = Resume::for_type(3, true);
        r.sent(b"one\ntw");
        assert_eq!(r.prefix(), b"tw");
        let mut r = Resume::for_type(4, true);
        r.sent(&[0xd4, 0xc3]);
        assert_eq!(r.prefix(), vec![0xd4, 0xc3]);
        let mut hdr = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        hdr.resize(24, 0);
        r.sent(&hdr[2..]);
        r.sent(&[1, 2, 3]);
        assert!(matches!(r, Resume::Pcap { .. }));
        assert_eq!(r.prefix(), [hdr, vec![1, 2, 3]].concat());
        assert!(matches!(Resume::for_type(3, false), Resume::Nothing));
    }
}
