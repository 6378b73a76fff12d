//! Streaming libpcap 2.4 validation and record splitting.

/// Length of the pcap global header.
pub const GLOBAL_HEADER_LEN: usize = 24;
/// Length of a pcap record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest record accepted: libpcap's own MAXIMUM_SNAPLEN (262,144 bytes).
pub const MAX_RECORD_LEN: u32 = 262_144;

/// The global header of a pcap stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalHeader {
    /// The 24 bytes as received (written unchanged at the top of every file).
    pub raw: [u8; GLOBAL_HEADER_LEN],
    /// Whether multi-byte fields are big-endian.
    pub big_endian: bool,
    /// Whether timestamps are in nanoseconds (magic `a1b23c4d`).
    pub nanos: bool,
    /// The capture snaplen.
    pub snaplen: u32,
    /// The link type.
    pub linktype: u32,
}

impl GlobalHeader {
    /// Parses and validates a global header.
    pub fn parse(raw: &[u8; GLOBAL_HEADER_LEN]) -> Result<GlobalHeader, PcapError> {
        let (big_endian, nanos) = check_magic([raw[0], raw[1], raw[2], raw[3]])?;
        let u16_at = |o: usize| {
            let b = [raw[o], raw[o + 1]];
            if big_endian {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        let u32_at = |o: usize| read_u32(&raw[o..o + 4], big_endian);
        let (major, minor) = (u16_at(4), u16_at(6));
        if major != 2 {
            return Err(PcapError::BadVersion(major, minor));
        }
        Ok(GlobalHeader {
            raw: *raw,
            big_endian,
            nanos,
            snaplen: u32_at(16),
            linktype: u32_at(20),
        })
    }
}

/// Recognises a pcap magic number: (big-endian, nanosecond timestamps).
fn check_magic(magic: [u8; 4]) -> Result<(bool, bool), PcapError> {
    match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => Ok((false, false)),
        [0xa1, 0xb2, 0xc3, 0xd4] => Ok((true, false)),
        [0x4d, 0x3c, 0xb2, 0xa1] => Ok((false, true)),
        [0xa1, 0xb2, 0x3c, 0x4d] => Ok((true, true)),
        [0x0a, 0x0d, 0x0d, 0x0a] => Err(PcapError::Pcapng),
        _ => Err(PcapError::BadMagic(u32::from_be_bytes(magic))),
    }
}

/// A u32 in the given byte order from the first 4 bytes of `b`.
pub(crate) fn read_u32(b: &[u8], big_endian: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// Why a byte stream is not a pcap stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PcapError {
    /// The first four bytes are no pcap magic number.
    #[error(
        "not a pcap stream (magic 0x{0:08x}); type 1 carries libpcap captures, e.g. `tcpdump -w -`"
    )]
    BadMagic(u32),
    /// A pcapng stream where pcap was expected.
    #[error(
        "this is a pcapng stream: send it as D4 type 5, or capture with `tcpdump -w -` (pcap)"
    )]
    Pcapng,
    /// A pcap version other than 2.x.
    #[error("unsupported pcap version {0}.{1}")]
    BadVersion(u16, u16),
    /// A record header announcing an impossible length.
    #[error(
        "record {index} announces {len} bytes (more than {MAX_RECORD_LEN}): the stream is corrupt"
    )]
    RecordTooLong {
        /// 0-based record index in the stream.
        index: u64,
        /// The announced captured length.
        len: u32,
    },
}

/// Cuts a pcap byte stream into its global header and whole records.
///
/// Bytes go in in any split; [`PcapSplitter::push`] returns the records that
/// became complete, as one contiguous slice of whole records. A partial record
/// stays buffered (at most one record, bounded by [`MAX_RECORD_LEN`]).
#[derive(Debug, Default)]
pub struct PcapSplitter {
    /// Bytes received and not yet returned.
    buf: Vec<u8>,
    /// Bytes at the front of `buf` returned by the last push, dropped on the next.
    consumed: usize,
    /// The global header, once received.
    header: Option<GlobalHeader>,
    /// Records returned so far.
    records: u64,
}

/// What one [`PcapSplitter::push`] produced.
#[derive(Debug)]
pub struct Split<'a> {
    /// The global header, on the push that completed it.
    pub new_header: Option<GlobalHeader>,
    /// Whole records (headers and data), possibly empty.
    pub records: &'a [u8],
    /// How many records `records` holds.
    pub count: u64,
}

