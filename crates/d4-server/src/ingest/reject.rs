//! Why a session is refused or closed ([`Reject`]), and whose fault that
//! is ([`Whose`]): the sensor's, the operator's policy, the server's, or
//! its store's. `kind()` is the `reason` label of `d4_rejects_total`;
//! `whose()` the `whose` label of `d4_session_faults_total`; both are kept
//! in the sensor's error record.

use std::net::IpAddr;

use uuid::Uuid;

/// Why a session is refused. The text is what the log and the sensor's
/// error record say.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Reject {
    /// Check 1.
    #[error("peer address {0} is blocklisted")]
    BlockedIp(IpAddr),
    /// Check 2.
    #[error("sensor is set to have its addresses blocklisted; {0} added to the IP blocklist")]
    BlockIpByUuid(IpAddr),
    /// Check 3.
    #[error("sensor UUID is blocklisted")]
    BlockedUuid,
    /// Check 3, temporary.
    #[error("sensor was kicked; refused for {0} more seconds")]
    Kicked(u64),
    /// Check 4.
    #[error("sensor is not approved (registration mode): approve it with `d4 sensor approve {0}`")]
    NotApproved(Uuid),
    /// Check 5.
    #[error("frame size {size} exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced size.
        size: u32,
        /// Limit.
        max: u32,
    },
    /// Check 6.
    #[error(
        "UUID {0} is not a version 4 UUID (it is version {v}, variant {var:?}): the server \
         accepts only random RFC 4122 UUIDs; give the sensor a new one (`uuidgen -r`)",
        v = .0.get_version_num(),
        var = .0.get_variant()
    )]
    NotV4(Uuid),
    /// Check 6.
    #[error("type 0 is reserved")]
    Type0,
    /// Check 6.
    #[error("type {0} is not accepted by this server")]
    TypeNotAccepted(u8),
    /// Check 6 (type 254).
    #[error("extended type {0:?} is not accepted by this server")]
    ExtendedNotAccepted(String),
    /// Check 7.
    #[error("a type 2 frame (meta-header) must come before type 254")]
    ExtendedFirst,
    /// Check 7.
    #[error("sensor already has a live connection for type {0}")]
    AlreadyConnected(u8),
    /// Check 8.
    #[error("UUID changed inside the session (from {0} to {1})")]
    UuidChanged(Uuid, Uuid),
    /// Check 8.
    #[error("type changed inside the session (from {0} to {1}); only 2 → 254 is allowed")]
    TypeChanged(u8, u8),
    /// Check 9.
    #[error("HMAC does not match (wrong key?)")]
    BadHmac,
    /// Framing: the payload is not what its type says.
    #[error("{0}")]
    BadPayload(String),
    /// Framing: idle or stalled.
    #[error("{0}")]
    Timeout(String),
    /// Unsupported protocol version.
    #[error(
        "protocol version {0} is not supported (only 1); `accept_unknown_versions = true` in \
         the server configuration accepts any, as the reference does"
    )]
    Version(u8),
    /// The server could not store what the sensor sent (its disk): the
    /// sensor sends it again.
    #[error("{0}")]
    ServerIo(String),
    /// The server's connection limits (`max_connections_per_ip`).
    #[error("{0}")]
    TooManyConnections(String),
    /// A connection that had not authenticated was closed to make room
    /// for a newer one (`max_unauthenticated*`, see `crate::admission`).
    #[error("{0}")]
    Evicted(String),
    /// The analyzer queues did not take the items within the stall time.
    #[error("{0}")]
    QueueStalled(String),
    /// The queue store failed (its writer stopped).
    #[error("{0}")]
    Store(String),
    /// The server closed the session without a more precise reason.
    #[error("closed by the server")]
    ClosedByServer,
}

/// Whose fault a refused or closed session is: what `/metrics` counts
/// (`d4_session_faults_total{whose=...}`) and the sensor record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Whose {
    /// The sensor sent something wrong (a bad frame, a wrong key, silence).
    Sensor,
    /// The operator's policy refused it (blocklists, approval, types, kicks).
    Policy,
    /// The server failed or is at a limit (disk, connection limits, stall).
    Server,
    /// The server's store failed.
    Store,
}

impl Whose {
    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Whose::Sensor => "sensor",
            Whose::Policy => "policy",
            Whose::Server => "server",
            Whose::Store => "store",
        }
    }
}

