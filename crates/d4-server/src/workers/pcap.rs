//! Type 1: a libpcap stream, validated, stored as whole records in `.cap` files.

use chrono::{DateTime, Utc};
use d4_packet::PcapSplitter;

use super::{Output, Rotator};

/// Reassembles a pcap stream and writes it into rotated `.cap` files, each a
/// valid pcap (global header, then whole records).
pub struct PcapWorker {
    splitter: PcapSplitter,
    files: Rotator,
}

impl PcapWorker {
    /// The file rotator.
    pub fn files_mut(&mut self) -> &mut Rotator {
        &mut self.files
    }

    /// A worker writing through `files`.
    pub fn new(files: Rotator) -> PcapWorker {
        PcapWorker {
            splitter: PcapSplitter::new(),
            files,
        }
    }

    /// Handles one payload.
    pub fn data(&mut self, payload: &[u8], now: DateTime<Utc>) -> Result<Output, String> {
        let split = self.splitter.push(payload).map_err(|e| e.to_string())?;
        if let Some(h) = split.new_header {
            self.files.set_prefix(h.raw.to_vec());
        }
        self.files
            .write(split.records, now)
            .map_err(|e| format!("cannot store the capture: {e}"))?;
        Ok(Output::default())
    }

    /// Closes the current file (a partial last record is not a record: it is
    /// dropped and logged).
    pub fn finish(&mut self) -> Output {
        if self.splitter.pending() > 0 && self.splitter.header().is_some() {
            tracing::warn!(
                "session ended inside a pcap record: {} trailing bytes not stored",
                self.splitter.pending()
            );
        }
        self.files.rotate();
        Output::default()
    }
}
