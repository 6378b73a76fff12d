//! [`Shutdown`]: the stop request the `d4` binary's signal handler gives
//! the analyzers that follow queues or serve lookups.

use std::sync::Arc;

use tokio::sync::watch;

/// Tells a running command to finish: a consumer writes the batch in hand
/// and stops, a lookup server stops accepting and ends the requests under
/// way. Clones share the state.
#[derive(Clone, Debug)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown(Arc::new(watch::channel(false).0))
    }
}

impl Shutdown {
    /// Not triggered yet.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks the command to finish (idempotent).
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once [`Shutdown::trigger`] is called.
    pub async fn triggered(self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|t| *t).await;
    }
}
