//! `d4 forward`: a sensor whose source is an analyzer queue of this server.
//! It streams what the queue's items name — the files of a type-1 (or 4, 5,
//! 7) queue, the lines of the others — in order and whole, optionally
//! pseudonymised, to another D4 server.
//!
//! Items are read without being removed, sent in one D4 session per batch,
//! and acknowledged (removed) only once the destination has confirmed the
//! end of that session (TLS close_notify after storing everything): a crash
//! or an unreachable destination loses nothing; at worst a batch is sent
//! twice. The reference pipeline popped newest-first and cut items at snaplen.
//! A reference server runs the workers of successive sessions concurrently,
//! so the lines of back-to-back batches can land interleaved there:
//! `--session-secs N` sends one session per time span instead (the items
//! that came within N s of the first one waiting, read again until the span
//! is over, nothing acknowledged meanwhile), at the cost of that delay and
//! of a whole span sent again after a failure.
//!
//! Threads: the main thread reads a batch of items (`d4_api::poll`, read then
//! ack); a producer thread turns them into one stream — for a type-1 queue
//! each named file (checked to be a regular file under the server's data
//! directory) is read as a capture, rewritten by the anonymizer when
//! `--pnat`/`--cryptopan-key` is given, and written through one `PcapWriter`;
//! for 4/5/7 the files as they are; for line types the items, one per line —
//! into a bounded channel (8 × 256 KiB) that `d4_client::run_until` reads and
//! sends as one D4 session. Unreadable items are reported by name and
//! acknowledged (they never will be readable); a failed session leaves the
//! batch in the queue.
//!
//! Signals: the first Ctrl-C finishes the batch in hand, then exits (a
//! second one quits now). SIGTERM stops at once, as for `d4 client`: no more
//! input, no new connection, backoff waits end; the batch it cuts short is
//! not acknowledged (it stays in the queue) and the exit is non-zero.

use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use d4_client::{ClientConfig, Destination};
use d4_packet::capture::CaptureReader;
use d4_packet::write::PcapWriter;

use crate::anonymize::{copy_packets, AnonOpts, Anonymizer};
use d4_api::poll::{Idle, Poller, Take};
use d4_api::{Api, Conn};

/// Forward a queue to another D4 server.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  d4 queue create -t 1 --description 'to the public'     # prints QUEUE\n  d4 forward -u QUEUE -c public-conf --pnat 10.0.0.0/8:192.168.0.0/16\n  d4 forward -u QUEUE -c public-conf --cryptopan-key key.bin --once\n\npublic-conf/ is a sensor configuration (reference layout: destination, type, uuid, key,\nrootCA.crt) for the public server; its type must be the queue's. Items leave the queue only\nonce the public server has confirmed it stored them. Pseudonymisation applies to type-1\n(pcap) queues; checksums stay correct."
)]
pub(crate) struct Args {
    /// Queue to forward (on this server).
    #[arg(short = 'u', long = "uuid")]
    queue: String,
    /// Sensor configuration for the destination (reference directory layout).
    #[arg(short = 'c', long = "conf-dir", conflicts_with = "config")]
    conf_dir: Option<PathBuf>,
    /// Sensor configuration for the destination (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    anon: AnonOpts,
    /// Exit when the queue is empty instead of waiting for more.
    #[arg(long)]
    once: bool,
    /// Items sent per D4 session (each session is confirmed before its items leave the queue).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// One D4 session per time span: the items that came within N seconds of the first
    /// one waiting are sent in one session (up to 10,000), acknowledged when it closes.
    /// For a reference server, which handles sessions concurrently: lines keep their
    /// order. Costs up to N s of delay, and a failure sends the whole span again.
    #[arg(long, value_name = "N")]
    session_secs: Option<u64>,
    /// Do not verify the destination's certificate.
    #[arg(long)]
    insecure: bool,
    /// Give up after N failed connection attempts in a row (0: retry forever).
    #[arg(long, default_value_t = 0)]
    max_retries: u32,
    #[command(flatten)]
    conn: Conn,
}

