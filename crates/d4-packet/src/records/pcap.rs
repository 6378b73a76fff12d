//! pcap (libpcap 2.4): a 24-byte global header, then records of a 16-byte
//! header and `incl_len` bytes. The end of the global header is a boundary
//! (the header is the stream's preamble); each record's end is one.
//! Bounds: a record is at most [`MAX_RECORD_LEN`] bytes, the version must be
//! 2.x; nothing is buffered but the two headers.

use super::framed::{Framed, Step};
use super::{Progress, RecordError};
use crate::pcap::{
    check_magic, read_u32, GlobalHeader, PcapError, GLOBAL_HEADER_LEN, MAX_RECORD_LEN,
    RECORD_HEADER_LEN,
};

/// Where a pcap stream stands.
#[derive(Clone, Debug, Default)]
pub(super) struct Pcap {
    /// The global header while it arrives (all 24 bytes once complete).
    head: Vec<u8>,
    /// The global header, once complete.
    pub(super) header: Option<GlobalHeader>,
    /// Record headers and the data they announce.
    framed: Framed<RECORD_HEADER_LEN>,
}

impl Pcap {
    /// The complete global header's bytes (empty before).
    pub(super) fn preamble(&self) -> &[u8] {
        if self.header.is_some() {
            &self.head
        } else {
            &[]
        }
    }

    /// Scans `data`, which starts at stream offset `base`.
    pub(super) fn feed(
        &mut self,
        data: &[u8],
        base: u64,
        p: &mut Progress,
    ) -> Result<(), RecordError> {
        let mut pos = 0;
        if self.header.is_none() {
            let take = (GLOBAL_HEADER_LEN - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
            pos = take;
            if let Some(m) = self.head.get(..4) {
                check_magic([m[0], m[1], m[2], m[3]])?;
            }
            let Ok(raw) = <[u8; GLOBAL_HEADER_LEN]>::try_from(self.head.as_slice()) else {
                return Ok(());
            };
            self.header = Some(GlobalHeader::parse(&raw)?);
            p.boundary(base + pos as u64, false);
            p.preamble_changed = true;
        }
        let big_endian = self.header.is_some_and(|h| h.big_endian);
        while pos < data.len() {
            match self.framed.step(data, &mut pos) {
                Step::Body { ended: true, .. } => p.boundary(base + pos as u64, true),
                Step::Body { .. } | Step::Partial => {}
                Step::Head(h) => {
                    let incl = read_u32(&h[8..12], big_endian);
                    if incl > MAX_RECORD_LEN {
                        return Err(PcapError::RecordTooLong {
                            index: p.records_before + p.records,
                            len: incl,
                        }
                        .into());
                    }
                    if self.framed.body(incl as usize) {
                        p.boundary(base + pos as u64, true);
                    }
                }
            }
        }
        Ok(())
    }
}
