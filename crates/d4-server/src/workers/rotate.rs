//! Rotated files: naming, rotation by time and day, background gzip, announcement.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use d4_packet::records::{Format, Tracker};
use uuid::Uuid;

use super::WorkerCtx;
use crate::store::queues::{QueueType, Queues};

/// A finished file on its way to compression and announcement.
struct Job {
    path: PathBuf,
    announce: Option<(QueueType, Uuid)>,
}

/// Compresses finished files on a background thread, then announces them.
#[derive(Clone)]
pub(crate) struct Compressor {
    tx: Arc<Mutex<Option<mpsc::Sender<Job>>>>,
    done: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Compressor {
    /// Starts the compression thread (`level` 0 = store files uncompressed).
    pub(crate) fn start(level: u32, queues: Arc<Queues>) -> Compressor {
        let (tx, rx) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name("d4-gzip".into())
            .spawn(move || {
                for job in rx {
                    let final_path = if level == 0 {
                        Some(job.path.clone())
                    } else {
                        let gz = gz_name(&job.path);
                        match d4_packet::gz::gzip_file(&job.path, &gz, level) {
                            Ok(()) => {
                                if let Err(e) = std::fs::remove_file(&job.path) {
                                    tracing::warn!(
                                        "cannot remove {} after compressing it: {e}",
                                        job.path.display()
                                    );
                                }
                                Some(gz)
                            }
                            Err(e) => {
                                tracing::error!(
                                    "cannot compress {}: {e}; kept uncompressed",
                                    job.path.display()
                                );
                                Some(job.path.clone())
                            }
                        }
                    };
                    if let (Some(p), Some((ty, sensor))) = (final_path, job.announce) {
                        let qs = queues.route(&ty, sensor);
                        queues
                            .push_blocking(qs, vec![Bytes::from(p.to_string_lossy().into_owned())]);
                    }
                }
            })
            .ok();
        Compressor {
            tx: Arc::new(Mutex::new(Some(tx))),
            done: Arc::new(Mutex::new(handle)),
        }
    }

    fn submit(&self, job: Job) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        match tx.as_ref().map(|t| t.send(job)) {
            Some(Ok(())) => {}
            _ => tracing::error!("compression thread stopped; a finished file was not announced"),
        }
    }

    /// Finishes every queued job (server shutdown).
    pub(crate) fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// Finds files left unfinished by a crash (not compressed, never announced)
/// and hands them to the compressor, announced as usual. Meta-headers of
/// extended types (`254/.../*.json`) are left alone. Returns how many.
pub(crate) fn recover(data_root: &Path, compressor: &Compressor) -> usize {
    let mut found = Vec::new();
    walk(data_root, &mut found);
    let mut n = 0;
    for path in found {
        let Ok(rel) = path.strip_prefix(data_root) else {
            continue;
        };
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let name = parts.last().cloned().unwrap_or_default();
        // <uuid>/<type>/YYYY/MM/DD/[<ext>/]file
        let (Some(sensor), Some(ty)) = (parts.first(), parts.get(1)) else {
            continue;
        };
        let Ok(sensor) = Uuid::try_parse(sensor) else {
            continue;
        };
        if name.ends_with(".gz")
            || name.ends_with(".gz.part")
            || (ty == "254" && name.ends_with(".json"))
        {
            continue;
        }
        let announce = match ty.as_str() {
            "1" | "4" | "5" | "7" => ty.parse().ok().map(|t| (QueueType::Type(t), sensor)),
            _ => None,
        };
        // A crash leaves files that may end inside a record.
        match cut_to_last_record(&path, ty) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                "{}: {n} bytes of an unfinished last record removed",
                path.display()
            ),
            Err(e) => tracing::warn!("{}: cannot check its last record: {e}", path.display()),
        }
        tracing::warn!(
            "{} was left unfinished (crash?): compressing it now",
            path.display()
        );
        compressor.submit(Job { path, announce });
        n += 1;
    }
    n
}

