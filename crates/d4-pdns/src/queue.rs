//! One analyzer queue of a D4 server, popped over its management API
//! (crate `d4-api`: the server is found through `<data-dir>/server.json`, or
//! `--server URL --token TOKEN [--ca FILE]`) by its shared poller.

use std::path::PathBuf;

use anyhow::{bail, Result};
use d4_api::poll::{Idle, Poller, Take};
use d4_api::Api;

pub use d4_api::Conn;

/// A queue to pop.
pub struct Queue {
    api: Api,
    uuid: String,
    /// The server's `<data-dir>/data`: type-1 items must name files below it.
    pub data_root: Option<PathBuf>,
    /// The queue's type as the server reports it ("1", "8"...).
    pub qtype: String,
}

impl Queue {
    /// Connects and checks that the queue exists.
    pub fn connect(c: &Conn, uuid: &str) -> Result<Queue> {
        if uuid.len() > 64 || !uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            bail!("{uuid} is not a queue UUID");
        }
        let api = Api::connect(c)?;
        let info = api.get(&format!("/queues/{uuid}"))?;
        let qtype = info["type"].as_str().unwrap_or_default().to_string();
        let data_root = d4_api::data_root(&api);
        Ok(Queue {
            api,
            uuid: uuid.to_string(),
            data_root,
            qtype,
        })
    }

    /// A poller popping up to `batch` items at a time (`d4_api::poll`).
    pub fn poller(&self, batch: usize, idle: Idle) -> Poller<'_> {
        Poller::new(&self.api, &self.uuid, Take::Pop, batch, idle)
    }

    /// Checks that a type-1 item names a regular file under the server's
    /// data directory (a queue item must never make us open anything else).
    pub fn file_item(&self, item: &[u8]) -> Result<PathBuf> {
        d4_api::check_item_path(item, self.data_root.as_deref())
    }
}
