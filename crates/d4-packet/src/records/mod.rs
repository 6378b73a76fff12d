//! Record boundaries in a byte stream, for every format D4 carries as a
//! stream: pcap, pcapng, IPFIX, text lines, and type 4 (dnscap), which is
//! pcap or text according to its first four bytes.
//!
//! One job: say where whole records end, however the bytes were split in
//! transit, without copying them. Everyone who needs that calls this
//! module: the sensor's resumption after a reconnection ([`Resumption`]),
//! the server's pcap worker ([`Tracker`] directly: it writes the bytes as
//! they come), its file worker ([`Cutter`]: it holds back the record not yet
//! whole) and its crash recovery (a file cut back to its last boundary).
//!
//! One file per format, as pcap-parser does: `pcap` (the global header,
//! then records), [`pcapng`] (blocks; the section header and interface
//! blocks kept as the *preamble* that opens a new file or a resumed
//! stream), [`ipfix`] (messages), and `lines`; the pcap magic numbers and
//! global header are [`crate::pcap`]'s.
//!
//! Bounds, the same for every caller: a pcap record at most
//! [`crate::MAX_RECORD_LEN`] bytes, a pcapng block at most
//! [`pcapng::MAX_BLOCK_LEN`] (1 MiB) and a multiple of 4, an IPFIX message
//! at least 16 bytes; anything else is a corrupt stream ([`RecordError`]).
//! A record not yet whole is held back at most [`MAX_HELD_RECORD`] bytes
//! (only a text line can be longer: it is then passed on as it is). The
//! tracker itself buffers at most one record header and the preamble.

mod framed;
mod hold;
pub mod ipfix;
mod lines;
mod pcap;
pub mod pcapng;

pub use hold::{Cutter, Resumption};

use crate::pcap::{is_pcap_magic, GlobalHeader, PcapError};

/// Most bytes of a record not yet whole that a sensor or the server holds
/// back (1 MiB): a longer text line is passed on as it is.
pub const MAX_HELD_RECORD: usize = pcapng::MAX_BLOCK_LEN;

/// The record structure of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// libpcap (D4 type 1).
    Pcap,
    /// pcapng (D4 type 5).
    Pcapng,
    /// IPFIX messages (D4 type 7, YAF).
    Ipfix,
    /// Text, one record per line (types 2, 3, 6, 8, 254).
    Lines,
    /// Type 4 (dnscap): pcap (`-w -`) or text (`-g`), decided by the first
    /// four bytes (a pcap magic number or not).
    PcapOrText,
}

impl Format {
    /// The format of a D4 type's stream, `None` for a type with no record
    /// structure known here.
    pub fn for_d4_type(ty: u8) -> Option<Format> {
        match ty {
            1 => Some(Format::Pcap),
            4 => Some(Format::PcapOrText),
            5 => Some(Format::Pcapng),
            7 => Some(Format::Ipfix),
            2 | 3 | 6 | 8 | 254 => Some(Format::Lines),
            _ => None,
        }
    }
}

/// Why a stream's record structure cannot be followed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A pcap stream that is not one, or is corrupt.
    #[error(transparent)]
    Pcap(#[from] PcapError),
    /// A pcapng stream that does not start with a section header block.
    #[error("not a pcapng stream (no section header block first): D4 type 5 carries pcapng; send pcap as type 1")]
    NotPcapng,
    /// A section header block with a bad byte-order magic.
    #[error("pcapng section header with a bad byte-order magic")]
    PcapngByteOrder,
    /// A pcapng block length out of bounds or not a multiple of 4.
    #[error("pcapng block of length {0}: the stream is corrupt (at most {max} bytes, a multiple of 4)", max = pcapng::MAX_BLOCK_LEN)]
    PcapngBlockLen(usize),
    /// Section and interface blocks over the bound.
    #[error(
        "pcapng section header and interface blocks over {} bytes: the stream is corrupt",
        pcapng::MAX_BLOCK_LEN
    )]
    PcapngPreamble,
    /// An IPFIX message length under the header's.
    #[error("IPFIX message of length {0} (less than its 16-byte header): the stream is corrupt or not IPFIX (D4 type 7 carries YAF's IPFIX output)")]
    IpfixTooShort(usize),
}

/// What one format's scan found (internal).
#[derive(Debug, Default)]
struct Progress {
    /// The last boundary found, as a stream offset.
    last: Option<u64>,
    /// Whole records found in this scan.
    records: u64,
    /// Records before this scan (for error messages).
    records_before: u64,
    /// Whether the preamble changed.
    preamble_changed: bool,
}

impl Progress {
    fn boundary(&mut self, at: u64, record: bool) {
        self.last = Some(at);
        if record {
            self.records += 1;
        }
    }
}

/// The state of one format.
#[derive(Clone, Debug)]
enum State {
    Pcap(pcap::Pcap),
    Pcapng(pcapng::Pcapng),
    Ipfix(ipfix::Ipfix),
    Lines,
    /// Type 4 before its first four bytes.
    Undecided([u8; 4], usize),
}

