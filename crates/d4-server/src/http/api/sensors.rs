//! `/api/v1/sensors...`, `/blocklist...`, `/types`, and the reference's
//! sensor registration and monitoring endpoints.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::http::ops::policy::{op_block_net, op_set_types, op_unblock_net, TypesBody};
use crate::http::ops::sensors::{
    all_sensors, mark_shared_keys, op_sensor_action, sensor_view, silent_sensors, ActionBody,
    SensorView,
};
use crate::http::ops::{parse_uuid, policy_update, ApiError, ApiResult};
use crate::server::Shared;

pub(crate) async fn list_sensors(State(s): State<Arc<Shared>>) -> Json<Vec<SensorView>> {
    let mut v = all_sensors(&s);
    mark_shared_keys(&s, &mut v).await;
    Json(v)
}

pub(crate) async fn show_sensor(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> ApiResult<Json<SensorView>> {
    let mut v = [sensor_view(
        &s,
        parse_uuid(&id)?,
        &s.policy.snapshot(),
        &s.sensors.live(),
    )];
    mark_shared_keys(&s, &mut v).await;
    let [v] = v;
    Ok(Json(v))
}

pub(crate) async fn sensor_action(
    State(s): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<ActionBody>>,
) -> ApiResult<Json<Value>> {
    let u = parse_uuid(&id)?;
    let body = body.map(|b| b.0).unwrap_or_default();
    Ok(Json(op_sensor_action(&s, u, &action, body).await?))
}

#[derive(Deserialize)]
pub(crate) struct NetBody {
    pub(crate) net: String,
}

pub(crate) async fn block_ip(
    State(s): State<Arc<Shared>>,
    Json(b): Json<NetBody>,
) -> ApiResult<Json<Value>> {
    let n = op_block_net(&s, &b.net).await?;
    Ok(Json(json!({"status": "ok", "net": n.to_string()})))
}

pub(crate) async fn unblock_ip(
    State(s): State<Arc<Shared>>,
    Json(b): Json<NetBody>,
) -> ApiResult<Json<Value>> {
    let n = op_unblock_net(&s, &b.net).await?;
    Ok(Json(json!({"status": "ok", "net": n.to_string()})))
}

#[derive(Deserialize)]
pub(crate) struct UuidBody {
    pub(crate) uuid: String,
}

pub(crate) async fn block_uuid(
    State(s): State<Arc<Shared>>,
    Json(b): Json<UuidBody>,
) -> ApiResult<Json<Value>> {
    let u = parse_uuid(&b.uuid)?;
    Ok(Json(
        op_sensor_action(&s, u, "block", ActionBody::default()).await?,
    ))
}

pub(crate) async fn unblock_uuid(
    State(s): State<Arc<Shared>>,
    Json(b): Json<UuidBody>,
) -> ApiResult<Json<Value>> {
    let u = parse_uuid(&b.uuid)?;
    if !s.policy.snapshot().blocked_uuids.contains(&u) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{} is not in the UUID blocklist", u.simple()),
        ));
    }
    Ok(Json(
        op_sensor_action(&s, u, "unblock", ActionBody::default()).await?,
    ))
}

pub(crate) async fn blocklist(State(s): State<Arc<Shared>>) -> Json<Value> {
    let p = s.policy.snapshot();
    Json(json!({
        "ips": p.blocked_nets.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "uuids": p.blocked_uuids.iter().map(|u| u.simple().to_string()).collect::<Vec<_>>(),
        "ip_by_uuid": p.block_ip_by_uuid.iter().map(|u| u.simple().to_string()).collect::<Vec<_>>(),
    }))
}

pub(crate) async fn get_types(State(s): State<Arc<Shared>>) -> Json<TypesBody> {
    Json(TypesBody {
        types: s.policy.accepted_types().into_iter().collect(),
        extended: s.policy.accepted_extended().into_iter().collect(),
    })
}

pub(crate) async fn set_types(
    State(s): State<Arc<Shared>>,
    Json(b): Json<TypesBody>,
) -> ApiResult<Json<TypesBody>> {
    op_set_types(&s, b).await?;
    Ok(get_types(State(s)).await)
}

/// The reference's registration body.
#[derive(Deserialize)]
pub(crate) struct Register {
    pub(crate) uuid: Option<Value>,
    pub(crate) hmac_key: Option<Value>,
    pub(crate) mail: Option<Value>,
    pub(crate) third_party: Option<Value>,
}

/// `POST /api/v1/add/sensor/register`: the reference's shapes and codes.
pub(crate) async fn register_sensor(
    State(s): State<Arc<Shared>>,
    body: axum::body::Bytes,
) -> Response {
    let reply = |code: StatusCode, v: Value| (code, Json(v)).into_response();
    let err =
        |code: StatusCode, reason: &str| reply(code, json!({"status": "error", "reason": reason}));
    let Ok(r) = serde_json::from_slice::<Register>(&body) else {
        return err(StatusCode::BAD_REQUEST, "Malformed JSON");
    };
    let uuid = r
        .uuid
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|u| Uuid::try_parse(u).ok())
        .filter(d4_proto::is_v4);
    let Some(u) = uuid else {
        return err(StatusCode::BAD_REQUEST, "Invalid uuid");
    };
    let p = s.policy.snapshot();
    let known = p.approved.contains(&u)
        || p.pending.get(&u).is_some_and(|x| x.registered)
        || s.sensors.get(u).is_some_and(|m| m.first_seen > 0);
    if known {
        return err(StatusCode::CONFLICT, "Sensor already registred");
    }
    let key = r
        .hmac_key
        .as_ref()
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty());
    let Some(key) = key else {
        return err(
            StatusCode::BAD_REQUEST,
            "Mandatory parameter(s) not provided",
        );
    };
    // The reference keeps 100 characters (and HTML-escapes them: not done here).
    let key: String = key.chars().take(100).collect();
    let mail = r
        .mail
        .as_ref()
        .and_then(Value::as_str)
        .map(|m| m.chars().take(256).collect());
    let third_party = r
        .third_party
        .as_ref()
        .is_some_and(|v| !v.is_null() && v != &json!(false) && v != &json!(""));
    let t = chrono::Utc::now().timestamp();
    let res = policy_update(&s, move |p| {
        // Operators' registrations have a budget of their own: sensors
        // that merely connect never take it.
        let Some(e) = p.register(u, key, t) else {
            return false;
        };
        e.mail = mail;
        e.third_party = third_party;
        true
    })
    .await;
    match res {
        Ok(false) => err(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many pending registrations: approve or reject some first",
        ),
        Ok(true) => {
            tracing::info!("sensor {} registered, pending approval", u.simple());
            reply(StatusCode::OK, json!({"uuid": u.simple().to_string()}))
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/sensors/monitoring/errors`: the reference's list.
pub(crate) async fn monitoring_errors(State(s): State<Arc<Shared>>) -> Json<Vec<String>> {
    Json(silent_sensors(&s))
}
