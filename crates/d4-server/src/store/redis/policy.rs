//! Redis mode: the policy shared between nodes and with the reference
//! tools, in the reference key schema.
//!
//! - Sets `blacklist_uuid` (32 hex digits), `blacklist_ip` (addresses or
//!   CIDR networks), `blacklist_ip_by_uuid`, `registered_uuid`,
//!   `sensor_pending_registration`, `server:accepted_type`,
//!   `server:accepted_extended_type`: every 250 ms each node writes the
//!   changes made here since the last round, then reads the sets back into
//!   its policy (Redis is the truth; a change made on another node or with
//!   `redis-cli` applies here within about half a second). The state last
//!   read is kept in the local store: the first round of a node that never
//!   synchronised adds its whole policy; changes made while Redis is away
//!   are written when it returns; meanwhile the last sets read stay in force.
//! - Per-sensor HMAC keys in `metadata_uuid:<uuid>` `hmac_key`, the default
//!   key in `server:hmac_default_key` (set by the first node if missing): a
//!   session reads both when it starts, as the reference server does.
//! - Kicks: `temp_blacklist_uuid:<uuid>` with the kick period as TTL; a node
//!   closes its sessions of a sensor kicked elsewhere within a round, and
//!   turns the reference UI's requests (`server:sensor_to_kick`) into kicks.
//! - [`Leases`]: one live connection per (UUID, type) across nodes.
//! - [`MetaMirror`]: sensor metadata and daily statistics, buffered on disk
//!   while Redis is away.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ipnet::IpNet;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ingest::policy::{Mirror, Policy, Reject};
use crate::ingest::sensors::Sensors;
use crate::store::db::Db;

/// The reference set of blocked sensor UUIDs.
pub(crate) const BLACKLIST_UUID: &str = "blacklist_uuid";
/// The reference set of blocked addresses.
pub(crate) const BLACKLIST_IP: &str = "blacklist_ip";
/// Sensors whose addresses are blocked when they connect.
pub(crate) const BLACKLIST_IP_BY_UUID: &str = "blacklist_ip_by_uuid";
/// Approved sensors (registration mode).
pub(crate) const REGISTERED_UUID: &str = "registered_uuid";
/// Sensors waiting for approval.
pub(crate) const PENDING: &str = "sensor_pending_registration";
/// Accepted types.
pub(crate) const ACCEPTED_TYPE: &str = "server:accepted_type";
/// Accepted extended types.
pub(crate) const ACCEPTED_EXTENDED_TYPE: &str = "server:accepted_extended_type";
/// The default HMAC key.
pub(crate) const DEFAULT_KEY: &str = "server:hmac_default_key";
/// Kick requests of the reference UI.
pub(crate) const SENSOR_TO_KICK: &str = "server:sensor_to_kick";

/// `temp_blacklist_uuid:<uuid>`.
fn kick_key(u: &Uuid) -> String {
    format!("temp_blacklist_uuid:{}", u.simple())
}

/// `metadata_uuid:<uuid>`.
fn meta_key(u: &Uuid) -> String {
    format!("metadata_uuid:{}", u.simple())
}

fn net_member(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// How often the policy is synchronised.
const ROUND: Duration = Duration::from_millis(250);

/// The first synchronisation, before the server takes connections: the
/// shared default key set if missing (checked against this node's), and the
/// shared policy read. `Err` when Redis did not answer in time (the loop
/// goes on trying).
pub(crate) async fn first_sync(
    p: &Policy,
    sensors: &Sensors,
    default_key: &str,
    c: &mut ConnectionManager,
) -> anyhow::Result<()> {
    let t = Duration::from_secs(3);
    tokio::time::timeout(t, check_default_key(c, default_key)).await??;
    tokio::time::timeout(t, round(p, sensors, c)).await??;
    Ok(())
}

/// Runs until the policy is dropped: a round every 250 ms, and at once
/// after a change made here.
pub(crate) async fn sync_loop(
    policy: Weak<Policy>,
    sensors: Weak<Sensors>,
    default_key: String,
    mut c: ConnectionManager,
    mut key_checked: bool,
) {
    let mut failing = false;
    loop {
        let (Some(p), Some(s)) = (policy.upgrade(), sensors.upgrade()) else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(ROUND) => {}
            _ = p.changed.notified() => {}
        }
        if !key_checked {
            key_checked = check_default_key(&mut c, &default_key).await.is_ok();
        }
        let r = match tokio::time::timeout(Duration::from_secs(5), round(&p, &s, &mut c)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("no answer within 5 s".to_string()),
        };
        match r {
            Ok(()) if failing => {
                tracing::info!(
                    "shared policy in Redis reachable again; changes made meanwhile written"
                );
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::error!(
                    "cannot sync the policy with Redis: {e}; the last one read stays in force, changes made here are written when Redis returns"
                );
                failing = true;
            }
            Err(_) => {}
        }
    }
}

