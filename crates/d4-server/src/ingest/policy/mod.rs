//! Admission policy: who may send what. The ingest checks of spec 02, in
//! their order, as pure functions of the policy state and one header.
//!
//! The persistent policy (approved, pending, blocked UUIDs, blocked
//! addresses and CIDR ranges, block-IP-by-UUID, per-sensor keys, per-sensor
//! settings — name, description, tags, a frame size limit below the
//! server's, a monitoring delay — and accepted types set from the UI, which
//! override the configuration's) is one store document, plus the in-memory
//! kick list (30 s). [`Reject`] names every reason. Pending sensors noted
//! from connections (no credentials) have budgets per address, per /24 or
//! /64 and in all, and expire after 24 h without an attempt; operators'
//! registrations have a budget of their own (`state`). Operator changes are
//! committed at once (off the async threads); changes made by sessions (a
//! new pending sensor, an address blocked by UUID) are applied in memory
//! and written by the 5-second background task, so no session waits for a
//! disk commit. Locks are never nested. In Redis mode the shared parts are
//! kept in step by `store::redis::policy` ([`Mirror`],
//! [`Policy::apply_mirror`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use d4_proto::{Header, Signer};
use ipnet::IpNet;
use uuid::Uuid;

pub(crate) use super::reject::Reject;
use state::merge3;
pub(crate) use state::{
    prefix_of, Mirror, PendingFull, PendingSensor, PolicyState, SensorSettings, MAX_PENDING,
};

mod state;
use crate::config::{Mode, ServerConfig};
use crate::store::db::Db;

/// How often a pending sensor retrying from the same address has its last
/// attempt written (seconds): often enough for the expiry, rarely enough
/// that retries are not news.
const PENDING_REFRESH_SECS: i64 = 3600;

/// The policy shared by all sessions.
pub(crate) struct Policy {
    mode: Mode,
    /// Limit for frame payloads.
    pub(crate) max_frame_size: u32,
    accepted_types: BTreeSet<u8>,
    accepted_extended: BTreeSet<String>,
    /// `accept_unknown_versions`.
    any_version: bool,
    kick_for: Duration,
    state: RwLock<PolicyState>,
    kicked: Mutex<HashMap<Uuid, Instant>>,
    /// Woken by every change made through [`Policy::update`] and every
    /// kick (Redis mode: shared at once).
    pub(crate) changed: tokio::sync::Notify,
    /// Kicks not yet written to Redis (Redis mode).
    kicks_to_share: Mutex<Vec<Uuid>>,
    /// Redis mode: kicks are shared.
    shares_kicks: std::sync::atomic::AtomicBool,
    /// Bumped by every change of the state (under the state lock), so that a
    /// key read before a change is never cached after it.
    changes: std::sync::atomic::AtomicU64,
    default_signer: Signer,
    signers: Mutex<HashMap<Uuid, Signer>>,
    /// Set by lazy updates not yet written.
    dirty: std::sync::atomic::AtomicBool,
    /// Unapproved sensors not listed as pending because a budget was
    /// spent: per address, per prefix, the whole list (`/metrics`).
    pub(crate) pending_refused: [std::sync::atomic::AtomicU64; 3],
    /// The last attempt of pending sensors retrying from the address
    /// already noted (Unix seconds), kept in memory for the registrations
    /// page: the state (and the store) takes it only once an hour. Past
    /// [`MAX_ATTEMPTS`] entries, those no longer pending go.
    attempts: Mutex<HashMap<Uuid, i64>>,
    db: Arc<Db>,
}

/// Most entries of [`Policy`]'s in-memory last attempts before those no
/// longer pending are forgotten (the pending list is bounded).
const MAX_ATTEMPTS: usize = 2 * (MAX_PENDING + state::MAX_REGISTERED);

