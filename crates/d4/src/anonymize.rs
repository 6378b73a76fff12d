//! `d4 anonymize`: pseudonymise the addresses of a capture (pcap or pcapng,
//! gzip or not) into a pcap, streaming.

use std::io::{self, BufWriter, Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use d4_packet::anon::{pnat, CachedCryptoPan, CryptoPan, PnatRule};
use d4_packet::capture::{CaptureReader, Packet};
use d4_packet::rewrite::{rewrite_frame, Outcome, Scope};
use d4_packet::write::PcapWriter;

/// Pseudonymise a capture.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  d4 anonymize --pnat 10.1.0.0/16:192.168.0.0/16 -r in.pcap -w out.pcap\n  d4 anonymize --cryptopan-key key.bin --dns < in.pcap.gz > out.pcap\n  d4 stdout -t 1 -u QUEUE -f | d4 anonymize --pnat '[2001:db8::/32]:[fd00::/32]' | d4 client -c conf\n\nChecksums (IPv4 header, TCP, UDP, ICMPv6) stay correct. Frames that cannot be parsed are\npassed through unchanged and counted. The output is pcap; pcap input keeps its header."
)]
pub(crate) struct Args {
    /// Input capture (pcap, pcapng, or gzip of either); `-` or absent: stdin.
    #[arg(short = 'r', long = "read")]
    input: Option<PathBuf>,
    /// Output pcap; `-` or absent: stdout.
    #[arg(short = 'w', long = "write")]
    output: Option<PathBuf>,
    #[command(flatten)]
    anon: AnonOpts,
}

/// How to pseudonymise (shared by `d4 anonymize` and `d4 forward`).
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct AnonOpts {
    /// Prefix rewriting rules, first match wins: from/len:to/len[,...] (IPv6: [v6/len]:[v6/len]).
    #[arg(long, conflicts_with = "cryptopan_key")]
    pnat: Option<String>,
    /// Crypto-PAn key file: 32 raw bytes or 64 hex digits.
    #[arg(long)]
    cryptopan_key: Option<PathBuf>,
    /// Rewrite source addresses only.
    #[arg(long, conflicts_with = "dst_only")]
    src_only: bool,
    /// Rewrite destination addresses only.
    #[arg(long)]
    dst_only: bool,
    /// Leave addresses inside ARP packets alone.
    #[arg(long)]
    no_arp: bool,
    /// Also rewrite the addresses in DNS answers (A and AAAA records of DNS
    /// over UDP port 53 or 5353, every section), UDP checksum kept right.
    #[arg(long)]
    dns: bool,
}

impl AnonOpts {
    /// The anonymizer, or None when no rewriting was asked for. Keys and
    /// rules are checked here, before any data moves.
    pub(crate) fn build(&self) -> Result<Option<Anonymizer>> {
        let map: Box<dyn Fn(IpAddr) -> IpAddr + Send> = match (&self.pnat, &self.cryptopan_key) {
            (Some(rules), _) => {
                let rules = PnatRule::parse_list(rules)?;
                Box::new(move |ip| pnat(&rules, ip))
            }
            (None, Some(k)) => {
                let c = CachedCryptoPan::new(CryptoPan::new(&d4_packet::anon::read_key(k)?)?);
                let c = std::cell::RefCell::new(c);
                Box::new(move |ip| c.borrow_mut().ip(ip))
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Anonymizer {
            map,
            scope: Scope {
                src: !self.dst_only,
                dst: !self.src_only,
                arp: !self.no_arp,
                dns: self.dns,
            },
            counts: Counts::default(),
        }))
    }
}

/// What the anonymizer did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    pub(crate) total: u64,
    pub(crate) rewritten: u64,
    /// IP frames whose addresses no rule changed (written as they were).
    pub(crate) kept: u64,
    pub(crate) not_ip: u64,
    pub(crate) unparsed: u64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} packets: {} rewritten, {} with no address to change, {} without IP addresses, {} left unchanged (not parsed)",
            self.total, self.rewritten, self.kept, self.not_ip, self.unparsed
        )
    }
}

/// Rewrites the addresses of frames.
pub(crate) struct Anonymizer {
    map: Box<dyn Fn(IpAddr) -> IpAddr + Send>,
    scope: Scope,
    pub(crate) counts: Counts,
}

impl Anonymizer {
    /// Rewrites one frame in place (checksums kept right); unparsed frames are counted.
    pub(crate) fn frame(&mut self, p: &mut Packet) {
        self.counts.total += 1;
        // "Rewritten" counts frames with an address that changed: rules
        // that match nothing must not read as work done.
        let changed = std::cell::Cell::new(false);
        let map = |a: IpAddr| {
            let n = (self.map)(a);
            if n != a {
                changed.set(true);
            }
            n
        };
        match rewrite_frame(p.linktype, &mut p.data, self.scope, &map) {
            Outcome::Rewritten if changed.get() => self.counts.rewritten += 1,
            Outcome::Rewritten => self.counts.kept += 1,
            Outcome::NotIp => self.counts.not_ip += 1,
            Outcome::Unparsed(_) => self.counts.unparsed += 1,
        }
    }
}

/// Copies a capture's packets to a pcap stream, rewritten when an
/// anonymizer is given. On error, the packets before it were written.
pub(crate) fn copy_packets<R: Read, W: Write>(
    reader: &mut CaptureReader<R>,
    w: &mut PcapWriter<W>,
    mut anon: Option<&mut Anonymizer>,
) -> Result<()> {
    if let Some(h) = reader.pcap_header() {
        w.offer_header(h)?;
    }
    let nanos = reader.nanos();
    let mut p = Packet::with_capacity();
    while reader.next_into(&mut p)? {
        if let Some(a) = anon.as_deref_mut() {
            a.frame(&mut p);
        }
        w.write(&p, nanos)?;
    }
    Ok(())
}

pub(crate) fn run(a: Args) -> Result<()> {
    let Some(mut anon) = a.anon.build()? else {
        bail!("give --pnat RULES or --cryptopan-key FILE");
    };
    let name = a
        .input
        .as_ref()
        .filter(|p| p.as_os_str() != "-")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "stdin".into());
    let input: Box<dyn Read + Send> = match a.input.as_ref().filter(|p| p.as_os_str() != "-") {
        Some(p) => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            crate::with_progress(f, len)
        }
        None => Box::new(io::stdin()),
    };
    let mut reader = CaptureReader::new(io::BufReader::with_capacity(
        256 * 1024,
        d4_packet::gz::maybe_gunzip(input)?,
    ))
    .with_context(|| name.clone())?;
    let out: Box<dyn Write> = match a.output.as_ref().filter(|p| p.as_os_str() != "-") {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    // pcap input keeps its header (byte order, time resolution); pcapng input
    // becomes a little-endian microsecond pcap with the first packet's link type.
    let mut w = PcapWriter::new(BufWriter::with_capacity(256 * 1024, out));
    let result = copy_packets(&mut reader, &mut w, Some(&mut anon));
    crate::flush_output(w.get_mut())?;
    eprintln!("d4 anonymize: {}", anon.counts);
    if let Err(e) = result {
        bail!("{name}: {e:#} (the packets before it were written)");
    }
    Ok(())
}
