//! Captures → TLS handshakes → `ja3-jl` records (`d4 tls fingerprint`):
//! the command around [`crate::session::Fingerprinter`]: inputs (files,
//! folders, stdin, a type-1 queue of the local D4 server), output (JSON
//! lines on stdout, or files as the reference sensor writes them) and
//! statistics.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use d4_api::captures::{is_broken_pipe, CaptureArgs, PacketSink};

use crate::record::Record;
use crate::session::{Config, Fingerprinter};

/// `d4 tls fingerprint`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  d4 tls fingerprint -r tls.pcap                     # ja3-jl JSON lines on stdout\n  d4 tls fingerprint -r day.pcap.gz -r more/ -s      # files and folders, statistics on stderr\n  tcpdump -w - tcp | d4 tls fingerprint              # stdin\n  d4 tls fingerprint -r tls.pcap --json-dir out --cert-dir certs   # as the reference sensor\n  d4 tls fingerprint -u QUEUE --once                 # the captures of a type-1 queue\n\nOne JSON line per ClientHello (ja3-jl: ServerIP, ServerPort, ClientIP, ClientPort,\nTimestamp, JA3, JA3Digest, JA3S, JA3SDigest, Certificates with CertHash (SHA-1) and Raw\n(base64 DER); and ours: JA4, SNI, ALPN, SHA256 per certificate). TLS is found by content\n(a handshake record first), on any port, over IPv4 (fragments reassembled) or IPv6,\nVLAN/QinQ/MPLS, Linux cooked, raw IP, loopback; TCP reassembled (out of order,\nretransmissions). A HelloRetryRequest gives two lines (one per ClientHello).\nCertificates are read for TLS <= 1.2 (TLS 1.3 encrypts them). SSLv2-format hellos\nare counted (-s), not fingerprinted. Malformed handshakes are counted and skipped."
)]
pub struct Args {
    #[command(flatten)]
    input: CaptureArgs,
    /// Write each record to DIR/<Timestamp>.json (indented) instead of stdout, as the
    /// reference sensor's -j (a name taken gets -1, -2... appended).
    #[arg(long, value_name = "DIR")]
    json_dir: Option<PathBuf>,
    /// Write each certificate's DER to DIR/<SHA-1>.crt, as the reference sensor's -w.
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    /// Print statistics to stderr at the end.
    #[arg(short = 's', long)]
    stats: bool,
    /// TCP flow directions tracked at once (the stalest are dropped beyond).
    #[arg(long, default_value_t = 65_536)]
    max_flows: usize,
    /// IPv4 datagrams in reassembly at once.
    #[arg(long, default_value_t = 4096)]
    max_fragmented: usize,
}

impl Args {
    /// Whether the command follows a queue until told to stop.
    pub fn follows(&self) -> bool {
        self.input.follows()
    }
}

/// Where records go.
struct Sink<'a> {
    out: &'a mut dyn Write,
    json_dir: Option<&'a Path>,
    cert_dir: Option<&'a Path>,
    /// The first write error (the rest of the input is then skipped).
    err: Option<anyhow::Error>,
}

impl Sink<'_> {
    fn record(&mut self, r: &Record) {
        if self.err.is_none() {
            if let Err(e) = self.try_record(r) {
                self.err = Some(e);
            }
        }
    }

    fn try_record(&mut self, r: &Record) -> Result<()> {
        if let Some(d) = self.cert_dir {
            for c in &r.certificates {
                let der = base64::engine::general_purpose::STANDARD.decode(&c.raw)?;
                let p = d.join(format!("{}.crt", c.cert_hash));
                fs::write(&p, der).with_context(|| format!("cannot write {}", p.display()))?;
            }
        }
        match self.json_dir {
            Some(d) => {
                let body = serde_json::to_vec_pretty(r)?;
                let mut p = d.join(format!("{}.json", r.timestamp));
                let mut n = 0;
                while p.exists() {
                    n += 1;
                    p = d.join(format!("{}-{n}.json", r.timestamp));
                }
                fs::write(&p, body).with_context(|| format!("cannot write {}", p.display()))?;
            }
            None => {
                serde_json::to_writer(&mut *self.out, r)?;
                self.out.write_all(b"\n")?;
            }
        }
        Ok(())
    }
}

/// Gives each packet to the fingerprinter, its records to the sink.
struct Fingerprint<'a, 'b> {
    x: &'a mut Fingerprinter,
    sink: &'a mut Sink<'b>,
}

impl PacketSink for Fingerprint<'_, '_> {
    fn packet(&mut self, p: &d4_packet::capture::Packet, nanos: bool) -> Result<()> {
        let sink = &mut *self.sink;
        self.x.packet(p, nanos, &mut |r| sink.record(r));
        sink.err.take().map_or(Ok(()), Err)
    }

    fn flush(&mut self) -> Result<()> {
        // Connections idle at a capture's end are not written yet: they may
        // go on in the next capture.
        Ok(self.sink.out.flush()?)
    }
}

const CMD: &str = "d4 tls fingerprint";

/// Runs `d4 tls fingerprint`.
pub fn run(a: Args, shutdown: crate::cli::Shutdown) -> Result<()> {
    for d in [&a.json_dir, &a.cert_dir].into_iter().flatten() {
        if !d.is_dir() {
            bail!("{} is not a folder (create it first)", d.display());
        }
    }
    let mut x = Fingerprinter::new(Config {
        max_flows: a.max_flows,
        max_fragmented: a.max_fragmented,
        ..Config::default()
    });
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    let mut sink = Sink {
        out: &mut out,
        json_dir: a.json_dir.as_deref(),
        cert_dir: a.cert_dir.as_deref(),
        err: None,
    };
    let files = a.input.files()?;
    let read = a.input.read(
        CMD,
        &files,
        d4_api::captures::progress_bar,
        &|| shutdown.is_triggered(),
        &mut Fingerprint {
            x: &mut x,
            sink: &mut sink,
        },
    );
    let failed = match read {
        Ok(f) => f,
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    x.finish(&mut |r| sink.record(r));
    if let Some(e) = sink.err.take() {
        return if is_broken_pipe(&e) { Ok(()) } else { Err(e) };
    }
    if let Err(e) = out.flush() {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    if a.stats {
        let s = x.stats;
        eprintln!(
            "d4 tls fingerprint: {} packets, {} TLS flow directions, {} client hellos, {} server hellos, {} certificates, {} records, {} malformed, {} SSLv2 hellos (not fingerprinted), {} flows dropped",
            s.packets, s.flows, s.client_hellos, s.server_hellos, s.certificates, s.records,
            s.malformed, s.sslv2_hellos, s.flows_dropped
        );
    }
    if !failed.is_empty() {
        bail!("could not read (see above): {}", failed.join(", "));
    }
    Ok(())
}
