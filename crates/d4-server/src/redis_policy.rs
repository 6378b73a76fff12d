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
