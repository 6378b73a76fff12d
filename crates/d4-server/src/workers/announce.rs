//! Finished files: written out, compressed, announced; and the files a
//! crash or a full disk left behind, found again at start.
//!
//! Every data file carries a "not yet announced" mark (the sticky bit of
//! its mode) from its creation until it is done with: for a type whose
//! files are queue items (1, 4, 5, 7), until the queue push of its final
//! path is committed; for the other types, until it is compressed. A file
//! is never announced empty or cut inside a record: at start, [`recover`]
//! takes the marked files in order (by name: sensor, type, time), cuts each
//! back to its last whole record ([`cut_to_last_record`]; a file left with
//! no record is deleted), compresses and announces them; a marked `.gz`
//! (compressed, but its push never committed) is announced as it is.
//! Uncompressed leftovers without a mark (a previous version's) are
//! recovered too when compression is on.
//!
//! While the disk is full, the [`Compressor`] finishes writing a file's
//! held bytes and retries its compression once space is back (waiting on
//! [`Health`]); it never announces a file it could not complete.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use d4_packet::records::{Format, Tracker};
use uuid::Uuid;

use super::outfile::OutFile;
use crate::store::health::{is_no_space, Health};
use crate::store::queues::{QueueType, Queues};

/// A finished file on its way to compression and announcement.
pub(crate) struct Job {
    /// The file.
    pub(crate) path: PathBuf,
    /// Its type folder (`1`, `254`...): how its records are cut.
    pub(crate) ty: String,
    /// The queue type and sensor its final path is announced to.
    pub(crate) announce: Option<(QueueType, Uuid)>,
    /// The file still holding bytes to write (a rotation while the disk is full).
    pub(crate) file: Option<OutFile>,
    /// Bytes opening every file of the stream (a file no longer than that
    /// holds no record).
    pub(crate) prefix_len: u64,
    /// Already compressed (a marked `.gz` found at start): announce only.
    pub(crate) compressed: bool,
}

/// Compresses finished files on a background thread, then announces them.
#[derive(Clone)]
pub(crate) struct Compressor {
    tx: Arc<Mutex<Option<mpsc::Sender<Job>>>>,
    done: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    health: Arc<Health>,
    stopping: Arc<AtomicBool>,
}

impl Compressor {
    /// Starts the compression thread (`level` 0 = store files uncompressed).
    pub(crate) fn start(level: u32, queues: Arc<Queues>) -> Compressor {
        let (tx, rx) = mpsc::channel::<Job>();
        let health = queues.health().clone();
        let stopping = Arc::new(AtomicBool::new(false));
        let (h, st) = (health.clone(), stopping.clone());
        let handle = std::thread::Builder::new()
            .name("d4-gzip".into())
            .spawn(move || {
                for job in rx {
                    finish(job, level, &queues, &h, &st);
                }
            })
            .ok();
        Compressor {
            tx: Arc::new(Mutex::new(Some(tx))),
            done: Arc::new(Mutex::new(handle)),
            health,
            stopping,
        }
    }

    /// Whether the disk takes writes.
    pub(crate) fn health(&self) -> &Arc<Health> {
        &self.health
    }

    pub(crate) fn submit(&self, job: Job) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        match tx.as_ref().map(|t| t.send(job).is_ok()) {
            Some(true) => {}
            _ => tracing::error!(
                "compression thread stopped; a finished file was not announced (it keeps its mark for the next start)"
            ),
        }
    }

    /// Finishes every queued job (server shutdown; a full disk is not
    /// waited for: what cannot be written keeps its mark).
    pub(crate) fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// Waits for the disk to take writes again; `false` if the server stops.
fn wait_for_space(health: &Health, stopping: &AtomicBool) -> bool {
    loop {
        if stopping.load(Ordering::SeqCst) {
            return false;
        }
        if health.wait_writable_blocking(Duration::from_millis(500)) {
            return true;
        }
    }
}