/// Sets the shared default key if none is set; warns when it differs from
/// this node's.
async fn check_default_key(c: &mut ConnectionManager, mine: &str) -> redis::RedisResult<()> {
    let _: bool = c.set_nx(DEFAULT_KEY, mine).await?;
    let shared: Option<String> = c.get(DEFAULT_KEY).await?;
    if shared.as_deref() != Some(mine) {
        tracing::warn!(
            "the default HMAC key in Redis ({DEFAULT_KEY}) differs from this node's configuration; sensors without their own key are checked with the one in Redis"
        );
    }
    Ok(())
}

/// Adds the members of `after` not in `before`, removes the others.
fn diff<T: Ord>(
    pipe: &mut redis::Pipeline,
    key: &str,
    before: &BTreeSet<T>,
    after: &BTreeSet<T>,
    spell: impl Fn(&T) -> Vec<String>,
) {
    for x in after.difference(before) {
        if let Some(first) = spell(x).into_iter().next() {
            pipe.sadd(key, first).ignore();
        }
    }
    for x in before.difference(after) {
        for v in spell(x) {
            pipe.srem(key, v).ignore();
        }
    }
}

/// A UUID as the reference writes it (32 hex digits), then the other spelling.
fn uuid_spellings(u: &Uuid) -> Vec<String> {
    vec![u.simple().to_string(), u.hyphenated().to_string()]
}

fn uuids(v: Vec<String>) -> BTreeSet<Uuid> {
    v.iter()
        .filter_map(|s| Uuid::parse_str(s.trim()).ok())
        .collect()
}

