//! The management API client (crate `d4-api`) and the polling loop of the
//! CLI's queue consumers.

use std::time::Duration;

use anyhow::Result;

pub(crate) use d4_api::{Api, Conn};

/// The polling loop of queue consumers: failed requests are retried after
/// 2 s (unless `once`), an empty queue is polled again with a growing pause
/// (100 ms doubling to 2 s).
pub(crate) struct Poller {
    once: bool,
    idle: Duration,
}

impl Poller {
    pub(crate) fn new(once: bool) -> Poller {
        Poller {
            once,
            idle: Duration::from_millis(100),
        }
    }

    /// The next non-empty batch `fetch` gives; `None` once the queue is
    /// empty with `once`, or after Ctrl-C. `on_idle` runs before each pause.
    pub(crate) fn next<B>(
        &mut self,
        mut fetch: impl FnMut() -> Result<B>,
        is_empty: impl Fn(&B) -> bool,
        mut on_idle: impl FnMut() -> Result<()>,
    ) -> Result<Option<B>> {
        while !crate::signals::interrupted() {
            let b = match fetch() {
                Ok(b) => b,
                Err(e) if !self.once => {
                    tracing::warn!("{e:#}; retrying");
                    std::thread::sleep(Duration::from_secs(2));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !is_empty(&b) {
                self.idle = Duration::from_millis(100);
                return Ok(Some(b));
            }
            if self.once {
                return Ok(None);
            }
            on_idle()?;
            std::thread::sleep(self.idle);
            self.idle = (self.idle * 2).min(Duration::from_secs(2));
        }
        Ok(None)
    }
}
