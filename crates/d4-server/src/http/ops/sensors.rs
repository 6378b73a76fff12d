//! Sensor views and actions (approve, reject, revoke, block, unblock, kick,
//! block-ips, key, settings); silent sensors.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::StatusCode;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::http::ops::{bad, policy_update, ApiError, ApiResult};
use crate::ingest::policy::{Reject, SensorSettings};
use crate::ingest::sensors::SensorMeta;
use crate::server::Shared;

/// A sensor as the API shows it (its key never).
#[derive(Serialize, Clone)]
pub(crate) struct SensorView {
    /// Metadata and statistics.
    #[serde(flatten)]
    pub(crate) meta: SensorMeta,
    /// `approved`, `pending`, `blocked` or `unknown`.
    pub(crate) status: &'static str,
    /// Approved (registration mode).
    pub(crate) approved: bool,
    /// In the UUID blocklist.
    pub(crate) blocked: bool,
    /// Its next addresses are blocklisted.
    pub(crate) block_ips: bool,
    /// Has a key of its own (the key itself is never shown).
    pub(crate) has_own_key: bool,
    /// Has a live session.
    pub(crate) connected: bool,
    /// Types of its live sessions.
    pub(crate) live_types: Vec<u8>,
    /// Operator settings.
    pub(crate) settings: SensorSettings,
}

/// One sensor's view.
pub(crate) fn sensor_view(
    s: &Shared,
    u: Uuid,
    p: &crate::ingest::policy::PolicyState,
    live: &[crate::ingest::sensors::LiveSession],
) -> SensorView {
    let live: Vec<u8> = live.iter().filter(|l| l.uuid == u).map(|l| l.ty).collect();
    let blocked = p.blocked_uuids.contains(&u);
    let approved = p.approved.contains(&u);
    let status = if blocked {
        "blocked"
    } else if approved {
        "approved"
    } else if p.pending.contains_key(&u) {
        "pending"
    } else {
        "unknown"
    };
    let mut meta = s.sensors.get(u).unwrap_or(SensorMeta {
        uuid: u,
        ..SensorMeta::default()
    });
    let settings = p.settings.get(&u).cloned().unwrap_or_default();
    if meta.description.is_empty() {
        meta.description = settings.description.clone();
    }
    SensorView {
        meta,
        status,
        approved,
        blocked,
        block_ips: p.block_ip_by_uuid.contains(&u),
        has_own_key: p.keys.contains_key(&u),
        connected: !live.is_empty(),
        live_types: live,
        settings,
    }
}

/// Marks the sensors whose key was set in the shared store (Redis mode: a
/// reference tool's `HSET metadata_uuid:<uuid> hmac_key`), which the local
/// policy does not list but sessions authenticate with. Best effort: at
/// most 1 s, then the local view stands.
pub(crate) async fn mark_shared_keys(s: &Shared, views: &mut [SensorView]) {
    let ask: Vec<Uuid> = views
        .iter()
        .filter(|v| !v.has_own_key)
        .map(|v| v.meta.uuid)
        .collect();
    if ask.is_empty() {
        return;
    }
    let got = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        s.leases.own_keys(ask.clone()),
    )
    .await;
    let Ok(Ok(Some(own))) = got else {
        return;
    };
    let own: BTreeSet<Uuid> = ask
        .into_iter()
        .zip(own)
        .filter_map(|(u, o)| o.then_some(u))
        .collect();
    for v in views.iter_mut() {
        if own.contains(&v.meta.uuid) {
            v.has_own_key = true;
        }
    }
}

/// Every sensor the server knows (metadata, approved, pending, blocked).
pub(crate) fn all_sensors(s: &Shared) -> Vec<SensorView> {
    let p = s.policy.snapshot();
    let mut ids: Vec<Uuid> = s.sensors.all().iter().map(|m| m.uuid).collect();
    let mut seen: BTreeSet<Uuid> = ids.iter().copied().collect();
    for u in p
        .approved
        .iter()
        .chain(p.pending.keys())
        .chain(p.blocked_uuids.iter())
        .chain(p.settings.keys())
    {
        if seen.insert(*u) {
            ids.push(*u);
        }
    }
    let live = s.sensors.live();
    ids.into_iter()
        .map(|u| sensor_view(s, u, &p, &live))
        .collect()
}

/// Body of sensor actions.
#[derive(Deserialize, Default)]
pub(crate) struct ActionBody {
    /// For `key`.
    pub(crate) key: Option<String>,
    /// For `settings`.
    pub(crate) name: Option<String>,
    /// For `settings`.
    pub(crate) description: Option<String>,
    /// For `settings`.
    pub(crate) tags: Option<Vec<String>>,
    /// For `settings` (0: the server's limit).
    pub(crate) max_frame_size: Option<u32>,
    /// For `settings` (0: not monitored).
    pub(crate) monitor_delay_secs: Option<u64>,
}