/// Cuts a file left by a crash back to its last whole record, whatever its
/// type's format (pcap, pcapng, IPFIX, type 4, lines: see
/// [`d4_packet::records`]); returns how many bytes were removed. A file whose
/// records cannot be followed is cut at the last boundary before the fault.
fn cut_to_last_record(path: &Path, ty: &str) -> io::Result<u64> {
    use std::io::Read;
    let len = std::fs::metadata(path)?.len();
    let Some(format) = ty.parse().ok().and_then(Format::for_d4_type) else {
        return Ok(0);
    };
    let mut f = File::open(path)?;
    let mut tracker = Tracker::new(format);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 || tracker.feed(&buf[..n]).is_err() {
            break;
        }
    }
    let keep = tracker.last_boundary();
    if keep < len {
        OpenOptions::new().write(true).open(path)?.set_len(keep)?;
    }
    Ok(len - keep)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// `x.cap` → `x.cap.gz`, or `x.cap.1.gz`, `x.cap.2.gz`... if taken.
fn gz_name(p: &Path) -> PathBuf {
    let base = p.as_os_str().to_string_lossy().into_owned();
    let first = PathBuf::from(format!("{base}.gz"));
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| PathBuf::from(format!("{base}.{n}.gz")))
        .find(|c| !c.exists())
        .unwrap_or(first)
}