impl Reject {
    /// A short name for the reason (metrics label).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Reject::BlockedIp(_) => "blocked_ip",
            Reject::BlockIpByUuid(_) => "block_ip_by_uuid",
            Reject::BlockedUuid => "blocked_uuid",
            Reject::Kicked(_) => "kicked",
            Reject::NotApproved(_) => "not_approved",
            Reject::TooLarge { .. } => "too_large",
            Reject::NotV4(_) => "not_v4",
            Reject::Type0 => "type_0",
            Reject::TypeNotAccepted(_) => "type_not_accepted",
            Reject::ExtendedNotAccepted(_) => "extended_type_not_accepted",
            Reject::ExtendedFirst => "extended_first",
            Reject::AlreadyConnected(_) => "already_connected",
            Reject::UuidChanged(..) => "uuid_changed",
            Reject::TypeChanged(..) => "type_changed",
            Reject::BadHmac => "bad_hmac",
            Reject::BadPayload(_) => "bad_payload",
            Reject::Timeout(_) => "timeout",
            Reject::Version(_) => "version",
            Reject::ServerIo(_) => "server_io",
            Reject::TooManyConnections(_) => "too_many_connections",
            Reject::Evicted(_) => "evicted",
            Reject::QueueStalled(_) => "queue_stalled",
            Reject::Store(_) => "store",
            Reject::ClosedByServer => "closed_by_server",
        }
    }

    /// Whose fault it is.
    pub(crate) fn whose(&self) -> Whose {
        match self {
            Reject::BlockedIp(_)
            | Reject::BlockIpByUuid(_)
            | Reject::BlockedUuid
            | Reject::Kicked(_)
            | Reject::NotApproved(_)
            | Reject::TypeNotAccepted(_)
            | Reject::ExtendedNotAccepted(_) => Whose::Policy,
            Reject::TooLarge { .. }
            | Reject::NotV4(_)
            | Reject::Type0
            | Reject::ExtendedFirst
            | Reject::AlreadyConnected(_)
            | Reject::UuidChanged(..)
            | Reject::TypeChanged(..)
            | Reject::BadHmac
            | Reject::BadPayload(_)
            | Reject::Timeout(_)
            | Reject::Version(_) => Whose::Sensor,
            Reject::ServerIo(_)
            | Reject::TooManyConnections(_)
            | Reject::Evicted(_)
            | Reject::QueueStalled(_)
            | Reject::ClosedByServer => Whose::Server,
            Reject::Store(_) => Whose::Store,
        }
    }

    /// A worker's error: storing failed (the server's disk) or the payload
    /// is not what its type says (the sensor's).
    pub(crate) fn from_worker(e: crate::workers::WorkerError) -> Reject {
        use crate::workers::WorkerError;
        match e {
            WorkerError::Store { .. } => Reject::ServerIo(e.to_string()),
            WorkerError::Stream(m) => Reject::BadPayload(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_faults_are_not_the_sensors() {
        use crate::workers::WorkerError;
        let full = std::io::Error::from_raw_os_error(28);
        let r = Reject::from_worker(WorkerError::store("lines")(full));
        assert_eq!((r.kind(), r.whose()), ("server_io", Whose::Server));
        assert!(r.to_string().contains("cannot store lines"), "{r}");
        let r = Reject::from_worker(WorkerError::Stream("pcap record too long".into()));
        assert_eq!((r.kind(), r.whose()), ("bad_payload", Whose::Sensor));
        let r = Reject::TooManyConnections("too many connections from 192.0.2.1".into());
        assert_eq!(
            (r.kind(), r.whose()),
            ("too_many_connections", Whose::Server)
        );
        let r = Reject::ClosedByServer;
        assert_eq!((r.kind(), r.whose()), ("closed_by_server", Whose::Server));
        let r = Reject::Evicted("oldest unauthenticated connection closed".into());
        assert_eq!((r.kind(), r.whose()), ("evicted", Whose::Server));
        assert_eq!(Reject::BlockedUuid.whose(), Whose::Policy);
        assert_eq!(Reject::Timeout("idle".into()).kind(), "timeout");
        assert_eq!(Reject::Store("stopped".into()).whose(), Whose::Store);
    }
}
