//! `/api/v1/users...`: accounts (admin only).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::ops::users::{op_create_user, op_user_action, CreateUser};
use crate::http::ops::ApiResult;
use crate::server::Shared;

pub(crate) async fn list_users(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!(s.accounts.list()))
}

pub(crate) async fn create_user(
    State(s): State<Arc<Shared>>,
    Json(c): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (name, role) = (c.name.clone(), c.role.clone());
    let key = op_create_user(&s, c).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": name, "role": role, "api_key": key})),
    ))
}

#[derive(Deserialize, Default)]
pub(crate) struct RoleBody {
    pub(crate) role: Option<String>,
}

pub(crate) async fn user_action(
    State(s): State<Arc<Shared>>,
    Path((name, action)): Path<(String, String)>,
    body: Option<Json<RoleBody>>,
) -> ApiResult<Json<Value>> {
    let role = body.and_then(|b| b.0.role);
    Ok(Json(op_user_action(&s, &name, &action, role).await?))
}

pub(crate) async fn delete_user(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(op_user_action(&s, &name, "delete", None).await?))
}
