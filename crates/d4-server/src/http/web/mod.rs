//! The web admin UI: server-rendered pages (askama templates in
//! `crates/d4-server/templates/`), SVG charts drawn here; one small
//! first-party script (`live.js`, on the dashboard and sensor pages)
//! refreshes the live rates from `/live/rates`, nothing else runs.
//!
//! Security: a login sets the cookie `d4_session` (`Secure; HttpOnly;
//! SameSite=Strict`); every state change is a POST form carrying the
//! session's CSRF token (the login form a token of its own, bound to a
//! `d4_login` cookie); a first login (or any account created by an admin)
//! must change its password before any other page opens; logins are throttled
//! ([`crate::accounts`]). Pages answer with a strict Content-Security-Policy
//! (scripts and fetches from this origin only: `live.js`; no inline script)
//! and `X-Frame-Options: DENY`. The operations behind the
//! forms are the API's ([`crate::http::ops`]), so UI and API cannot drift apart.
//!
//! Actions answer with a redirect and a message (in a 60-second HttpOnly
//! cookie, never in the URL). Sensor HMAC keys can be set, never displayed.
//!
//! - `cookies`: reading and writing cookies, the flash message.
//! - `auth`: the operator of a request (the `Ctx` extractor; `Page`, what a
//!   page handler starts from) and the role and CSRF check of a form (the
//!   `AdminForm` and `SessionForm` extractors).
//! - `pages/`: one file per page or group of pages.
//! - `svg`: bar and line charts drawn as SVG.
//! - `live.js`: the live rates' refresh.

pub(crate) mod auth;
pub(crate) mod cookies;
pub(crate) mod pages;
pub(crate) mod svg;

use std::sync::Arc;

use askama::Template;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{TimeZone, Utc};
use serde::Deserialize;

use crate::accounts::Role;
use crate::server::Shared;

use crate::http::ops::ApiError;
use crate::http::web::auth::{Ctx, Page};
use crate::http::web::cookies::{cookie, enc, set_cookie, FLASH_COOKIE};
use crate::http::web::pages::api::api_page;
use crate::http::web::pages::dashboard::dashboard;
use crate::http::web::pages::login::{
    login, login_page, logout, own_api_key, password_change, password_page,
};
use crate::http::web::pages::registrations::{registration_post, registrations_page};
use crate::http::web::pages::sensors::{sensor_page, sensor_post, sensors_page};
use crate::http::web::pages::server::{queue_post, server_page, server_post};
use crate::http::web::pages::users::{user_create, user_post, users_page};

pub(crate) const STYLE: &str = include_str!("style.css");
pub(crate) const LIVE_JS: &str = include_str!("live.js");

/// The UI's routes (the API's are merged beside them by [`crate::http`]).
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/password", get(password_page).post(password_change))
        .route("/account/api-key", post(own_api_key))
        .route("/", get(dashboard))
        .route("/sensors", get(sensors_page))
        .route("/sensors/{id}", get(sensor_page))
        .route("/sensors/{id}/{action}", post(sensor_post))
        .route("/server", get(server_page))
        .route("/server/{action}", post(server_post))
        .route("/queues/{id}/{action}", post(queue_post))
        .route("/registrations", get(registrations_page))
        .route("/registrations/{id}/{action}", post(registration_post))
        .route("/users", get(users_page))
        .route("/users/create", post(user_create))
        .route("/users/{name}/{action}", post(user_post))
        .route("/api", get(api_page))
        .route("/static/style.css", get(style))
        .route("/static/live.js", get(live_js))
        .route("/live/rates", get(live_rates))
}

/// A CSP that allows scripts and fetches from this origin only (no inline
/// script), `X-Frame-Options: DENY`, on every response (API ones too).
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "strict-transport-security", "max-age=31536000");
    r
}

