//! Redis mode: the UUID and IP blocklists shared between nodes and with the
//! reference tools, in the reference sets `blacklist_uuid` (32 hex digits)
//! and `blacklist_ip` (addresses or CIDR networks).
//!
//! Every 250 ms each node adds what was blocked here since the last round
//! (and removes what was unblocked here), then reads both sets back into
//! its policy: a block made on one node, or with `redis-cli SADD
//! blacklist_uuid ...`, is enforced by every node within about half a
//! second. Redis unreachable: the last sets read stay in force.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use uuid::Uuid;

use crate::policy::Policy;

/// The reference set of blocked sensor UUIDs.
pub const BLACKLIST_UUID: &str = "blacklist_uuid";
/// The reference set of blocked addresses.
pub const BLACKLIST_IP: &str = "blacklist_ip";

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

/// Runs until the policy is dropped.
pub async fn sync_loop(policy: std::sync::Weak<Policy>, mut c: ConnectionManager) {
    let mut pushed: (BTreeSet<Uuid>, BTreeSet<IpNet>) = Default::default();
    let mut failing = false;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(p) = policy.upgrade() else { return };
        match round(&p, &mut c, &mut pushed).await {
            Ok(()) if failing => {
                tracing::info!("shared blocklists in Redis reachable again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                tracing::error!(
                    "cannot sync the blocklists with Redis: {e}; the last ones read stay in force"
                );
                failing = true;
            }
            Err(_) => {}
        }
    }
}

async fn round(
    p: &Arc<Policy>,
    c: &mut ConnectionManager,
    pushed: &mut (BTreeSet<Uuid>, BTreeSet<IpNet>),
) -> redis::RedisResult<()> {
    let (uuids, nets) = p.local_blocks();
    let mut pipe = redis::pipe();
    let mut any = false;
    for u in uuids.difference(&pushed.0) {
        pipe.sadd(BLACKLIST_UUID, u.simple().to_string()).ignore();
        any = true;
    }
    for u in pushed.0.difference(&uuids) {
        // Unblocked here: remove both spellings.
        pipe.srem(BLACKLIST_UUID, u.simple().to_string()).ignore();
        pipe.srem(BLACKLIST_UUID, u.to_string()).ignore();
        any = true;
    }
    for n in nets.difference(&pushed.1) {
        pipe.sadd(BLACKLIST_IP, net_member(n)).ignore();
        any = true;
    }
    for n in pushed.1.difference(&nets) {
        pipe.srem(BLACKLIST_IP, net_member(n)).ignore();
        any = true;
    }
    if any {
        let _: () = pipe.query_async(c).await?;
        *pushed = (uuids, nets);
    }
    let u: Vec<String> = c.smembers(BLACKLIST_UUID).await?;
    let n: Vec<String> = c.smembers(BLACKLIST_IP).await?;
    p.set_shared_blocks(
        u.iter()
            .filter_map(|s| Uuid::parse_str(s.trim()).ok())
            .collect(),
        n.iter().filter_map(|s| parse_net(s.trim())).collect(),
    );
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
pub struct Leases {
    c: ConnectionManager,
    node: String,
}

/// A lease held by a session; released on drop (best effort) and renewed
/// meanwhile.
pub struct Lease {
    renew: tokio::task::JoinHandle<()>,
    leases: Arc<Leases>,
    key: String,
    value: String,
}

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
    pub fn new(c: ConnectionManager) -> Arc<Leases> {
        Arc::new(Leases {
            c,
            node: Uuid::new_v4().simple().to_string(),
        })
    }

    /// Takes the (UUID, type) lease for a session: `Ok(None)` when another
    /// session (on any node) holds it. A Redis error is returned to the
    /// caller, who lets the session in (availability first) and logs it.
    pub async fn acquire(
        self: &Arc<Self>,
        uuid: Uuid,
        ty: u8,
        session: Uuid,
    ) -> redis::RedisResult<Option<Lease>> {
        let key = format!("d4:live:{}:{ty}", uuid.simple());
        let value = format!("{}/{}", self.node, session.simple());
        let mut c = self.c.clone();
        let ok: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&value)
            .arg("NX")
            .arg("PX")
            .arg(LEASE_MS)
            .query_async(&mut c)
            .await?;
        if ok.is_none() {
            return Ok(None);
        }
        let (k2, v2, mut c2) = (key.clone(), value.clone(), self.c.clone());
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW).await;
                let r: redis::RedisResult<i64> = redis::Script::new(
                    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
                )
                .key(&k2)
                .arg(&v2)
                .arg(LEASE_MS)
                .invoke_async(&mut c2)
                .await;
                if let Err(e) = r {
                    tracing::warn!("cannot renew the live-connection lease {k2}: {e}");
                }
            }
        });
        Ok(Some(Lease {
            renew,
            leases: self.clone(),
            key,
            value,
        }))
    }
}

