//! `d4 dns serialize` (the reference's Speedy): captures → one JSON message
//! per DNS packet ([`crate::message`]), length-prefixed (the reference's
//! framing) or NDJSON ([`crate::codec`]), on stdout or to a file.
//!
//! Threads: the reading thread reads the captures and reassembles
//! ([`crate::input`]); the DNS walk and the JSON encoding of each batch of
//! 1,024 messages go to a pool of workers (`--threads`), and a writer
//! thread writes the batches in their order, so the output is the same
//! whatever the number of threads. With `--threads 1`, or while pacing
//! (`--speed`), everything happens in the reading thread and each message
//! is written as soon as it is read.

use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use d4_api::captures::is_broken_pipe;

use crate::cli::Shutdown;
use crate::codec::{write_frame, Framing};
use crate::input::{read_all, Consumer, InputArgs, Raw, Serialized};
use crate::message::{Message, Sections};

/// `d4 dns serialize`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  d4 dns serialize -r dns.pcap > dns.msgs             # length-prefixed JSON: 129{\"source\":...}\n  d4 dns serialize -r dns.pcap --ndjson | head       # one JSON object a line\n  tcpdump -w - -U port 53 | d4 dns serialize --ndjson   # live\n  d4 dns serialize -r day.pcap.gz --sections queries -s  # questions only, statistics on stderr\n  d4 dns serialize -r dns.pcap --cryptopan-key key.bin  # addresses pseudonymised\n  d4 dns serialize -r dns.pcap --speed 1 --ndjson     # replayed at the capture's pace\n  d4 dns serialize -u QUEUE --once                    # the captures of a type-1 queue\n\nOne message per DNS packet: UDP and TCP on port 53 (TCP reassembled, several messages per\nsegment), IPv4 fragments reassembled, IPv6, VLAN/QinQ/MPLS, Linux cooked, raw IP. Fields:\nsource, dest, id and flags (hex), time (capture time, seconds), then the sections chosen:\nqueries [{qname,qtype,qclass}], answers [{name,type,class,ttl,data}], authorities\n[{name,type,class,ns:[...]}] (one per RRset), additionals (as answers). Names lower-case\nwithout the trailing dot, types and classes as mnemonics (TYPE65534 when there is none).\nMalformed messages are counted (-s) and skipped (--malformed: written with \"malformed\":true).\nA length prefix is the exact byte length of the JSON that follows. docs/DNS-MONITOR.md."
)]
pub struct Args {
    #[command(flatten)]
    input: InputArgs,
    /// Write NDJSON (one object a line) instead of length-prefixed JSON.
    #[arg(long)]
    ndjson: bool,
    /// Sections to write: queries, answers, authorities, additionals, all.
    #[arg(long, default_value = "queries,answers,authorities", value_parser = Sections::parse)]
    sections: Sections,
    /// Write malformed messages too, as {"source","dest","id","flags","time","malformed":true}
    /// (what `d4 dns reduce` counts in MalformedPackets), instead of skipping them.
    #[arg(long)]
    malformed: bool,
    /// Write to FILE instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Worker threads walking and encoding messages (0: one per core, at most 4;
    /// 1: all in the reading thread).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print statistics to stderr at the end.
    #[arg(short = 's', long)]
    stats: bool,
}

impl Args {
    /// Whether the command runs until told to stop.
    pub fn follows(&self) -> bool {
        self.input.follows()
    }
}

/// Messages per batch handed to a worker.
const BATCH: usize = 1024;

/// What was written.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    written: u64,
    malformed: u64,
}

/// How messages are encoded.
#[derive(Clone, Copy, Debug)]
struct Encoding {
    framing: Framing,
    sections: Sections,
    keep_malformed: bool,
}

