//! The inputs of `d4 dns serialize` and `d4 dns reduce`: captures through
//! `d4_api::captures` (`-r FILE|DIR|-`, stdin, `-u QUEUE` of type 1, a
//! progress bar) → `d4_packet::dns::transport` (UDP and TCP port 53,
//! fragments and streams reassembled) → raw DNS messages with their time
//! and addresses, pseudonymised if asked (`--cryptopan-key`, as
//! `d4 anonymize`: `d4_packet::anon`) and paced if asked (`--speed`,
//! `d4_packet::pace`); or, for reduce, serialized messages (length-prefixed
//! JSON or NDJSON, [`crate::codec`]), told apart from captures by their
//! first byte.

use std::io::{self, BufRead, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use d4_api::captures::{CaptureArgs, PacketSink};
use d4_packet::anon::{CachedCryptoPan, CryptoPan};
use d4_packet::capture::Packet;
use d4_packet::dns::transport::{Limits, Messages, TransportStats};
use d4_packet::pace::{timestamp_ns, PaceStats, Pacer};

use crate::codec::{FrameReader, Framing};
use crate::message::Message;

/// The input flags of the `d4 dns` commands that read captures.
#[derive(clap::Args, Debug, Clone)]
pub struct InputArgs {
    // -r / -u / --once and how to reach the server (flattened: their own docs).
    #[allow(missing_docs)]
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Replay at a speed, driven by the packets' timestamps: 0 as fast as
    /// possible, 1 the capture's own timing, N times faster (0.25: four
    /// times slower). Output is flushed after every message while pacing.
    #[arg(long, default_value_t = 0.0, value_name = "N")]
    pub speed: f64,
    /// Pseudonymise the source and destination addresses with Crypto-PAn,
    /// as `d4 anonymize --cryptopan-key` does: a key file of 32 raw bytes or
    /// 64 hex digits.
    #[arg(long, value_name = "FILE")]
    pub cryptopan_key: Option<PathBuf>,
    /// TCP flow directions tracked at once (the stalest are dropped beyond).
    #[arg(long, default_value_t = 65_536)]
    pub max_flows: usize,
    /// IPv4 datagrams in reassembly at once.
    #[arg(long, default_value_t = 4096)]
    pub max_fragmented: usize,
}

impl InputArgs {
    /// Whether the command runs until told to stop: it follows a queue, or
    /// paces (a SIGTERM then ends the replay cleanly, the last window out).
    pub fn follows(&self) -> bool {
        self.capture.follows() || self.speed > 0.0
    }

    /// The front end these flags describe (the key is read, the speed
    /// checked, before any data moves).
    pub fn front(&self) -> Result<Front> {
        let anon = match &self.cryptopan_key {
            Some(k) => Some(CachedCryptoPan::new(CryptoPan::new(
                &d4_packet::anon::read_key(k)?,
            )?)),
            None => None,
        };
        Ok(Front {
            messages: Messages::new(Limits {
                max_fragmented: self.max_fragmented,
                max_flows: self.max_flows,
                ..Limits::default()
            }),
            pacer: Pacer::new(self.speed)?,
            anon,
            stats: FrontStats::default(),
        })
    }
}

/// One DNS message as found in a capture, not yet walked.
#[derive(Clone, Copy, Debug)]
pub struct Raw<'a> {
    /// Capture time, microseconds since the epoch.
    pub time_us: i64,
    /// Source address (pseudonymised if asked).
    pub source: IpAddr,
    /// Destination address (pseudonymised if asked).
    pub dest: IpAddr,
    /// The DNS message.
    pub wire: &'a [u8],
}

/// What a command does with the messages.
pub trait Consumer {
    /// A message from a capture. An error (the output failed) ends the
    /// reading.
    fn raw(&mut self, r: &Raw<'_>) -> Result<()>;

    /// A message read from serialized input.
    fn parsed(&mut self, m: &Message) -> Result<()>;

    /// After each input, each batch of a queue and when it is idle.
    fn flush(&mut self) -> Result<()>;
}

/// What the front end saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrontStats {
    /// Packets read from captures.
    pub packets: u64,
    /// DNS messages found in them.
    pub dns_messages: u64,
    /// Messages read from serialized input.
    pub serialized: u64,
    /// Serialized messages that were not a message object (skipped).
    pub unreadable: u64,
    /// Reassembly counters.
    pub transport: TransportStats,
    /// Pacing (with `--speed`).
    pub pace: PaceStats,
}

