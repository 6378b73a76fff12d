//! Holding back the record not yet whole, the two ways D4 needs it: the
//! server's file worker writes only whole records ([`Cutter`]), the sensor
//! re-sends the preamble and the cut record on a new connection
//! ([`Resumption`]). Both drive a [`Tracker`], so they cut the same stream at
//! the same places. Bounds: at most [`MAX_HELD_RECORD`] bytes held (a longer
//! text line is passed on, or forgotten, as it is), plus the preamble.

use super::{Format, RecordError, Tracker, MAX_HELD_RECORD};

/// Cuts a stream into whole records for a writer (the server's file
/// worker): bytes go in in any split, whole records come out.
#[derive(Clone, Debug)]
pub struct Cutter {
    tracker: Tracker,
    /// Bytes received and not yet handed out (after `consumed`).
    pending: Vec<u8>,
    /// Stream offset of `pending[0]`.
    start: u64,
    /// Bytes at the front of `pending` handed out by the last push.
    consumed: usize,
}

impl Cutter {
    /// A cutter at the start of a stream of `format`.
    pub fn new(format: Format) -> Cutter {
        Cutter {
            tracker: Tracker::new(format),
            pending: Vec::new(),
            start: 0,
            consumed: 0,
        }
    }

    /// The tracker (format followed, preamble).
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Adds bytes; returns the whole records they completed (valid until
    /// the next call), possibly empty. A text line that grows over
    /// [`MAX_HELD_RECORD`] is handed out as it is.
    pub fn push(&mut self, data: &[u8]) -> Result<&[u8], RecordError> {
        if self.consumed > 0 {
            self.pending.drain(..self.consumed);
            self.start += self.consumed as u64;
            self.consumed = 0;
        }
        self.pending.extend_from_slice(data);
        self.tracker.feed(data)?;
        let mut n = self.tracker.last_boundary().saturating_sub(self.start) as usize;
        if n == 0 && self.pending.len() > MAX_HELD_RECORD {
            n = self.pending.len();
        }
        self.consumed = n;
        Ok(&self.pending[..n])
    }

    /// The bytes of the record not yet whole.
    pub fn held(&self) -> &[u8] {
        &self.pending[self.consumed..]
    }

    /// Takes the bytes of the record not yet whole (the stream ended).
    pub fn take_held(&mut self) -> Vec<u8> {
        let rest = self.pending.split_off(self.consumed);
        self.start += self.pending.len() as u64;
        self.pending.clear();
        self.consumed = 0;
        rest
    }

    /// Stream offset up to which records were handed out.
    pub fn handed_out(&self) -> u64 {
        self.start + self.consumed as u64
    }
}

/// What a sensor needs to restart its stream on a record boundary after a
/// reconnection: the preamble and the bytes of the cut record.
#[derive(Clone, Debug)]
pub struct Resumption {
    /// `None`: nothing to restore (no record structure, or lost).
    tracker: Option<Tracker>,
    /// The bytes since the last boundary (empty over the bound).
    tail: Vec<u8>,
}

impl Resumption {
    /// Following a stream of `format`; `None` restores nothing.
    pub fn new(format: Option<Format>) -> Resumption {
        Resumption {
            tracker: format.map(Tracker::new),
            tail: Vec::new(),
        }
    }

    /// The tracker, while the stream is followed.
    pub fn tracker(&self) -> Option<&Tracker> {
        self.tracker.as_ref()
    }

    /// Records that `data` reached the server. On an error the stream is
    /// no longer followed (a reconnection then restarts where it is).
    pub fn sent(&mut self, data: &[u8]) -> Result<(), RecordError> {
        let Some(t) = &mut self.tracker else {
            return Ok(());
        };
        let before = t.position();
        let fed = match t.feed(data) {
            Ok(f) => f,
            Err(e) => {
                self.tracker = None;
                self.tail = Vec::new();
                return Err(e);
            }
        };
        let held = t.held();
        if held > MAX_HELD_RECORD as u64 {
            self.tail.clear();
            return Ok(());
        }
        match fed.boundary {
            Some(b) if b >= before => {
                self.tail.clear();
                self.tail.extend_from_slice(&data[(b - before) as usize..]);
            }
            _ => {
                self.tail.extend_from_slice(data);
                let cut = self.tail.len().saturating_sub(held as usize);
                self.tail.drain(..cut);
            }
        }
        Ok(())
    }

    /// The bytes to send first on a new connection: the preamble, then the
    /// record cut by the old connection as far as it went.
    pub fn prefix(&self) -> Vec<u8> {
        match &self.tracker {
            Some(t) => [t.preamble(), self.tail.as_slice()].concat(),
            None => Vec::new(),
        }
    }
}