/// Follows the record boundaries of one stream, fed in any split.
///
/// Offsets are stream offsets (bytes since the start, `u64`): the tracker
/// does not keep the bytes, only where the last whole record ends.
#[derive(Clone, Debug)]
pub struct Tracker {
    format: Format,
    state: State,
    /// Bytes fed so far.
    position: u64,
    /// Stream offset just after the last whole record (0 at the start).
    last_boundary: u64,
    /// Whole binary records seen.
    records: u64,
}

/// What one [`Tracker::feed`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// The new last boundary (a stream offset) when a record ended in these
    /// bytes — for type 4, possibly in the four bytes before them that
    /// decided the format.
    pub boundary: Option<u64>,
    /// Whether the preamble changed (pcap: the global header completed;
    /// pcapng: a section header or interface block completed).
    pub preamble_changed: bool,
}

impl Tracker {
    /// A tracker at the start of a stream.
    pub fn new(format: Format) -> Tracker {
        let state = match format {
            Format::Pcap => State::Pcap(pcap::Pcap::default()),
            Format::Pcapng => State::Pcapng(pcapng::Pcapng::default()),
            Format::Ipfix => State::Ipfix(ipfix::Ipfix::default()),
            Format::Lines => State::Lines,
            Format::PcapOrText => State::Undecided([0; 4], 0),
        };
        Tracker {
            format,
            state,
            position: 0,
            last_boundary: 0,
            records: 0,
        }
    }

    /// The format asked for.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The format followed: for type 4, [`Format::Pcap`] or
    /// [`Format::Lines`] once decided.
    pub fn followed(&self) -> Format {
        match self.state {
            State::Pcap(_) => Format::Pcap,
            State::Pcapng(_) => Format::Pcapng,
            State::Ipfix(_) => Format::Ipfix,
            State::Lines => Format::Lines,
            State::Undecided(..) => Format::PcapOrText,
        }
    }

    /// Bytes fed so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The stream offset just after the last whole record (0 at the start).
    pub fn last_boundary(&self) -> u64 {
        self.last_boundary
    }

    /// Bytes fed since the last boundary (the record not yet whole).
    pub fn held(&self) -> u64 {
        self.position - self.last_boundary
    }

    /// Whether the stream stands between two records.
    pub fn at_boundary(&self) -> bool {
        self.position == self.last_boundary
    }

    /// Whole binary records seen (pcap records, pcapng blocks, IPFIX
    /// messages; lines are not counted).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// What a new file or a resumed stream must start with: the pcap global
    /// header, or the pcapng section header and interface blocks; empty for
    /// the other formats (and before it is complete).
    pub fn preamble(&self) -> &[u8] {
        match &self.state {
            State::Pcap(p) => p.preamble(),
            State::Pcapng(p) => &p.preamble,
            _ => &[],
        }
    }

    /// The pcap global header, once complete.
    pub fn pcap_header(&self) -> Option<&GlobalHeader> {
        match &self.state {
            State::Pcap(p) => p.header.as_ref(),
            _ => None,
        }
    }

    /// Scans the next bytes of the stream. After an error the tracker must
    /// not be fed again (the stream cannot be followed).
    pub fn feed(&mut self, data: &[u8]) -> Result<Fed, RecordError> {
        let base = self.position;
        let mut p = Progress {
            records_before: self.records,
            ..Progress::default()
        };
        let len = data.len() as u64;
        let r = if let State::Undecided(head, n) = &mut self.state {
            let take = (4 - *n).min(data.len());
            head[*n..*n + take].copy_from_slice(&data[..take]);
            *n += take;
            if *n < 4 {
                self.position += len;
                return Ok(Fed::default());
            }
            let head = *head;
            self.state = if is_pcap_magic(head) {
                State::Pcap(pcap::Pcap::default())
            } else {
                State::Lines
            };
            // The four deciding bytes are the stream's first: scan them
            // again (some arrived before), then the rest.
            self.scan(&head, 0, &mut p)
                .and_then(|()| self.scan(&data[take..], 4, &mut p))
        } else {
            self.scan(data, base, &mut p)
        };
        self.position += len;
        self.records += p.records;
        r?;
        if let Some(b) = p.last {
            self.last_boundary = b;
        }
        Ok(Fed {
            boundary: p.last,
            preamble_changed: p.preamble_changed,
        })
    }

    fn scan(&mut self, data: &[u8], base: u64, p: &mut Progress) -> Result<(), RecordError> {
        match &mut self.state {
            State::Pcap(s) => s.feed(data, base, p),
            State::Pcapng(s) => s.feed(data, base, p),
            State::Ipfix(s) => s.feed(data, base, p),
            State::Lines => {
                lines::feed(data, base, p);
                Ok(())
            }
            State::Undecided(..) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
