//! Line-oriented types (3 log, 8 passivedns, 6 NDJSON, extended types):
//! lines re-joined across frames, stored, and pushed one item per line.

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};

use super::{Output, Rotator};
use crate::queues::QueueType;

/// A line longer than this is cut (as the reference does for extended types).
pub const MAX_LINE: usize = 100 * 1024;

/// Re-joins lines across frames, stores them, produces queue items.
pub struct LineWorker {
    files: Rotator,
    queue: QueueType,
    /// Check each line as JSON (type 6).
    json: bool,
    /// The start of a line not yet ended.
    partial: BytesMut,
}

impl LineWorker {
    /// The file rotator.
    pub fn files_mut(&mut self) -> &mut Rotator {
        &mut self.files
    }

    /// A worker writing through `files`, producing items for `queue`.
    pub fn new(files: Rotator, queue: QueueType, json: bool) -> LineWorker {
        LineWorker {
            files,
            queue,
            json,
            partial: BytesMut::new(),
        }
    }

    /// The queue type of the items.
    pub fn queue_type(&self) -> &QueueType {
        &self.queue
    }

    /// Handles one payload.
    pub fn data(&mut self, payload: &[u8], now: DateTime<Utc>) -> Result<Output, String> {
        let mut out = Output::default();
        let mut rest = payload;
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
                    self.cut_long(now, &mut out)?;
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
        self.cut_long(now, &mut out)?;
        Ok(out)
    }

    /// Forces a break in a line that grew past [`MAX_LINE`].
    fn cut_long(&mut self, now: DateTime<Utc>, out: &mut Output) -> Result<(), String> {
        while self.partial.len() >= MAX_LINE {
            let mut piece = self.partial.split_to(MAX_LINE);
            piece.extend_from_slice(b"\n");
            self.lines(&piece.freeze(), now, out)?;
        }
        Ok(())
    }

    /// Stores and queues `block`, which holds whole lines, each ended by `\n`.
    fn lines(&mut self, block: &Bytes, now: DateTime<Utc>, out: &mut Output) -> Result<(), String> {
        let store = |files: &mut Rotator, b: &[u8]| {
            files
                .write(b, now)
                .map_err(|e| format!("cannot store lines: {e}"))
        };
        if !self.json {
            store(&mut self.files, block)?;
        }
        let mut start = 0;
        while start < block.len() {
            let end = start + memchr(&block[start..]).unwrap_or(block.len() - start - 1);
            let line = block.slice(start..end);
            start = end + 1;
            if line.is_empty() {
                continue;
            }
            if self.json {
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&line) {
                    out.skipped
                        .push(format!("line is not JSON ({e}): {}", preview(&line)));
                    continue;
                }
                store(&mut self.files, &block[start - line.len() - 1..start])?;
            }
            out.items.push(line);
        }
        Ok(())
    }

    /// Stores the unfinished last line as a line, then closes the file.
    pub fn finish(&mut self, now: DateTime<Utc>) -> Output {
        let mut out = Output::default();
        if !self.partial.is_empty() {
            let mut last = std::mem::take(&mut self.partial);
            last.extend_from_slice(b"\n");
            if let Err(e) = self.lines(&last.freeze(), now, &mut out) {
                tracing::error!("{e}");
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