async fn round(p: &Policy, sensors: &Sensors, c: &mut ConnectionManager) -> redis::RedisResult<()> {
    let (now, synced) = p.mirror();
    let before = synced.unwrap_or_default();
    let kicks = p.take_kicks();
    let mut pipe = redis::pipe();
    pipe.atomic();
    diff(
        &mut pipe,
        BLACKLIST_UUID,
        &before.blocked_uuids,
        &now.blocked_uuids,
        uuid_spellings,
    );
    diff(
        &mut pipe,
        BLACKLIST_IP,
        &before.blocked_nets,
        &now.blocked_nets,
        |n| vec![net_member(n)],
    );
    diff(
        &mut pipe,
        BLACKLIST_IP_BY_UUID,
        &before.block_ip_by_uuid,
        &now.block_ip_by_uuid,
        uuid_spellings,
    );
    diff(
        &mut pipe,
        REGISTERED_UUID,
        &before.approved,
        &now.approved,
        uuid_spellings,
    );
    diff(
        &mut pipe,
        PENDING,
        &before.pending,
        &now.pending,
        uuid_spellings,
    );
    diff(
        &mut pipe,
        ACCEPTED_TYPE,
        &before.accepted_types,
        &now.accepted_types,
        |t| vec![t.to_string()],
    );
    diff(
        &mut pipe,
        ACCEPTED_EXTENDED_TYPE,
        &before.accepted_extended,
        &now.accepted_extended,
        |t| vec![t.clone()],
    );
    for (u, k) in &now.keys {
        if before.keys.get(u) != Some(k) {
            pipe.hset(meta_key(u), "hmac_key", k).ignore();
        }
    }
    for u in before.keys.keys().filter(|u| !now.keys.contains_key(u)) {
        pipe.hdel(meta_key(u), "hmac_key").ignore();
    }
    let secs = p.kick_period().as_secs().max(1);
    for u in &kicks {
        pipe.set_ex(kick_key(u), "kicked", secs).ignore();
    }
    // Read back in the same transaction: what every node now enforces.
    pipe.smembers(BLACKLIST_UUID)
        .smembers(BLACKLIST_IP)
        .smembers(BLACKLIST_IP_BY_UUID)
        .smembers(REGISTERED_UUID)
        .smembers(PENDING)
        .smembers(ACCEPTED_TYPE)
        .smembers(ACCEPTED_EXTENDED_TYPE)
        .smembers(SENSOR_TO_KICK);
    #[allow(clippy::type_complexity)]
    let r: redis::RedisResult<(
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
    )> = pipe.query_async(c).await;
    let (bu, bi, bibu, reg, pend, ty, ext, to_kick) = match r {
        Ok(r) => r,
        Err(e) => {
            p.return_kicks(kicks);
            return Err(e);
        }
    };
    let shared = Mirror {
        blocked_uuids: uuids(bu),
        blocked_nets: bi.iter().filter_map(|s| parse_net(s.trim())).collect(),
        block_ip_by_uuid: uuids(bibu),
        approved: uuids(reg),
        pending: uuids(pend),
        accepted_types: ty.iter().filter_map(|t| t.trim().parse().ok()).collect(),
        accepted_extended: ext.into_iter().collect(),
        keys: now.keys.clone(),
    };
    p.apply_mirror(shared, &now);

    // Kick requests of the reference UI become kicks every node sees.
    if !to_kick.is_empty() {
        let mut pipe = redis::pipe();
        for s in &to_kick {
            if let Ok(u) = Uuid::parse_str(s.trim()) {
                pipe.set_ex(kick_key(&u), "kicked", secs).ignore();
            }
            pipe.srem(SENSOR_TO_KICK, s).ignore();
        }
        let _: () = pipe.query_async(c).await?;
    }
    // Sessions here of sensors kicked on another node (or by a reference tool).
    let live: BTreeSet<Uuid> = sensors.live().iter().map(|l| l.uuid).collect();
    if !live.is_empty() {
        let mut pipe = redis::pipe();
        for u in &live {
            pipe.pttl(kick_key(u));
        }
        let ttls: Vec<i64> = pipe.query_async(c).await?;
        for (u, ms) in live.iter().zip(ttls) {
            // -1: set without an expiry; -2: no such key.
            if ms > 0 || ms == -1 {
                let d = u64::try_from(ms).map_or(p.kick_period(), Duration::from_millis);
                p.kick_for(*u, d);
                let n = sensors.close_sessions_of(*u, Reject::Kicked(d.as_secs() + 1));
                tracing::info!(
                    "sensor {} kicked through Redis ({n} sessions closed here)",
                    u.simple()
                );
            }
        }
    }
    Ok(())
}

/// How long a live-connection lease lasts without renewal.
const LEASE_MS: u64 = 15_000;
/// How often a session renews its lease.
const RENEW: Duration = Duration::from_secs(5);

/// Cross-node live-connection leases: one connection per (UUID, type) across
/// every node sharing the Redis (`d4:live:<uuid>:<type>`, value
/// `<node>/<session>`, 15 s expiry renewed every 5 s while the session lives,
/// so a crashed node's leases lapse by themselves).
pub(crate) struct Leases {
    c: ConnectionManager,
    node: String,
}

/// A session's lease, renewed while it lives and released on drop (best
/// effort; it lapses anyway). When Redis did not answer the first request,
/// the session was let in and the lease is taken as soon as Redis answers;
/// if another session (on any node) holds it by then, or takes it after an
/// outage longer than the lease, this session is closed as a second
/// connection.
pub(crate) struct Lease {
    renew: tokio::task::JoinHandle<()>,
    leases: Arc<Leases>,
    key: String,
    value: String,
}

/// The error for a Redis call given up after `wait`.
pub(crate) fn timed_out(wait: Duration) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer within {} ms", wait.as_millis()),
    ))
}

/// The outcome of [`Leases::acquire`].
pub(crate) enum Acquired {
    /// This session holds the (UUID, type) lease.
    Held(Lease),
    /// Another session does: refuse this one.
    Taken,
    /// Redis did not answer in time: the session is let in (availability
    /// first) and the lease keeps being asked for.
    Unknown(Lease, redis::RedisError),
}

/// Keeps a lease: renews it if held, takes it if free; 0 if another holds it.
const HOLD_SCRIPT: &str = "
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0";

