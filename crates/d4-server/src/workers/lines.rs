//! Line-oriented types (3 log, 8 passivedns, 6 NDJSON, extended types):
//! lines re-joined across frames, stored, and pushed one item per line.

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};

use super::{Output, Rotator, WorkerError};
use crate::store::queues::QueueType;

/// How a line type treats its lines.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LineRules {
    /// A line longer than this is cut (text) or skipped whole (JSON).
    pub(crate) max_line: usize,
    /// Check each line as JSON; store and queue only valid ones.
    pub(crate) json: bool,
    /// Write the lines to the rotated files (records saved one file each,
    /// `ja3-jl`, are not: their files are the store).
    pub(crate) store: bool,
}

impl LineRules {
    /// Extended types: the reference cuts lines at 100 KB.
    pub(crate) const EXTENDED: LineRules = LineRules {
        max_line: 100 * 1024,
        json: false,
        store: true,
    };
    /// Text types (3, 8...): cut at 1 MiB, a bound on memory.
    pub(crate) const TEXT: LineRules = LineRules {
        max_line: 1024 * 1024,
        json: false,
        store: true,
    };
    /// NDJSON (6): a line over 1 MiB is skipped as one bad record.
    pub(crate) const JSON: LineRules = LineRules {
        max_line: 1024 * 1024,
        json: true,
        store: true,
    };
    /// JSON records each saved as a file of its own (`ja3-jl`): JSON lines
    /// of up to 1 MiB (a certificate chain in base64), not written to the
    /// rotated files.
    pub(crate) const RECORDS: LineRules = LineRules {
        max_line: 1024 * 1024,
        json: true,
        store: false,
    };
}

/// Re-joins lines across frames, stores them, produces queue items.
pub(crate) struct LineWorker {
    files: Rotator,
    queue: QueueType,
    rules: LineRules,
    /// The start of a line not yet ended.
    partial: BytesMut,
    /// Skipping the rest of an oversized JSON line.
    discarding: bool,
}

impl LineWorker {
    /// A worker writing through `files`, producing items for `queue`.
    pub(crate) fn new(files: Rotator, queue: QueueType, rules: LineRules) -> LineWorker {
        LineWorker {
            files,
            queue,
            rules,
            partial: BytesMut::new(),
            discarding: false,
        }
    }

    /// The file rotator.
    pub(crate) fn files_mut(&mut self) -> &mut Rotator {
        &mut self.files
    }

    /// The queue type of the items.
    pub(crate) fn queue_type(&self) -> &QueueType {
        &self.queue
    }

    /// Handles one payload.
    pub(crate) fn data(
        &mut self,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Output, WorkerError> {
        let mut out = Output::default();
        let mut rest = payload;
        if self.discarding {
            match memchr(rest) {
                Some(i) => {
                    self.discarding = false;
                    rest = &rest[i + 1..];
                }
                None => return Ok(out),
            }
        }
        // Complete the pending line first.
        if !self.partial.is_empty() {
            match memchr(rest) {
                Some(i) => {
                    self.partial.extend_from_slice(&rest[..=i]);
                    rest = &rest[i + 1..];
                    let line = std::mem::take(&mut self.partial).freeze();
                    self.lines(&line, now, &mut out)?;
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    self.too_long(now, &mut out)?;
                    return Ok(out);
                }
            }
        }
        // Whole lines straight from the payload; keep the tail.
        let end = rest
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(0);
        if end > 0 {
            let whole = Bytes::copy_from_slice(&rest[..end]);
            self.lines(&whole, now, &mut out)?;
        }
        self.partial.extend_from_slice(&rest[end..]);
        self.too_long(now, &mut out)?;
        Ok(out)
    }

    /// A line still open that grew past the limit: text is stored as it is
    /// and queued in pieces of the limit; a JSON line is skipped whole.
    fn too_long(&mut self, now: DateTime<Utc>, out: &mut Output) -> Result<(), WorkerError> {
        if self.partial.len() <= self.rules.max_line {
            return Ok(());
        }
        if self.rules.json {
            out.skipped
                .push(format!("line longer than {} bytes", self.rules.max_line));
            self.partial = BytesMut::new();
            self.discarding = true;
            return Ok(());
        }
        let whole = self.partial.len() / self.rules.max_line * self.rules.max_line;
        let head = self.partial.split_to(whole).freeze();
        self.files
            .write_raw(&head, now)
            .map_err(WorkerError::store("lines"))?;
        for piece in head.chunks(self.rules.max_line) {
            out.items.push(head.slice_ref(piece));
        }
        Ok(())
    }

    /// Stores and queues `block`, which holds whole lines, each ended by `\n`.
    /// Text lines longer than the limit are queued in pieces; JSON lines
    /// longer than the limit, or not JSON, are skipped.
    fn lines(
        &mut self,
        block: &Bytes,
        now: DateTime<Utc>,
        out: &mut Output,
    ) -> Result<(), WorkerError> {
        let keep = self.rules.store;
        let store = |files: &mut Rotator, b: &[u8]| {
            if !keep {
                return Ok(());
            }
            files.write(b, now).map_err(WorkerError::store("lines"))
        };
        if !self.rules.json {
            store(&mut self.files, block)?;
        }
        let max = self.rules.max_line;
        let mut start = 0;
        while start < block.len() {
            let end = start + memchr(&block[start..]).unwrap_or(block.len() - start - 1);
            let line = block.slice(start..end);
            let with_newline = &block[start..end + 1];
            start = end + 1;
            if line.is_empty() {
                continue;
            }
            if self.rules.json {
                if line.len() > max {
                    out.skipped.push(format!("line longer than {max} bytes"));
                    continue;
                }
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&line) {
                    out.skipped
                        .push(format!("line is not JSON ({e}): {}", preview(&line)));
                    continue;
                }
                store(&mut self.files, with_newline)?;
                out.items.push(line);
            } else if line.len() > max {
                for piece in line.chunks(max) {
                    out.items.push(line.slice_ref(piece));
                }
            } else {
                out.items.push(line);
            }
        }
        Ok(())
    }

    /// Closes the file. The unfinished last line is kept if the session
    /// ended cleanly (`echo -n` has no newline): text is stored as it came,
    /// with no `\n` added (as the reference), and queued as a line; a JSON
    /// line is checked and stored as a line. After an error it is dropped,
    /// because the sensor sends it again on its next connection.
    pub(crate) fn finish(&mut self, now: DateTime<Utc>, clean: bool) -> Output {
        let mut out = Output::default();
        if !self.partial.is_empty() {
            let mut last = std::mem::take(&mut self.partial);
            if clean && !self.rules.json {
                let last = last.freeze();
                // Never a rotation here: a cut long line's head may be stored.
                match self.files.write_raw(&last, now) {
                    Ok(()) => out.items.extend(
                        last.chunks(self.rules.max_line)
                            .map(|piece| last.slice_ref(piece)),
                    ),
                    Err(e) => tracing::error!("{}", WorkerError::store("lines")(e)),
                }
            } else if clean {
                last.extend_from_slice(b"\n");
                if let Err(e) = self.lines(&last.freeze(), now, &mut out) {
                    tracing::error!("{e}");
                }
            } else {
                tracing::warn!(
                    "session ended inside a line: {} bytes not stored",
                    last.len()
                );
            }
        }
        self.files.rotate();
        out
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn preview(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(80)]);
    if b.len() > 80 {
        format!("{s}...")
    } else {
        s.into_owned()
    }
}
