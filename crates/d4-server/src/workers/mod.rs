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
//! | 254 `ja3-jl` | [`records::RecordWorker`]: each record a file, each certificate once | path of each record's file |
//! | 4 dnscap (pcap or text), 5 pcapng, 7 YAF | [`files::FileWorker`] | path of each finished file |
//!
//! `Rotator` writes files named `<uuid>-YYYY-MM-DD-HHMMSS.<ext>` and rotates
//! every `rotation_secs` and at day change, only at a record boundary. Where
//! records end is [`d4_packet::records`]' decision, the same one the sensor
//! makes when it resumes a stream: the pcap worker writes each payload
//! straight to the file and asks a zero-copy [`d4_packet::records::Tracker`]
//! where records end; it rotates there, opens every file with the stream's
//! global header, and cuts a file back to its last boundary if the stream
//! ends inside a record — every file is a valid pcap. Line workers store lines
//! as they come and queue one item per line (`LineRules`: extended types
//! queue lines in pieces of 100 KB as the reference does, text types in
//! pieces of 1 MiB; NDJSON skips a line over 1 MiB whole, and any line that
//! is not JSON). The file worker (a [`d4_packet::records::Cutter`]) cuts
//! pcapng between blocks (each new file starts with the section header and
//! interface blocks), IPFIX between messages, and type 4 as pcap or text
//! according to its first bytes. An unfinished last record is stored only
//! when the session ended cleanly (otherwise the sensor sends it again).
//!
//! A finished file goes to the [`Compressor`] thread (gzip to `.gz`, `.N.gz`
//! on collision, through a temporary name), then its path is pushed to the
//! queues of its type. Data files are written through [`outfile::OutFile`],
//! which keeps what a full disk does not take, and carry a "not yet
//! announced" mark until their announcement is committed. At start, files
//! a crash or a full disk left unfinished or unannounced are cut back to
//! their last whole record — every type, with the same tracker — (deleted
//! if none is left), compressed and announced in order ([`recover`]).
//!
//! A worker's error says whose fault it is ([`WorkerError`]): a stream that
//! is not what its type says is the sensor's, a failed write the server's.

pub(crate) mod announce;
pub(crate) mod files;
pub(crate) mod lines;
pub(crate) mod outfile;
pub(crate) mod pcap;
pub(crate) mod records;
pub(crate) mod rotate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use d4_packet::records::Format;
use uuid::Uuid;

use crate::store::queues::QueueType;
pub(crate) use announce::{recover, Compressor};
pub(crate) use rotate::{FileSpec, Rotator};

/// Why a worker could not take a payload, and so whose fault it is.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerError {
    /// The sensor's stream is not what its type says (a corrupt record,
    /// a pcap header that is not one): the sensor's fault.
    #[error("{0}")]
    Stream(String),
    /// The server could not store what it received (disk full, I/O
    /// error): the server's fault, never the sensor's.
    #[error("cannot store {what}: {source}")]
    Store {
        /// What was being stored.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl WorkerError {
    /// A storage failure of `what`.
    pub(crate) fn store(what: &'static str) -> impl FnOnce(std::io::Error) -> WorkerError {
        move |source| WorkerError::Store { what, source }
    }
}

impl From<d4_packet::RecordError> for WorkerError {
    fn from(e: d4_packet::RecordError) -> WorkerError {
        WorkerError::Stream(e.to_string())
    }
}

/// What every worker needs from the server.
pub(crate) struct WorkerCtx {
    /// `<data-dir>/data`.
    pub(crate) data_root: PathBuf,
    /// Rotation period.
    pub(crate) rotation: Duration,
    /// Background compression and announcement of finished files.
    pub(crate) compressor: Compressor,
    /// Date folders and file names in local time (else UTC).
    pub(crate) local_time: bool,
}

impl WorkerCtx {
    /// The wall-clock time of `now` that names folders and files.
    pub(crate) fn wall(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
        if self.local_time {
            now.with_timezone(&chrono::Local).naive_local()
        } else {
            now.naive_utc()
        }
    }
}

/// Queue items produced by one payload, to be pushed by the session.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Items for the worker's queue type.
    pub(crate) items: Vec<Bytes>,
    /// Records that were refused (counted, logged, skipped), with why.
    pub(crate) skipped: Vec<String>,
}