impl Drop for Lease {
    fn drop(&mut self) {
        self.renew.abort();
        let (leases, key, value) = (self.leases.clone(), self.key.clone(), self.value.clone());
        tokio::spawn(async move {
            let mut c = leases.c.clone();
            let r: redis::RedisResult<i64> = redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            )
            .key(&key)
            .arg(&value)
            .invoke_async(&mut c)
            .await;
            if let Err(e) = r {
                tracing::warn!(
                    "cannot release the live-connection lease {key}: {e} (it lapses in 15 s)"
                );
            }
        });
    }
}

impl Leases {
    /// Leases for this node (a random node name unless given).
    pub(crate) fn new(c: ConnectionManager) -> Arc<Leases> {
        Arc::new(Leases {
            c,
            node: Uuid::new_v4().simple().to_string(),
        })
    }

    /// What Redis says of a sensor starting a session: kicked (for how
    /// long), and the HMAC key to check it with (its own `hmac_key`, else
    /// `server:hmac_default_key`; `None` when neither is set).
    pub(crate) async fn admit(&self, uuid: Uuid) -> redis::RedisResult<Admission> {
        let mut c = self.c.clone();
        let (ttl, own, default): (i64, Option<String>, Option<String>) = redis::pipe()
            .pttl(kick_key(&uuid))
            .hget(meta_key(&uuid), "hmac_key")
            .get(DEFAULT_KEY)
            .query_async(&mut c)
            .await?;
        Ok(Admission {
            kicked: match ttl {
                -2 => None,
                ms => Some(u64::try_from(ms).map_or(30, |ms| ms.div_ceil(1000))),
            },
            key: own.or(default),
        })
    }

    /// Takes the (UUID, type) lease for a session, waiting at most `wait`
    /// for Redis. `close` ends the session if it turns out to be a second
    /// connection later (see [`Lease`]).
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        uuid: Uuid,
        ty: u8,
        session: Uuid,
        wait: Duration,
        close: Arc<crate::ingest::sensors::CloseSignal>,
    ) -> Acquired {
        let key = format!("d4:live:{}:{ty}", uuid.simple());
        let value = format!("{}/{}", self.node, session.simple());
        let mut c = self.c.clone();
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(&value).arg("NX").arg("PX").arg(LEASE_MS);
        let first =
            match tokio::time::timeout(wait, set.query_async::<Option<String>>(&mut c)).await {
                Ok(Ok(None)) => return Acquired::Taken,
                Ok(Ok(Some(_))) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(timed_out(wait)),
            };
        let (k2, v2, mut c2) = (key.clone(), value.clone(), self.c.clone());
        let mut held = first.is_ok();
        let renew = tokio::spawn(async move {
            loop {
                // Asked for again soon while not known to be held.
                tokio::time::sleep(if held { RENEW } else { Duration::from_secs(1) }).await;
                let r: redis::RedisResult<i64> = redis::Script::new(HOLD_SCRIPT)
                    .key(&k2)
                    .arg(&v2)
                    .arg(LEASE_MS)
                    .invoke_async(&mut c2)
                    .await;
                match r {
                    Ok(1) => held = true,
                    Ok(2) => {
                        if held {
                            tracing::warn!("live-connection lease {k2} had lapsed; taken again");
                        }
                        held = true;
                    }
                    Ok(_) => {
                        tracing::warn!(
                            "live-connection lease {k2} is held by another session: this one is a second connection"
                        );
                        close.close(crate::ingest::policy::Reject::AlreadyConnected(ty));
                        return;
                    }
                    Err(e) => tracing::warn!("cannot renew the live-connection lease {k2}: {e}"),
                }
            }
        });
        let lease = Lease {
            renew,
            leases: self.clone(),
            key,
            value,
        };
        match first {
            Ok(()) => Acquired::Held(lease),
            Err(e) => Acquired::Unknown(lease, e),
        }
    }
}

/// What Redis says of a sensor starting a session.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Kicked: seconds left.
    pub(crate) kicked: Option<u64>,
    /// The key to check its frames with.
    pub(crate) key: Option<String>,
}

/// One aggregate of accepted traffic: a (sensor, address, type, day).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Agg {
    frames: u64,
    first: i64,
    last: i64,
}

