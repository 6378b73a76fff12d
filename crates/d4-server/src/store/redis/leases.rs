//! Redis mode: cross-node admission of sessions. A session's first frame
//! asks Redis (at most 1 s; then the policy last read applies) whether its
//! sensor was kicked on any node and for its HMAC key; its first verified
//! frame takes the lease `d4:live:<uuid>:<type>` (`SET NX PX 15000`), kept
//! every 5 s by a task of the session with a script that renews it if held
//! and takes it again if it lapsed, and released by a compare-and-delete
//! script when the session ends. A session let in because Redis did not
//! answer within 1 s gets the same task, asking every second; when the
//! lease turns out to be another session's (now, or after an outage longer
//! than 15 s), the session is closed as a second connection through its
//! `CloseSignal`.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::policy::{kick_key, meta_key, DEFAULT_KEY};
use super::timed_out;
use crate::store::{Acquired, Admission, BoxFuture, Lease, LeaseAsk, SessionGate, StoreError};

/// How long a live-connection lease lasts without renewal.
const LEASE_MS: u64 = 15_000;
/// How often a session renews its lease.
const RENEW: Duration = Duration::from_secs(5);

/// Cross-node live-connection leases: one connection per (UUID, type) across
/// every node sharing the Redis (`d4:live:<uuid>:<type>`, value
/// `<node>/<session>`, 15 s expiry renewed every 5 s while the session lives,
/// so a crashed node's leases lapse by themselves).
pub(crate) struct RedisLeases {
    c: ConnectionManager,
    node: String,
}

/// A session's lease, renewed while it lives and released on drop (best
/// effort; it lapses anyway). When Redis did not answer the first request,
/// the session was let in and the lease is taken as soon as Redis answers;
/// if another session (on any node) holds it by then, or takes it after an
/// outage longer than the lease, this session is closed as a second
/// connection.
pub(crate) struct RedisLease {
    renew: tokio::task::JoinHandle<()>,
    /// To release it with.
    c: ConnectionManager,
    key: String,
    value: String,
}

/// Keeps a lease: renews it if held, takes it if free; 0 if another holds it.
const HOLD_SCRIPT: &str = "
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0";

impl Lease for RedisLease {}

impl Drop for RedisLease {
    fn drop(&mut self) {
        self.renew.abort();
        let (mut c, key, value) = (self.c.clone(), self.key.clone(), self.value.clone());
        tokio::spawn(async move {
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

impl RedisLeases {
    /// Leases for this node (a random node name).
    pub(crate) fn new(c: ConnectionManager) -> Arc<RedisLeases> {
        Arc::new(RedisLeases {
            c,
            node: Uuid::new_v4().simple().to_string(),
        })
    }

    /// What Redis says of a sensor starting a session: kicked (for how
    /// long), and the HMAC key to check it with (its own `hmac_key`, else
    /// `server:hmac_default_key`; `None` when neither is set).
    async fn admit_now(&self, uuid: Uuid) -> redis::RedisResult<Admission> {
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
    /// connection later (see [`RedisLease`]).
    async fn acquire_now(&self, ask: LeaseAsk) -> Acquired {
        let LeaseAsk {
            uuid,
            ty,
            session,
            wait,
            close,
        } = ask;
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
        let lease = Box::new(RedisLease {
            renew,
            c: self.c.clone(),
            key,
            value,
        });
        match first {
            Ok(()) => Acquired::Held(Some(lease)),
            Err(e) => Acquired::Unknown(lease, e.into()),
        }
    }
}

impl SessionGate for RedisLeases {
    fn admit(&self, uuid: Uuid) -> BoxFuture<'_, Result<Option<Admission>, StoreError>> {
        Box::pin(async move { Ok(Some(self.admit_now(uuid).await?)) })
    }

    fn acquire(&self, ask: LeaseAsk) -> BoxFuture<'_, Acquired> {
        Box::pin(self.acquire_now(ask))
    }

    fn own_keys(&self, uuids: Vec<Uuid>) -> BoxFuture<'_, Result<Option<Vec<bool>>, StoreError>> {
        Box::pin(async move {
            if uuids.is_empty() {
                return Ok(Some(Vec::new()));
            }
            let mut pipe = redis::pipe();
            for u in &uuids {
                pipe.hexists(meta_key(u), "hmac_key");
            }
            let mut c = self.c.clone();
            let got: Vec<bool> = pipe.query_async(&mut c).await?;
            Ok(Some(got))
        })
    }
}
