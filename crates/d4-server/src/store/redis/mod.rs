//! Redis mode (`--store redis://`): queues, policy, leases and sensor
//! metadata in the reference key schema, shared by every node. The
//! connections time out in 1 s (connect) / 3 s (answer), so an outage is
//! noticed at once. See docs/DEPLOYMENT.md.
//!
//! - `queues`: the queue client in the reference key schema
//!   ([`RedisQueues`](queues::RedisQueues)); `backend`: the
//!   [`QueueBackend`](crate::store::queues::QueueBackend) over it, with the
//!   on-disk spool for outages.
//! - `policy`: the policy shared between nodes and the reference tools.
//! - `leases`: kicks and keys read at session start; one live connection
//!   per (UUID, type) across nodes ([`SessionGate`](crate::store::SessionGate)).
//! - `meta`: sensor metadata and daily statistics
//!   ([`MetaMirror`](crate::store::MetaMirror)).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::config::{RedisTarget, ServerConfig};
use crate::ingest::policy::Policy;
use crate::ingest::sensors::Sensors;
use crate::store::db::Db;
use crate::store::Backends;

pub(crate) mod backend;
pub(crate) mod leases;
pub(crate) mod meta;
pub(crate) mod policy;
pub(crate) mod queues;

/// The error for a Redis call given up after `wait`.
pub(crate) fn timed_out(wait: Duration) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer within {} ms", wait.as_millis()),
    ))
}

/// The Redis backends: connects (a node that has read its queues from Redis
/// before may start while Redis is away, with those; a new one may not),
/// reads the shared policy once and starts its sync loop, the leases, the
/// metadata mirror and the queue backend. `data_dir` names the node.
pub(crate) async fn open(
    cfg: &ServerConfig,
    meta_target: &RedisTarget,
    lists_target: &RedisTarget,
    db: &Arc<Db>,
    node_policy: &Arc<Policy>,
    node_sensors: &Arc<Sensors>,
    data_dir: &Path,
) -> Result<Backends> {
    let known = db
        .get_doc::<serde_json::Value>(backend::REDIS_DEFS_DOC)?
        .is_some();
    let r = queues::RedisQueues::connect(meta_target, lists_target, cfg.default_queue_size, known)
        .await?;
    tracing::info!(
        "analyzer queues in Redis: metadata {meta_target}, lists {lists_target} (reference key schema)"
    );
    let mut c = r.meta_connection();
    node_policy.share_kicks();
    let synced = match policy::first_sync(node_policy, node_sensors, &cfg.default_key, &mut c).await
    {
        Ok(()) => true,
        Err(e) => {
            tracing::error!("cannot read the shared policy from Redis: {e}; the last one read applies until it answers");
            false
        }
    };
    tokio::spawn(policy::sync_loop(
        Arc::downgrade(node_policy),
        Arc::downgrade(node_sensors),
        cfg.default_key.clone(),
        c,
        synced,
    ));
    let gate = leases::RedisLeases::new(r.meta_connection());
    let mirror = meta::RedisMeta::start(r.meta_connection(), db.clone());
    let queues = backend::open(db.clone(), r, data_dir).await?;
    Ok(Backends {
        queues,
        gate,
        mirror,
    })
}