/// One job: the file written out, checked, compressed, announced.
fn finish(mut job: Job, level: u32, queues: &Queues, health: &Health, stopping: &AtomicBool) {
    let mut whole = true;
    if let Some(mut f) = job.file.take() {
        loop {
            match f.drain() {
                Ok(true) => break,
                Ok(false) if wait_for_space(health, stopping) => {}
                Ok(false) => {
                    tracing::error!(
                        "{}: the server stops with {} bytes not written (disk full)",
                        f.path().display(),
                        f.held()
                    );
                    whole = false;
                    break;
                }
                Err(e) => {
                    tracing::error!("cannot write {}: {e}", f.path().display());
                    whole = false;
                    break;
                }
            }
        }
    }
    if !whole {
        // Never announce a file cut inside a record: cut it back to the
        // last whole one (or delete it if none is left).
        match cut_to_last_record(&job.path, &job.ty) {
            Ok(c) if c.empty => return,
            Ok(_) => {}
            Err(e) => {
                tracing::error!("{}: cannot check its records: {e}", job.path.display());
                return;
            }
        }
    }
    match std::fs::metadata(&job.path) {
        Ok(m) if m.len() <= job.prefix_len && !job.compressed => {
            tracing::warn!("{}: no record in it, deleted", job.path.display());
            let _ = std::fs::remove_file(&job.path);
            return;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!("{}: {e}; not announced", job.path.display());
            return;
        }
    }
    let final_path = if level == 0 || job.compressed {
        job.path.clone()
    } else {
        compress(&job.path, level, health, stopping)
    };
    match job.announce {
        Some((ty, sensor)) => {
            let qs = queues.route(&ty, sensor);
            let item = Bytes::from(final_path.to_string_lossy().into_owned());
            let p = final_path.clone();
            queues.push_blocking(qs, vec![item], Some(Box::new(move || unmark(&p))));
        }
        None => unmark(&final_path),
    }
}

/// Compresses `path` to its `.gz` (marked, the original removed); waits for
/// space and tries again while the disk is full. The path to announce.
fn compress(path: &Path, level: u32, health: &Health, stopping: &AtomicBool) -> PathBuf {
    loop {
        let gz = gz_name(path);
        match d4_packet::gz::gzip_file(path, &gz, level) {
            Ok(()) => {
                if let Err(e) = mark(&gz) {
                    tracing::warn!("cannot mark {} as not yet announced: {e}", gz.display());
                }
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!("cannot remove {} after compressing it: {e}", path.display());
                }
                return gz;
            }
            Err(e) => {
                let _ = std::fs::remove_file(gz.with_extension("gz.part"));
                if is_no_space(&e) {
                    health.mark_unwritable(
                        &format!("no space left compressing {}", path.display()),
                        false,
                    );
                    if wait_for_space(health, stopping) {
                        continue;
                    }
                }
                tracing::error!("cannot compress {}: {e}; kept uncompressed", path.display());
                return path.to_path_buf();
            }
        }
    }
}

/// The mode bit marking a file "not yet announced" (sticky).
#[cfg(unix)]
const MARK: u32 = 0o1000;

/// Marks a file "not yet announced".
#[cfg(unix)]
pub(crate) fn mark(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | MARK))
}

/// Marks an open file "not yet announced".
#[cfg(unix)]
pub(crate) fn mark_open(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata()?.permissions().mode();
    file.set_permissions(std::fs::Permissions::from_mode(mode | MARK))
}

/// Clears the mark (the file is announced or needs no announcement).
#[cfg(unix)]
pub(crate) fn unmark(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let r = std::fs::metadata(path).and_then(|m| {
        let mode = m.permissions().mode();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !MARK))
    });
    if let Err(e) = r {
        tracing::warn!("cannot clear the mark of {}: {e}", path.display());
    }
}

/// Whether a file is marked "not yet announced".
#[cfg(unix)]
pub(crate) fn is_marked(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & MARK != 0
}

