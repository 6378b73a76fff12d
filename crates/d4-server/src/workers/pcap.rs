//! Type 1: a libpcap stream, validated, stored as whole records in `.cap` files.

use chrono::{DateTime, Utc};
use d4_packet::PcapScanner;

use super::{Output, Rotator};

/// Writes a pcap stream into rotated `.cap` files as it comes (no copy),
/// each a valid pcap: every file starts with the stream's global header and
/// is cut only between records.
pub struct PcapWorker {
    scanner: PcapScanner,
    files: Rotator,
}

impl PcapWorker {
    /// A worker writing through `files`.
    pub fn new(files: Rotator) -> PcapWorker {
        PcapWorker {
            scanner: PcapScanner::new(),
            files,
        }
    }

    /// The file rotator.
    pub fn files_mut(&mut self) -> &mut Rotator {
        &mut self.files
    }

    /// Handles one payload.
    pub fn data(&mut self, payload: &[u8], now: DateTime<Utc>) -> Result<Output, String> {
        let was_at_boundary = self.scanner.at_boundary();
        let scan = self.scanner.feed(payload).map_err(|e| e.to_string())?;
        if let Some(h) = scan.new_header {
            self.files.set_prefix(h.raw.to_vec());
        }
        let data = &payload[scan.records_start..];
        let last = scan.last_boundary.map(|b| b - scan.records_start);
        let cut = last.or(if was_at_boundary { Some(0) } else { None });
        let store = |e: std::io::Error| format!("cannot store the capture: {e}");
        match cut {
            Some(c) if self.files.is_due(now) => {
                self.files.write_raw(&data[..c], now).map_err(store)?;
                self.files.rotate();
                self.files.write_raw(&data[c..], now).map_err(store)?;
                self.files.mark_boundary(data.len() - c);
            }
            _ => {
                self.files.write_raw(data, now).map_err(store)?;
                if let Some(b) = last {
                    self.files.mark_boundary(data.len() - b);
                }
            }
        }
        Ok(Output::default())
    }

    /// Closes the current file. A last record cut short is not a record: it
    /// is removed from the file (which stays a valid pcap) and logged.
    pub fn finish(&mut self) -> Output {
        // The file's own boundary is exact (the scanner may have stopped on
        // a corrupt record header after part of a record was written).
        match self.files.truncate_to_boundary() {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!("session ended inside a pcap record: {n} trailing bytes not stored")
            }
            Err(e) => tracing::error!("cannot cut the capture back to its last record: {e}"),
        }
        self.files.rotate();
        Output::default()
    }
}
