//! What the server keeps, behind one trait per concern, each with the
//! embedded implementation (the default) and the Redis one (the reference
//! key schema, shared by every node; `--store redis://`):
//!
//! | concern | trait | embedded | Redis |
//! |---------|-------|----------|-------|
//! | analyzer queues | [`queues::QueueBackend`] | redb tables | lists, with an on-disk spool |
//! | session admission across nodes | [`SessionGate`] | nothing shared: no-op | kicks, keys, leases |
//! | sensor metadata for other tools | [`MetaMirror`] | nothing shared: no-op | reference metadata keys |
//!
//! The policy is the same document in both modes (`ingest::policy`); in
//! Redis mode `redis::policy` keeps it in step with the shared sets.
//!
//! `db` is the local redb file (`<data-dir>/store/d4.redb`) used in both
//! modes: documents (`kv`: policy, sensors, accounts...), and the queue,
//! item and Redis spool tables.

pub(crate) mod db;
pub(crate) mod embedded;
pub(crate) mod health;
pub(crate) mod queues;
pub(crate) mod redis;

/// The path `workers/` names the store by.
#[allow(unused_imports)]
pub(crate) use db::Db;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::ingest::sensors::CloseSignal;

/// The store backends the server runs on, one per concern.
pub(crate) struct Backends {
    /// The analyzer queues.
    pub(crate) queues: Arc<queues::Queues>,
    /// Admission across nodes.
    pub(crate) gate: Arc<dyn SessionGate>,
    /// The sensor metadata mirror.
    pub(crate) mirror: Arc<dyn MetaMirror>,
}

/// A boxed future, for the async methods of the traits here (they are used
/// as trait objects).
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure of the store the server shares with other nodes: the
/// server's problem, never the sensor's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StoreError {
    /// Redis refused or failed the call.
    #[error(transparent)]
    Redis(#[from] ::redis::RedisError),
    /// No answer in time.
    #[error("no answer within {} ms", .0.as_millis())]
    TimedOut(Duration),
}

/// What the shared store says of a sensor starting a session.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Kicked: seconds left.
    pub(crate) kicked: Option<u64>,
    /// The key to check its frames with.
    pub(crate) key: Option<String>,
}

/// A session asking for its (UUID, type) lease ([`SessionGate::acquire`]).
pub(crate) struct LeaseAsk {
    /// The sensor.
    pub(crate) uuid: Uuid,
    /// The data type.
    pub(crate) ty: u8,
    /// The session that would hold it.
    pub(crate) session: Uuid,
    /// How long to wait for the store at most.
    pub(crate) wait: Duration,
    /// Ends the session if it turns out to be a second connection later.
    pub(crate) close: Arc<CloseSignal>,
}

/// A session's hold on its (UUID, type) across nodes, released on drop.
pub(crate) trait Lease: Send + Sync {}

/// The outcome of [`SessionGate::acquire`].
pub(crate) enum Acquired {
    /// This session holds the (UUID, type) lease (`None`: there is nothing
    /// to hold, the local live-session table is the whole rule).
    Held(Option<Box<dyn Lease>>),
    /// Another session does: refuse this one.
    Taken,
    /// The store did not answer in time: the session is let in
    /// (availability first) and the lease keeps being asked for.
    Unknown(Box<dyn Lease>, StoreError),
}

/// Admission of sessions across nodes: kicks made and keys set on any
/// node, and one live connection per (UUID, type).
pub(crate) trait SessionGate: Send + Sync {
    /// What the shared store says of `uuid` starting a session (`None`:
    /// nothing shared, the local policy decides alone).
    fn admit(&self, uuid: Uuid) -> BoxFuture<'_, Result<Option<Admission>, StoreError>>;

    /// Takes the (UUID, type) lease for a session.
    fn acquire(&self, ask: LeaseAsk) -> BoxFuture<'_, Acquired>;

    /// Which of `uuids` have a key of their own in the shared store (a key
    /// a reference tool set), in order (`None`: nothing shared).
    fn own_keys(&self, _uuids: Vec<Uuid>) -> BoxFuture<'_, Result<Option<Vec<bool>>, StoreError>> {
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// Sensor metadata and statistics mirrored for other tools (the
/// reference's dashboards in Redis mode). Never blocks a session.
pub(crate) trait MetaMirror: Send + Sync {
    /// A session's accepted traffic since its last report.
    fn record(&self, uuid: Uuid, ip: IpAddr, type_key: &str, frames: u64);
    /// A session started.
    fn session_started(&self, uuid: Uuid, ip: IpAddr);
    /// A sensor's session ended on an error.
    fn error(&self, uuid: Uuid, reason: &str);
    /// (entries waiting, entries dropped because the buffer was full), for
    /// `/metrics` (`None`: nothing is buffered).
    fn backlog(&self) -> Option<(u64, u64)>;
}

/// The embedded mode's gate and mirror: nothing is shared with other nodes.
pub(crate) struct LocalOnly;

impl SessionGate for LocalOnly {
    fn admit(&self, _: Uuid) -> BoxFuture<'_, Result<Option<Admission>, StoreError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn acquire(&self, _: LeaseAsk) -> BoxFuture<'_, Acquired> {
        Box::pin(std::future::ready(Acquired::Held(None)))
    }
}

impl MetaMirror for LocalOnly {
    fn record(&self, _: Uuid, _: IpAddr, _: &str, _: u64) {}
    fn session_started(&self, _: Uuid, _: IpAddr) {}
    fn error(&self, _: Uuid, _: &str) {}
    fn backlog(&self) -> Option<(u64, u64)> {
        None
    }
}