/// Clears the flash cookie once a page has shown it.
pub(crate) async fn clear_flash(req: Request, next: Next) -> Response {
    let had = cookie(req.headers(), FLASH_COOKIE).is_some_and(|v| !v.is_empty());
    let mut r = next.run(req).await;
    if had && !r.status().is_redirection() {
        let (k, v) = set_cookie(FLASH_COOKIE, "", "/", 0);
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().append(k, v);
        }
    }
    r
}

pub(crate) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

pub(crate) async fn live_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        LIVE_JS,
    )
        .into_response()
}

/// The live rates for `live.js` (the operator's session; the API's
/// `/api/v1/stats/rates` answers the same to a token).
pub(crate) async fn live_rates(Page { s, .. }: Page) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(crate::http::api::stats::rates_json(&s)),
    )
        .into_response()
}

pub(crate) fn now() -> i64 {
    Utc::now().timestamp()
}

/// `2026-11-22 14:03:07` (UTC), `-` for 0.
pub(crate) fn ts(t: i64) -> String {
    if t <= 0 {
        return "-".into();
    }
    Utc.timestamp_opt(t, 0)
        .single()
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn html<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the page: {e}"),
        )
            .into_response(),
    }
}

/// What the page frame shows.
pub(crate) struct Layout {
    pub(crate) user: String,
    pub(crate) role: &'static str,
    pub(crate) admin: bool,
    pub(crate) csrf: String,
    pub(crate) msg: String,
    pub(crate) err: String,
    pub(crate) alerts: usize,
    pub(crate) active: &'static str,
    pub(crate) restricted: bool,
    pub(crate) version: &'static str,
}

/// Query parameters of pages (filters), and a message set by the handler.
#[derive(Deserialize, Default)]
pub(crate) struct Flash {
    #[serde(skip)]
    pub(crate) msg: String,
    #[serde(skip)]
    pub(crate) err: String,
    #[serde(default)]
    pub(crate) show: String,
    #[serde(default)]
    pub(crate) q: String,
    /// Charts' time range (`1h`, `24h`, `7d`, `30d`).
    #[serde(default)]
    pub(crate) range: String,
    /// Charts' resolution (`minute`, `hour`).
    #[serde(default)]
    pub(crate) res: String,
}

pub(crate) fn layout(s: &Shared, c: &Ctx, f: &Flash, active: &'static str) -> Layout {
    Layout {
        user: c.user.name.clone(),
        role: c.user.role.as_str(),
        admin: c.user.role == Role::Admin,
        csrf: c.csrf.clone(),
        msg: if f.msg.is_empty() {
            c.flash.0.clone()
        } else {
            f.msg.clone()
        },
        err: if f.err.is_empty() {
            c.flash.1.clone()
        } else {
            f.err.clone()
        },
        alerts: s.monitor.alerts().len(),
        active,
        restricted: c.user.must_change_password,
        version: env!("CARGO_PKG_VERSION"),
    }
}

/// Back to `to` with a message (or the error) shown at the top of the next
/// page. The message travels in a short-lived cookie, not in the URL, so a
/// link from elsewhere cannot put words on our pages.
pub(crate) fn back(to: &str, r: Result<String, ApiError>) -> Response {
    let value = match r {
        Ok(m) => format!("ok.{}", enc(&m)),
        Err(e) => format!("err.{}", enc(&e.1)),
    };
    see_other(to, set_cookie(FLASH_COOKIE, &value, "/", 60))
}

/// A redirect to `to` (303: the next request is a GET) that sets a cookie.
pub(crate) fn see_other(to: &str, cookie: (header::HeaderName, String)) -> Response {
    (
        StatusCode::SEE_OTHER,
        [cookie, (header::LOCATION, to.to_string())],
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage {
    pub(crate) l: Layout,
    pub(crate) heading: String,
    pub(crate) text: String,
}

pub(crate) fn message(
    s: &Shared,
    c: &Ctx,
    code: StatusCode,
    heading: &str,
    text: &str,
) -> Response {
    let mut r = html(&MessagePage {
        l: layout(s, c, &Flash::default(), ""),
        heading: heading.into(),
        text: text.into(),
    });
    *r.status_mut() = code;
    r
}