/// What the items of a queue carry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Items {
    /// Paths of pcap files, sent as one pcap stream.
    Captures,
    /// Paths of other files, sent as they are.
    Files,
    /// Lines, sent one per line.
    Lines,
}

/// The write end of the pipe between the item reader and the sender.
struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.tx
                .send(chunk)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the sender stopped"))?;
        }
        Ok(())
    }
}

/// The read end.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    /// Set once the producer's end was reached: the sender read the whole
    /// batch (a stop can end the sender before).
    ended: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Err(_) => {
                    // The producer is done.
                    self.ended.store(true, std::sync::atomic::Ordering::SeqCst);
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What a batch's producer did.
struct Produced {
    anon: Option<Anonymizer>,
    /// Items that could not be read (reported, and acknowledged: they never will be).
    skipped: usize,
    /// Whether the sender went away before the end.
    cut: bool,
}

/// Writes the content named by `items` into `out`.
fn produce(
    items: Vec<Vec<u8>>,
    kind: Items,
    root: Option<PathBuf>,
    mut anon: Option<Anonymizer>,
    out: ChannelWriter,
) -> Produced {
    let mut out = BufWriter::with_capacity(CHUNK, out);
    let mut skipped = 0;
    let mut cut = false;
    let mut pcap = PcapWriter::new(&mut out);
    for item in &items {
        let r = match kind {
            Items::Lines => pcap
                .get_mut()
                .write_all(item)
                .and_then(|_| pcap.get_mut().write_all(b"\n"))
                .map_err(anyhow::Error::from),
            Items::Files | Items::Captures => {
                let path = String::from_utf8_lossy(item).into_owned();
                d4_api::open_item_file(item, root.as_deref()).and_then(|f| {
                    let r = io::BufReader::with_capacity(CHUNK, f);
                    if kind == Items::Files {
                        let mut r = r;
                        io::copy(&mut r, pcap.get_mut())
                            .map(|_| ())
                            .with_context(|| format!("cannot read {path}"))
                    } else {
                        let mut c = CaptureReader::new(r).with_context(|| path.clone())?;
                        copy_packets(&mut c, &mut pcap, anon.as_mut()).with_context(|| {
                            format!("{path} (the packets before the error were sent)")
                        })
                    }
                })
            }
        };
        if let Err(e) = r {
            if e.chain().any(|c| {
                c.downcast_ref::<io::Error>().map(|e| e.kind()) == Some(io::ErrorKind::BrokenPipe)
            }) {
                cut = true;
                break;
            }
            eprintln!("d4 forward: {e:#}");
            skipped += 1;
        }
    }
    if out.flush().is_err() {
        cut = true;
    }
    Produced { anon, skipped, cut }
}

pub(crate) fn run(a: Args) -> Result<()> {
    let mut cfg: ClientConfig =
        crate::client::load_config(a.conf_dir.as_deref(), a.config.as_deref())?;
    cfg.insecure |= a.insecure;
    // Its flag counts attempts, 0 for ever; the sender counts retries.
    cfg.max_retries = a.max_retries.checked_sub(1);
    // The queue keeps what was not confirmed: a sensor spool would send it twice.
    cfg.spool_dir = None;
    cfg.keepalive_secs = 0; // the input is never quiet for long: read inline
    if cfg.destination == Destination::Stdout {
        bail!(
            "the configuration sends to stdout: forwarding needs a destination server (host:port)"
        );
    }
    let api = Api::connect(&a.conn)?;
    let q = api.get(&format!("/queues/{}", a.queue))?;
    let qtype = q["type"].as_str().unwrap_or_default().to_string();
    let kind = match qtype.as_str() {
        "1" => Items::Captures,
        "4" | "5" | "7" => Items::Files,
        _ => Items::Lines,
    };
    // An extended type travels as 254.
    let expected = qtype.parse::<u8>().unwrap_or(254);
    if cfg.ty != expected && !(expected == 254 && cfg.ty == 2) {
        bail!(
            "queue {} carries type {qtype} but the configuration sends type {}: they must match",
            a.queue,
            cfg.ty
        );
    }
    let mut anon = a.anon.build()?;
    if anon.is_some() && kind != Items::Captures {
        bail!("pseudonymisation applies to pcap (type 1) queues; this one is of type {qtype}");
    }
    let root = d4_api::data_root(&api);
    // Ctrl-C: finish the batch in hand (a second one quits now). SIGTERM:
    // stop now — no more input, no new connection, no backoff wait; a batch
    // it cuts is not acknowledged (it stays in the queue) — bounded by
    // signals::STOP_GRACE whatever the destination does.
    crate::signals::finish_or_stop(crate::signals::Stop {
        command: "d4 forward",
        on_interrupt: "finishing the batch in hand; Ctrl-C again to quit now",
        on_terminate: "SIGTERM: stopping (the batch in hand stays in the queue unless confirmed)",
        after_grace: "the batch in hand stays in the queue",
    });
    // A time span reads what the server gives at most (10,000 items).
    let span = a.session_secs.map(|n| Duration::from_secs(n.max(1)));
    let batch = match span {
        Some(_) => 10_000,
        None => a.batch.clamp(1, 10_000),
    };
    let (mut items_sent, mut bytes_sent) = (0u64, 0u64);
    let idle = if a.once { Idle::Once } else { Idle::Follow };
    let mut poller =
        Poller::new(&api, &a.queue, Take::Read, batch, idle).stop_when(crate::signals::interrupted);
    if let Some(span) = span {
        // A span not over is read again (nothing acknowledged) after this.
        poller = poller.pause(
            Duration::from_millis(100),
            span.min(Duration::from_millis(500)),
        );
    }
    let mut span_start: Option<Instant> = None;
    poller.run(&mut |items: Vec<Vec<u8>>| -> Result<usize> {
        let n = items.len();
        if let Some(span) = span {
            let started = *span_start.get_or_insert_with(Instant::now);
            if started.elapsed() < span && n < batch && !crate::signals::interrupted() {
                return Ok(0);
            }
            span_start = None;
        }
        let (tx, rx) = sync_channel(8);
        let writer = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let root2 = root.clone();
        let a2 = anon.take();
        let producer = std::thread::Builder::new()
            .name("d4-forward-items".into())
            .spawn(move || produce(items, kind, root2, a2, writer))
            .context("starting the item reader")?;
        let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent = d4_client::run_until(
            &cfg,
            ChannelReader {
                rx,
                cur: Vec::new(),
                pos: 0,
                ended: ended.clone(),
            },
            &crate::signals::terminated,
        );
        let whole = ended.load(std::sync::atomic::Ordering::SeqCst);
        let produced = producer
            .join()
            .map_err(|_| anyhow::anyhow!("the item reader failed"))?;
        anon = produced.anon;
        match sent {
            // Acknowledged by the poller once this returns.
            Ok(stats) if whole && !produced.cut => {
                items_sent += n as u64;
                bytes_sent += stats.bytes;
                tracing::info!(
                    "forwarded {n} items ({} bytes{}); {items_sent} items, {bytes_sent} bytes in all",
                    stats.bytes,
                    if produced.skipped > 0 {
                        format!(", {} unreadable items skipped", produced.skipped)
                    } else {
                        String::new()
                    }
                );
                Ok(n)
            }
            Ok(_) => bail!(
                "the sender stopped before the end of the batch; the {n} items in hand stay in the queue"
            ),
            Err(e) => Err(e.context(format!(
                "forwarding to {} failed; the {n} items in hand stay in the queue",
                match &cfg.destination {
                    Destination::Server(s) => s.as_str(),
                    Destination::Stdout => "stdout",
                }
            ))),
        }
    })?;
    if let Some(a) = &anon {
        eprintln!("d4 forward: {}", a.counts);
    }
    eprintln!("d4 forward: {items_sent} items, {bytes_sent} bytes forwarded");
    Ok(())
}
