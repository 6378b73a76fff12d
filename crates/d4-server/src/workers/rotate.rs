//! Rotated files: naming, rotation by time and day; finished files go to
//! the [`Compressor`](super::announce::Compressor) (`announce.rs`).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use uuid::Uuid;

use super::announce::{mark_open, Job};
use super::outfile::OutFile;
use super::WorkerCtx;
use crate::store::queues::QueueType;

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
    /// Keeps what a full disk does not take (see `outfile`); `None` while
    /// the session is parked (quiet): the file is closed and re-opened,
    /// appending, by the next write ([`Rotator::park`]).
    file: Option<OutFile>,
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
    fn file(&mut self, ctx: &WorkerCtx) -> io::Result<&mut OutFile> {
        let f = match self.file.take() {
            Some(f) => f,
            None => OutFile::new(
                OpenOptions::new().append(true).open(&self.path)?,
                self.path.clone(),
                ctx.compressor.health().clone(),
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
        let now = self.ctx.wall(now);
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
                    || self.ctx.wall(now).date() != c.day
            }
        }
    }

    fn open(&mut self, now: DateTime<Utc>) -> io::Result<()> {
        let dir = self.folder(now);
        std::fs::create_dir_all(&dir)?;
        let stem = format!(
            "{}-{}",
            self.spec.sensor.simple(),
            self.ctx.wall(now).format("%Y-%m-%d-%H%M%S")
        );
        let (file, path) = create_unique(&dir, &stem, &self.spec.ext)?;
        // "Not yet announced" until the compressor is done with it.
        mark_open(&file)?;
        let health = self.ctx.compressor.health().clone();
        let mut file = OutFile::new(file, path.clone(), health);
        file.write_all(&self.prefix)?;
        let len = self.prefix.len() as u64;
        self.current = Some(Current {
            file: Some(file),
            path,
            opened: now.timestamp(),
            day: self.ctx.wall(now).date(),
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
        self.write_with(data.len(), now, |f| f.write_all(data))
    }

    /// [`Rotator::write_raw`] of shared bytes: not copied, written with
    /// the other payloads of the batch in one `writev` (see `outfile`).
    pub(crate) fn write_raw_shared(&mut self, data: Bytes, now: DateTime<Utc>) -> io::Result<()> {
        self.write_with(data.len(), now, |f| f.write_shared(data))
    }

    /// Opens the current file if none is, has `write` put `len` bytes into
    /// it and counts them.
    fn write_with(
        &mut self,
        len: usize,
        now: DateTime<Utc>,
        write: impl FnOnce(&mut OutFile) -> io::Result<()>,
    ) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        if self.current.is_none() {
            self.open(now)?;
        }
        match &mut self.current {
            Some(c) => {
                write(c.file(&self.ctx)?)?;
                c.written += len as u64;
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
            c.file(&self.ctx)?.set_len(boundary)?;
            c.written = c.boundary;
        }
        Ok(cut)
    }

    /// Pushes buffered bytes to the file (the OS has them; a crash of the
    /// server loses nothing written so far). A full disk is not an error:
    /// the bytes are kept and the disk marked unwritable.
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
            let flushed = f.flush();
            // What a full disk did not take yet stays with the open file.
            if flushed.is_err() || f.held() > 0 {
                c.file = Some(f);
                return flushed;
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
        // The compressor writes what a full disk did not take yet.
        self.ctx.compressor.submit(Job {
            path: c.path,
            ty: self.spec.type_dir.clone(),
            announce: self.spec.announce.clone().map(|t| (t, self.spec.sensor)),
            file: c.file,
            prefix_len: self.prefix.len() as u64,
            compressed: false,
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
