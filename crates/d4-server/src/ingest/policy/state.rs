//! What the policy holds: the persistent document, the part shared in
//! Redis mode ([`Mirror`]), per-sensor settings and pending sensors.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The persistent part of the policy (store document `policy`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct PolicyState {
    /// Approved sensors (registration mode).
    pub(crate) approved: BTreeSet<Uuid>,
    /// Sensors that tried to connect while not approved, with when and from where.
    pub(crate) pending: BTreeMap<Uuid, PendingSensor>,
    /// Refused sensors.
    pub(crate) blocked_uuids: BTreeSet<Uuid>,
    /// Refused peers: addresses (as /32 or /128) and ranges.
    pub(crate) blocked_nets: BTreeSet<IpNet>,
    /// Sensors whose next peer address is added to `blocked_nets`.
    pub(crate) block_ip_by_uuid: BTreeSet<Uuid>,
    /// Per-sensor HMAC keys (never shown by the API).
    pub(crate) keys: BTreeMap<Uuid, String>,
    /// Operator settings per sensor (name, tags, limits, monitoring).
    pub(crate) settings: BTreeMap<Uuid, SensorSettings>,
    /// Accepted types set from the UI or API (instead of the configuration's).
    pub(crate) accepted_types: Option<BTreeSet<u8>>,
    /// Accepted extended types set from the UI or API (empty: any).
    pub(crate) accepted_extended: Option<BTreeSet<String>>,
    /// Redis mode: the shared policy as last read from Redis (what this
    /// node's changes are measured against); `None` before the first sync,
    /// when this node's whole policy is added to Redis.
    pub(crate) redis_synced: Option<Mirror>,
}

/// The part of the policy shared through Redis in the reference sets
/// (see `store::redis::policy`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Mirror {
    /// `blacklist_uuid`.
    pub(crate) blocked_uuids: BTreeSet<Uuid>,
    /// `blacklist_ip`.
    pub(crate) blocked_nets: BTreeSet<IpNet>,
    /// `blacklist_ip_by_uuid`.
    pub(crate) block_ip_by_uuid: BTreeSet<Uuid>,
    /// `registered_uuid`.
    pub(crate) approved: BTreeSet<Uuid>,
    /// `sensor_pending_registration`.
    pub(crate) pending: BTreeSet<Uuid>,
    /// `server:accepted_type`.
    pub(crate) accepted_types: BTreeSet<u8>,
    /// `server:accepted_extended_type`.
    pub(crate) accepted_extended: BTreeSet<String>,
    /// `hmac_key` of `metadata_uuid:<uuid>` (written, not read back: a
    /// session reads its sensor's key from Redis when it starts).
    pub(crate) keys: BTreeMap<Uuid, String>,
}

/// `base` with the changes from `before` to `after` applied.
pub(super) fn merge3<T: Ord + Clone>(
    base: &BTreeSet<T>,
    before: &BTreeSet<T>,
    after: &BTreeSet<T>,
) -> BTreeSet<T> {
    let mut out: BTreeSet<T> = base
        .difference(&before.difference(after).cloned().collect())
        .cloned()
        .collect();
    out.extend(after.difference(before).cloned());
    out
}

/// What an operator sets on a sensor.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct SensorSettings {
    /// Short name.
    pub(crate) name: String,
    /// Free text.
    pub(crate) description: String,
    /// Tags, for filtering.
    pub(crate) tags: Vec<String>,
    /// Largest frame accepted from this sensor (bytes), below the server's
    /// `max_frame_size`; `None` for the server's.
    pub(crate) max_frame_size: Option<u32>,
    /// Seconds of silence after which the sensor is reported (monitoring);
    /// `None`: not monitored.
    pub(crate) monitor_delay_secs: Option<u64>,
}

/// A sensor waiting for approval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct PendingSensor {
    /// Unix seconds of the first attempt.
    pub(crate) first_seen: i64,
    /// Unix seconds of the last attempt.
    pub(crate) last_seen: i64,
    /// Peer address of the last attempt.
    pub(crate) ip: String,
    /// Registered through the API (`POST /api/v1/add/sensor/register`).
    #[serde(default)]
    pub(crate) registered: bool,
    /// Contact given at registration.
    #[serde(default)]
    pub(crate) mail: Option<String>,
    /// Third-party sensor (given at registration).
    #[serde(default)]
    pub(crate) third_party: bool,
    /// HMAC key given at registration, set as the sensor's key on approval
    /// (never shown).
    #[serde(default)]
    pub(crate) key: Option<String>,
}

impl PendingSensor {
    /// A sensor first (and last) seen at `t`, from `ip`; `registered`
    /// through the API. No contact, no key yet.
    pub(crate) fn new(t: i64, ip: String, registered: bool) -> PendingSensor {
        PendingSensor {
            first_seen: t,
            last_seen: t,
            ip,
            registered,
            mail: None,
            third_party: false,
            key: None,
        }
    }
}