impl Policy {
    /// Loads the policy state from the store; the rest comes from the configuration.
    pub(crate) fn load(cfg: &ServerConfig, db: Arc<Db>) -> Result<Policy> {
        let state: PolicyState = db.get_doc("policy")?.unwrap_or_default();
        Ok(Policy {
            mode: cfg.mode,
            max_frame_size: cfg.max_frame_size,
            accepted_types: cfg.accepted_types.iter().copied().collect(),
            accepted_extended: cfg.accepted_extended_types.iter().cloned().collect(),
            any_version: cfg.accept_unknown_versions,
            kick_for: Duration::from_secs(cfg.kick_secs),
            state: RwLock::new(state),
            kicked: Mutex::new(HashMap::new()),
            kicks_to_share: Mutex::new(Vec::new()),
            shares_kicks: std::sync::atomic::AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
            changes: std::sync::atomic::AtomicU64::new(0),
            default_signer: Signer::new(cfg.default_key.as_bytes()),
            signers: Mutex::new(HashMap::new()),
            dirty: std::sync::atomic::AtomicBool::new(false),
            pending_refused: Default::default(),
            attempts: Mutex::new(HashMap::new()),
            db,
        })
    }

    /// The admission mode.
    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, PolicyState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the persistent state (for listings).
    pub(crate) fn snapshot(&self) -> PolicyState {
        self.read().clone()
    }

