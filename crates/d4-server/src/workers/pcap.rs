//! Type 1: a libpcap stream, validated, stored as whole records in `.cap` files.

use bytes::Bytes;

use chrono::{DateTime, Utc};
use d4_packet::pcap::GLOBAL_HEADER_LEN;
use d4_packet::records::{Format, Tracker};

use super::{Output, Rotator, WorkerError};

/// Writes a pcap stream into rotated `.cap` files as it comes (no copy: the
/// payloads' bytes go to the file with one `writev` per batch of frames),
/// each a valid pcap: every file starts with the stream's global header and
/// is cut only between records ([`Tracker`] says where they end).
pub(crate) struct PcapWorker {
    tracker: Tracker,
    files: Rotator,
}

impl PcapWorker {
    /// A worker writing through `files`.
    pub(crate) fn new(files: Rotator) -> PcapWorker {
        PcapWorker {
            tracker: Tracker::new(Format::Pcap),
            files,
        }
    }

    /// The file rotator.
    pub(crate) fn files_mut(&mut self) -> &mut Rotator {
        &mut self.files
    }

    /// Handles one payload.
    pub(crate) fn data(
        &mut self,
        payload: &Bytes,
        now: DateTime<Utc>,
    ) -> Result<Output, WorkerError> {
        let was_at_boundary = self.tracker.at_boundary();
        let before = self.tracker.position();
        let fed = self.tracker.feed(payload)?;
        // The global header opens every file; it is not written as data.
        let records_start = (GLOBAL_HEADER_LEN as u64)
            .saturating_sub(before)
            .min(payload.len() as u64) as usize;
        if fed.preamble_changed {
            self.files.set_prefix(self.tracker.preamble().to_vec());
        }
        let data = payload.slice(records_start..);
        // The last record end in `data`.
        let last = fed.boundary.map(|b| (b - before) as usize - records_start);
        let cut = last.or(if was_at_boundary { Some(0) } else { None });
        match cut {
            Some(c) if self.files.is_due(now) => {
                let n = data.len();
                self.files
                    .write_raw_shared(data.slice(..c), now)
                    .map_err(WorkerError::store("the capture"))?;
                self.files.rotate();
                self.files
                    .write_raw_shared(data.slice(c..), now)
                    .map_err(WorkerError::store("the capture"))?;
                self.files.mark_boundary(n - c);
            }
            _ => {
                let n = data.len();
                self.files
                    .write_raw_shared(data, now)
                    .map_err(WorkerError::store("the capture"))?;
                if let Some(b) = last {
                    self.files.mark_boundary(n - b);
                }
            }
        }
        Ok(Output::default())
    }

    /// Closes the current file. A last record cut short is not a record: it
    /// is removed from the file (which stays a valid pcap) and logged.
    pub(crate) fn finish(&mut self) -> Output {
        // The file's own boundary is exact (the tracker may have stopped on
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