impl FrontStats {
    /// The `-s` text of the input side.
    pub fn describe(&self, speed: f64) -> String {
        let t = &self.transport;
        let mut s = format!(
            "{} packets, {} DNS messages ({} over TCP); {} IPv4 fragments -> {} datagrams ({} given up); {} TCP flows dropped",
            self.packets,
            self.dns_messages,
            t.tcp_messages,
            t.fragments,
            t.datagrams,
            t.datagrams_dropped,
            t.flows_dropped
        );
        if self.serialized > 0 || self.unreadable > 0 {
            s += &format!(
                "; {} serialized messages read ({} unreadable, skipped)",
                self.serialized, self.unreadable
            );
        }
        if speed > 0.0 {
            let p = &self.pace;
            s += &format!(
                "; replay at speed {speed}: {} paced, mean absolute timing error {:.3} ms per packet (max {:.3} ms)",
                p.packets,
                p.mean_error().as_secs_f64() * 1e3,
                p.max_error().as_secs_f64() * 1e3
            );
        }
        s
    }
}

/// The capture side: reassembly, pseudonymisation, pacing.
pub struct Front {
    messages: Messages,
    pacer: Pacer,
    anon: Option<CachedCryptoPan>,
    /// Counters.
    pub stats: FrontStats,
}

/// The error that ends a paced reading on a stop request.
#[derive(Debug, thiserror::Error)]
#[error("stopped on request")]
pub struct Stopped;

/// Whether an error is [`Stopped`].
pub fn is_stopped(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Stopped>().is_some()
}

impl Front {
    /// Whether messages are paced.
    pub fn paced(&self) -> bool {
        self.pacer.active()
    }

    fn addr(&mut self, a: IpAddr) -> IpAddr {
        match &mut self.anon {
            Some(c) => c.ip(a),
            None => a,
        }
    }

    /// Pseudonymises the addresses of a message read from serialized input.
    fn anonymize(&mut self, m: &mut Message) {
        if self.anon.is_some() {
            m.source = self.addr(m.source);
            m.dest = self.addr(m.dest);
        }
    }

    /// Waits for `ns` when pacing; false when stopped meanwhile.
    fn pace(&mut self, ns: i128, stop: &dyn Fn() -> bool) -> bool {
        let ok = self.pacer.wait_or_stop(ns, stop);
        self.stats.pace = self.pacer.stats;
        ok
    }
}

/// Captures to messages: [`Front`] as a [`PacketSink`].
struct Sink<'a> {
    front: &'a mut Front,
    consumer: &'a mut dyn Consumer,
    stop: &'a dyn Fn() -> bool,
}

impl PacketSink for Sink<'_> {
    fn packet(&mut self, p: &Packet, nanos: bool) -> Result<()> {
        let f = &mut *self.front;
        if f.pacer.active() && !f.pace(timestamp_ns(p.ts_sec, p.ts_frac, nanos), self.stop) {
            return Err(Stopped.into());
        }
        f.stats.packets += 1;
        let mut err = None;
        let (messages, anon, stats) = (&mut f.messages, &mut f.anon, &mut f.stats);
        let consumer = &mut *self.consumer;
        messages.packet(p, nanos, &mut |at, wire| {
            if err.is_some() {
                return;
            }
            stats.dns_messages += 1;
            let (mut source, mut dest) = (at.src, at.dst);
            if let Some(c) = anon {
                (source, dest) = (c.ip(source), c.ip(dest));
            }
            let r = Raw {
                time_us: i64::try_from(at.sec).unwrap_or(i64::MAX / 2_000_000) * 1_000_000
                    + i64::from(at.usec),
                source,
                dest,
                wire,
            };
            if let Err(e) = consumer.raw(&r) {
                err = Some(e);
            }
        });
        f.stats.transport = f.messages.stats;
        err.map_or(Ok(()), Err)
    }

    fn flush(&mut self) -> Result<()> {
        self.consumer.flush()
    }
}

/// What kind of input a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Capture,
    Serialized,
}

