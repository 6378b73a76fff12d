//! Whether the server can write to its disk: the embedded store (redb) and
//! the data files share the data dir, and a full disk stops both.
//!
//! - A redb write that fails with an I/O error poisons the open database
//!   (redb: "Previous I/O error occurred. Please close and re-open the
//!   database."); [`crate::store::Db`] marks the store unwritable and asks
//!   for a re-open.
//! - A data file write that fails for lack of space keeps its bytes
//!   (`workers::outfile`) and marks the disk unwritable too.
//!
//! While unwritable, sessions stop reading from their sensors (they wait on
//! [`Health::subscribe`]: back-pressure, nothing is confirmed that could not
//! be kept), the queue writer holds the items it could not commit, and API
//! writes answer 503 ([`StoreUnwritable`]). The `d4-store-heal` thread
//! ([`crate::store::Db::start_healer`]) probes the disk every second with a
//! small write (a refused store write probes too, at most every 200 ms);
//! once it succeeds the database is re-opened if it was poisoned and
//! everything is marked writable again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

/// How often the healer probes the disk.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(1);

/// How often a refused write may probe the disk itself.
const INLINE_PROBE_EVERY: Duration = Duration::from_millis(200);

/// Bytes written by a probe: a write this size must succeed before the
/// store is trusted again (a redb commit needs a few pages).
const PROBE_BYTES: usize = 256 * 1024;

/// The error of a write refused (or failed) because the disk is full or
/// the store must be re-opened; the API answers it with 503.
#[derive(Debug, thiserror::Error)]
#[error("the server cannot write to its disk ({0}); it retries by itself once space is freed")]
pub(crate) struct StoreUnwritable(pub(crate) String);

/// Whether an error (anywhere in its chain) is a [`StoreUnwritable`].
pub(crate) fn is_unwritable(e: &anyhow::Error) -> bool {
    // `downcast_ref` sees a context too (`chain` shows it as a wrapper).
    e.downcast_ref::<StoreUnwritable>().is_some() || e.chain().any(|c| c.is::<StoreUnwritable>())
}

/// Whether an I/O error means "no space left" (ENOSPC, EDQUOT).
pub(crate) fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// The disk's state, shared by the store, the workers and `/metrics`.
pub(crate) struct Health {
    /// `true` while writes succeed.
    writable: watch::Sender<bool>,
    /// The redb database must be closed and re-opened.
    reopen: AtomicBool,
    /// Why it is unwritable (for logs and the API).
    why: Mutex<String>,
    /// Times the disk went from writable to unwritable.
    events: AtomicU64,
    /// Queue items held because they could not be committed.
    items_waiting: AtomicU64,
    /// Data files holding bytes they could not write.
    files_stuck: AtomicU64,
    /// Where probes are written (the store's folder).
    probe_dir: PathBuf,
    /// When a write last probed the disk itself ([`Health::probe_due`]).
    last_probe: Mutex<Option<std::time::Instant>>,
    /// Tests: probes fail as on a full disk.
    #[cfg(test)]
    fail_probes: AtomicBool,
}

impl Health {
    /// A healthy state, probing in `probe_dir`.
    pub(crate) fn new(probe_dir: &Path) -> Health {
        Health {
            writable: watch::Sender::new(true),
            reopen: AtomicBool::new(false),
            why: Mutex::new(String::new()),
            events: AtomicU64::new(0),
            items_waiting: AtomicU64::new(0),
            files_stuck: AtomicU64::new(0),
            probe_dir: probe_dir.to_path_buf(),
            last_probe: Mutex::new(None),
            #[cfg(test)]
            fail_probes: AtomicBool::new(false),
        }
    }

    /// Whether writes are expected to succeed.
    pub(crate) fn is_writable(&self) -> bool {
        *self.writable.borrow()
    }