/// One session's traffic since its last report.
struct Seen {
    uuid: Uuid,
    ip: std::net::IpAddr,
    ty: String,
    frames: u64,
    at: chrono::DateTime<chrono::Utc>,
}

/// Redis mode: sensor metadata and daily statistics written in the
/// reference schema, for the reference tools and dashboards: `metadata_uuid:<uuid>`
/// (`first_seen`, `last_seen`), `all_types_by_uuid:<uuid>`,
/// `metadata_type_by_uuid:<uuid>:<type>`, and per day (`YYYYMMDD`, UTC) the
/// sorted sets `daily_uuid`, `daily_ip`, `daily_type`, `stat_uuid_ip:<date>:<uuid>`,
/// `stat_ip_uuid:<date>:<ip>`, `stat_type_uuid:<date>:<type>`,
/// `stat_uuid_type:<date>:<uuid>`, counted in frames as the reference does.
/// Sessions hand their reports over a bounded channel; a full channel
/// (Redis slow or away) drops the report, counted.
pub struct MetaMirror {
    tx: tokio::sync::mpsc::Sender<Seen>,
    /// Reports dropped.
    pub dropped: std::sync::atomic::AtomicU64,
}

impl MetaMirror {
    /// Starts the writer task.
    pub fn start(c: ConnectionManager) -> Arc<MetaMirror> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Seen>(4096);
        tokio::spawn(async move {
            let mut c = c;
            while let Some(s) = rx.recv().await {
                if let Err(e) = write(&mut c, &s).await {
                    tracing::debug!("sensor metadata not written to Redis: {e}");
                }
            }
        });
        Arc::new(MetaMirror {
            tx,
            dropped: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Records a session's traffic (never blocks).
    pub fn record(&self, uuid: Uuid, ip: std::net::IpAddr, type_key: &str, frames: u64) {
        let ty = type_key.split(':').next().unwrap_or(type_key).to_string();
        let s = Seen {
            uuid,
            ip,
            ty,
            frames,
            at: chrono::Utc::now(),
        };
        if self.tx.try_send(s).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

async fn write(c: &mut ConnectionManager, s: &Seen) -> redis::RedisResult<()> {
    let u = s.uuid.simple().to_string();
    let ip = s.ip.to_string();
    let date = s.at.format("%Y%m%d").to_string();
    let ts = s.at.timestamp();
    let n = s.frames as f64;
    let mut p = redis::pipe();
    let meta = format!("metadata_uuid:{u}");
    let by_type = format!("metadata_type_by_uuid:{u}:{}", s.ty);
    p.hset_nx(&meta, "first_seen", ts)
        .ignore()
        .hset(&meta, "last_seen", ts)
        .ignore()
        .sadd(format!("all_types_by_uuid:{u}"), &s.ty)
        .ignore()
        .hset_nx(&by_type, "first_seen", ts)
        .ignore()
        .hset(&by_type, "last_seen", ts)
        .ignore()
        .zincr(format!("daily_uuid:{date}"), &u, n)
        .ignore()
        .zincr(format!("daily_ip:{date}"), &ip, n)
        .ignore()
        .zincr(format!("daily_type:{date}"), &s.ty, n)
        .ignore()
        .zincr(format!("stat_uuid_ip:{date}:{u}"), &ip, n)
        .ignore()
        .zincr(format!("stat_ip_uuid:{date}:{ip}"), &u, n)
        .ignore()
        .zincr(format!("stat_type_uuid:{date}:{}", s.ty), &u, n)
        .ignore()
        .zincr(format!("stat_uuid_type:{date}:{u}"), &s.ty, n)
        .ignore();
    p.query_async(c).await
}
