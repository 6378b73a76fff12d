//! Admission policy: who may send what. The ingest checks of spec 02, in
//! their order, as pure functions of the policy state and one header.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use d4_proto::{Header, Signer};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{Mode, ServerConfig};
use crate::store::Db;

/// The persistent part of the policy (store document `policy`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyState {
    /// Approved sensors (registration mode).
    pub approved: BTreeSet<Uuid>,
    /// Sensors that tried to connect while not approved, with when and from where.
    pub pending: BTreeMap<Uuid, PendingSensor>,
    /// Refused sensors.
    pub blocked_uuids: BTreeSet<Uuid>,
    /// Refused peers: addresses (as /32 or /128) and ranges.
    pub blocked_nets: BTreeSet<IpNet>,
    /// Sensors whose next peer address is added to `blocked_nets`.
    pub block_ip_by_uuid: BTreeSet<Uuid>,
    /// Per-sensor HMAC keys (never shown by the API).
    pub keys: BTreeMap<Uuid, String>,
    /// Operator settings per sensor (name, tags, limits, monitoring).
    pub settings: BTreeMap<Uuid, SensorSettings>,
    /// Accepted types set from the UI or API (instead of the configuration's).
    pub accepted_types: Option<BTreeSet<u8>>,
    /// Accepted extended types set from the UI or API (empty: any).
    pub accepted_extended: Option<BTreeSet<String>>,
}

/// What an operator sets on a sensor.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SensorSettings {
    /// Short name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Tags, for filtering.
    pub tags: Vec<String>,
    /// Largest frame accepted from this sensor (bytes), below the server's
    /// `max_frame_size`; `None` for the server's.
    pub max_frame_size: Option<u32>,
    /// Seconds of silence after which the sensor is reported (monitoring);
    /// `None`: not monitored.
    pub monitor_delay_secs: Option<u64>,
}

/// A sensor waiting for approval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PendingSensor {
    /// Unix seconds of the first attempt.
    pub first_seen: i64,
    /// Unix seconds of the last attempt.
    pub last_seen: i64,
    /// Peer address of the last attempt.
    pub ip: String,
    /// Registered through the API (`POST /api/v1/add/sensor/register`).
    #[serde(default)]
    pub registered: bool,
    /// Contact given at registration.
    #[serde(default)]
    pub mail: Option<String>,
    /// Third-party sensor (given at registration).
    #[serde(default)]
    pub third_party: bool,
    /// HMAC key given at registration, set as the sensor's key on approval
    /// (never shown).
    #[serde(default)]
    pub key: Option<String>,
}

/// Most pending sensors remembered: past it, newcomers (connections and
/// registrations) wait until an operator clears the list.
pub const MAX_PENDING: usize = 1000;

/// Why a session is refused. The text is what the log and the sensor's
/// error record say.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
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
    #[error("UUID {0} is not a version 4 UUID")]
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
    #[error("protocol version {0} is not supported (only 1)")]
    Version(u8),
}

impl Reject {
    /// A short name for the reason (metrics label).
    pub fn kind(&self) -> &'static str {
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
        }
    }
}

/// The policy shared by all sessions.
pub struct Policy {
    mode: Mode,
    /// Limit for frame payloads.
    pub max_frame_size: u32,
    accepted_types: BTreeSet<u8>,
    accepted_extended: BTreeSet<String>,
    kick_for: Duration,
    state: RwLock<PolicyState>,
    kicked: Mutex<HashMap<Uuid, Instant>>,
    /// Redis mode: the blocklists shared by every node and by reference
    /// tools (`blacklist_uuid`, `blacklist_ip`), refreshed by `redis_policy`.
    shared_blocks: RwLock<(BTreeSet<Uuid>, BTreeSet<IpNet>)>,
    default_signer: Signer,
    signers: Mutex<HashMap<Uuid, Signer>>,
    /// Bumped on every change of keys, so that a key read before a change is
    /// never cached after it.
    generation: std::sync::atomic::AtomicU64,
    /// Set by lazy updates not yet written.
    dirty: std::sync::atomic::AtomicBool,
    db: Arc<Db>,
}

