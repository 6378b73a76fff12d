//! A data file being written: a `BufWriter` that keeps what the disk did
//! not take. A write that fails for lack of space (ENOSPC, EDQUOT) keeps
//! its bytes, up to [`MAX_HELD`], marks the disk unwritable (sessions stop
//! reading, see `store::health`) and is retried at the next write or flush;
//! nothing the session received is dropped. Beyond [`MAX_HELD`] the write
//! fails (the session ends and its sensor sends the data again). Files
//! holding bytes are counted (`d4_files_stuck`).
//!
//! Payloads handed over as [`Bytes`] ([`OutFile::write_shared`], the pcap
//! worker's verified frames) are not copied: their slices are kept and
//! written together with one `writev` at the next flush (or once
//! [`CAPACITY`] bytes or [`MAX_SLICES`] slices are gathered).

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::store::health::{is_no_space, Health};

/// Bytes gathered before a write to the file.
const CAPACITY: usize = 32 * 1024;

/// Most slices gathered for one `writev`.
const MAX_SLICES: usize = 64;

/// Most bytes a file keeps while the disk is full.
pub(crate) const MAX_HELD: usize = 4 * 1024 * 1024;

/// A data file with its unwritten bytes.
pub(crate) struct OutFile {
    file: File,
    path: PathBuf,
    /// Bytes not yet in the file, in order.
    buf: Vec<u8>,
    /// Shared slices not yet in the file, after `buf` (only gathered while
    /// `buf` is empty).
    slices: Vec<Bytes>,
    /// Bytes in `slices`.
    sliced: usize,
    /// Whether the last attempt to write `buf` failed for lack of space.
    stuck: bool,
    health: Arc<Health>,
}

