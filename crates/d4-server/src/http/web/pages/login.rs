//! `/login`, `/logout`, `/password`, `/account/api-key`.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};

use crate::accounts::LoginError;
use crate::http::ops::{blocking, ApiError};
use crate::http::web::auth::{forbidden, Fields, Page, SessionForm};
use crate::http::web::cookies::{cookie, set_cookie, LOGIN_COOKIE, SESSION_COOKIE};
use crate::http::web::{back, html, layout, now, see_other, Flash, Layout};
use crate::http::PeerAddr;
use crate::server::Shared;

// ---------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    pub(crate) csrf: String,
    pub(crate) err: String,
}

pub(crate) async fn login_page(headers: HeaderMap) -> Response {
    let token = cookie(&headers, LOGIN_COOKIE)
        .filter(|t| t.len() == 32 && t.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(crate::accounts::random_secret);
    let mut r = html(&LoginPage {
        csrf: token.clone(),
        err: String::new(),
    });
    let (k, v) = set_cookie(LOGIN_COOKIE, &token, "/login", 3600);
    if let Ok(v) = HeaderValue::from_str(&v) {
        r.headers_mut().append(k, v);
    }
    r
}

pub(crate) async fn login(
    State(s): State<Arc<Shared>>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !crate::accounts::ct_eq(f.get("csrf").as_bytes(), expected.as_bytes())
    {
        return forbidden("CSRF token missing or wrong: open the login page again");
    }
    let (name, pw) = (
        f.get("user").trim().to_string(),
        f.get("password").to_string(),
    );
    // Anyone can post here: a name that no account can have is not logged.
    let shown = if crate::accounts::valid_name(&name) {
        format!("{name:?}")
    } else {
        format!("an invalid user name ({} bytes)", name.len())
    };
    let ip = peer.ip().to_canonical().to_string();
    let a = s.accounts.clone();
    let n2 = name.clone();
    let r = tokio::task::spawn_blocking(move || a.login(&n2, &pw, &ip, now())).await;
    let retry = |code: StatusCode, msg: String| {
        let mut r = html(&LoginPage {
            csrf: expected.clone(),
            err: msg,
        });
        *r.status_mut() = code;
        r
    };
    match r {
        Ok(Ok(Ok((cookie_value, _)))) => {
            tracing::info!("{shown} logged in from {}", peer.ip());
            let must = s
                .accounts
                .get(&name)
                .is_some_and(|u| u.must_change_password);
            let to = if must { "/password" } else { "/" };
            see_other(
                to,
                set_cookie(
                    SESSION_COOKIE,
                    &cookie_value,
                    "/",
                    crate::accounts::SESSION_SECS,
                ),
            )
        }
        Ok(Ok(Err(LoginError::Throttled(wait)))) => {
            tracing::warn!("login for {shown} from {} refused: throttled", peer.ip());
            retry(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed logins: try again in {wait} s."),
            )
        }
        Ok(Ok(Err(LoginError::Bad))) => {
            tracing::warn!("failed login for {shown} from {}", peer.ip());
            retry(
                StatusCode::UNAUTHORIZED,
                "Wrong user name or password.".into(),
            )
        }
        Ok(Err(e)) => retry(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        Err(e) => retry(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(crate) async fn logout(
    State(s): State<Arc<Shared>>,
    SessionForm { c, .. }: SessionForm,
) -> Response {
    let a = s.accounts.clone();
    let _ = tokio::task::spawn_blocking(move || a.logout(&c.cookie)).await;
    see_other("/login", set_cookie(SESSION_COOKIE, "", "/", 0))
}

#[derive(Template)]
#[template(path = "password.html")]
pub(crate) struct PasswordPage {
    pub(crate) l: Layout,
    pub(crate) new_key: String,
}

pub(crate) async fn password_page(Page { s, c, f }: Page) -> Response {
    html(&PasswordPage {
        l: layout(&s, &c, &f, "password"),
        new_key: String::new(),
    })
}

/// Any account makes itself a new API key (shown on this answer only).
pub(crate) async fn own_api_key(
    State(s): State<Arc<Shared>>,
    SessionForm { c, .. }: SessionForm,
) -> Response {
    let (a, name) = (s.accounts.clone(), c.user.name.clone());
    match blocking(move || a.reset_api_key(&name)).await {
        Ok(key) => html(&PasswordPage {
            l: layout(&s, &c, &Flash::default(), "password"),
            new_key: key,
        }),
        Err(e) => back("/password", Err(e)),
    }
}

pub(crate) async fn password_change(
    State(s): State<Arc<Shared>>,
    SessionForm { c, f }: SessionForm,
) -> Response {
    if f.get("new") != f.get("confirm") {
        return back(
            "/password",
            Err(ApiError(
                StatusCode::BAD_REQUEST,
                "the two new passwords differ".into(),
            )),
        );
    }
    let (a, name, old, new) = (
        s.accounts.clone(),
        c.user.name.clone(),
        f.get("current").to_string(),
        f.get("new").to_string(),
    );
    let (dir, keep) = (s.cfg.data_dir.clone(), c.cookie.clone());
    match blocking(move || a.change_password(&name, &old, &new, &dir, Some(&keep))).await {
        Ok(()) => {
            tracing::info!("{:?} changed their password", c.user.name);
            back("/", Ok("Password changed.".into()))
        }
        Err(e) => back("/password", Err(e)),
    }
}
