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

use std::time::Duration;

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