/// Metadata writes not yet in Redis (kept on disk while Redis is away).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Pending {
    /// `uuid|ip|type|YYYYMMDD` → traffic.
    seen: BTreeMap<String, Agg>,
    /// `list_uuid_ip:<uuid>` entries, oldest first.
    ips: Vec<(String, String)>,
    /// Last error per sensor (`None`: cleared by accepted traffic).
    errors: BTreeMap<String, Option<String>>,
}

impl Pending {
    fn len(&self) -> usize {
        self.seen.len() + self.ips.len() + self.errors.len()
    }

    /// Adds `later` (newer) to self.
    fn merge(&mut self, later: Pending) {
        for (k, a) in later.seen {
            let e = self.seen.entry(k).or_insert_with(|| Agg {
                frames: 0,
                first: a.first,
                last: a.last,
            });
            e.frames += a.frames;
            e.first = e.first.min(a.first);
            e.last = e.last.max(a.last);
        }
        self.ips.extend(later.ips);
        self.errors.extend(later.errors);
    }
}

/// A batch of metadata sent to Redis without a clear answer: sent again
/// as it is, under the same marker, which Redis applies once.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Inflight {
    /// Names `d4:meta_batch:<marker>`, set by the batch's script.
    marker: String,
    batch: Pending,
}

/// What is kept on disk while Redis is away (a document of earlier
/// versions, a bare [`Pending`], reads as one without a batch in flight).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Spooled {
    #[serde(flatten)]
    pending: Pending,
    #[serde(default)]
    inflight: Option<Inflight>,
}

/// Most metadata entries buffered while Redis is away.
const META_BOUND: usize = 100_000;
/// Store document of the buffer.
const META_DOC: &str = "redis_meta_spool";
/// Entries per Redis transaction.
const META_BATCH: usize = 500;

/// Redis mode: sensor metadata and daily statistics written in the
/// reference schema, for the reference tools and dashboards: `metadata_uuid:<uuid>`
/// (`first_seen`, `last_seen`, `Error`), `all_types_by_uuid:<uuid>`,
/// `metadata_type_by_uuid:<uuid>:<type>`, `list_uuid_ip:<uuid>` (16 kept), and
/// per day (`YYYYMMDD`, UTC) the sorted sets `daily_uuid`, `daily_ip`,
/// `daily_type`, `stat_uuid_ip:<date>:<uuid>`, `stat_ip_uuid:<date>:<ip>`,
/// `stat_type_uuid:<date>:<type>`, `stat_uuid_type:<date>:<uuid>`, counted in
/// frames as the reference does.
///
/// Sessions never wait: reports are summed in memory per (sensor, address,
/// type, day) and written every second, each batch in one transaction. While
/// Redis is away the sums are kept in the local store (bounded: past
/// 100,000 entries new ones are dropped and counted) and written when it
/// returns, also after a restart.
pub(crate) struct MetaMirror {
    pending: std::sync::Mutex<Pending>,
    /// Entries dropped (buffer full).
    pub(crate) dropped: std::sync::atomic::AtomicU64,
    /// Entries waiting (for `/metrics`).
    pub(crate) waiting: std::sync::atomic::AtomicU64,
}

