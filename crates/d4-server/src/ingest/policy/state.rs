//! What the policy holds: the persistent document, the part shared in
//! Redis mode ([`Mirror`]), per-sensor settings and pending sensors.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

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

/// Most pending sensors noted from connections (no credentials): past it,
/// newcomers wait until entries expire or an operator clears some.
pub(crate) const MAX_PENDING: usize = 1000;
/// Most pending sensors registered by operators through the API (a budget
/// of their own: connection attempts never take it).
pub(crate) const MAX_REGISTERED: usize = 1000;
/// Most pending sensors noted from one address.
pub(crate) const PENDING_PER_ADDRESS: usize = 16;
/// Most pending sensors noted from one /24 (IPv4) or /64 (IPv6).
pub(crate) const PENDING_PER_PREFIX: usize = 64;
/// A pending sensor noted from connections is forgotten after this long
/// without a new attempt (seconds).
pub(crate) const PENDING_EXPIRY_SECS: i64 = 24 * 3600;

/// The /24 (IPv4) or /64 (IPv6) an address is in.
pub(crate) fn prefix_of(ip: IpAddr) -> IpNet {
    let len = if ip.is_ipv4() { 24 } else { 64 };
    IpNet::new(ip, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

/// Why a connection attempt was not noted as pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PendingFull {
    /// [`PENDING_PER_ADDRESS`] reached.
    Address = 0,
    /// [`PENDING_PER_PREFIX`] reached.
    Prefix = 1,
    /// [`MAX_PENDING`] reached.
    List = 2,
}

impl PendingFull {
    /// Every budget, in the order of their numbers.
    pub(crate) const ALL: [PendingFull; 3] =
        [PendingFull::Address, PendingFull::Prefix, PendingFull::List];

    /// The `budget` label of `d4_pending_refused_total`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PendingFull::Address => "address",
            PendingFull::Prefix => "prefix",
            PendingFull::List => "list",
        }
    }
}

impl PolicyState {
    /// Notes a connection attempt of an unapproved sensor `u` from `ip` at
    /// `t` (no credentials: within the per-address, per-prefix and overall
    /// budgets of unregistered entries; a sensor already listed is only
    /// brought up to date).
    pub(crate) fn note_attempt(&mut self, u: Uuid, ip: IpAddr, t: i64) -> Result<(), PendingFull> {
        self.expire_pending(t);
        if let Some(e) = self.pending.get_mut(&u) {
            e.last_seen = t;
            e.ip = ip.to_string();
            return Ok(());
        }
        self.pending_room(ip)?;
        self.pending
            .insert(u, PendingSensor::new(t, ip.to_string(), false));
        Ok(())
    }

    /// Whether a sensor not yet listed, connecting from `ip`, fits in the
    /// budgets of entries noted from connections.
    pub(crate) fn pending_room(&self, ip: IpAddr) -> Result<(), PendingFull> {
        let net = prefix_of(ip);
        let (mut all, mut addr, mut near) = (0, 0, 0);
        for p in self.pending.values().filter(|p| !p.registered) {
            all += 1;
            if let Ok(a) = p.ip.parse::<IpAddr>() {
                addr += usize::from(a == ip);
                near += usize::from(net.contains(&a));
            }
        }
        if addr >= PENDING_PER_ADDRESS {
            return Err(PendingFull::Address);
        }
        if near >= PENDING_PER_PREFIX {
            return Err(PendingFull::Prefix);
        }
        if all >= MAX_PENDING {
            return Err(PendingFull::List);
        }
        Ok(())
    }

    /// An operator's registration of `u` with its HMAC `key` at `t` (API):
    /// its own budget ([`MAX_REGISTERED`] registrations made here, with a
    /// key; those synchronised from other nodes in Redis mode come without
    /// one and are bounded by the shared list), whatever connections noted;
    /// an entry noted from a connection becomes a registration. `None` when
    /// that budget is spent.
    pub(crate) fn register(&mut self, u: Uuid, key: String, t: i64) -> Option<&mut PendingSensor> {
        let mine = |p: &PendingSensor| p.registered && p.key.is_some();
        let registered = self.pending.values().filter(|p| mine(p)).count();
        if registered >= MAX_REGISTERED && !self.pending.get(&u).is_some_and(mine) {
            return None;
        }
        let e = self
            .pending
            .entry(u)
            .or_insert_with(|| PendingSensor::new(t, String::new(), true));
        e.registered = true;
        e.key = Some(key);
        Some(e)
    }

    /// Whether a pending sensor noted from connections has had no attempt
    /// for [`PENDING_EXPIRY_SECS`] at `t`.
    fn expired(p: &PendingSensor, t: i64) -> bool {
        !p.registered && t - p.last_seen > PENDING_EXPIRY_SECS
    }

    /// Whether some pending sensor is expired at `t`.
    pub(crate) fn has_expired_pending(&self, t: i64) -> bool {
        self.pending.values().any(|p| Self::expired(p, t))
    }