/// Walks and encodes one message into `out`; reuses `m` and `tmp`.
fn encode(
    e: Encoding,
    m: &mut Message,
    tmp: &mut Vec<u8>,
    r: &Raw<'_>,
    out: &mut Vec<u8>,
    c: &mut Counts,
) {
    let bad = m.decode(r.wire, e.sections).is_err();
    if bad {
        c.malformed += 1;
        if !e.keep_malformed {
            return;
        }
    }
    m.time_us = r.time_us;
    m.source = r.source;
    m.dest = r.dest;
    tmp.clear();
    m.write_json(tmp);
    write_frame(out, e.framing, tmp);
    c.written += 1;
}

/// Everything in the reading thread.
struct Inline {
    e: Encoding,
    m: Message,
    tmp: Vec<u8>,
    buf: Vec<u8>,
    out: Box<dyn Write + Send>,
    /// Write (and flush) each message at once (pacing).
    live: bool,
    counts: Counts,
}

impl Consumer for Inline {
    fn raw(&mut self, r: &Raw<'_>) -> Result<()> {
        encode(
            self.e,
            &mut self.m,
            &mut self.tmp,
            r,
            &mut self.buf,
            &mut self.counts,
        );
        if self.live || self.buf.len() >= 256 * 1024 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
            if self.live {
                self.out.flush()?;
            }
        }
        Ok(())
    }

    fn parsed(&mut self, _: &Message) -> Result<()> {
        bail!("serialize reads captures, not serialized messages")
    }

    fn flush(&mut self) -> Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(self.out.flush()?)
    }
}

/// Messages of a batch: their bytes one after the other.
#[derive(Default)]
struct Batch {
    wire: Vec<u8>,
    items: Vec<(i64, IpAddr, IpAddr, usize, usize)>,
}

/// A batch's encoded output.
struct Done {
    bytes: Vec<u8>,
    counts: Counts,
}

type Job = (Batch, SyncSender<Done>);

/// A pool of workers and the writer (see the module doc).
struct Pool {
    batch: Batch,
    jobs: Option<SyncSender<Job>>,
    /// The writer's queue, in order: a batch's result to come, or `None`
    /// to flush.
    order: Option<SyncSender<Option<Receiver<Done>>>>,
    workers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<Result<Counts>>>,
}

impl Pool {
    fn start(e: Encoding, threads: usize, mut out: Box<dyn Write + Send>) -> Result<Pool> {
        let (jobs, rx) = sync_channel::<Job>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::new();
        for i in 0..threads {
            let rx = rx.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("d4-dns-enc{i}"))
                    .spawn(move || worker(e, &rx))
                    .context("starting a worker")?,
            );
        }
        let (order, orx) = sync_channel::<Option<Receiver<Done>>>(threads * 4 + 2);
        let writer = std::thread::Builder::new()
            .name("d4-dns-write".into())
            .spawn(move || -> Result<Counts> {
                let mut c = Counts::default();
                for o in orx {
                    match o {
                        Some(done) => {
                            let d = done.recv().context("a worker failed")?;
                            out.write_all(&d.bytes)?;
                            c.written += d.counts.written;
                            c.malformed += d.counts.malformed;
                        }
                        None => out.flush()?,
                    }
                }
                out.flush()?;
                Ok(c)
            })
            .context("starting the writer")?;
        Ok(Pool {
            batch: Batch::default(),
            jobs: Some(jobs),
            order: Some(order),
            workers,
            writer: Some(writer),
        })
    }

    /// Hands the batch in hand to the workers.
    fn dispatch(&mut self) -> Result<()> {
        if self.batch.items.is_empty() {
            return Ok(());
        }
        let b = std::mem::take(&mut self.batch);
        let (tx, rx) = sync_channel(1);
        let sent = match (&self.order, &self.jobs) {
            (Some(o), Some(j)) => o.send(Some(rx)).is_ok() && j.send((b, tx)).is_ok(),
            _ => false,
        };
        if !sent {
            return Err(self.stop());
        }
        Ok(())
    }

    /// The writer stopped (its output failed): its error.
    fn stop(&mut self) -> anyhow::Error {
        self.jobs = None;
        self.order = None;
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            _ => anyhow::anyhow!("the writer stopped"),
        }
    }

    /// Everything written; the counts.
    fn finish(mut self) -> Result<Counts> {
        self.dispatch()?;
        self.jobs = None;
        self.order = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => bail!("the writer failed"),
        }
    }
}