impl PcapSplitter {
    /// A splitter awaiting the global header.
    pub fn new() -> PcapSplitter {
        PcapSplitter::default()
    }

    /// The global header, once received.
    pub fn header(&self) -> Option<&GlobalHeader> {
        self.header.as_ref()
    }

    /// Records returned so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Bytes of an incomplete record (or header) held back.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// Adds bytes; returns what became complete.
    pub fn push(&mut self, data: &[u8]) -> Result<Split<'_>, PcapError> {
        if self.consumed > 0 {
            self.buf.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        let mut new_header = None;
        if self.header.is_none() {
            let Some(raw) = self.buf.get(..GLOBAL_HEADER_LEN) else {
                // Reject an obviously wrong stream early, from its first bytes.
                if self.buf.len() >= 4 {
                    check_magic([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])?;
                }
                return Ok(Split {
                    new_header: None,
                    records: &[],
                    count: 0,
                });
            };
            let raw: [u8; GLOBAL_HEADER_LEN] = raw.try_into().unwrap_or([0; GLOBAL_HEADER_LEN]);
            let h = GlobalHeader::parse(&raw)?;
            self.header = Some(h);
            new_header = Some(h);
            pos = GLOBAL_HEADER_LEN;
        }
        let big_endian = self.header.map(|h| h.big_endian).unwrap_or(false);
        let start = pos;
        let mut count = 0;
        while let Some(rh) = self.buf.get(pos..pos + RECORD_HEADER_LEN) {
            let incl = read_u32(&rh[8..12], big_endian);
            if incl > MAX_RECORD_LEN {
                return Err(PcapError::RecordTooLong {
                    index: self.records + count,
                    len: incl,
                });
            }
            let end = pos + RECORD_HEADER_LEN + incl as usize;
            if end > self.buf.len() {
                break;
            }
            pos = end;
            count += 1;
        }
        self.consumed = pos;
        self.records += count;
        Ok(Split {
            new_header,
            records: &self.buf[start..pos],
            count,
        })
    }
}

/// Finds record boundaries in a pcap stream without copying it.
///
/// The caller keeps the bytes (writes them straight to a file); the scanner
/// only remembers where it is inside the global header or a record, so that
/// the caller can cut files at record boundaries. Lengths are bounded as in
/// [`PcapSplitter`].
#[derive(Debug, Default)]
pub struct PcapScanner {
    /// The global header, once complete.
    header: Option<GlobalHeader>,
    /// The global header while it arrives.
    head: Vec<u8>,
    /// A record header while it arrives.
    rec: [u8; RECORD_HEADER_LEN],
    /// How much of `rec` is filled.
    rec_len: usize,
    /// Bytes of the current record's data still to come.
    remaining: usize,
    /// Whole records seen.
    records: u64,
}

/// What one [`PcapScanner::feed`] found in its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The global header, when it completed inside these bytes.
    pub new_header: Option<GlobalHeader>,
    /// Where the records start in these bytes (after the global header).
    pub records_start: usize,
    /// The offset just after the last record that completed in these bytes.
    pub last_boundary: Option<usize>,
}

impl PcapScanner {
    /// A scanner awaiting the global header.
    pub fn new() -> PcapScanner {
        PcapScanner::default()
    }

    /// The global header, once received.
    pub fn header(&self) -> Option<&GlobalHeader> {
        self.header.as_ref()
    }

    /// Whole records seen so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The global header's bytes received so far (all 24 once complete).
    pub fn header_bytes(&self) -> &[u8] {
        &self.head
    }

    /// Whether the stream stands exactly between two records.
    pub fn at_boundary(&self) -> bool {
        self.header.is_some() && self.rec_len == 0 && self.remaining == 0
    }

