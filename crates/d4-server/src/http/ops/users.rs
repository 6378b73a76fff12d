//! Account operations: create, change role, new API key, delete.

use std::sync::Arc;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::Role;
use crate::http::ops::{blocking, ApiError, ApiResult};
use crate::server::Shared;

/// A new account.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    /// Login name.
    pub(crate) name: String,
    /// `admin`, `user` or `sensor_register`.
    pub(crate) role: String,
    /// First password (changed at first login).
    pub(crate) password: String,
}

/// Creates an account; returns its API key.
pub(crate) async fn op_create_user(s: &Arc<Shared>, c: CreateUser) -> ApiResult<String> {
    let role = Role::parse(&c.role)?;
    let a = s.accounts.clone();
    let name = c.name.clone();
    let key = blocking(move || a.create_user(&c.name, role, &c.password)).await?;
    tracing::info!("user {name:?} created with role {}", role.as_str());
    Ok(key)
}

/// Runs an action on an account: `role`, `delete`, `api-key`.
pub(crate) async fn op_user_action(
    s: &Arc<Shared>,
    name: &str,
    action: &str,
    role: Option<String>,
) -> ApiResult<Value> {
    let a = s.accounts.clone();
    let n = name.to_string();
    if a.get(name).is_none() {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no user {name:?}")));
    }
    match action {
        "role" => {
            let r = Role::parse(role.as_deref().unwrap_or(""))?;
            blocking(move || a.set_role(&n, r)).await?;
            Ok(json!({"status": "ok", "name": name, "role": r.as_str()}))
        }
        "delete" => {
            blocking(move || a.delete_user(&n)).await?;
            tracing::info!("user {name:?} deleted");
            Ok(json!({"status": "ok", "name": name}))
        }
        "api-key" => {
            let key = blocking(move || a.reset_api_key(&n)).await?;
            Ok(json!({"status": "ok", "name": name, "api_key": key}))
        }
        other => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no user action {other:?} (role, delete, api-key)"),
        )),
    }
}
