//! `d4 anonymize`: pseudonymise the addresses of a capture (pcap or pcapng,
//! gzip or not) into a pcap, streaming.

use std::io::{self, BufWriter, Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use d4_packet::anon::{pnat, CryptoPan, PnatRule};
use d4_packet::capture::CaptureReader;
use d4_packet::rewrite::{rewrite_frame, Outcome, Scope};

/// Pseudonymise a capture.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  d4 anonymize --pnat 10.1.0.0/16:192.168.0.0/16 -r in.pcap -w out.pcap\n  d4 anonymize --cryptopan-key key.bin < in.pcap.gz > out.pcap\n  d4 stdout -t 1 -u QUEUE -f | d4 anonymize --pnat '[2001:db8::/32]:[fd00::/32]' | d4 client -c conf\n\nChecksums (IPv4 header, TCP, UDP, ICMPv6) stay correct. Frames that cannot be parsed are\npassed through unchanged and counted. The output is pcap; pcap input keeps its header."
)]
pub(crate) struct Args {
    /// Input capture (pcap, pcapng, or gzip of either); `-` or absent: stdin.
    #[arg(short = 'r', long = "read")]
    input: Option<PathBuf>,
    /// Output pcap; `-` or absent: stdout.
    #[arg(short = 'w', long = "write")]
    output: Option<PathBuf>,
    /// Prefix rewriting rules, first match wins: from/len:to/len[,...] (IPv6: [v6/len]:[v6/len]).
    #[arg(
        long,
        required_unless_present = "cryptopan_key",
        conflicts_with = "cryptopan_key"
    )]
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
}

fn read_key(path: &PathBuf) -> Result<Vec<u8>> {
    let raw =
        std::fs::read(path).with_context(|| format!("cannot read the key {}", path.display()))?;
    if raw.len() == 32 {
        return Ok(raw);
    }
    let text = String::from_utf8_lossy(&raw);
    let hex = text.trim();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok((0..32)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect());
    }
    bail!(
        "{}: a Crypto-PAn key is 32 raw bytes or 64 hex digits ({} bytes found)",
        path.display(),
        raw.len()
    )
}

/// Any reader, gunzipped when it starts with the gzip magic.
fn maybe_gunzip(mut r: Box<dyn Read + Send>) -> Result<Box<dyn Read>> {
    let mut head = [0u8; 2];
    let mut n = 0;
    while n < 2 {
        match r.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let chained = io::Cursor::new(head[..n].to_vec()).chain(r);
    Ok(if n == 2 && head == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(chained))
    } else {
        Box::new(chained)
    })
}

pub(crate) fn run(a: Args) -> Result<()> {
    let map: Box<dyn Fn(IpAddr) -> IpAddr> = match (&a.pnat, &a.cryptopan_key) {
        (Some(rules), _) => {
            let rules = PnatRule::parse_list(rules)?;
            Box::new(move |ip| pnat(&rules, ip))
        }
        (None, Some(k)) => {
            let c = CryptoPan::new(&read_key(k)?)?;
            // Crypto-PAn costs one AES block per address bit: remember the
            // addresses already seen (traffic repeats them), within a bound.
            let cache = std::cell::RefCell::new(std::collections::HashMap::<IpAddr, IpAddr>::new());
            Box::new(move |ip| {
                let mut m = cache.borrow_mut();
                if let Some(v) = m.get(&ip) {
                    return *v;
                }
                if m.len() >= 1 << 20 {
                    m.clear();
                }
                let v = c.ip(ip);
                m.insert(ip, v);
                v
            })
        }
        (None, None) => bail!("give --pnat RULES or --cryptopan-key FILE"),
    };
    let scope = Scope {
        src: !a.dst_only,
        dst: !a.src_only,
        arp: !a.no_arp,
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
        maybe_gunzip(input)?,
    ))
    .with_context(|| name.clone())?;
    let out: Box<dyn Write> = match a.output.as_ref().filter(|p| p.as_os_str() != "-") {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        ),
        None => Box::new(io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(256 * 1024, out);
    // pcap input keeps its header (byte order, time resolution); pcapng input
    // becomes a little-endian microsecond pcap with the first packet's link type.
    let pcap_in = reader.pcap_header().copied();
    let big = pcap_in.map(|h| h.big_endian).unwrap_or(false);
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut linktype = None;
    if let Some(h) = &pcap_in {
        out.write_all(&h.raw)?;
        linktype = Some(h.linktype);
    }
    let (mut total, mut rewritten, mut not_ip, mut unparsed) = (0u64, 0u64, 0u64, 0u64);
    let result = loop {
        let mut p = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        match linktype {
            None => {
                let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                h.extend_from_slice(&262_144u32.to_le_bytes());
                h.extend_from_slice(&p.linktype.to_le_bytes());
                out.write_all(&h)?;
                linktype = Some(p.linktype);
            }
            Some(l) if l != p.linktype => {
                bail!("{name}: packets of link types {l} and {} mixed: a pcap holds one (split the capture by interface first)", p.linktype)
            }
            Some(_) => {}
        }
        total += 1;
        match rewrite_frame(p.linktype, &mut p.data, scope, &map) {
            Outcome::Rewritten => rewritten += 1,
            Outcome::NotIp => not_ip += 1,
            Outcome::Unparsed(_) => unparsed += 1,
        }
        out.write_all(&w32(p.ts_sec))?;
        out.write_all(&w32(p.ts_frac))?;
        out.write_all(&w32(p.data.len() as u32))?;
        out.write_all(&w32(p.orig_len))?;
        out.write_all(&p.data)?;
    };
    crate::flush_output(&mut out)?;
    eprintln!("d4 anonymize: {total} packets: {rewritten} rewritten, {not_ip} without IP addresses, {unparsed} left unchanged (not parsed)");
    if let Err(e) = result {
        bail!("{name}: {e} (the packets before it were written)");
    }
    Ok(())
}
