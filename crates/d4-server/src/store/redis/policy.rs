//! Redis mode: the policy shared between nodes and with the reference
//! tools, in the reference key schema.
//!
//! - Sets `blacklist_uuid` (32 hex digits), `blacklist_ip` (addresses or
//!   CIDR networks), `blacklist_ip_by_uuid`, `registered_uuid`,
//!   `sensor_pending_registration`, `server:accepted_type`,
//!   `server:accepted_extended_type` (with `*` and the names in use while
//!   any extended type is accepted): every 250 ms each node writes the
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
//!
//! Every 250 ms, and at once after a change made through the API or UI, a
//! round writes the changes made here since the last round (a diff against
//! `redis_synced`, the sets last read, kept in the local store so changes
//! made during an outage or before a restart are not lost; a node that
//! never synced writes its whole policy first) and reads the sets back in
//! the same `MULTI`; `Policy::apply_mirror` merges three ways (what Redis
//! has, plus what changed here while the round was under way). Keys are
//! written, not read back: a session reads `hmac_key` /
//! `server:hmac_default_key` and `temp_blacklist_uuid:<uuid>` when it starts
//! ([`super::leases`], at most 1 s, then the policy last read applies),
//! except a key set here and not yet written. Each round asks the TTL of
//! the sensors live here and closes those kicked elsewhere.

use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::Duration;

use ipnet::IpNet;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use uuid::Uuid;

use crate::ingest::policy::{Mirror, Policy, Reject};
use crate::ingest::sensors::Sensors;

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
/// In `server:accepted_extended_type`: any extended type name is accepted
/// (`accepted_extended_types = []`). The reference tools only know the
/// set as a list of names, so the names in use are written beside it
/// (see [`extended_in_use`]); removing `*` makes the set a list again.
pub(crate) const ANY_EXTENDED: &str = "*";
/// Extended types with a handler of their own, listed for the reference
/// tools (which refuse to create a queue for a name not in the set).
const KNOWN_EXTENDED: [&str; 2] = ["ja3-jl", "maltrail"];
/// The default HMAC key.
pub(crate) const DEFAULT_KEY: &str = "server:hmac_default_key";
/// Kick requests of the reference UI.
pub(crate) const SENSOR_TO_KICK: &str = "server:sensor_to_kick";

/// `temp_blacklist_uuid:<uuid>`.
pub(crate) fn kick_key(u: &Uuid) -> String {
    format!("temp_blacklist_uuid:{}", u.simple())
}

/// `metadata_uuid:<uuid>`.
pub(crate) fn meta_key(u: &Uuid) -> String {
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

/// The extended types in force as `server:accepted_extended_type` spells
/// them: any name is [`ANY_EXTENDED`].
fn extended_spelled(set: &BTreeSet<String>) -> BTreeSet<String> {
    if set.is_empty() {
        BTreeSet::from([ANY_EXTENDED.to_string()])
    } else {
        set.clone()
    }
}

/// The extended type names in use, written to `server:accepted_extended_type`
/// while any name is accepted: the built-in handlers' and those sensors sent.
fn extended_in_use(sensors: &Sensors) -> Vec<String> {
    let mut names: BTreeSet<String> = KNOWN_EXTENDED.iter().map(|s| s.to_string()).collect();
    // Since this start (those of earlier runs are in the set already).
    names.extend(
        sensors
            .totals()
            .keys()
            .filter_map(|k| k.strip_prefix("254:"))
            .map(str::to_string),
    );
    names.into_iter().collect()
}

async fn round(p: &Policy, sensors: &Sensors, c: &mut ConnectionManager) -> redis::RedisResult<()> {
    let (now, synced) = p.mirror();
    let synced_never = synced.is_none();
    let before = synced.unwrap_or_default();
    // A node's first round: whether anybody made an extended type list.
    let ext_listed: u64 = if synced_never {
        c.scard(ACCEPTED_EXTENDED_TYPE).await?
    } else {
        0
    };
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
    let ext_before = extended_spelled(&before.accepted_extended);
    let ext_now = extended_spelled(&now.accepted_extended);
    // Whether "any" is in force as far as this round knows.
    let mut any = now.accepted_extended.is_empty();
    if synced_never {
        // A node's first round adds its list; "any" only where nobody made
        // a list.
        any &= ext_listed == 0;
        if !now.accepted_extended.is_empty() || ext_listed == 0 {
            pipe.sadd(ACCEPTED_EXTENDED_TYPE, Vec::from_iter(ext_now.iter()))
                .ignore();
        }
    } else if ext_before.contains(ANY_EXTENDED) && !ext_now.contains(ANY_EXTENDED) {
        // From "any" to a list: the names written as in use go too.
        pipe.del(ACCEPTED_EXTENDED_TYPE).ignore();
        for x in &ext_now {
            pipe.sadd(ACCEPTED_EXTENDED_TYPE, x).ignore();
        }
    } else {
        diff(
            &mut pipe,
            ACCEPTED_EXTENDED_TYPE,
            &ext_before,
            &ext_now,
            |t| vec![t.clone()],
        );
    }
    if any {
        let names = extended_in_use(sensors);
        pipe.sadd(ACCEPTED_EXTENDED_TYPE, names).ignore();
    }
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
        accepted_extended: if ext.iter().any(|x| x == ANY_EXTENDED) {
            BTreeSet::new()
        } else {
            ext.into_iter().collect()
        },
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
