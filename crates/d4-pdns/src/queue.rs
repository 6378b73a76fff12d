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
    /// Connects to the queues to ingest from; each must hold passivedns
    /// lines (type 8) or captures (type 1).
    pub fn connect_ingest(c: &Conn, uuids: &[String]) -> Result<Vec<Queue>> {
        let queues: Vec<Queue> = uuids
            .iter()
            .map(|u| Queue::connect(c, u))
            .collect::<Result<_>>()?;
        if let Some(q) = queues.iter().find(|q| q.qtype != "1" && q.qtype != "8") {
            bail!(
                "queue {} is of type {}: pdns ingests types 8 (passivedns) and 1 (captures)",
                q.uuid,
                q.qtype
            );
        }
        Ok(queues)
    }

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