impl OutFile {
    /// Wraps a freshly created file.
    pub(crate) fn new(file: File, path: PathBuf, health: Arc<Health>) -> OutFile {
        OutFile {
            file,
            path,
            buf: Vec::new(),
            slices: Vec::new(),
            sliced: 0,
            stuck: false,
            health,
        }
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes waiting to be written.
    pub(crate) fn held(&self) -> usize {
        self.buf.len() + self.sliced
    }

    /// Whether the disk refused the last write.
    #[cfg(test)]
    pub(crate) fn is_stuck(&self) -> bool {
        self.stuck
    }

    fn set_stuck(&mut self, stuck: bool) {
        if self.stuck != stuck {
            self.stuck = stuck;
            self.health.file_stuck(stuck);
        }
    }

    /// Writes `data` to the file; how many bytes went, and `Ok(false)` if
    /// the disk is full (the disk is marked so).
    fn write_out(&mut self, data: &[u8]) -> (usize, io::Result<bool>) {
        let mut done = 0;
        loop {
            if done == data.len() {
                return (done, Ok(true));
            }
            match self.file.write(&data[done..]) {
                Ok(0) => return (done, Err(io::Error::from(io::ErrorKind::WriteZero))),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_no_space(&e) => {
                    self.health.mark_unwritable(
                        &format!("no space left writing {}", self.path.display()),
                        false,
                    );
                    return (done, Ok(false));
                }
                Err(e) => return (done, Err(e)),
            }
        }
    }

    /// Writes the gathered slices with `writev` (`buf` is empty then);
    /// what the disk does not take is copied into `buf`, in order.
    /// `Ok(false)` when the disk is full.
    fn drain_slices(&mut self) -> io::Result<bool> {
        let slices = std::mem::take(&mut self.slices);
        self.sliced = 0;
        let mut first = 0;
        let mut skip = 0;
        let r = loop {
            if first == slices.len() {
                break Ok(true);
            }
            let mut io = [IoSlice::new(&[]); MAX_SLICES];
            let n = (slices.len() - first).min(MAX_SLICES);
            io[0] = IoSlice::new(&slices[first][skip..]);
            for (d, s) in io[1..n].iter_mut().zip(&slices[first + 1..first + n]) {
                *d = IoSlice::new(s);
            }
            match self.file.write_vectored(&io[..n]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(mut w) => {
                    while w > 0 && first < slices.len() {
                        let left = slices[first].len() - skip;
                        if w < left {
                            skip += w;
                            w = 0;
                        } else {
                            w -= left;
                            first += 1;
                            skip = 0;
                        }
                    }
                    // Skip empty slices so that `first` names bytes to write.
                    while first < slices.len() && slices[first].len() == skip {
                        first += 1;
                        skip = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_no_space(&e) => {
                    self.health.mark_unwritable(
                        &format!("no space left writing {}", self.path.display()),
                        false,
                    );
                    break Ok(false);
                }
                Err(e) => break Err(e),
            }
        };
        if first < slices.len() {
            // Kept, in order (at most CAPACITY + one payload, far below MAX_HELD).
            self.buf.extend_from_slice(&slices[first][skip..]);
            for s in &slices[first + 1..] {
                self.buf.extend_from_slice(s);
            }
        }
        r
    }

    /// Writes what is held; `Ok(true)` when everything is in the file,
    /// `Ok(false)` when the disk is full (the rest is kept).
    pub(crate) fn drain(&mut self) -> io::Result<bool> {
        if !self.slices.is_empty() {
            let r = self.drain_slices();
            if let Ok(all) = r {
                self.set_stuck(!all);
            }
            return r;
        }
        let buf = std::mem::take(&mut self.buf);
        let (done, r) = self.write_out(&buf);
        self.buf = buf;
        self.buf.drain(..done);
        if let Ok(all) = r {
            self.set_stuck(!all);
        }
        r
    }

    /// Appends bytes (written once [`CAPACITY`] is gathered). Fails only
    /// on an I/O error other than a full disk, or when more than
    /// [`MAX_HELD`] bytes would be held.
    pub(crate) fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if !self.slices.is_empty() {
            // In order: the gathered slices first (into `buf` if the disk is full).
            self.drain()?;
        }
        if self.buf.len() + data.len() > MAX_HELD && !self.drain()? {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "disk full: {} bytes for {} could not be written",
                    self.buf.len(),
                    self.path.display()
                ),
            ));
        }
        if self.buf.is_empty() && data.len() >= CAPACITY {
            // Large writes go straight to the file; what the disk refuses is kept.
            let (done, r) = self.write_out(data);
            let all = r?;
            if !all {
                self.buf.extend_from_slice(&data[done..]);
            }
            self.set_stuck(!all);
            return Ok(());
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CAPACITY {
            self.drain()?;
        }
        Ok(())
    }

    /// Appends shared bytes without copying them: they are written with
    /// the other gathered slices in one `writev` (at the next flush, or
    /// once [`CAPACITY`] bytes or [`MAX_SLICES`] slices are gathered).
    /// While the disk holds bytes back, this is [`OutFile::write_all`].
    pub(crate) fn write_shared(&mut self, data: Bytes) -> io::Result<()> {
        if !self.buf.is_empty() {
            return self.write_all(&data);
        }
        if data.is_empty() {
            return Ok(());
        }
        self.sliced += data.len();
        self.slices.push(data);
        if self.sliced >= CAPACITY || self.slices.len() >= MAX_SLICES {
            self.drain()?;
        }
        Ok(())
    }