impl Policy {
    /// Loads the policy state from the store; the rest comes from the configuration.
    pub fn load(cfg: &ServerConfig, db: Arc<Db>) -> Result<Policy> {
        let state: PolicyState = db.get_doc("policy")?.unwrap_or_default();
        Ok(Policy {
            mode: cfg.mode,
            max_frame_size: cfg.max_frame_size,
            accepted_types: cfg.accepted_types.iter().copied().collect(),
            accepted_extended: cfg.accepted_extended_types.iter().cloned().collect(),
            kick_for: Duration::from_secs(cfg.kick_secs),
            state: RwLock::new(state),
            kicked: Mutex::new(HashMap::new()),
            shared_blocks: RwLock::new((BTreeSet::new(), BTreeSet::new())),
            default_signer: Signer::new(cfg.default_key.as_bytes()),
            signers: Mutex::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
            dirty: std::sync::atomic::AtomicBool::new(false),
            db,
        })
    }

    /// The admission mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, PolicyState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the persistent state (for listings).
    pub fn snapshot(&self) -> PolicyState {
        self.read().clone()
    }

    /// Changes the state and persists it. Locks are never nested: the state
    /// lock is released before the signer cache is touched.
    pub fn update<T>(&self, f: impl FnOnce(&mut PolicyState) -> T) -> Result<T> {
        let (out, doc) = {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            let out = f(&mut s);
            (out, s.clone())
        };
        self.signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.db.put_docs(&[("policy".to_string(), &doc)])?;
        Ok(out)
    }

    /// Changes the state in memory only; [`Policy::persist_if_changed`]
    /// writes it (sessions must not wait for a disk commit).
    pub fn update_lazily<T>(&self, f: impl FnOnce(&mut PolicyState) -> T) -> T {
        let out = f(&mut self.state.write().unwrap_or_else(|p| p.into_inner()));
        self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
        out
    }