/// Creates `<stem>.<ext>` in `dir`, or `<stem>-1.<ext>`, `-2`... if taken;
/// never overwrites.
pub(crate) fn create_unique(dir: &Path, stem: &str, ext: &str) -> io::Result<(File, PathBuf)> {
    let mut n = 0;
    loop {
        let name = if n == 0 {
            format!("{stem}.{ext}")
        } else {
            format!("{stem}-{n}.{ext}")
        };
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The file being written.
struct Current {
    /// `None` while the session is parked (quiet): the file is closed and
    /// re-opened, appending, by the next write ([`Rotator::park`]).
    file: Option<BufWriter<File>>,
    path: PathBuf,
    opened: i64,
    day: NaiveDate,
    /// Bytes written so far (prefix included).
    written: u64,
    /// Length of the file at its last record boundary.
    boundary: u64,
}

impl Current {
    /// The open file; a parked one is opened again, appending (same file,
    /// same rotation period).
    fn file(&mut self) -> io::Result<&mut BufWriter<File>> {
        let f = match self.file.take() {
            Some(f) => f,
            None => BufWriter::with_capacity(
                32 * 1024,
                OpenOptions::new().append(true).open(&self.path)?,
            ),
        };
        Ok(self.file.insert(f))
    }
}

/// Where a stream's files go, what they are called and announced as.
pub(crate) struct FileSpec {
    /// The sensor (its folder, the files' names).
    pub(crate) sensor: Uuid,
    /// `<type>` folder (`1`, `254`...).
    pub(crate) type_dir: String,
    /// Folder under the date (extended type name).
    pub(crate) sub: Option<String>,
    /// File name extension.
    pub(crate) ext: String,
    /// Queue type announced with the finished file's path.
    pub(crate) announce: Option<QueueType>,
}

/// Writes a stream into files rotated by time and day.
pub(crate) struct Rotator {
    ctx: Arc<WorkerCtx>,
    spec: FileSpec,
    /// Written at the top of every file (the pcap global header).
    prefix: Vec<u8>,
    current: Option<Current>,
}

impl Rotator {
    /// A rotator for one session's stream.
    pub(crate) fn new(ctx: Arc<WorkerCtx>, spec: FileSpec) -> Rotator {
        Rotator {
            ctx,
            spec,
            prefix: Vec::new(),
            current: None,
        }
    }

    /// Sets the bytes that open every file.
    pub(crate) fn set_prefix(&mut self, prefix: Vec<u8>) {
        self.prefix = prefix;
    }

    /// The bytes that open every file.
    pub(crate) fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The folder of files opened at `now`.
    pub(crate) fn folder(&self, now: DateTime<Utc>) -> PathBuf {
        let mut p = self
            .ctx
            .data_root
            .join(self.spec.sensor.simple().to_string())
            .join(&self.spec.type_dir)
            .join(format!("{:04}", now.year()))
            .join(format!("{:02}", now.month()))
            .join(format!("{:02}", now.day()));
        if let Some(s) = &self.spec.sub {
            p.push(s);
        }
        p
    }

    /// Whether the current file should be closed before writing at `now`
    /// (call only at a record boundary).
    pub(crate) fn is_due(&self, now: DateTime<Utc>) -> bool {
        match &self.current {
            None => false,
            Some(c) => {
                now.timestamp() - c.opened >= self.ctx.rotation.as_secs() as i64
                    || now.date_naive() != c.day
            }
        }
    }

    fn open(&mut self, now: DateTime<Utc>) -> io::Result<()> {
        let dir = self.folder(now);
        std::fs::create_dir_all(&dir)?;
        let stem = format!(
            "{}-{}",
            self.spec.sensor.simple(),
            now.format("%Y-%m-%d-%H%M%S")
        );
        let (file, path) = create_unique(&dir, &stem, &self.spec.ext)?;
        // Writes of 32 KiB and more go straight to the file, smaller ones are batched.
        let mut file = BufWriter::with_capacity(32 * 1024, file);
        file.write_all(&self.prefix)?;
        let len = self.prefix.len() as u64;
        self.current = Some(Current {
            file: Some(file),
            path,
            opened: now.timestamp(),
            day: now.date_naive(),
            written: len,
            boundary: len,
        });
        Ok(())
    }

    /// Writes bytes that start at a record boundary, rotating first if due.
    pub(crate) fn write(&mut self, data: &[u8], now: DateTime<Utc>) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.is_due(now) {
            self.rotate();
        }
        self.write_raw(data, now)?;
        self.mark_boundary(0);
        Ok(())
    }

    /// Writes bytes with no rotation (the caller cuts at record boundaries).
    pub(crate) fn write_raw(&mut self, data: &[u8], now: DateTime<Utc>) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.current.is_none() {
            self.open(now)?;
        }
        match &mut self.current {
            Some(c) => {
                c.file()?.write_all(data)?;
                c.written += data.len() as u64;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records that a record boundary lies `back` bytes before the end of
    /// what was written.
    pub(crate) fn mark_boundary(&mut self, back: usize) {
        if let Some(c) = &mut self.current {
            c.boundary = c.written.saturating_sub(back as u64);
        }
    }

    /// Cuts the current file back to its last record boundary (a stream
    /// that ended inside a record), so that it stays a valid capture.
    pub(crate) fn truncate_to_boundary(&mut self) -> io::Result<u64> {
        let Some(c) = &mut self.current else {
            return Ok(0);
        };
        let cut = c.written - c.boundary;
        if cut > 0 {
            let boundary = c.boundary;
            let f = c.file()?;
            f.flush()?;
            f.get_ref().set_len(boundary)?;
            c.written = c.boundary;
        }
        Ok(cut)
    }

    /// Pushes buffered bytes to the file (the OS has them; a crash of the
    /// server loses nothing written so far).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self.current.as_mut().and_then(|c| c.file.as_mut()) {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }

    /// The stream is quiet: flushes and closes the current file but keeps
    /// its place (path, rotation period, length, last boundary). The next
    /// write opens it again, appending; a rotation that fell due meanwhile
    /// hands it to the compressor without opening it. On a failed flush the
    /// file stays open (nothing buffered is dropped).
    pub(crate) fn park(&mut self) -> io::Result<()> {
        let Some(c) = &mut self.current else {
            return Ok(());
        };
        if let Some(mut f) = c.file.take() {
            if let Err(e) = f.flush() {
                c.file = Some(f);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether a file is being written and is open (not parked).
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.file.is_some())
    }

    /// Closes the current file and hands it to the compressor.
    pub(crate) fn rotate(&mut self) {
        let Some(mut c) = self.current.take() else {
            return;
        };
        if let Some(Err(e)) = c.file.as_mut().map(|f| f.flush()) {
            tracing::error!("cannot write {}: {e}", c.path.display());
        }
        drop(c.file);
        self.ctx.compressor.submit(Job {
            path: c.path,
            announce: self.spec.announce.clone().map(|t| (t, self.spec.sensor)),
        });
    }

    /// The path of the file being written.
    pub(crate) fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|c| c.path.as_path())
    }
}

impl Drop for Rotator {
    fn drop(&mut self) {
        self.rotate();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use d4_packet::records::pcapng::{self, IDB_TYPE};

    use super::*;
    use crate::store::queues::NewQueue;
    use crate::store::Db;

    fn pcapng_block(ty: Option<u32>, body: usize) -> Vec<u8> {
        match ty {
            None => pcapng::build_section_header(body, false),
            Some(t) => pcapng::build_block(t, &vec![3; body], false),
        }
    }

    fn ipfix_message(len: u16) -> Vec<u8> {
        let mut m = vec![0, 10];
        m.extend_from_slice(&len.to_be_bytes());
        m.resize(usize::from(len), 9);
        m
    }

    fn pcap_file(records: usize) -> Vec<u8> {
        let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        v.resize(16, 0);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for i in 0..records {
            v.extend_from_slice(&[0; 8]);
            v.extend_from_slice(&20u32.to_le_bytes());
            v.extend_from_slice(&20u32.to_le_bytes());
            v.extend(std::iter::repeat_n(i as u8, 20));
        }
        v
    }

    /// Files a crash left (whole records, then half of one) in every type
    /// with a record structure: recovery cuts each back to its last whole
    /// record, compresses it and announces it to the type's queue.
    #[test]
    fn recovery_cuts_every_type_back_to_its_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let db = Arc::new(Db::open(&dir.path().join("store")).unwrap());
        let queues = Queues::open(db).unwrap();
        let sensor = Uuid::new_v4();
        let pcapng = [
            pcapng_block(None, 16),
            pcapng_block(Some(IDB_TYPE), 8),
            pcapng_block(Some(6), 40),
            pcapng_block(Some(6), 64),
        ]
        .concat();
        let ipfix = [ipfix_message(16), ipfix_message(300), ipfix_message(40)].concat();
        let cases: Vec<(&str, &str, Vec<u8>, Vec<u8>)> = vec![
            (
                "5",
                "pcapng",
                pcapng,
                pcapng_block(Some(6), 40)[..30].to_vec(),
            ),
            ("7", "yaf", ipfix, ipfix_message(100)[..50].to_vec()),
            ("1", "cap", pcap_file(3), pcap_file(1)[24..40].to_vec()),
            ("4", "dnscap", b"one\ntwo\n".to_vec(), b"thr".to_vec()),
        ];
        let mut ids = Vec::new();
        for (ty, ext, whole, half) in &cases {
            let t: u8 = ty.parse().unwrap();
            let q = queues
                .create(NewQueue {
                    ty: QueueType::Type(t),
                    description: ty.to_string(),
                    max_size: 10,
                    sensors: vec![sensor],
                })
                .unwrap();
            ids.push(q.uuid);
            let folder = root
                .join(sensor.simple().to_string())
                .join(ty)
                .join("2026/12/04");
            std::fs::create_dir_all(&folder).unwrap();
            let name = format!("{}-2026-12-04-101010.{ext}", sensor.simple());
            std::fs::write(folder.join(name), [whole.as_slice(), half].concat()).unwrap();
        }
        let compressor = Compressor::start(6, queues.clone());
        assert_eq!(recover(&root, &compressor), cases.len());
        compressor.shutdown();
        queues.flush_blocking();
        for ((ty, _, whole, _), id) in cases.iter().zip(ids) {
            let items = queues.pop(id, 10).unwrap();
            assert_eq!(items.len(), 1, "type {ty}: one file announced");
            let path = PathBuf::from(String::from_utf8(items[0].clone()).unwrap());
            assert!(path.to_string_lossy().ends_with(".gz"), "{path:?}");
            let mut got = Vec::new();
            d4_packet::gz::open_maybe_gz(&path)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert_eq!(&got, whole, "type {ty}: cut at the last whole record");
        }
    }
}
