//! The embedded backends (the default, `--store embedded`): everything in
//! the local redb store, nothing shared with other nodes.

pub(crate) mod chunk;
pub(crate) mod queues;

use std::sync::Arc;

use anyhow::Result;

use crate::store::db::Db;
use crate::store::queues::Queues;
use crate::store::{Backends, LocalOnly};

/// The embedded backends: queues in the local store, nothing shared.
pub(crate) fn open(db: Arc<Db>) -> Result<Backends> {
    Ok(Backends {
        queues: Queues::open(db)?,
        gate: Arc::new(LocalOnly),
        mirror: Arc::new(LocalOnly),
    })
}