    /// Writes the state if a lazy update changed it (called periodically).
    pub fn persist_if_changed(&self) -> Result<()> {
        if self.dirty.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let doc = self.snapshot();
            self.db.put_docs(&[("policy".to_string(), &doc)])?;
        }
        Ok(())
    }

    /// The accepted types in force (set by an operator, or the configuration's).
    pub fn accepted_types(&self) -> BTreeSet<u8> {
        self.read()
            .accepted_types
            .clone()
            .unwrap_or_else(|| self.accepted_types.clone())
    }

    /// The accepted extended types in force (empty: any valid name).
    pub fn accepted_extended(&self) -> BTreeSet<String> {
        self.read()
            .accepted_extended
            .clone()
            .unwrap_or_else(|| self.accepted_extended.clone())
    }

    /// Check 1, also run when a connection is accepted.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Reject> {
        if self.read().blocked_nets.iter().any(|n| n.contains(&ip)) {
            return Err(Reject::BlockedIp(ip));
        }
        if self.shared().1.iter().any(|n| n.contains(&ip)) {
            return Err(Reject::BlockedIp(ip));
        }
        Ok(())
    }

    fn shared(&self) -> std::sync::RwLockReadGuard<'_, (BTreeSet<Uuid>, BTreeSet<IpNet>)> {
        self.shared_blocks.read().unwrap_or_else(|p| p.into_inner())
    }

    /// This node's blocklists (UUIDs, networks), to share in Redis mode.
    pub fn local_blocks(&self) -> (BTreeSet<Uuid>, BTreeSet<IpNet>) {
        let s = self.read();
        (s.blocked_uuids.clone(), s.blocked_nets.clone())
    }

    /// Redis mode: the blocklists in force on every node.
    pub fn set_shared_blocks(&self, uuids: BTreeSet<Uuid>, nets: BTreeSet<IpNet>) {
        *self
            .shared_blocks
            .write()
            .unwrap_or_else(|p| p.into_inner()) = (uuids, nets);
    }

    /// Refuses a sensor for the kick period.
    pub fn kick(&self, uuid: Uuid) {
        self.kicked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uuid, Instant::now() + self.kick_for);
    }

    /// Checks 1-6 on a header (the ones that need no session state).
    pub fn check_header(&self, h: &Header, ip: IpAddr) -> Result<(), Reject> {
        self.check_ip(ip)?;
        let u = h.uuid;
        if self.read().block_ip_by_uuid.contains(&u) {
            let net = IpNet::from(ip);
            // Best effort: the refusal stands even if it cannot be persisted.
            self.update_lazily(|s| s.blocked_nets.insert(net));
            return Err(Reject::BlockIpByUuid(ip));
        }
        if self.read().blocked_uuids.contains(&u) || self.shared().0.contains(&u) {
            return Err(Reject::BlockedUuid);
        }
        {
            let mut k = self.kicked.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(until) = k.get(&u) {
                let now = Instant::now();
                if *until > now {
                    return Err(Reject::Kicked((*until - now).as_secs() + 1));
                }
                k.remove(&u);
            }
        }
        if self.mode == Mode::Registration && !self.read().approved.contains(&u) {
            if d4_proto::is_v4(&u) {
                self.note_pending(u, ip);
            }
            return Err(Reject::NotApproved(u));
        }
        let max = self
            .read()
            .settings
            .get(&u)
            .and_then(|s| s.max_frame_size)
            .map_or(self.max_frame_size, |m| m.min(self.max_frame_size));
        if h.size > max {
            return Err(Reject::TooLarge { size: h.size, max });
        }
        if !d4_proto::is_v4(&u) {
            return Err(Reject::NotV4(u));
        }
        if h.ty == 0 {
            return Err(Reject::Type0);
        }
        if !self.accepted_types().contains(&h.ty) {
            return Err(Reject::TypeNotAccepted(h.ty));
        }
        if h.version != d4_proto::VERSION {
            return Err(Reject::Version(h.version));
        }
        Ok(())
    }

    /// Check 6 for the extended type announced by a meta-header.
    pub fn check_extended(&self, name: &str) -> Result<(), Reject> {
        let accepted = self.accepted_extended();
        if accepted.is_empty() || accepted.contains(name) {
            Ok(())
        } else {
            Err(Reject::ExtendedNotAccepted(name.to_string()))
        }
    }

    fn note_pending(&self, u: Uuid, ip: IpAddr) {
        let t = chrono::Utc::now().timestamp();
        let known = self.read().pending.get(&u).map(|p| p.ip.clone());
        // Persist only news (a sensor retrying from the same address is not news).
        if known.as_deref() == Some(&ip.to_string()) {
            return;
        }
        self.update_lazily(|s| {
            // A full list keeps its entries (an operator may be about to
            // approve one); newcomers wait until it is cleared.
            if s.pending.len() >= MAX_PENDING && !s.pending.contains_key(&u) {
                return;
            }
            let e = s.pending.entry(u).or_insert(PendingSensor {
                first_seen: t,
                last_seen: t,
                ip: ip.to_string(),
                registered: false,
                mail: None,
                third_party: false,
                key: None,
            });
            e.last_seen = t;
            e.ip = ip.to_string();
        });
    }

    /// The signer for a sensor: its own key, or the default key.
    pub fn signer(&self, u: Uuid) -> Signer {
        if let Some(s) = self
            .signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&u)
        {
            return s.clone();
        }
        // Read the key with no other lock held.
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let key = self.read().keys.get(&u).cloned();
        let s = match key {
            Some(k) => Signer::new(k.as_bytes()),
            None => self.default_signer.clone(),
        };
        let mut cache = self.signers.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        // Only if no key changed meanwhile (the update clears the cache after
        // bumping the generation, under the state lock).
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
            cache.insert(u, s.clone());
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use d4_proto::header::HMAC_LEN;

    fn header(u: Uuid, ty: u8, size: u32) -> Header {
        Header {
            version: 1,
            ty,
            uuid: u,
            timestamp: 0,
            hmac: [0; HMAC_LEN],
            size,
        }
    }

    fn policy(mode: Mode) -> (tempfile::TempDir, Policy) {
        let d = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(d.path()).unwrap());
        let cfg = ServerConfig {
            mode,
            accepted_types: vec![1, 2, 3, 254],
            ..ServerConfig::default()
        };
        (d, Policy::load(&cfg, db).unwrap())
    }

    #[test]
    fn checks_run_in_the_reference_order() {
        let (_d, p) = policy(Mode::Registration);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let u = Uuid::new_v4();
        // 4 before 5: an unknown sensor is "not approved" whatever its size.
        assert_eq!(
            p.check_header(&header(u, 3, u32::MAX), ip),
            Err(Reject::NotApproved(u))
        );
        assert!(p.snapshot().pending.contains_key(&u));
        p.update(|s| s.approved.insert(u)).unwrap();
        assert_eq!(p.check_header(&header(u, 3, 10), ip), Ok(()));
        // 5 before 6.
        assert!(matches!(
            p.check_header(&header(u, 0, 2_000_000), ip),
            Err(Reject::TooLarge { .. })
        ));
        assert_eq!(p.check_header(&header(u, 0, 1), ip), Err(Reject::Type0));
        assert_eq!(
            p.check_header(&header(u, 8, 1), ip),
            Err(Reject::TypeNotAccepted(8))
        );
        // 3: kicked, then blocked; 1 before everything.
        p.kick(u);
        assert!(matches!(
            p.check_header(&header(u, 3, 1), ip),
            Err(Reject::Kicked(_))
        ));
        p.update(|s| s.blocked_uuids.insert(u)).unwrap();
        assert_eq!(
            p.check_header(&header(u, 3, 1), ip),
            Err(Reject::BlockedUuid)
        );
        p.update(|s| s.blocked_nets.insert("192.0.2.0/24".parse().unwrap()))
            .unwrap();
        assert_eq!(
            p.check_header(&header(u, 3, 1), ip),
            Err(Reject::BlockedIp(ip))
        );
    }

    #[test]
    fn block_ip_by_uuid_adds_the_address_and_persists() {
        let (d, p) = policy(Mode::SharedSecret);
        let ip: IpAddr = "2001:db8::5".parse().unwrap();
        let u = Uuid::new_v4();
        p.update(|s| s.block_ip_by_uuid.insert(u)).unwrap();
        assert_eq!(
            p.check_header(&header(u, 3, 1), ip),
            Err(Reject::BlockIpByUuid(ip))
        );
        // Any sensor from that address is now refused.
        assert_eq!(
            p.check_header(&header(Uuid::new_v4(), 3, 1), ip),
            Err(Reject::BlockedIp(ip))
        );
        p.persist_if_changed().unwrap();
        drop(p);
        let db = Arc::new(Db::open(d.path()).unwrap());
        let p2 = Policy::load(&ServerConfig::default(), db).unwrap();
        assert!(p2.check_ip(ip).is_err());
    }

    #[test]
    fn shared_secret_accepts_any_v4_and_refuses_others() {
        let (_d, p) = policy(Mode::SharedSecret);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(p.check_header(&header(Uuid::new_v4(), 1, 1), ip), Ok(()));
        let v1 = Uuid::parse_str("9a7c4b56-1c1f-1b74-9b0e-3c1f2a1b7e01").unwrap();
        assert_eq!(
            p.check_header(&header(v1, 1, 1), ip),
            Err(Reject::NotV4(v1))
        );
        let mut h = header(Uuid::new_v4(), 1, 1);
        h.version = 2;
        assert_eq!(p.check_header(&h, ip), Err(Reject::Version(2)));
    }
}