impl MetaMirror {
    /// Starts the writer task, with what a previous run left on disk.
    pub(crate) fn start(c: ConnectionManager, db: Arc<Db>) -> Arc<MetaMirror> {
        let left: Spooled = match db.get_doc(META_DOC) {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => {
                tracing::error!("sensor metadata buffered for Redis unreadable, dropped: {e}");
                Spooled::default()
            }
        };
        let n = left.pending.len() + left.inflight.as_ref().map_or(0, |f| f.batch.len());
        if n > 0 {
            tracing::info!(
                "{n} sensor metadata entries buffered by a previous run are being written to Redis"
            );
        }
        let m = Arc::new(MetaMirror {
            waiting: std::sync::atomic::AtomicU64::new(n as u64),
            pending: std::sync::Mutex::new(left.pending),
            dropped: std::sync::atomic::AtomicU64::new(0),
        });
        tokio::spawn(writer(Arc::downgrade(&m), c, db, left.inflight));
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn full(&self, p: &Pending) -> bool {
        if p.len() >= META_BOUND {
            let before = self
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if before.is_multiple_of(10_000) {
                tracing::error!(
                    "sensor metadata buffer for Redis full ({META_BOUND} entries): {} updates dropped so far",
                    before + 1
                );
            }
            return true;
        }
        false
    }

    /// Records a session's traffic (never blocks on Redis).
    pub(crate) fn record(&self, uuid: Uuid, ip: std::net::IpAddr, type_key: &str, frames: u64) {
        let ty = type_key.split(':').next().unwrap_or(type_key);
        let now = chrono::Utc::now();
        let u = uuid.simple().to_string();
        let key = format!("{u}|{ip}|{ty}|{}", now.format("%Y%m%d"));
        let t = now.timestamp();
        let mut p = self.lock();
        if !p.seen.contains_key(&key) && self.full(&p) {
            return;
        }
        let e = p.seen.entry(key).or_insert(Agg {
            frames: 0,
            first: t,
            last: t,
        });
        e.frames += frames;
        e.last = t;
        // Accepted traffic clears the sensor's error, as the reference does.
        p.errors.insert(u, None);
    }

    /// Records a session's start (`list_uuid_ip`).
    pub(crate) fn session_started(&self, uuid: Uuid, ip: std::net::IpAddr) {
        let entry = format!("{ip}-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
        let mut p = self.lock();
        if !self.full(&p) {
            p.ips.push((uuid.simple().to_string(), entry));
        }
    }

    /// Records a sensor's error (`Error` of `metadata_uuid:<uuid>`).
    pub(crate) fn error(&self, uuid: Uuid, reason: &str) {
        let u = uuid.simple().to_string();
        let mut p = self.lock();
        if !p.errors.contains_key(&u) && self.full(&p) {
            return;
        }
        p.errors.insert(u, Some(format!("Error: {reason}")));
    }
}

/// Writes the buffer every second; keeps it on disk while Redis is away.
/// Each batch carries a marker that its script sets, so a batch whose
/// answer was lost (or that Redis ran late) and is sent again counts once.
async fn writer(
    m: Weak<MetaMirror>,
    mut c: ConnectionManager,
    db: Arc<Db>,
    mut inflight: Option<Inflight>,
) {
    let mut failing = false;
    let mut on_disk = inflight.is_some();
    let mut first = true;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(mm) = m.upgrade() else { return };
        if first {
            let r: redis::RedisResult<bool> = c
                .set_nx(
                    "first_date",
                    chrono::Utc::now().format("%Y%m%d").to_string(),
                )
                .await;
            first = r.is_err();
        }
        let send = async |c: &mut ConnectionManager, f: &Inflight| {
            let wait = Duration::from_secs(5);
            tokio::time::timeout(wait, write(c, &f.marker, &f.batch))
                .await
                .unwrap_or_else(|_| Err(timed_out(wait)))
        };
        let mut err = None;
        // The batch sent without an answer goes first, as it was.
        if let Some(f) = &inflight {
            match send(&mut c, f).await {
                Ok(()) => inflight = None,
                Err(e) => err = Some(e),
            }
        }
        let mut rest = if err.is_none() {
            std::mem::take(&mut *mm.lock())
        } else {
            Pending::default()
        };
        while err.is_none() && rest.len() > 0 {
            let (now, later) = split(rest, META_BATCH);
            rest = later;
            let f = Inflight {
                marker: Uuid::new_v4().simple().to_string(),
                batch: now,
            };
            if let Err(e) = send(&mut c, &f).await {
                inflight = Some(f);
                err = Some(e);
            }
        }
        let in_flight = inflight.as_ref().map_or(0, |f| f.batch.len());
        let (left, keep) = {
            let mut p = mm.lock();
            let newer = std::mem::take(&mut *p);
            rest.merge(newer);
            *p = rest;
            mm.waiting.store(
                (p.len() + in_flight) as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            // On disk while Redis is away, so that a restart loses nothing;
            // once a round went through, everything that was on disk is in
            // Redis: the copy goes (a restart would write it again).
            let keep = if err.is_some() {
                Some(Spooled {
                    pending: p.clone(),
                    inflight: inflight.clone(),
                })
            } else {
                on_disk.then(Spooled::default)
            };
            (p.len() + in_flight, keep)
        };
        if let Some(keep) = keep {
            // Written off the lock (sessions record meanwhile) and off the runtime.
            let db = db.clone();
            let r = tokio::task::spawn_blocking(move || {
                if keep.pending.len() == 0 && keep.inflight.is_none() {
                    db.delete_doc(META_DOC)
                } else {
                    db.put_docs(&[(META_DOC.to_string(), &keep)])
                }
            })
            .await;
            match r {
                Ok(Ok(())) => on_disk = err.is_some(),
                Ok(Err(e)) => {
                    tracing::error!("cannot keep sensor metadata for Redis on disk: {e}")
                }
                Err(e) => tracing::error!("cannot keep sensor metadata for Redis on disk: {e}"),
            }
        }
        match err {
            Some(e) if !failing => {
                tracing::error!(
                    "Redis unreachable ({e}): sensor metadata and statistics kept on disk ({left} entries) until it returns"
                );
                failing = true;
            }
            Some(_) => {}
            None => {
                if failing {
                    tracing::info!(
                        "sensor metadata and statistics buffered meanwhile delivered to Redis"
                    );
                    failing = false;
                }
            }
        }
    }
}

/// The first `n` entries, and the rest.
fn split(mut p: Pending, n: usize) -> (Pending, Pending) {
    if p.len() <= n {
        return (p, Pending::default());
    }
    let mut first = Pending::default();
    while first.len() < n {
        if let Some((k, v)) = p.seen.pop_first() {
            first.seen.insert(k, v);
        } else if let Some((k, v)) = p.errors.pop_first() {
            first.errors.insert(k, v);
        } else if !p.ips.is_empty() {
            let take = (n - first.len()).min(p.ips.len());
            first.ips.extend(p.ips.drain(..take));
        } else {
            break;
        }
    }
    (first, p)
}

/// Sets `last_seen` unless a later one is there.
/// KEYS[1]: the batch's marker; ARGV: commands, each as its length, its
/// name and its arguments. Runs them unless the marker is set (the batch
/// was applied before), then sets it for a day. `LASTSEEN key t` sets the
/// hash field `last_seen` to `t` unless it is later already (another node
/// may have written a later one).
const META_SCRIPT: &str = "
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 86400) then return 0 end
local i = 1
while i <= #ARGV do
  local argc = tonumber(ARGV[i])
  local cmd = ARGV[i + 1]
  if cmd == 'LASTSEEN' then
    local v = redis.call('HGET', ARGV[i + 2], 'last_seen')
    if (not v) or tonumber(v) < tonumber(ARGV[i + 3]) then
      redis.call('HSET', ARGV[i + 2], 'last_seen', ARGV[i + 3])
    end
  else
    redis.call(cmd, unpack(ARGV, i + 2, i + argc))
  end
  i = i + argc + 1
end
return 1";

async fn write(c: &mut ConnectionManager, marker: &str, p: &Pending) -> redis::RedisResult<()> {
    let mut args: Vec<String> = Vec::new();
    let mut cmd = |parts: &[&str]| {
        args.push(parts.len().to_string());
        args.extend(parts.iter().map(|s| s.to_string()));
    };
    for (k, a) in &p.seen {
        let mut it = k.split('|');
        let (Some(u), Some(ip), Some(ty), Some(date)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let n = a.frames.to_string();
        let (first, last) = (a.first.to_string(), a.last.to_string());
        let meta = format!("metadata_uuid:{u}");
        let by_type = format!("metadata_type_by_uuid:{u}:{ty}");
        cmd(&["HSETNX", &meta, "first_seen", &first]);
        cmd(&["SADD", &format!("all_types_by_uuid:{u}"), ty]);
        cmd(&["HSETNX", &by_type, "first_seen", &first]);
        cmd(&["ZINCRBY", &format!("daily_uuid:{date}"), &n, u]);
        cmd(&["ZINCRBY", &format!("daily_ip:{date}"), &n, ip]);
        cmd(&["ZINCRBY", &format!("daily_type:{date}"), &n, ty]);
        cmd(&["ZINCRBY", &format!("stat_uuid_ip:{date}:{u}"), &n, ip]);
        cmd(&["ZINCRBY", &format!("stat_ip_uuid:{date}:{ip}"), &n, u]);
        cmd(&["ZINCRBY", &format!("stat_type_uuid:{date}:{ty}"), &n, u]);
        cmd(&["ZINCRBY", &format!("stat_uuid_type:{date}:{u}"), &n, ty]);
        cmd(&["LASTSEEN", &meta, &last]);
        cmd(&["LASTSEEN", &by_type, &last]);
    }
    for (u, e) in &p.ips {
        let key = format!("list_uuid_ip:{u}");
        cmd(&["LPUSH", &key, e]);
        cmd(&["LTRIM", &key, "0", "15"]);
    }
    for (u, e) in &p.errors {
        let meta = format!("metadata_uuid:{u}");
        match e {
            Some(e) => cmd(&["HSET", &meta, "Error", e]),
            None => cmd(&["HDEL", &meta, "Error"]),
        }
    }
    let _: i64 = redis::Script::new(META_SCRIPT)
        .key(format!("d4:meta_batch:{marker}"))
        .arg(args)
        .invoke_async(c)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: usize) -> Pending {
        let mut p = Pending::default();
        for i in 0..n {
            p.seen.insert(
                format!("u|ip|{i}|20260101"),
                Agg {
                    frames: 1,
                    first: 5,
                    last: 5,
                },
            );
        }
        p.ips.push(("u".into(), "127.0.0.1-20260101000000".into()));
        p.errors.insert("u".into(), None);
        p
    }

    #[tokio::test]
    async fn a_metadata_batch_sent_twice_counts_once() {
        // A real redis-server when installed (ci.sh installs it).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let Ok(child) = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        else {
            eprintln!("skipped: redis-server not installed (ci.sh installs it)");
            return;
        };
        // Stopped however the test ends.
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let _redis = Kill(child);
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0")).unwrap();
        let mut c = None;
        for _ in 0..100 {
            if let Ok(m) = ConnectionManager::new(client.clone()).await {
                c = Some(m);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut c = c.expect("redis-server started");
        let batch = pending(2);
        write(&mut c, "m1", &batch).await.unwrap();
        write(&mut c, "m1", &batch).await.unwrap(); // its answer was lost: sent again
        let score: f64 = c.zscore("daily_uuid:20260101", "u").await.unwrap();
        assert_eq!(score, 2.0, "one frame per entry, counted once");
        let ips: Vec<String> = c.lrange("list_uuid_ip:u", 0, -1).await.unwrap();
        assert_eq!(ips.len(), 1);
        write(&mut c, "m2", &batch).await.unwrap(); // another batch counts
        let score: f64 = c.zscore("daily_uuid:20260101", "u").await.unwrap();
        assert_eq!(score, 4.0);
        let last: String = c.hget("metadata_uuid:u", "last_seen").await.unwrap();
        assert_eq!(last, "5");
    }

    #[test]
    fn a_buffer_kept_by_an_earlier_version_reads_back() {
        let old = serde_json::to_vec(&pending(3)).unwrap();
        let s: Spooled = serde_json::from_slice(&old).unwrap();
        assert_eq!(s.pending.len(), pending(3).len());
        assert!(s.inflight.is_none());
        let now = Spooled {
            pending: pending(2),
            inflight: Some(Inflight {
                marker: "m".into(),
                batch: pending(1),
            }),
        };
        let back: Spooled = serde_json::from_slice(&serde_json::to_vec(&now).unwrap()).unwrap();
        assert_eq!(back.pending.len(), pending(2).len());
        assert_eq!(
            back.inflight.map(|f| (f.marker, f.batch.len())),
            Some(("m".into(), 3))
        );
    }

    #[test]
    fn split_takes_everything_once() {
        let (a, b) = split(pending(7), 4);
        assert_eq!((a.len(), b.len()), (4, 5));
        let (c, d) = split(b, 4);
        let (e, f) = split(d, 4);
        assert_eq!((c.len(), e.len(), f.len()), (4, 1, 0));
    }

    #[test]
    fn merge_adds_frames_and_widens_times() {
        let mut a = pending(1);
        let mut b = pending(1);
        b.seen.values_mut().for_each(|x| {
            x.first = 9;
            x.last = 9;
            x.frames = 3
        });
        a.merge(b);
        let x = a.seen.values().next().unwrap();
        assert_eq!((x.frames, x.first, x.last), (4, 5, 9));
        assert_eq!(a.ips.len(), 2);
    }
}