    /// Forgets the pending sensors noted from connections with no attempt
    /// for [`PENDING_EXPIRY_SECS`] (registrations stay until an operator
    /// decides); returns how many.
    pub(crate) fn expire_pending(&mut self, t: i64) -> usize {
        let n = self.pending.len();
        self.pending.retain(|_, p| !Self::expired(p, t));
        n - self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn noted(s: &PolicyState) -> usize {
        s.pending.values().filter(|p| !p.registered).count()
    }

    #[test]
    fn a_flood_from_one_address_or_prefix_is_capped() {
        let mut s = PolicyState::default();
        let results: Vec<_> = (0..1100)
            .map(|_| s.note_attempt(Uuid::new_v4(), ip("192.0.2.7"), 10))
            .collect();
        assert_eq!(noted(&s), PENDING_PER_ADDRESS);
        assert_eq!(results.last(), Some(&Err(PendingFull::Address)));
        // 60 addresses of one /24.
        for i in 0..1100 {
            let a = ip(&format!("198.51.100.{}", i % 60));
            let _ = s.note_attempt(Uuid::new_v4(), a, 10);
        }
        assert_eq!(noted(&s), PENDING_PER_ADDRESS + PENDING_PER_PREFIX);
        // One /64 of IPv6 too.
        for i in 0..500 {
            let a = ip(&format!("2001:db8:0:1::{:x}", i + 1));
            let _ = s.note_attempt(Uuid::new_v4(), a, 10);
        }
        assert_eq!(noted(&s), PENDING_PER_ADDRESS + 2 * PENDING_PER_PREFIX);
        // A sensor already listed is brought up to date, not refused.
        let u = *s.pending.keys().next().unwrap();
        assert_eq!(s.note_attempt(u, ip("198.51.100.1"), 20), Ok(()));
        assert_eq!(s.pending[&u].last_seen, 20);
        // Another network still gets in.
        assert_eq!(
            s.note_attempt(Uuid::new_v4(), ip("203.0.113.1"), 20),
            Ok(())
        );
    }

    #[test]
    fn operator_registrations_are_not_refused_by_a_flood() {
        let mut s = PolicyState::default();
        // The whole unregistered budget, from many networks.
        for i in 0..MAX_PENDING {
            let a = ip(&format!("10.{}.{}.1", i / 200, i % 200));
            s.note_attempt(Uuid::new_v4(), a, 10).unwrap();
        }
        assert_eq!(
            s.note_attempt(Uuid::new_v4(), ip("172.16.0.1"), 10),
            Err(PendingFull::List)
        );
        let u = Uuid::new_v4();
        assert!(s.register(u, "k".into(), 11).is_some());
        assert!(s.pending[&u].registered);
        // One noted from a connection becomes a registration.
        let noted_one = *s.pending.iter().find(|(_, p)| !p.registered).unwrap().0;
        assert!(s.register(noted_one, "k".into(), 11).is_some());
        assert_eq!(noted(&s), MAX_PENDING - 1);
        // Registrations have a bound of their own.
        while s.pending.values().filter(|p| p.registered).count() < MAX_REGISTERED {
            s.register(Uuid::new_v4(), "k".into(), 12).unwrap();
        }
        assert!(s.register(Uuid::new_v4(), "k".into(), 12).is_none());
        assert!(
            s.register(u, "k".into(), 12).is_some(),
            "an update is not a newcomer"
        );
        // Redis mode: entries synchronised from other nodes (no key here)
        // do not take this node's budget.
        s.pending.retain(|_, p| !p.registered);
        for _ in 0..MAX_REGISTERED {
            let p = PendingSensor::new(0, String::new(), true);
            s.pending.insert(Uuid::new_v4(), p);
        }
        assert!(s.register(Uuid::new_v4(), "k".into(), 13).is_some());
    }

    #[test]
    fn pending_sensors_noted_from_connections_expire() {
        let mut s = PolicyState::default();
        let (old, fresh, reg) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        s.note_attempt(old, ip("192.0.2.1"), 0).unwrap();
        s.note_attempt(fresh, ip("192.0.2.1"), 0).unwrap();
        s.register(reg, "k".into(), 0).unwrap();
        s.note_attempt(fresh, ip("192.0.2.1"), 3600).unwrap();
        let t = PENDING_EXPIRY_SECS + 1;
        assert!(s.has_expired_pending(t));
        assert_eq!(s.expire_pending(t), 1);
        assert!(!s.pending.contains_key(&old));
        assert!(s.pending.contains_key(&fresh) && s.pending.contains_key(&reg));
        assert!(!s.has_expired_pending(t));
        // The room is free again for that address.
        for _ in 0..PENDING_PER_ADDRESS - 1 {
            s.note_attempt(Uuid::new_v4(), ip("192.0.2.1"), t).unwrap();
        }
        assert_eq!(
            s.note_attempt(Uuid::new_v4(), ip("192.0.2.1"), t),
            Err(PendingFull::Address)
        );
    }
}