    /// Changes the state and persists it. Locks are never nested: the state
    /// lock is released before the signer cache is touched.
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut PolicyState) -> T) -> Result<T> {
        let (out, doc) = {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            let out = f(&mut s);
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (out, s.clone())
        };
        self.signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.db.put_docs(&[("policy".to_string(), &doc)])?;
        self.changed.notify_one();
        Ok(out)
    }

    /// Changes the state in memory only; [`Policy::persist_if_changed`]
    /// writes it (sessions must not wait for a disk commit).
    pub(crate) fn update_lazily<T>(&self, f: impl FnOnce(&mut PolicyState) -> T) -> T {
        let out = {
            let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            f(&mut s)
        };
        self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
        out
    }

    /// Writes the state if a lazy update changed it (called periodically);
    /// first forgets the pending sensors noted from connections that expired.
    pub(crate) fn persist_if_changed(&self) -> Result<()> {
        let t = chrono::Utc::now().timestamp();
        if self.read().has_expired_pending(t) {
            self.update_lazily(|s| s.expire_pending(t));
        }
        if self.dirty.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let doc = self.snapshot();
            self.db.put_docs(&[("policy".to_string(), &doc)])?;
        }
        Ok(())
    }

    /// The accepted types in force (set by an operator, or the configuration's).
    pub(crate) fn accepted_types(&self) -> BTreeSet<u8> {
        self.read()
            .accepted_types
            .clone()
            .unwrap_or_else(|| self.accepted_types.clone())
    }

    /// The accepted extended types in force (empty: any valid name).
    pub(crate) fn accepted_extended(&self) -> BTreeSet<String> {
        self.read()
            .accepted_extended
            .clone()
            .unwrap_or_else(|| self.accepted_extended.clone())
    }

    /// Check 1, also run when a connection is accepted.
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), Reject> {
        if self.read().blocked_nets.iter().any(|n| n.contains(&ip)) {
            return Err(Reject::BlockedIp(ip));
        }
        Ok(())
    }

    /// Redis mode: the shared part of the policy as this node has it, and the
    /// state last synchronised with Redis.
    pub(crate) fn mirror(&self) -> (Mirror, Option<Mirror>) {
        let s = self.read();
        (self.mirror_of(&s), s.redis_synced.clone())
    }

    fn mirror_of(&self, s: &PolicyState) -> Mirror {
        let mut keys: BTreeMap<Uuid, String> = s
            .pending
            .iter()
            .filter_map(|(u, p)| Some((*u, p.key.clone()?)))
            .collect();
        keys.extend(s.keys.iter().map(|(u, k)| (*u, k.clone())));
        Mirror {
            blocked_uuids: s.blocked_uuids.clone(),
            blocked_nets: s.blocked_nets.clone(),
            block_ip_by_uuid: s.block_ip_by_uuid.clone(),
            approved: s.approved.clone(),
            // Only registrations (with a key): the reference's
            // `sensor_pending_registration` never lists sensors that merely
            // connected, and its registration API refuses those it lists.
            pending: s
                .pending
                .iter()
                .filter(|(_, p)| p.registered)
                .map(|(u, _)| *u)
                .collect(),
            accepted_types: s
                .accepted_types
                .clone()
                .unwrap_or_else(|| self.accepted_types.clone()),
            accepted_extended: s
                .accepted_extended
                .clone()
                .unwrap_or_else(|| self.accepted_extended.clone()),
            keys,
        }
    }

    /// Redis mode: takes the shared policy read from Redis (`shared`, whose
    /// writes included this node's changes up to `before`), keeping the
    /// changes made here since `before` was taken.
    pub(crate) fn apply_mirror(&self, shared: Mirror, before: &Mirror) {
        self.update_lazily(|s| {
            let now = self.mirror_of(s);
            s.blocked_uuids = merge3(
                &shared.blocked_uuids,
                &before.blocked_uuids,
                &now.blocked_uuids,
            );
            s.blocked_nets = merge3(
                &shared.blocked_nets,
                &before.blocked_nets,
                &now.blocked_nets,
            );
            s.block_ip_by_uuid = merge3(
                &shared.block_ip_by_uuid,
                &before.block_ip_by_uuid,
                &now.block_ip_by_uuid,
            );
            s.approved = merge3(&shared.approved, &before.approved, &now.approved);
            let pending = merge3(&shared.pending, &before.pending, &now.pending);
            // Approved on another node: the key given at registration
            // becomes the sensor's, as an approval here does.
            let gone: Vec<Uuid> = s
                .pending
                .iter()
                .filter(|(u, p)| p.registered && !pending.contains(u))
                .map(|(u, _)| *u)
                .collect();
            for u in gone {
                if let Some(k) = s.pending.remove(&u).and_then(|p| p.key) {
                    if s.approved.contains(&u) {
                        s.keys.entry(u).or_insert(k);
                    }
                }
            }
            for u in pending.into_iter().take(MAX_PENDING) {
                s.pending
                    .entry(u)
                    .or_insert_with(|| PendingSensor::new(0, String::new(), true))
                    .registered = true;
            }
            // An empty set in Redis is not "accept nothing": it is seeded
            // from this node at the next round.
            if !shared.accepted_types.is_empty() {
                s.accepted_types = Some(merge3(
                    &shared.accepted_types,
                    &before.accepted_types,
                    &now.accepted_types,
                ));
            }
            s.accepted_extended = Some(merge3(
                &shared.accepted_extended,
                &before.accepted_extended,
                &now.accepted_extended,
            ));
            s.redis_synced = Some(shared);
        });
        self.signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Redis mode: a key set here for a sensor and not yet written to Redis.
    pub(crate) fn unsynced_key(&self, u: Uuid) -> Option<String> {
        let s = self.read();
        let local = s.keys.get(&u).or_else(|| s.pending.get(&u)?.key.as_ref())?;
        let synced = s.redis_synced.as_ref().and_then(|m| m.keys.get(&u));
        (synced != Some(local)).then(|| local.clone())
    }

    /// Refuses a sensor for the kick period (shared with the other nodes in
    /// Redis mode).
    pub(crate) fn kick(&self, uuid: Uuid) {
        self.kick_for(uuid, self.kick_for);
        if self.shares_kicks.load(std::sync::atomic::Ordering::SeqCst) {
            self.kicks_to_share
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(uuid);
            self.changed.notify_one();
        }
    }

    /// Refuses a sensor for `d` (a kick made elsewhere).
    pub(crate) fn kick_for(&self, uuid: Uuid, d: Duration) {
        self.kicked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uuid, Instant::now() + d);
    }

    /// The kick period.
    pub(crate) fn kick_period(&self) -> Duration {
        self.kick_for
    }

    /// Redis mode: kicks are to be shared from now on.
    pub(crate) fn share_kicks(&self) {
        self.shares_kicks
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Redis mode: the kicks made here since the last call.
    pub(crate) fn take_kicks(&self) -> Vec<Uuid> {
        std::mem::take(
            &mut *self
                .kicks_to_share
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Redis mode: kicks to write again after a failure.
    pub(crate) fn return_kicks(&self, k: Vec<Uuid>) {
        self.kicks_to_share
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(k);
    }

    /// Checks 1-6 on a header (the ones that need no session state).
    pub(crate) fn check_header(&self, h: &Header, ip: IpAddr) -> Result<(), Reject> {
        let u = h.uuid;
        // Every frame's header comes here: one read of the state, nothing
        // copied or allocated (the checks still run in their order below).
        let (blocked_ip, ip_by_uuid, blocked, approved, max, type_ok) = {
            let s = self.read();
            (
                s.blocked_nets.iter().any(|n| n.contains(&ip)),
                s.block_ip_by_uuid.contains(&u),
                s.blocked_uuids.contains(&u),
                self.mode != Mode::Registration || s.approved.contains(&u),
                s.settings
                    .get(&u)
                    .and_then(|s| s.max_frame_size)
                    .map_or(self.max_frame_size, |m| m.min(self.max_frame_size)),
                s.accepted_types
                    .as_ref()
                    .unwrap_or(&self.accepted_types)
                    .contains(&h.ty),
            )
        };
        if blocked_ip {
            return Err(Reject::BlockedIp(ip));
        }
        if ip_by_uuid {
            let net = IpNet::from(ip);
            // Best effort: the refusal stands even if it cannot be persisted.
            self.update_lazily(|s| s.blocked_nets.insert(net));
            return Err(Reject::BlockIpByUuid(ip));
        }
        if blocked {
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
        if !approved {
            // `d4 sensor approve` refuses such a UUID: say what is wrong.
            if !d4_proto::is_v4(&u) {
                return Err(Reject::NotV4(u));
            }
            self.note_pending(u, ip);
            return Err(Reject::NotApproved(u));
        }
        if h.size > max {
            return Err(Reject::TooLarge { size: h.size, max });
        }
        if !d4_proto::is_v4(&u) {
            return Err(Reject::NotV4(u));
        }
        if h.ty == 0 {
            return Err(Reject::Type0);
        }
        if !type_ok {
            return Err(Reject::TypeNotAccepted(h.ty));
        }
        if h.version != d4_proto::VERSION && !self.any_version {
            return Err(Reject::Version(h.version));
        }
        Ok(())
    }

    /// Check 6 for the extended type announced by a meta-header.
    pub(crate) fn check_extended(&self, name: &str) -> Result<(), Reject> {
        let accepted = self.accepted_extended();
        if accepted.is_empty() || accepted.contains(name) {
            Ok(())
        } else {
            Err(Reject::ExtendedNotAccepted(name.to_string()))
        }
    }

    /// Notes an unapproved sensor's attempt (see
    /// [`PolicyState::note_attempt`] for its budgets).
    fn note_pending(&self, u: Uuid, ip: IpAddr) {
        let t = chrono::Utc::now().timestamp();
        let known = self
            .read()
            .pending
            .get(&u)
            .map(|p| (p.ip.clone(), p.last_seen));
        // Persist only news (a sensor retrying from the same address is not
        // news, but its last attempt is kept roughly up to date for the expiry).
        if let Some((known_ip, last)) = &known {
            if *known_ip == ip.to_string() && t - last < PENDING_REFRESH_SECS {
                self.note_attempt_in_memory(u, t);
                return;
            }
        }
        // A full budget keeps its entries (an operator may be about to
        // approve one); newcomers wait until some expire or are cleared.
        // Checked under the read lock first: a flood that is refused
        // changes nothing (no write lock, nothing to persist).
        let room = match known {
            Some(_) => Ok(()),
            None => self.read().pending_room(ip),
        };
        let noted = room.and_then(|()| self.update_lazily(|s| s.note_attempt(u, ip, t)));
        if let Err(full) = noted {
            let n = &self.pending_refused[full as usize];
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let u = u.simple();
            tracing::debug!(sensor = %u, %ip, "not listed as pending: {full:?} budget spent");
        }
    }

    /// Keeps the time of a pending sensor's retry in memory (not news for
    /// the store, but the registrations page shows it).
    fn note_attempt_in_memory(&self, u: Uuid, t: i64) {
        let attempts = || self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let full = {
            let mut a = attempts();
            a.insert(u, t);
            a.len() > MAX_ATTEMPTS
        };
        if full {
            // Locks are never nested: the pending list is read first.
            let pending: std::collections::HashSet<Uuid> =
                self.read().pending.keys().copied().collect();
            attempts().retain(|u, _| pending.contains(u));
        }
    }

    /// The last attempt of pending sensor `u`: the later of the state's
    /// (`noted`) and the one kept in memory.
    pub(crate) fn last_attempt(&self, u: Uuid, noted: i64) -> i64 {
        let a = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        a.get(&u).copied().unwrap_or(0).max(noted)
    }

    /// The signer for a sensor: its own key, or the default key.
    pub(crate) fn signer(&self, u: Uuid) -> Signer {
        if let Some(s) = self
            .signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&u)
        {
            return s.clone();
        }
        // Read the key with no other lock held.
        let generation = self.changes.load(std::sync::atomic::Ordering::SeqCst);
        let key = self.read().keys.get(&u).cloned();
        let s = match key {
            Some(k) => Signer::new(k.as_bytes()),
            None => self.default_signer.clone(),
        };
        let mut cache = self.signers.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        // Only if nothing changed meanwhile (an update bumps the counter under
        // the state lock, then clears the cache).
        if self.changes.load(std::sync::atomic::Ordering::SeqCst) == generation {
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
        // A UUID `d4 sensor approve` would refuse is told what is wrong.
        let v1 = Uuid::parse_str("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap();
        let r = p.check_header(&header(v1, 3, 10), ip).unwrap_err();
        assert_eq!(r, Reject::NotV4(v1));
        assert!(!r.to_string().contains("approve"), "{r}");
        assert!(r.to_string().contains("version 1"), "{r}");
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
    fn merge3_keeps_changes_made_on_both_sides() {
        let set = |v: &[u8]| v.iter().copied().collect::<BTreeSet<u8>>();
        // Redis gained 9 (another node) and lost 1; here 2 was removed and 7
        // added since the snapshot that was written.
        assert_eq!(
            merge3(&set(&[2, 3, 9]), &set(&[1, 2, 3]), &set(&[1, 3, 7])),
            set(&[3, 7, 9])
        );
        assert_eq!(merge3(&set(&[4]), &set(&[]), &set(&[])), set(&[4]));
    }

    #[test]
    fn redis_sync_keeps_local_changes_and_moves_registration_keys() {
        let (_d, p) = policy(Mode::Registration);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        p.update(|s| {
            s.pending.insert(
                a,
                PendingSensor {
                    first_seen: 1,
                    last_seen: 1,
                    ip: String::new(),
                    registered: true,
                    mail: None,
                    third_party: false,
                    key: Some("k".into()),
                },
            )
        })
        .unwrap();
        let (before, synced) = p.mirror();
        assert!(synced.is_none());
        assert_eq!(before.keys.get(&a).map(String::as_str), Some("k"));
        // Meanwhile here: b blocked. In Redis: a approved elsewhere.
        p.update(|s| s.blocked_uuids.insert(b)).unwrap();
        let shared = Mirror {
            approved: [a].into(),
            accepted_types: [1, 3].into(),
            ..Mirror::default()
        };
        p.apply_mirror(shared, &before);
        let s = p.snapshot();
        assert!(s.blocked_uuids.contains(&b), "a change made here survives");
        assert!(s.approved.contains(&a) && s.pending.is_empty());
        assert_eq!(s.keys.get(&a).map(String::as_str), Some("k"));
        assert_eq!(p.accepted_types(), [1, 3].into());
        assert!(p.unsynced_key(a).is_some(), "not yet written to Redis");
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