fn worker(e: Encoding, rx: &Mutex<Receiver<Job>>) {
    let mut m = Message::new();
    let mut tmp = Vec::new();
    loop {
        let job = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok((b, reply)) = job else {
            return;
        };
        let mut d = Done {
            bytes: Vec::with_capacity(b.wire.len() * 4),
            counts: Counts::default(),
        };
        for &(time_us, source, dest, start, end) in &b.items {
            let r = Raw {
                time_us,
                source,
                dest,
                wire: b.wire.get(start..end).unwrap_or_default(),
            };
            encode(e, &mut m, &mut tmp, &r, &mut d.bytes, &mut d.counts);
        }
        let _ = reply.send(d);
    }
}

impl Consumer for Pool {
    fn raw(&mut self, r: &Raw<'_>) -> Result<()> {
        let b = &mut self.batch;
        let start = b.wire.len();
        b.wire.extend_from_slice(r.wire);
        b.items
            .push((r.time_us, r.source, r.dest, start, b.wire.len()));
        if b.items.len() >= BATCH {
            self.dispatch()?;
        }
        Ok(())
    }

    fn parsed(&mut self, _: &Message) -> Result<()> {
        bail!("serialize reads captures, not serialized messages")
    }

    fn flush(&mut self) -> Result<()> {
        self.dispatch()?;
        let ok = self.order.as_ref().is_some_and(|o| o.send(None).is_ok());
        if !ok {
            return Err(self.stop());
        }
        Ok(())
    }
}

const CMD: &str = "d4 dns serialize";

/// The number of workers `--threads 0` means.
fn auto_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4)
}

/// Runs `d4 dns serialize`.
pub fn run(a: Args, shutdown: Shutdown) -> Result<()> {
    let mut front = a.input.front()?;
    let out: Box<dyn Write + Send> = match &a.output {
        Some(p) => Box::new(BufWriter::with_capacity(
            256 * 1024,
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(io::stdout()),
    };
    let e = Encoding {
        framing: if a.ndjson {
            Framing::Ndjson
        } else {
            Framing::LengthPrefixed
        },
        sections: a.sections,
        keep_malformed: a.malformed,
    };
    let threads = match a.threads {
        0 => auto_threads(),
        n => n,
    };
    let stop = || shutdown.is_triggered();
    let (read, counts) = if threads <= 1 || front.paced() {
        let mut c = Inline {
            e,
            m: Message::new(),
            tmp: Vec::new(),
            buf: Vec::with_capacity(256 * 1024),
            out,
            live: front.paced(),
            counts: Counts::default(),
        };
        let r = read_all(CMD, &a.input, Serialized::Never, &mut front, &stop, &mut c)
            .and_then(|r| c.flush().map(|_| r));
        (r, c.counts)
    } else {
        let mut pool = Pool::start(e, threads, out)?;
        let r = read_all(
            CMD,
            &a.input,
            Serialized::Never,
            &mut front,
            &stop,
            &mut pool,
        );
        match (r, pool.finish()) {
            (Ok(r), Ok(c)) => (Ok(r), c),
            (Err(e), _) | (Ok(_), Err(e)) => (Err(e), Counts::default()),
        }
    };
    let outcome = match read {
        Ok(o) => o,
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    let s = front.stats;
    if a.stats {
        eprintln!(
            "{CMD}: {}; {} messages written, {} malformed {}",
            s.describe(a.input.speed),
            counts.written,
            counts.malformed,
            if a.malformed {
                "(written, marked)"
            } else {
                "(skipped)"
            }
        );
    }
    if !outcome.failed.is_empty() {
        bail!("could not read (see above): {}", outcome.failed.join(", "));
    }
    if s.dns_messages == 0 && a.input.capture.queue.is_none() && !outcome.stopped {
        bail!(
            "no DNS message in the input ({} packets read; DNS is UDP or TCP on port 53)",
            s.packets
        );
    }
    Ok(())
}
