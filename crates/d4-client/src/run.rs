//! The send loop.

use std::io::{self, Read};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use d4_packet::PcapSplitter;
use d4_proto::{FrameEncoder, Signer};

use crate::config::{ClientConfig, Destination};
use crate::transport::{stdout_sink, Backoff, Connector, Sink};

/// Flush once this many frame bytes are waiting.
const FLUSH_AT: usize = 256 * 1024;
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
    /// Whole frames written since the last successful flush.
    unflushed: Vec<u8>,
    /// Payload ranges inside `unflushed`.
    payloads: Vec<(usize, usize)>,
    resume: Resume,
    /// Whether anything was flushed to the server on any connection yet.
    started: bool,
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
            sink: if to_server { None } else { Some(stdout_sink()) },
            connector,
            unflushed: Vec::with_capacity(FLUSH_AT + 128 * 1024),
            payloads: Vec::new(),
            resume: Resume::for_type(cfg.ty, to_server),
            started: false,
            stats: RunStats::default(),
        })
    }

    /// Appends one frame to the output buffer.
    fn push(&mut self, payload: &[u8]) {
        let h = self.data.header(now(self.cfg), payload);
        self.unflushed.extend_from_slice(&h);
        let start = self.unflushed.len();
        self.unflushed.extend_from_slice(payload);
        self.payloads.push((start, self.unflushed.len()));
        self.stats.frames += 1;
    }

    /// Frames that open every connection: the meta-header (types 2/254), then
    /// the bytes needed to resume on a record boundary.
    fn opening_frames(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let ts = now(self.cfg);
        if let (Some(enc), Some(m)) = (&self.meta, &self.cfg.meta_header) {
            for chunk in m.chunks(self.cfg.snaplen) {
                enc.encode_into(ts, chunk, &mut out);
                self.stats.frames += 1;
            }
        }
        if self.started {
            for chunk in self.resume.prefix().chunks(self.cfg.snaplen) {
                self.data.encode_into(ts, chunk, &mut out);
                self.stats.frames += 1;
            }
        }
        out
    }

    fn connect(&mut self) -> Result<Sink> {
        let Some(connector) = &self.connector else {
            unreachable!("stdout never reconnects")
        };
        let mut backoff = Backoff::new(Duration::from_secs(self.cfg.max_backoff_secs.max(1)));
        let mut failures = 0u32;
        loop {
            match connector.connect() {
                Ok(s) => return Ok(s),
                Err(e) => {
                    failures += 1;
                    if self.cfg.max_retries > 0 && failures >= self.cfg.max_retries {
                        return Err(e.context(format!("giving up after {failures} attempts")));
                    }
                    let d = backoff.delay();
                    tracing::warn!("{e:#}; retrying in {:.1} s", d.as_secs_f64());
                    std::thread::sleep(d);
                }
            }
        }
    }

    /// Sends what is buffered. On a server, a failed write or a server that
    /// hung up leads to reconnection and re-sending of everything not yet
    /// flushed, after the opening frames.
    fn flush(&mut self) -> Result<()> {
        loop {
            let fresh = self.sink.is_none();
            if fresh {
                let s = self.connect()?;
                self.sink = Some(s);
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
                .and_then(|_| sink.write_all(&self.unflushed))
                .and_then(|_| sink.flush());
            match r {
                Ok(()) => break,
                Err(e) if self.connector.is_none() => {
                    return Err(e).context("cannot write to stdout");
                }
                Err(e) => {
                    tracing::warn!("connection lost: {e}; reconnecting");
                    self.sink = None;
                    self.stats.reconnects += 1;
                }
            }
        }
        for &(a, b) in &self.payloads {
            self.resume.sent(&self.unflushed[a..b]);
        }
        self.started = true;
        self.unflushed.clear();
        self.payloads.clear();
        Ok(())
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
        s.unflushed.extend_from_slice(&opening);
    }
    let mut buf = vec![0u8; cfg.snaplen];
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
        s.push(&buf[..n]);
        if s.unflushed.len() >= FLUSH_AT || n < cfg.snaplen {
            s.flush()?;
        }
    }
    if cfg.end_frame {
        s.push(&[]);
    }
    s.flush()?;
    let stats = s.stats;
    if let Some(sink) = s.sink.take() {
        sink.close().context("closing the connection")?;
    }
    Ok(stats)
}