/// Its first byte: a digit or `{` is serialized messages; anything else a
/// capture (gzip included: serialized input that is compressed is read
/// with `--from-serialized`).
fn sniff(path: &Path) -> Result<Kind> {
    let first = if path == Path::new("-") {
        let stdin = io::stdin();
        let mut l = stdin.lock();
        l.fill_buf().context("cannot read stdin")?.first().copied()
    } else {
        let mut b = [0u8; 1];
        match std::fs::File::open(path) {
            // Unreadable: the capture reader says why, as for any capture.
            Err(_) => return Ok(Kind::Capture),
            Ok(mut f) => match f.read(&mut b) {
                Ok(1) => Some(b[0]),
                _ => None,
            },
        }
    };
    Ok(match first.and_then(Framing::detect) {
        Some(_) => Kind::Serialized,
        None => Kind::Capture,
    })
}

/// How the inputs went.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Inputs that could not be read whole (reported on stderr).
    pub failed: Vec<String>,
    /// Ended on a stop request (while pacing).
    pub stopped: bool,
}

/// Which inputs are serialized messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serialized {
    /// None: captures only (`d4 dns serialize`).
    Never,
    /// Those whose first byte says so (`d4 dns reduce`).
    Detect,
    /// All of them (`d4 dns reduce --from-serialized`; gzip read too).
    Always,
}

/// Reads every input in order into `consumer`, then the queue if any;
/// `cmd` names the command in messages.
pub fn read_all(
    cmd: &str,
    args: &InputArgs,
    serialized: Serialized,
    front: &mut Front,
    stop: &dyn Fn() -> bool,
    consumer: &mut dyn Consumer,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    let files = args.capture.files()?;
    let files_only = CaptureArgs {
        queue: None,
        once: false,
        ..args.capture.clone()
    };
    let progress = d4_api::captures::progress_bar;
    for f in &files {
        if stop() {
            out.stopped = true;
            break;
        }
        let kind = match serialized {
            Serialized::Never => Kind::Capture,
            Serialized::Always => Kind::Serialized,
            Serialized::Detect => sniff(f)?,
        };
        let r = match kind {
            Kind::Capture => {
                let mut sink = Sink {
                    front,
                    consumer,
                    stop,
                };
                files_only.read(cmd, std::slice::from_ref(f), progress, stop, &mut sink)
            }
            Kind::Serialized => read_serialized(cmd, f, front, stop, consumer),
        };
        match r {
            Ok(failed) => out.failed.extend(failed),
            Err(e) if is_stopped(&e) => {
                out.stopped = true;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if args.capture.queue.is_some() && !out.stopped {
        let mut sink = Sink {
            front,
            consumer,
            stop,
        };
        match args.capture.read(cmd, &[], progress, stop, &mut sink) {
            Ok(failed) => out.failed.extend(failed),
            Err(e) if is_stopped(&e) => out.stopped = true,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Reads one input of serialized messages: `Ok` with its name in the list
/// when it could not be read whole (said on stderr).
fn read_serialized(
    cmd: &str,
    path: &Path,
    front: &mut Front,
    stop: &dyn Fn() -> bool,
    consumer: &mut dyn Consumer,
) -> Result<Vec<String>> {
    let name = path.display().to_string();
    let r = match d4_api::captures::open_input(path, d4_api::captures::progress_bar) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{cmd}: {e:#}");
            return Ok(vec![name]);
        }
    };
    let mut frames = FrameReader::new(io::BufReader::with_capacity(256 * 1024, r));
    let mut buf = Vec::new();
    let mut m = Message::new();
    let (mut good, mut bad) = (0u64, 0u64);
    let mut first_error = None;
    loop {
        match frames.next(&mut buf) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                eprintln!("{cmd}: {name}: {e}");
                consumer.flush()?;
                return Ok(vec![name]);
            }
        }
        if let Err(e) = m.read_json(&buf) {
            bad += 1;
            front.stats.unreadable += 1;
            first_error.get_or_insert(e);
            continue;
        }
        good += 1;
        front.stats.serialized += 1;
        front.anonymize(&mut m);
        if front.paced() && !front.pace(i128::from(m.time_us) * 1000, stop) {
            return Err(Stopped.into());
        }
        consumer.parsed(&m)?;
    }
    consumer.flush()?;
    if let Some(e) = first_error {
        eprintln!("{cmd}: {name}: {bad} messages skipped; the first: {e}");
        if good == 0 {
            return Ok(vec![name]);
        }
    }
    Ok(Vec::new())
}