/// No mark off Unix.
#[cfg(not(unix))]
pub(crate) fn mark(_: &Path) -> io::Result<()> {
    Ok(())
}

/// No mark off Unix.
#[cfg(not(unix))]
pub(crate) fn mark_open(_: &File) -> io::Result<()> {
    Ok(())
}

/// No mark off Unix.
#[cfg(not(unix))]
pub(crate) fn unmark(_: &Path) {}

/// No mark off Unix.
#[cfg(not(unix))]
pub(crate) fn is_marked(_: &std::fs::Metadata) -> bool {
    false
}

/// Finds the files a crash or a full disk left not yet announced, in order,
/// and hands them to the compressor (see the module's documentation).
/// Meta-headers of extended types (`254/.../*.json`) are left alone.
/// Returns how many.
pub(crate) fn recover(data_root: &Path, compressor: &Compressor, level: u32) -> usize {
    let mut found = Vec::new();
    walk(data_root, &mut found);
    found.sort();
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
        if name.ends_with(".gz.part") {
            // A compression cut short; the original is still there.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if ty == "254" && name.ends_with(".json") {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let marked = is_marked(&meta);
        let compressed = name.ends_with(".gz");
        if !marked && (compressed || level == 0) {
            continue;
        }
        let announce = match ty.as_str() {
            "1" | "4" | "5" | "7" => ty.parse().ok().map(|t| (QueueType::Type(t), sensor)),
            _ => None,
        };
        if compressed {
            tracing::warn!(
                "{} was not announced yet: announcing it now",
                path.display()
            );
        } else {
            // A crash or a full disk leaves files that may end inside a record.
            match cut_to_last_record(&path, ty) {
                Ok(c) if c.empty => continue,
                Ok(c) if c.removed > 0 => tracing::warn!(
                    "{}: {} bytes of an unfinished last record removed",
                    path.display(),
                    c.removed
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(
                        "{}: cannot check its last record, left alone: {e}",
                        path.display()
                    );
                    continue;
                }
            }
            tracing::warn!(
                "{} was left unfinished (crash or full disk?): finishing it now",
                path.display()
            );
        }
        compressor.submit(Job {
            path,
            ty: ty.clone(),
            announce,
            file: None,
            prefix_len: 0,
            compressed,
        });
        n += 1;
    }
    n
}

/// What [`cut_to_last_record`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Cut {
    /// Bytes removed from the end.
    pub(crate) removed: u64,
    /// No whole record was left: the file was deleted.
    pub(crate) empty: bool,
}