/// Runs a sensor action; returns a short result for the API.
pub(crate) async fn op_sensor_action(
    s: &Arc<Shared>,
    u: Uuid,
    action: &str,
    body: ActionBody,
) -> ApiResult<Value> {
    let done = json!({"status": "ok", "uuid": u.simple().to_string()});
    match action {
        "approve" => {
            if !d4_proto::is_v4(&u) {
                return Err(bad(format!(
                    "{u} is not a version 4 UUID; D4 sensors must use one"
                )));
            }
            policy_update(s, move |p| {
                if let Some(k) = p.pending.remove(&u).and_then(|x| x.key) {
                    p.keys.insert(u, k);
                }
                p.approved.insert(u)
            })
            .await?;
            tracing::info!("sensor {} approved", u.simple());
        }
        "reject" => {
            let was = policy_update(s, move |p| p.pending.remove(&u).is_some()).await?;
            if !was {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("sensor {} is not pending", u.simple()),
                ));
            }
            tracing::info!("pending sensor {} rejected", u.simple());
        }
        "revoke" => {
            let was = policy_update(s, move |p| p.approved.remove(&u)).await?;
            if !was {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("sensor {} is not approved", u.simple()),
                ));
            }
            s.sensors.close_sessions_of(u, Reject::NotApproved(u));
            tracing::info!("sensor {} no longer approved", u.simple());
        }
        "key" => {
            let key = body
                .key
                .ok_or_else(|| bad("give the key as {\"key\": \"...\"}"))?;
            if key.is_empty() {
                return Err(bad("the key must not be empty"));
            }
            policy_update(s, move |p| p.keys.insert(u, key)).await?;
            tracing::info!("sensor {} has a new HMAC key", u.simple());
        }
        "block" => {
            policy_update(s, move |p| {
                p.approved.remove(&u);
                p.blocked_uuids.insert(u)
            })
            .await?;
            s.sensors.close_sessions_of(u, Reject::BlockedUuid);
            tracing::info!("sensor {} blocked", u.simple());
        }
        "unblock" => {
            policy_update(s, move |p| {
                p.block_ip_by_uuid.remove(&u);
                p.blocked_uuids.remove(&u)
            })
            .await?;
        }
        "block-ips" => {
            let ips: Vec<IpNet> = s
                .sensors
                .get(u)
                .map(|m| {
                    m.last_ips
                        .iter()
                        .filter_map(|(ip, _)| ip.parse::<std::net::IpAddr>().ok())
                        .map(IpNet::from)
                        .collect()
                })
                .unwrap_or_default();
            let nets = ips.clone();
            policy_update(s, move |p| {
                p.block_ip_by_uuid.insert(u);
                p.blocked_nets.extend(nets);
            })
            .await?;
            close_sessions_in(s, &ips);
            tracing::info!("sensor {} has its addresses blocked", u.simple());
            return Ok(json!({"status": "ok", "uuid": u.simple().to_string(),
                "blocked": ips.iter().map(|n| n.to_string()).collect::<Vec<_>>()}));
        }
        "kick" => {
            s.policy.kick(u);
            let n = s
                .sensors
                .close_sessions_of(u, Reject::Kicked(s.cfg.kick_secs));
            tracing::info!("sensor {} kicked ({n} sessions)", u.simple());
            return Ok(json!({"status": "ok", "sessions_closed": n}));
        }
        "settings" => {
            let tags = body.tags.map(|t| {
                t.iter()
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
            });
            if let Some(t) = &tags {
                if t.len() > 32 || t.iter().any(|x| x.len() > 64) {
                    return Err(bad("at most 32 tags of 64 bytes each"));
                }
            }
            if body.name.as_ref().is_some_and(|n| n.len() > 128)
                || body.description.as_ref().is_some_and(|d| d.len() > 4096)
            {
                return Err(bad(
                    "the name is limited to 128 bytes, the description to 4096",
                ));
            }
            policy_update(s, move |p| {
                let e = p.settings.entry(u).or_default();
                if let Some(n) = body.name {
                    e.name = n.trim().to_string();
                }
                if let Some(d) = body.description {
                    e.description = d;
                }
                if let Some(t) = tags {
                    e.tags = t;
                }
                if let Some(m) = body.max_frame_size {
                    e.max_frame_size = (m > 0).then_some(m);
                }
                if let Some(d) = body.monitor_delay_secs {
                    e.monitor_delay_secs = (d > 0).then_some(d);
                }
            })
            .await?;
        }
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no sensor action {other:?} (approve, reject, revoke, key, block, unblock, block-ips, kick, settings)"),
            ));
        }
    }
    Ok(done)
}

pub(crate) fn close_sessions_in(s: &Shared, nets: &[IpNet]) {
    for l in s.sensors.live() {
        if nets.iter().any(|n| n.contains(&l.ip)) {
            l.close.close(Reject::BlockedIp(l.ip));
        }
    }
}

/// UUIDs (32 hex) of monitored sensors that are silent past their delay.
pub(crate) fn silent_sensors(s: &Shared) -> Vec<String> {
    crate::monitor::check(s, chrono::Utc::now().timestamp())
        .into_iter()
        .filter(|a| a.kind == "sensor_silent")
        .map(|a| a.subject)
        .collect()
}