    /// Scans the next bytes of the stream.
    pub fn feed(&mut self, data: &[u8]) -> Result<Scan, PcapError> {
        let mut scan = Scan::default();
        let mut pos = 0;
        if self.header.is_none() {
            let take = (GLOBAL_HEADER_LEN - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
            pos = take;
            if self.head.len() >= 4 {
                check_magic([self.head[0], self.head[1], self.head[2], self.head[3]])?;
            }
            let Ok(raw) = <[u8; GLOBAL_HEADER_LEN]>::try_from(self.head.as_slice()) else {
                // Everything went into the (incomplete) global header.
                scan.records_start = pos;
                return Ok(scan);
            };
            let h = GlobalHeader::parse(&raw)?;
            self.header = Some(h);
            scan.new_header = Some(h);
            scan.records_start = pos;
        }
        let big_endian = self.header.map(|h| h.big_endian).unwrap_or(false);
        while pos < data.len() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len() - pos);
                self.remaining -= take;
                pos += take;
                if self.remaining == 0 {
                    self.records += 1;
                    scan.last_boundary = Some(pos);
                }
                continue;
            }
            let take = (RECORD_HEADER_LEN - self.rec_len).min(data.len() - pos);
            self.rec[self.rec_len..self.rec_len + take].copy_from_slice(&data[pos..pos + take]);
            self.rec_len += take;
            pos += take;
            if self.rec_len < RECORD_HEADER_LEN {
                break;
            }
            self.rec_len = 0;
            let incl = read_u32(&self.rec[8..12], big_endian);
            if incl > MAX_RECORD_LEN {
                return Err(PcapError::RecordTooLong {
                    index: self.records,
                    len: incl,
                });
            }
            self.remaining = incl as usize;
            if self.remaining == 0 {
                self.records += 1;
                scan.last_boundary = Some(pos);
            }
        }
        Ok(scan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(n: usize) -> Vec<u8> {
        let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for i in 0..n {
            let len = (i * 13 % 200) as u32;
            v.extend_from_slice(&(i as u32).to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&len.to_le_bytes());
            v.extend(std::iter::repeat_n(i as u8, len as usize));
        }
        v
    }

    #[test]
    fn any_split_yields_the_same_records() {
        let cap = capture(50);
        for step in [1, 5, 16, 24, 100, 10_000] {
            let mut s = PcapSplitter::new();
            let mut out = Vec::new();
            let mut n = 0;
            for c in cap.chunks(step) {
                let sp = s.push(c).unwrap();
                if let Some(h) = sp.new_header {
                    out.extend_from_slice(&h.raw);
                }
                out.extend_from_slice(sp.records);
                n += sp.count;
            }
            assert_eq!(out, cap, "step {step}");
            assert_eq!(n, 50);
            assert_eq!(s.pending(), 0);
        }
    }

    #[test]
    fn scanner_finds_the_same_boundaries_as_the_splitter() {
        let cap = capture(60);
        for step in [1, 7, 16, 24, 40, 333, 100_000] {
            let mut sc = PcapScanner::new();
            let mut sp = PcapSplitter::new();
            let mut off = 0;
            let mut sc_bounds = Vec::new();
            let mut sp_bounds = Vec::new();
            let mut sp_total = 0usize;
            for c in cap.chunks(step) {
                let s = sc.feed(c).unwrap();
                if let Some(b) = s.last_boundary {
                    sc_bounds.push(off + b);
                }
                let r = sp.push(c).unwrap();
                if r.new_header.is_some() {
                    sp_total += GLOBAL_HEADER_LEN;
                }
                sp_total += r.records.len();
                if r.count > 0 {
                    sp_bounds.push(sp_total);
                }
                off += c.len();
            }
            assert_eq!(sc_bounds, sp_bounds, "step {step}");
            // Bytes after the global header, as a writer would take them.
            let mut sc2 = PcapScanner::new();
            let mut body = Vec::new();
            for c in cap.chunks(step) {
                let s = sc2.feed(c).unwrap();
                body.extend_from_slice(&c[s.records_start..]);
            }
            assert_eq!(body, cap[GLOBAL_HEADER_LEN..], "step {step}");
            assert_eq!(sc.records(), 60);
            assert!(sc.at_boundary());
        }
        assert!(PcapScanner::new().feed(b"not a pcap").is_err());
    }

    #[test]
    fn rejects_non_pcap_early_and_corrupt_lengths() {
        assert!(matches!(
            PcapSplitter::new().push(b"hello world"),
            Err(PcapError::BadMagic(_))
        ));
        assert!(matches!(
            PcapSplitter::new().push(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0]),
            Err(PcapError::Pcapng)
        ));
        let mut cap = capture(1);
        cap.extend_from_slice(&[0; 8]);
        cap.extend_from_slice(&u32::MAX.to_le_bytes());
        cap.extend_from_slice(&[0; 4]);
        assert!(matches!(
            PcapSplitter::new().push(&cap),
            Err(PcapError::RecordTooLong { index: 1, .. })
        ));
    }
}