/// A worker for one session.
pub(crate) enum Worker {
    /// Type 1.
    Pcap(pcap::PcapWorker),
    /// Types 3, 6, 8 and extended types.
    Lines(lines::LineWorker),
    /// Types 4, 5, 7.
    Files(files::FileWorker),
    /// `ja3-jl`.
    Records(records::RecordWorker),
}

impl Worker {
    /// The worker for a D4 type (`extended` names the type-254 stream).
    pub(crate) fn for_type(
        ctx: &Arc<WorkerCtx>,
        sensor: Uuid,
        ty: u8,
        extended: Option<&str>,
    ) -> Worker {
        let r = |type_dir: String, sub: Option<String>, ext: &str, announce: Option<QueueType>| {
            let ext = ext.to_string();
            Rotator::new(
                ctx.clone(),
                FileSpec {
                    sensor,
                    type_dir,
                    sub,
                    ext,
                    announce,
                },
            )
        };
        match (ty, extended) {
            (1, _) => Worker::Pcap(pcap::PcapWorker::new(r(
                "1".into(),
                None,
                "cap",
                Some(QueueType::Type(1)),
            ))),
            (254, Some("ja3-jl")) => Worker::Records(records::RecordWorker::new(
                r("254".into(), Some("ja3-jl".into()), "json", None),
                QueueType::Extended("ja3-jl".into()),
            )),
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

    /// Handles one (verified) payload; the pcap worker keeps a reference
    /// to its bytes until the next flush instead of copying them.
    pub(crate) fn data(
        &mut self,
        payload: &Bytes,
        now: DateTime<Utc>,
    ) -> Result<Output, WorkerError> {
        match self {
            Worker::Pcap(w) => w.data(payload, now),
            Worker::Lines(w) => w.data(payload, now),
            Worker::Files(w) => w.data(payload, now),
            Worker::Records(w) => w.data(payload, now),
        }
    }

    /// Ends the session: closes, compresses and announces the current file.
    /// An unfinished last record (a line without its newline...) is stored
    /// only if the session ended `clean`ly. Returns the last queue items.
    pub(crate) fn finish(&mut self, now: DateTime<Utc>, clean: bool) -> Output {
        match self {
            Worker::Pcap(w) => w.finish(),
            Worker::Lines(w) => w.finish(now, clean),
            Worker::Files(w) => w.finish(now, clean),
            Worker::Records(w) => w.finish(now, clean),
        }
    }

    /// Pushes buffered file bytes to the OS (called before the session waits
    /// for more input).
    pub(crate) fn flush(&mut self) -> Result<(), WorkerError> {
        let r = match self {
            Worker::Pcap(w) => w.files_mut().flush(),
            Worker::Lines(w) => w.files_mut().flush(),
            Worker::Files(w) => w.files_mut().flush(),
            Worker::Records(w) => w.files_mut().flush(),
        };
        r.map_err(WorkerError::store("stored data"))
    }

    /// The session is quiet: closes the current file (it is opened again,
    /// appending, when data flows; see [`Rotator::park`]).
    pub(crate) fn park(&mut self) -> Result<(), WorkerError> {
        let r = match self {
            Worker::Pcap(w) => w.files_mut().park(),
            Worker::Lines(w) => w.files_mut().park(),
            Worker::Files(w) => w.files_mut().park(),
            Worker::Records(w) => w.files_mut().park(),
        };
        r.map_err(WorkerError::store("stored data"))
    }

    /// Whether the worker holds its file open (tests).
    #[cfg(test)]
    pub(crate) fn file_open(&mut self) -> bool {
        match self {
            Worker::Pcap(w) => w.files_mut().is_open(),
            Worker::Lines(w) => w.files_mut().is_open(),
            Worker::Files(w) => w.files_mut().is_open(),
            Worker::Records(w) => w.files_mut().is_open(),
        }
    }

    /// The queue type that this worker's items go to.
    pub(crate) fn queue_type(&self) -> QueueType {
        match self {
            Worker::Pcap(_) => QueueType::Type(1),
            Worker::Lines(w) => w.queue_type().clone(),
            Worker::Files(w) => w.queue_type(),
            Worker::Records(w) => w.queue_type().clone(),
        }
    }
}

#[cfg(test)]
mod tests;