    /// Writes what is held; a full disk is not an error here (the bytes
    /// are kept, [`OutFile::is_stuck`] says so).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.drain().map(|_| ())
    }

    /// Cuts the file to `len` bytes (everything held is written first).
    pub(crate) fn set_len(&mut self, len: u64) -> io::Result<()> {
        if !self.drain()? {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "disk full: the file cannot be cut yet",
            ));
        }
        self.file.set_len(len)
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if !self.slices.is_empty() {
            let _ = self.drain();
        }
        if !self.buf.is_empty() {
            let _ = self.drain();
        }
        if !self.buf.is_empty() {
            tracing::error!(
                "{}: {} bytes could not be written (disk full)",
                self.path.display(),
                self.buf.len()
            );
        }
        self.set_stuck(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `OutFile` on `/dev/full` and the health it reports to (the
    /// folder must outlive the test); `None`, said, where there is none.
    fn on_dev_full() -> Option<(tempfile::TempDir, Arc<Health>, OutFile)> {
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            eprintln!("no /dev/full here: skipped");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let health = Arc::new(Health::new(dir.path()));
        let f = OutFile::new(full, "/dev/full".into(), health.clone());
        Some((dir, health, f))
    }

    /// `/dev/full` answers every write with ENOSPC: the bytes are kept,
    /// the disk marked full, the file counted as stuck; past the bound the
    /// write fails.
    #[test]
    fn a_full_disk_keeps_the_bytes_up_to_the_bound() {
        let Some((_dir, health, mut f)) = on_dev_full() else {
            return;
        };
        f.write_all(&[1; 100]).unwrap();
        f.flush().unwrap();
        assert!(f.is_stuck());
        assert_eq!(f.held(), 100);
        assert!(!health.is_writable());
        assert_eq!(health.files_stuck(), 1);
        f.write_all(&vec![2; CAPACITY]).unwrap();
        assert_eq!(f.held(), 100 + CAPACITY);
        assert!(f.write_all(&vec![3; MAX_HELD]).is_err());
        assert_eq!(f.held(), 100 + CAPACITY, "nothing dropped");
        drop(f);
        assert_eq!(health.files_stuck(), 0);
    }

    /// Shared slices on a full disk: kept in order (copied), then the
    /// plain writes after them; nothing dropped.
    #[test]
    fn a_full_disk_keeps_shared_slices_in_order() {
        let Some((_dir, health, mut f)) = on_dev_full() else {
            return;
        };
        f.write_shared(Bytes::from_static(b"abc")).unwrap();
        f.write_shared(Bytes::from_static(b"de")).unwrap();
        assert_eq!(f.held(), 5);
        f.flush().unwrap();
        assert!(f.is_stuck());
        assert_eq!(f.held(), 5);
        assert_eq!(f.buf, b"abcde");
        // Held bytes: shared slices are copied behind them.
        f.write_shared(Bytes::from_static(b"f")).unwrap();
        f.write_all(b"g").unwrap();
        assert_eq!(f.buf, b"abcdefg");
        drop(f);
        assert_eq!(health.files_stuck(), 0);
    }

    /// Shared slices and copied bytes mixed, many slices per `writev`:
    /// everything arrives in order.
    #[test]
    fn shared_and_copied_bytes_arrive_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let health = Arc::new(Health::new(dir.path()));
        let p = dir.path().join("f");
        let mut f = OutFile::new(File::create(&p).unwrap(), p.clone(), health);
        let mut want = Vec::new();
        for i in 0..3000u32 {
            let chunk = vec![i as u8; (i % 89) as usize * 11];
            if i % 7 == 0 {
                f.write_all(&chunk).unwrap();
            } else {
                f.write_shared(Bytes::from(chunk.clone())).unwrap();
            }
            want.extend_from_slice(&chunk);
            if i % 101 == 0 {
                f.flush().unwrap();
            }
        }
        assert!(f.held() > 0);
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), want);
    }

    /// On a disk that takes writes, everything arrives in order.
    #[test]
    fn bytes_arrive_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let health = Arc::new(Health::new(dir.path()));
        let p = dir.path().join("f");
        let mut f = OutFile::new(File::create(&p).unwrap(), p.clone(), health);
        let mut want = Vec::new();
        for i in 0..2000u32 {
            let chunk = vec![i as u8; (i % 97) as usize * 13];
            f.write_all(&chunk).unwrap();
            want.extend_from_slice(&chunk);
        }
        f.flush().unwrap();
        f.set_len(want.len() as u64 - 5).unwrap();
        drop(f);
        want.truncate(want.len() - 5);
        assert_eq!(std::fs::read(&p).unwrap(), want);
    }
}
