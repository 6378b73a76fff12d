//! API authentication: `Authorization: <token>` is an account's API key or
//! the local token of `server.json` (an admin credential for the CLI on the
//! server's machine, file mode 0600). What each role may call is decided in
//! one function, [`required_role`] (`sensor_register`: only
//! `/add/sensor/register`; `user`: reads and queue pops; `admin`:
//! everything).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::accounts::Role;
use crate::http::ops::ApiError;
use crate::server::Shared;

/// Who is calling (set by the authentication layer).
#[derive(Clone, Debug)]
pub(crate) struct Principal {
    /// Account name (`local` for the server.json token).
    pub(crate) name: String,
    /// Its role.
    pub(crate) role: Role,
}

/// The role a request needs: the one place API permissions are decided.
pub(crate) fn required_role(method: &Method, path: &str) -> Role {
    let path = path.trim_end_matches('/');
    if path.ends_with("/add/sensor/register") {
        return Role::SensorRegister;
    }
    if path.contains("/users") {
        return Role::Admin;
    }
    if *method == Method::GET || *method == Method::HEAD {
        return Role::User;
    }
    if *method == Method::POST
        && path.contains("/queues/")
        && (path.ends_with("/pop") || path.ends_with("/read") || path.ends_with("/ack"))
    {
        return Role::User;
    }
    Role::Admin
}

/// Who a token belongs to.
pub(crate) fn principal_of_token(s: &Shared, token: &str) -> Option<Principal> {
    if crate::accounts::ct_eq(token.as_bytes(), s.api_token.as_bytes()) {
        return Some(Principal {
            name: "local".into(),
            role: Role::Admin,
        });
    }
    s.accounts.by_api_key(token).map(|u| Principal {
        name: u.name,
        role: u.role,
    })
}

pub(crate) async fn auth(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "Authentication needed (header Authorization: <token>)".into(),
        )
        .into_response();
    };
    let Some(p) = principal_of_token(&s, &given) else {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "Authentication failed (wrong or revoked token)".into(),
        )
        .into_response();
    };
    let needed = required_role(req.method(), req.uri().path());
    if !p.role.allows(needed) {
        return ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "Access Forbidden: this needs the {} role; {:?} has {}",
                needed.as_str(),
                p.name,
                p.role.as_str()
            ),
        )
        .into_response();
    }
    // A valid token: the connection holds an authenticated place.
    crate::http::WebConn::mark(req.extensions());
    req.extensions_mut().insert(p);
    next.run(req).await
}
