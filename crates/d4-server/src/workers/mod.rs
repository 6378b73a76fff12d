//! Workers: one per session, chosen by the D4 type. Each reconstructs the
//! stream, stores it as rotated files under
//! `<data-dir>/data/<uuid>/<type>/YYYY/MM/DD/` and feeds analyzer queues.
//!
//! | type | worker | queue items |
//! |------|--------|-------------|
//! | 1 pcap | [`pcap::PcapWorker`] | path of each finished `.cap.gz` |
//! | 3 log, 8 passivedns | [`lines::LineWorker`] | each non-empty line |
//! | 6 NDJSON | [`lines::LineWorker`], every line checked as JSON | each valid line |
//! | 2 + 254 | [`lines::LineWorker`] under `254/.../<extended type>/` | each non-empty line |
//! | 4 dnscap (pcap or text), 5 pcapng, 7 YAF | [`files::FileWorker`] | path of each finished file |
//!
//! Files rotate every `rotation_secs` and at day change, always on a record
//! boundary; a finished file is gzipped in the background and then announced.

pub mod files;
pub mod lines;
pub mod pcap;
pub mod rotate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use d4_packet::records::Format;
use uuid::Uuid;

use crate::queues::{QueueType, Queues};
pub use rotate::{recover, Compressor, Rotator};

/// What every worker needs from the server.
pub struct WorkerCtx {
    /// `<data-dir>/data`.
    pub data_root: PathBuf,
    /// Rotation period.
    pub rotation: Duration,
    /// The analyzer queues.
    pub queues: Arc<Queues>,
    /// Background compression and announcement of finished files.
    pub compressor: Compressor,
}

/// Queue items produced by one payload, to be pushed by the session.
#[derive(Debug, Default)]
pub struct Output {
    /// Items for the worker's queue type.
    pub items: Vec<Bytes>,
    /// Records that were refused (counted, logged, skipped), with why.
    pub skipped: Vec<String>,
}

/// A worker for one session.
pub enum Worker {
    /// Type 1.
    Pcap(pcap::PcapWorker),
    /// Types 3, 6, 8 and extended types.
    Lines(lines::LineWorker),
    /// Types 4, 5, 7.
    Files(files::FileWorker),
}

impl Worker {
    /// The worker for a D4 type (`extended` names the type-254 stream).
    pub fn for_type(ctx: &Arc<WorkerCtx>, sensor: Uuid, ty: u8, extended: Option<&str>) -> Worker {
        let r = |dir: String, sub: Option<String>, ext: &str, announce: Option<QueueType>| {
            Rotator::new(ctx.clone(), sensor, dir, sub, ext.to_string(), announce)
        };
        match (ty, extended) {
            (1, _) => Worker::Pcap(pcap::PcapWorker::new(r(
                "1".into(),
                None,
                "cap",
                Some(QueueType::Type(1)),
            ))),
            (254, Some(name)) => Worker::Lines(lines::LineWorker::new(
                r("254".into(), Some(name.to_string()), "txt", None),
                QueueType::Extended(name.to_string()),
                lines::LineRules::EXTENDED,
            )),
            (6, _) => Worker::Lines(lines::LineWorker::new(
                r("6".into(), None, "json", None),
                QueueType::Type(6),
                lines::LineRules::JSON,
            )),
            (4, _) => Worker::Files(files::FileWorker::new(
                r("4".into(), None, "dnscap", Some(QueueType::Type(4))),
                Format::PcapOrText,
            )),
            (5, _) => Worker::Files(files::FileWorker::new(
                r("5".into(), None, "pcapng", Some(QueueType::Type(5))),
                Format::Pcapng,
            )),
            (7, _) => Worker::Files(files::FileWorker::new(
                r("7".into(), None, "yaf", Some(QueueType::Type(7))),
                Format::Ipfix,
            )),
            (ty, _) => {
                let ext = match ty {
                    3 => "syslog.txt",
                    8 => "passivedns.txt",
                    _ => "txt",
                };
                Worker::Lines(lines::LineWorker::new(
                    r(ty.to_string(), None, ext, None),
                    QueueType::Type(ty),
                    lines::LineRules::TEXT,
                ))
            }
        }
    }

    /// Handles one payload.
    pub fn data(&mut self, payload: &[u8], now: DateTime<Utc>) -> Result<Output, String> {
        match self {
            Worker::Pcap(w) => w.data(payload, now),
            Worker::Lines(w) => w.data(payload, now),
            Worker::Files(w) => w.data(payload, now),
        }
    }

    /// Ends the session: closes, compresses and announces the current file.
    /// An unfinished last record (a line without its newline...) is stored
    /// only if the session ended `clean`ly. Returns the last queue items.
    pub fn finish(&mut self, now: DateTime<Utc>, clean: bool) -> Output {
        match self {
            Worker::Pcap(w) => w.finish(),
            Worker::Lines(w) => w.finish(now, clean),
            Worker::Files(w) => w.finish(now, clean),
        }
    }

    /// Pushes buffered file bytes to the OS (called before the session waits
    /// for more input).
    pub fn flush(&mut self) -> Result<(), String> {
        let r = match self {
            Worker::Pcap(w) => w.files_mut().flush(),
            Worker::Lines(w) => w.files_mut().flush(),
            Worker::Files(w) => w.files_mut().flush(),
        };
        r.map_err(|e| format!("cannot write stored data: {e}"))
    }

    /// The queue type that this worker's items go to.
    pub fn queue_type(&self) -> QueueType {
        match self {
            Worker::Pcap(_) => QueueType::Type(1),
            Worker::Lines(w) => w.queue_type().clone(),
            Worker::Files(w) => w.queue_type(),
        }
    }
}

#[cfg(test)]
mod tests;