/// Cuts a file back to its last whole record, whatever its type's format
/// (pcap, pcapng, IPFIX, type 4, lines: see [`d4_packet::records`]); a file
/// whose records cannot be followed is cut at the last boundary before the
/// fault. A file left with no record (empty, or a capture header alone) is
/// deleted.
pub(crate) fn cut_to_last_record(path: &Path, ty: &str) -> io::Result<Cut> {
    use std::io::Read;
    let len = std::fs::metadata(path)?.len();
    let (keep, preamble) = match ty.parse().ok().and_then(Format::for_d4_type) {
        None => (len, 0),
        Some(format) => {
            let mut f = File::open(path)?;
            let mut tracker = Tracker::new(format);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 || tracker.feed(&buf[..n]).is_err() {
                    break;
                }
            }
            (tracker.last_boundary(), tracker.preamble().len() as u64)
        }
    };
    if keep == 0 || keep <= preamble {
        tracing::warn!("{}: no whole record in it, deleted", path.display());
        std::fs::remove_file(path)?;
        return Ok(Cut {
            removed: len,
            empty: true,
        });
    }
    if keep < len {
        OpenOptions::new().write(true).open(path)?.set_len(keep)?;
    }
    Ok(Cut {
        removed: len - keep,
        empty: false,
    })
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
pub(crate) fn gz_name(p: &Path) -> PathBuf {
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
        assert_eq!(recover(&root, &compressor, 6), cases.len());
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

    /// Files cut back to their last whole record; nothing left: deleted.
    #[test]
    fn cut_to_last_record_keeps_whole_records_and_deletes_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let cases: Vec<(&str, Vec<u8>, Option<usize>)> = vec![
            ("1", pcap_file(2), Some(pcap_file(2).len())),
            (
                "1",
                [pcap_file(2), pcap_file(1)[24..30].to_vec()].concat(),
                Some(pcap_file(2).len()),
            ),
            ("1", pcap_file(0), None),
            ("1", pcap_file(1)[..30].to_vec(), None),
            ("1", Vec::new(), None),
            ("3", b"one\ntwo\nthr".to_vec(), Some(8)),
            ("3", b"no newline".to_vec(), None),
            ("3", Vec::new(), None),
        ];
        for (ty, content, keep) in cases {
            std::fs::write(&p, &content).unwrap();
            let c = cut_to_last_record(&p, ty).unwrap();
            match keep {
                Some(k) => {
                    assert!(!c.empty, "type {ty} {content:?}");
                    assert_eq!(std::fs::read(&p).unwrap(), content[..k].to_vec());
                    assert_eq!(c.removed, (content.len() - k) as u64);
                }
                None => {
                    assert!(c.empty, "type {ty} {content:?}");
                    assert!(!p.exists(), "type {ty}: deleted");
                }
            }
        }
    }

    /// At start (gzip level 0 here), the marked files — finished or not,
    /// compressed or not — are announced in time order, once, and their
    /// mark cleared; unmarked ones were announced before and are left
    /// alone; a marked file with no record is deleted, never announced.
    #[cfg(unix)]
    #[test]
    fn marked_files_are_announced_in_order_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let db = Arc::new(Db::open(&dir.path().join("store")).unwrap());
        let queues = Queues::open(db).unwrap();
        let sensor = Uuid::new_v4();
        let q = queues
            .create(NewQueue {
                ty: QueueType::Type(1),
                description: String::new(),
                max_size: 100,
                sensors: Vec::new(),
            })
            .unwrap();
        let folder = root
            .join(sensor.simple().to_string())
            .join("1")
            .join("2026/12/05");
        std::fs::create_dir_all(&folder).unwrap();
        let name =
            |t: &str, ext: &str| folder.join(format!("{}-2026-12-05-{t}.{ext}", sensor.simple()));
        let files = [
            (name("100000", "cap"), pcap_file(2), false), // announced long ago
            (name("100100", "cap.gz"), pcap_file(1), true), // compressed, push lost
            (name("100200", "cap"), Vec::new(), true),    // created, nothing written
            (name("100300", "cap"), pcap_file(0), true),  // a header alone
            (
                name("100400", "cap"),
                [pcap_file(3), vec![0; 5]].concat(),
                true,
            ), // cut
        ];
        for (p, content, marked) in &files {
            std::fs::write(p, content).unwrap();
            if *marked {
                mark(p).unwrap();
            }
        }
        let compressor = Compressor::start(0, queues.clone());
        assert_eq!(recover(&root, &compressor, 0), 2);
        compressor.shutdown();
        queues.flush_blocking();
        let got: Vec<String> = queues
            .pop(q.uuid, 100)
            .unwrap()
            .into_iter()
            .map(|i| String::from_utf8(i).unwrap())
            .collect();
        let want: Vec<String> = [&files[1].0, &files[4].0]
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, want, "in order, once");
        assert!(
            !files[2].0.exists() && !files[3].0.exists(),
            "no record: deleted"
        );
        assert_eq!(std::fs::read(&files[4].0).unwrap(), pcap_file(3));
        for p in [&files[0].0, &files[1].0, &files[4].0] {
            assert!(!is_marked(&std::fs::metadata(p).unwrap()), "{p:?}");
        }
        // A second start finds nothing left to announce.
        let compressor = Compressor::start(0, queues.clone());
        assert_eq!(recover(&root, &compressor, 0), 0);
        compressor.shutdown();
    }
}