    /// A receiver that sees the state change (sessions wait on it).
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.writable.subscribe()
    }

    /// Marks the disk unwritable (`reopen`: the database is poisoned).
    pub(crate) fn mark_unwritable(&self, why: &str, reopen: bool) {
        if reopen {
            self.reopen.store(true, Ordering::SeqCst);
        }
        let was = self.writable.send_replace(false);
        if was {
            self.events.fetch_add(1, Ordering::Relaxed);
            *self.why.lock().unwrap_or_else(|p| p.into_inner()) = why.to_string();
            tracing::error!(
                "disk full or failing ({why}): sensors are not read and writes wait until space is freed"
            );
        }
    }

    /// Why the disk is unwritable (empty when it is writable).
    pub(crate) fn why(&self) -> String {
        if self.is_writable() {
            return String::new();
        }
        self.why.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The error for a write refused now.
    pub(crate) fn refusal(&self) -> StoreUnwritable {
        StoreUnwritable(self.why())
    }

    /// Whether the database waits for a re-open.
    pub(crate) fn needs_reopen(&self) -> bool {
        self.reopen.load(Ordering::SeqCst)
    }

    /// Marks everything writable again (after a probe, and a re-open if needed).
    pub(crate) fn mark_writable(&self) {
        self.reopen.store(false, Ordering::SeqCst);
        if !self.writable.send_replace(true) {
            tracing::warn!("the disk is writable again: reading sensors and writing resume");
        }
    }

    /// Tries a small write in the probe folder; `true` if the disk takes it.
    pub(crate) fn probe(&self) -> bool {
        use std::io::Write;
        #[cfg(test)]
        if self.fail_probes.load(Ordering::SeqCst) {
            return false;
        }
        let path = self.probe_dir.join(".d4-probe");
        let ok = std::fs::File::create(&path)
            .and_then(|mut f| {
                f.write_all(&[0u8; PROBE_BYTES])?;
                f.sync_all()
            })
            .is_ok();
        let _ = std::fs::remove_file(&path);
        ok
    }

    /// Whether a write refused now may probe the disk itself first (at
    /// most every [`INLINE_PROBE_EVERY`]): a write right after space came
    /// back does not wait for the healer's next round.
    pub(crate) fn probe_due(&self) -> bool {
        let mut last = self.last_probe.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match *last {
            Some(t) if now.duration_since(t) < INLINE_PROBE_EVERY => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    /// Tests: makes probes fail (a disk that stays full) or succeed again.
    #[cfg(test)]
    pub(crate) fn set_fail_probes(&self, fail: bool) {
        self.fail_probes.store(fail, Ordering::SeqCst);
    }

    /// Times the disk became unwritable.
    pub(crate) fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Sets how many queue items wait to be committed.
    pub(crate) fn set_items_waiting(&self, n: u64) {
        self.items_waiting.store(n, Ordering::Relaxed);
    }

    /// Queue items waiting to be committed.
    pub(crate) fn items_waiting(&self) -> u64 {
        self.items_waiting.load(Ordering::Relaxed)
    }

    /// A data file started (`true`) or stopped holding unwritten bytes.
    pub(crate) fn file_stuck(&self, stuck: bool) {
        if stuck {
            self.files_stuck.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = self
                .files_stuck
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        }
    }

    /// Data files holding bytes they could not write.
    pub(crate) fn files_stuck(&self) -> u64 {
        self.files_stuck.load(Ordering::Relaxed)
    }

    /// Free bytes on the data dir's file system (`None` if unknown).
    pub(crate) fn free_bytes(&self) -> Option<u64> {
        free_bytes(&self.probe_dir)
    }

    /// Blocks the calling thread until writable (or `max` passed); whether
    /// it is writable.
    pub(crate) fn wait_writable_blocking(&self, max: Duration) -> bool {
        let end = std::time::Instant::now() + max;
        while !self.is_writable() {
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }
}

/// Free bytes (for unprivileged users) on the file system holding `path`.
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_count_events_once_and_probe_writes() {
        let d = tempfile::tempdir().unwrap();
        let h = Health::new(d.path());
        assert!(h.is_writable());
        h.mark_unwritable("test", true);
        h.mark_unwritable("again", false);
        assert!(!h.is_writable());
        assert_eq!(h.events(), 1);
        assert!(h.needs_reopen());
        assert_eq!(h.why(), "test");
        assert!(h.probe());
        assert!(!d.path().join(".d4-probe").exists());
        h.mark_writable();
        assert!(h.is_writable() && !h.needs_reopen());
        assert!(h.free_bytes().is_some());
        let e = anyhow::Error::new(h.refusal()).context("creating a queue");
        assert!(is_unwritable(&e));
        // As `Db::write` reports a failed commit: the I/O error, the refusal as its context.
        let e = anyhow::Error::new(std::io::Error::other("ENOSPC")).context(h.refusal());
        assert!(is_unwritable(&e));
    }
}
