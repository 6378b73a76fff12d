//! The web admin UI: server-rendered pages (askama templates in
//! `crates/d4-server/templates/`), SVG charts drawn here, no JavaScript.
//!
//! Security: a login sets the cookie `d4_session` (`Secure; HttpOnly;
//! SameSite=Strict`); every state change is a POST form carrying the
//! session's CSRF token (the login form a token of its own, bound to a
//! `d4_login` cookie); a first login (or any account created by an admin)
//! must change its password before any other page opens; logins are throttled
//! ([`crate::accounts`]). Pages answer with a strict Content-Security-Policy
//! (no script at all) and `X-Frame-Options: DENY`. The operations behind the
//! forms are the API's ([`crate::http::api`]), so UI and API cannot drift apart.

mod svg;

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::{TimeZone, Utc};
use serde::Deserialize;
use uuid::Uuid;

use crate::accounts::{LoginError, Role, User};
use crate::http::api::{self, ActionBody, ApiError, CreateQueue, CreateUser, PeerAddr, TypesBody};
use crate::server::Shared;

const STYLE: &str = include_str!("style.css");
const SESSION_COOKIE: &str = "d4_session";
const LOGIN_COOKIE: &str = "d4_login";
const FLASH_COOKIE: &str = "d4_flash";

/// The whole HTTPS application: UI pages, `/api/v1`, `/metrics`.
pub(crate) fn app(shared: Arc<Shared>) -> Router {
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
        .merge(api::router(shared.clone()))
        .layer(middleware::from_fn(clear_flash))
        .layer(middleware::from_fn(security_headers))
        .with_state(shared)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "strict-transport-security", "max-age=31536000");
    r
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

fn now() -> i64 {
    Utc::now().timestamp()
}

/// `2026-11-22 14:03:07` (UTC), `-` for 0.
fn ts(t: i64) -> String {
    if t <= 0 {
        return "-".into();
    }
    Utc.timestamp_opt(t, 0)
        .single()
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(name: &str, value: &str, path: &str, max_age: i64) -> (header::HeaderName, String) {
    (
        header::SET_COOKIE,
        format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict"
        ),
    )
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn html<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the page: {e}"),
        )
            .into_response(),
    }
}

/// The logged-in operator of a page request.
struct Ctx {
    user: User,
    csrf: String,
    cookie: String,
    /// The message the previous action left (message, error).
    flash: (String, String),
}

impl FromRequestParts<Arc<Shared>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<Shared>) -> Result<Ctx, Response> {
        let Some(c) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(Redirect::to("/login").into_response());
        };
        let Some((ws, user)) = s.accounts.session(&c, now()) else {
            return Err(Redirect::to("/login").into_response());
        };
        // sensor_register accounts are API-only, whatever session they hold.
        if !user.role.allows(Role::User) {
            return Err(Redirect::to("/login").into_response());
        }
        let path = parts.uri.path();
        if user.must_change_password && path != "/password" && path != "/logout" {
            return Err(Redirect::to("/password").into_response());
        }
        Ok(Ctx {
            user,
            csrf: ws.csrf,
            cookie: c,
            flash: read_flash(&parts.headers),
        })
    }
}

/// A submitted form: every field, repeated ones too.
#[derive(Deserialize)]
#[serde(transparent)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, k: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn forbidden(text: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_string(),
    )
        .into_response()
}

/// Checks the CSRF token of a form and the role an action needs; the
/// refusal to send, if any.
fn guard(c: &Ctx, f: &Fields, needed: Role) -> Option<Response> {
    if !crate::accounts::ct_eq(f.get("csrf").as_bytes(), c.csrf.as_bytes()) {
        tracing::warn!(
            "form from {:?} refused: CSRF token missing or wrong",
            c.user.name
        );
        return Some(forbidden(
            "CSRF token missing or wrong: reload the page and submit the form again",
        ));
    }
    if !c.user.role.allows(needed) {
        return Some(forbidden(&format!(
            "this needs the {} role; you have {}",
            needed.as_str(),
            c.user.role.as_str()
        )));
    }
    None
}

/// Back to `to` with a message (or the error) shown at the top of the next
/// page. The message travels in a short-lived cookie, not in the URL, so a
/// link from elsewhere cannot put words on our pages.
fn back(to: &str, r: Result<String, ApiError>) -> Response {
    let value = match r {
        Ok(m) => format!("ok.{}", enc(&m)),
        Err(e) => format!("err.{}", enc(&e.1)),
    };
    let (k, v) = set_cookie(FLASH_COOKIE, &value, "/", 60);
    (
        StatusCode::SEE_OTHER,
        [(k, v), (header::LOCATION, to.to_string())],
    )
        .into_response()
}

/// Decodes `%XX` escapes.
fn dec(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |x: u8| (x as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The message of the flash cookie: (message, error).
fn read_flash(headers: &HeaderMap) -> (String, String) {
    let Some(v) = cookie(headers, FLASH_COOKIE) else {
        return Default::default();
    };
    let text = |m: &str| dec(m).chars().take(500).collect::<String>();
    match v.split_once('.') {
        Some(("ok", m)) => (text(m), String::new()),
        Some(("err", m)) => (String::new(), text(m)),
        _ => Default::default(),
    }
}

/// Clears the flash cookie once a page has shown it.
async fn clear_flash(req: Request, next: Next) -> Response {
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

/// What the page frame shows.
struct Layout {
    user: String,
    role: &'static str,
    admin: bool,
    csrf: String,
    msg: String,
    err: String,
    alerts: usize,
    active: &'static str,
    restricted: bool,
    version: &'static str,
}

/// Query parameters of pages (filters), and a message set by the handler.
#[derive(Deserialize, Default)]
struct Flash {
    #[serde(skip)]
    msg: String,
    #[serde(skip)]
    err: String,
    #[serde(default)]
    show: String,
    #[serde(default)]
    q: String,
}

fn layout(s: &Shared, c: &Ctx, f: &Flash, active: &'static str) -> Layout {
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

// ---------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    err: String,
}

async fn login_page(headers: HeaderMap) -> Response {
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

async fn login(
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
            let (k, v) = set_cookie(
                SESSION_COOKIE,
                &cookie_value,
                "/",
                crate::accounts::SESSION_SECS,
            );
            (
                StatusCode::SEE_OTHER,
                [(k, v), (header::LOCATION, to.to_string())],
            )
                .into_response()
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

async fn logout(State(s): State<Arc<Shared>>, c: Ctx, Form(f): Form<Fields>) -> Response {
    if let Some(r) = guard(&c, &f, Role::SensorRegister) {
        return r;
    }
    let a = s.accounts.clone();
    let _ = tokio::task::spawn_blocking(move || a.logout(&c.cookie)).await;
    let (k, v) = set_cookie(SESSION_COOKIE, "", "/", 0);
    (
        StatusCode::SEE_OTHER,
        [(k, v), (header::LOCATION, "/login".to_string())],
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    l: Layout,
    new_key: String,
}

async fn password_page(State(s): State<Arc<Shared>>, c: Ctx, Query(f): Query<Flash>) -> Response {
    html(&PasswordPage {
        l: layout(&s, &c, &f, "password"),
        new_key: String::new(),
    })
}

/// Any account makes itself a new API key (shown on this answer only).
async fn own_api_key(State(s): State<Arc<Shared>>, c: Ctx, Form(f): Form<Fields>) -> Response {
    if let Some(r) = guard(&c, &f, Role::User) {
        return r;
    }
    let (a, name) = (s.accounts.clone(), c.user.name.clone());
    match api::blocking(move || a.reset_api_key(&name)).await {
        Ok(key) => html(&PasswordPage {
            l: layout(&s, &c, &Flash::default(), "password"),
            new_key: key,
        }),
        Err(e) => back("/password", Err(e)),
    }
}

async fn password_change(State(s): State<Arc<Shared>>, c: Ctx, Form(f): Form<Fields>) -> Response {
    if let Some(r) = guard(&c, &f, Role::SensorRegister) {
        return r;
    }
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
    match api::blocking(move || a.change_password(&name, &old, &new, &dir, Some(&keep))).await {
        Ok(()) => {
            tracing::info!("{:?} changed their password", c.user.name);
            back("/", Ok("Password changed.".into()))
        }
        Err(e) => back("/password", Err(e)),
    }
}

// ---------------------------------------------------------------- dashboard

struct VolumeRow {
    uuid: String,
    label: String,
    today: String,
    frames: String,
    week: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    l: Layout,
    connected: usize,
    seen_today: usize,
    today_bytes: String,
    today_frames: String,
    pending: usize,
    alerts: Vec<(String, &'static str, String)>,
    chart_bytes: String,
    chart_frames: String,
    per_sensor: Vec<VolumeRow>,
    per_type: Vec<VolumeRow>,
    errors: Vec<(String, String, String, String)>,
}

/// The last 7 days as `YYYYMMDD`, oldest first.
fn last_days(n: i64) -> Vec<String> {
    let today = Utc::now().date_naive();
    (0..n)
        .rev()
        .filter_map(|i| today.checked_sub_days(chrono::Days::new(i as u64)))
        .map(|d| d.format("%Y%m%d").to_string())
        .collect()
}

fn day_label(d: &str) -> String {
    format!(
        "{}-{}",
        d.get(4..6).unwrap_or(""),
        d.get(6..8).unwrap_or("")
    )
}

async fn dashboard(State(s): State<Arc<Shared>>, c: Ctx, Query(f): Query<Flash>) -> Response {
    let days = last_days(7);
    let today = days.last().cloned().unwrap_or_default();
    let sensors = api::all_sensors(&s);
    let names: BTreeMap<Uuid, String> = sensors
        .iter()
        .map(|v| (v.meta.uuid, v.settings.name.clone()))
        .collect();
    let daily = s.sensors.daily();
    let mut chart_b = Vec::new();
    let mut chart_f = Vec::new();
    let mut per_type: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for d in &days {
        let day = daily.get(d);
        let (b, fr) = day
            .map(|x| {
                x.types
                    .values()
                    .fold((0, 0), |a, t| (a.0 + t.bytes, a.1 + t.frames))
            })
            .unwrap_or((0, 0));
        chart_b.push((day_label(d), b));
        chart_f.push((day_label(d), fr));
        for (t, st) in day
            .map(|x| x.types.iter().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let e = per_type.entry(t.clone()).or_default();
            e.2 += st.bytes;
            if *d == today {
                e.0 += st.bytes;
                e.1 += st.frames;
            }
        }
    }
    let mut per_sensor: Vec<(u64, VolumeRow)> = sensors
        .iter()
        .filter(|v| v.meta.first_seen > 0)
        .map(|v| {
            let t = v.meta.daily.get(&today).copied().unwrap_or_default();
            let week: u64 = days
                .iter()
                .filter_map(|d| v.meta.daily.get(d))
                .map(|x| x.bytes)
                .sum();
            let uuid = v.meta.uuid.simple().to_string();
            let label = names
                .get(&v.meta.uuid)
                .filter(|n| !n.is_empty())
                .cloned()
                .unwrap_or_else(|| uuid.clone());
            (
                week,
                VolumeRow {
                    uuid,
                    label,
                    today: svg::bytes(t.bytes),
                    frames: svg::count(t.frames),
                    week: svg::bytes(week),
                },
            )
        })
        .collect();
    per_sensor.sort_by_key(|(w, _)| std::cmp::Reverse(*w));
    let today_stats = daily.get(&today);
    let (tb, tf) = today_stats
        .map(|x| {
            x.types
                .values()
                .fold((0, 0), |a, t| (a.0 + t.bytes, a.1 + t.frames))
        })
        .unwrap_or((0, 0));
    let day_start = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp())
        .unwrap_or(0);
    let page = DashboardPage {
        l: layout(&s, &c, &f, "dashboard"),
        connected: sensors.iter().filter(|v| v.connected).count(),
        seen_today: sensors
            .iter()
            .filter(|v| v.meta.last_seen >= day_start)
            .count(),
        today_bytes: svg::bytes(tb),
        today_frames: svg::count(tf),
        pending: sensors.iter().filter(|v| v.status == "pending").count(),
        alerts: s
            .monitor
            .alerts()
            .into_iter()
            .map(|a| (ts(a.since), a.kind, a.message))
            .collect(),
        chart_bytes: svg::bars(
            "chart-bytes",
            "Bytes received per day",
            &chart_b,
            svg::bytes,
        ),
        chart_frames: svg::bars("chart-frames", "Frames per day", &chart_f, svg::count),
        per_sensor: per_sensor.into_iter().map(|x| x.1).take(50).collect(),
        per_type: per_type
            .into_iter()
            .map(|(t, (b, fr, w))| VolumeRow {
                uuid: String::new(),
                label: t,
                today: svg::bytes(b),
                frames: svg::count(fr),
                week: svg::bytes(w),
            })
            .collect(),
        errors: s
            .sensors
            .rejections()
            .into_iter()
            .take(10)
            .map(|r| {
                (
                    ts(r.time),
                    r.ip,
                    r.uuid.map(|u| u.simple().to_string()).unwrap_or_default(),
                    r.reason,
                )
            })
            .collect(),
    };
    html(&page)
}

// ---------------------------------------------------------------- sensors

struct SensorRow {
    uuid: String,
    name: String,
    status: &'static str,
    connected: bool,
    tags: Vec<String>,
    types: String,
    first_seen: String,
    last_seen: String,
    last_error: String,
}

#[derive(Template)]
#[template(path = "sensors.html")]
struct SensorsPage {
    l: Layout,
    show: String,
    q: String,
    rows: Vec<SensorRow>,
}

async fn sensors_page(State(s): State<Arc<Shared>>, c: Ctx, Query(f): Query<Flash>) -> Response {
    let day_start = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp())
        .unwrap_or(0);
    let show = if f.show.is_empty() {
        "all".to_string()
    } else {
        f.show.clone()
    };
    let q = f.q.trim().to_lowercase();
    let rows = api::all_sensors(&s)
        .into_iter()
        .filter(|v| match show.as_str() {
            "connected" => v.connected,
            "today" => v.meta.last_seen >= day_start,
            _ => true,
        })
        .filter(|v| {
            q.is_empty()
                || v.meta
                    .uuid
                    .simple()
                    .to_string()
                    .contains(&q.replace('-', ""))
                || v.settings.name.to_lowercase().contains(&q)
                || v.settings.description.to_lowercase().contains(&q)
                || v.settings
                    .tags
                    .iter()
                    .any(|t| t.to_lowercase().contains(&q))
        })
        .map(|v| SensorRow {
            uuid: v.meta.uuid.simple().to_string(),
            name: v.settings.name.clone(),
            status: v.status,
            connected: v.connected,
            tags: v.settings.tags.clone(),
            types: v.meta.types.keys().cloned().collect::<Vec<_>>().join(", "),
            first_seen: ts(v.meta.first_seen),
            last_seen: ts(v.meta.last_seen),
            last_error: v
                .meta
                .last_error
                .as_ref()
                .map(|e| format!("{} {}", ts(e.time), e.reason))
                .unwrap_or_default(),
        })
        .collect();
    let page = SensorsPage {
        l: layout(&s, &c, &f, "sensors"),
        q: f.q.clone(),
        show,
        rows,
    };
    html(&page)
}

#[derive(Template)]
#[template(path = "sensor.html")]
struct SensorPage {
    l: Layout,
    uuid: String,
    name: String,
    status: &'static str,
    connected: bool,
    live_types: String,
    has_own_key: bool,
    blocked: bool,
    block_ips: bool,
    first_seen: String,
    last_seen: String,
    description: String,
    tags: Vec<String>,
    tags_text: String,
    max_frame: String,
    max_frame_value: u32,
    monitor: String,
    monitor_value: u64,
    error_count: u64,
    last_error: String,
    skipped: u64,
    chart_bytes: String,
    chart_frames: String,
    types: Vec<(String, String, String)>,
    ips: Vec<(String, String)>,
}

async fn sensor_page(
    State(s): State<Arc<Shared>>,
    c: Ctx,
    Path(id): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let Ok(u) = api::parse_uuid(&id) else {
        return message(
            &s,
            &c,
            StatusCode::NOT_FOUND,
            "No such sensor",
            &format!("{id:?} is not a UUID"),
        );
    };
    let v = api::sensor_view(&s, u, &s.policy.snapshot(), &s.sensors.live());
    let days = last_days(7);
    let series = |bytes: bool| -> Vec<(String, u64)> {
        days.iter()
            .map(|d| {
                let x = v.meta.daily.get(d).copied().unwrap_or_default();
                (day_label(d), if bytes { x.bytes } else { x.frames })
            })
            .collect()
    };
    let set = &v.settings;
    let page = SensorPage {
        l: layout(&s, &c, &f, "sensors"),
        uuid: u.simple().to_string(),
        name: set.name.clone(),
        status: v.status,
        connected: v.connected,
        live_types: v
            .live_types
            .iter()
            .map(|t| format!("type {t}"))
            .collect::<Vec<_>>()
            .join(", "),
        has_own_key: v.has_own_key,
        blocked: v.blocked,
        block_ips: v.block_ips,
        first_seen: ts(v.meta.first_seen),
        last_seen: ts(v.meta.last_seen),
        description: set.description.clone(),
        tags: set.tags.clone(),
        tags_text: set.tags.join(", "),
        max_frame: set
            .max_frame_size
            .map(|m| format!("{m} bytes"))
            .unwrap_or_else(|| format!("the server's ({} bytes)", s.cfg.max_frame_size)),
        max_frame_value: set.max_frame_size.unwrap_or(0),
        monitor: set
            .monitor_delay_secs
            .map(|d| format!("reported after {d} s of silence"))
            .unwrap_or_else(|| "not monitored".into()),
        monitor_value: set.monitor_delay_secs.unwrap_or(0),
        error_count: v.meta.error_count,
        last_error: v
            .meta
            .last_error
            .as_ref()
            .map(|e| format!("{} from {}: {}", ts(e.time), e.ip, e.reason))
            .unwrap_or_else(|| "none".into()),
        skipped: v.meta.skipped_count,
        chart_bytes: svg::bars("sensor-bytes", "Bytes per day", &series(true), svg::bytes),
        chart_frames: svg::bars(
            "sensor-frames",
            "Frames per day",
            &series(false),
            svg::count,
        ),
        types: v
            .meta
            .types
            .iter()
            .map(|(t, seen)| (t.clone(), ts(seen.first), ts(seen.last)))
            .collect(),
        ips: v
            .meta
            .last_ips
            .iter()
            .map(|(ip, t)| (ip.clone(), ts(*t)))
            .collect(),
    };
    html(&page)
}

async fn sensor_post(
    State(s): State<Arc<Shared>>,
    c: Ctx,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = guard(&c, &f, Role::Admin) {
        return r;
    }
    let to = format!("/sensors/{}", enc(&id));
    let u = match api::parse_uuid(&id) {
        Ok(u) => u,
        Err(e) => return back("/sensors", Err(e)),
    };
    let mut body = ActionBody::default();
    if action == "key" {
        body.key = Some(f.get("key").to_string());
    }
    if action == "settings" {
        let num = |k: &str| f.get(k).trim().parse::<u64>().unwrap_or(0);
        body.name = Some(f.get("name").to_string());
        body.description = Some(f.get("description").to_string());
        body.tags = Some(f.get("tags").split(',').map(str::to_string).collect());
        body.max_frame_size = Some(num("max_frame_size").min(u32::MAX as u64) as u32);
        body.monitor_delay_secs = Some(num("monitor_delay_secs"));
    }
    let r = api::op_sensor_action(&s, u, &action, body).await;
    let msg = match action.as_str() {
        "key" => "HMAC key set (it will not be shown).".to_string(),
        "kick" => "Sensor kicked.".to_string(),
        "block" => "Sensor blocked.".to_string(),
        "unblock" => "Sensor unblocked.".to_string(),
        "block-ips" => "Its addresses are blocked.".to_string(),
        "settings" => "Settings saved.".to_string(),
        other => format!("Done: {other}."),
    };
    back(&to, r.map(|_| msg))
}

// ---------------------------------------------------------------- server

struct QueueRow {
    uuid: String,
    ty: String,
    description: String,
    sensors: String,
    length: u64,
    max_size: u64,
    dropped: u64,
    updated: String,
    preview: Vec<String>,
}

#[derive(Template)]
#[template(path = "server.html")]
struct ServerPage {
    l: Layout,
    mode: String,
    listen: String,
    sessions: usize,
    started: String,
    types: Vec<(u8, &'static str, bool)>,
    extended: String,
    nets: Vec<String>,
    uuids: Vec<String>,
    queues: Vec<QueueRow>,
    default_size: u64,
}

fn type_name(t: u8) -> &'static str {
    match t {
        1 => "pcap",
        2 => "meta-header",
        3 => "log",
        4 => "dnscap",
        5 => "pcapng",
        6 => "NDJSON",
        7 => "YAF/IPFIX",
        8 => "passivedns",
        254 => "extended",
        _ => "",
    }
}

async fn server_page(State(s): State<Arc<Shared>>, c: Ctx, Query(f): Query<Flash>) -> Response {
    let p = s.policy.snapshot();
    let accepted = s.policy.accepted_types();
    let queues = s
        .queues
        .list()
        .into_iter()
        .map(|q| QueueRow {
            uuid: q.uuid.to_string(),
            ty: q.ty.to_string(),
            description: q.description.clone(),
            sensors: q
                .sensors
                .iter()
                .map(|u| u.simple().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            length: q.len(),
            max_size: q.max_size,
            dropped: q.dropped,
            updated: ts(q.last_updated),
            preview: s
                .queues
                .peek(q.uuid, 3)
                .unwrap_or_default()
                .iter()
                .map(|i| String::from_utf8_lossy(i).chars().take(120).collect())
                .collect(),
        })
        .collect();
    let page = ServerPage {
        l: layout(&s, &c, &f, "server"),
        mode: match s.policy.mode() {
            crate::Mode::Registration => "registration".into(),
            crate::Mode::SharedSecret => "shared-secret".into(),
        },
        listen: s.ingest_addr.to_string(),
        sessions: s.sensors.live().len(),
        started: ts(s.started),
        types: d4_proto::D4Type::DEFINED
            .iter()
            .map(|t| (*t, type_name(*t), accepted.contains(t)))
            .collect(),
        extended: s
            .policy
            .accepted_extended()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", "),
        nets: p.blocked_nets.iter().map(|n| n.to_string()).collect(),
        uuids: p
            .blocked_uuids
            .iter()
            .map(|u| u.simple().to_string())
            .collect(),
        queues,
        default_size: s.cfg.default_queue_size,
    };
    html(&page)
}

async fn server_post(
    State(s): State<Arc<Shared>>,
    c: Ctx,
    Path(action): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = guard(&c, &f, Role::Admin) {
        return r;
    }
    let r = match action.as_str() {
        "types" => {
            let types: Result<Vec<u8>, _> = f.all("type").iter().map(|t| t.parse::<u8>()).collect();
            match types {
                Ok(types) => api::op_set_types(
                    &s,
                    TypesBody {
                        types,
                        extended: f.get("extended").split(',').map(str::to_string).collect(),
                    },
                )
                .await
                .map(|()| "Accepted types saved.".to_string()),
                Err(_) => Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    "a type is not a number".into(),
                )),
            }
        }
        "block-ip" => api::op_block_net(&s, f.get("net"))
            .await
            .map(|n| format!("{n} blocked.")),
        "unblock-ip" => api::op_unblock_net(&s, f.get("net"))
            .await
            .map(|n| format!("{n} removed from the blocklist.")),
        "block-uuid" => match api::parse_uuid(f.get("uuid")) {
            Ok(u) => api::op_sensor_action(&s, u, "block", ActionBody::default())
                .await
                .map(|_| format!("{} blocked.", u.simple())),
            Err(e) => Err(e),
        },
        "create-queue" => {
            let max = f.get("max_size").trim();
            let c = CreateQueue {
                ty: f.get("type").to_string(),
                description: f.get("description").to_string(),
                max_size: if max.is_empty() {
                    None
                } else {
                    max.parse().ok()
                },
                sensors: f
                    .get("sensors")
                    .split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect(),
            };
            api::op_create_queue(&s, c)
                .await
                .map(|d| format!("Queue {} created for type {}.", d.uuid, d.ty))
        }
        other => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no action {other:?}"),
        )),
    };
    back("/server", r)
}

async fn queue_post(
    State(s): State<Arc<Shared>>,
    c: Ctx,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = guard(&c, &f, Role::Admin) {
        return r;
    }
    let r = match action.as_str() {
        "empty" => api::op_empty_queue(&s, &id)
            .await
            .map(|n| format!("Queue {id} emptied ({n} items removed).")),
        "delete" => api::op_delete_queue(&s, &id)
            .await
            .map(|_| format!("Queue {id} deleted.")),
        "resize" => match f.get("max_size").trim().parse::<u64>() {
            Ok(m) => api::op_resize_queue(&s, &id, m)
                .await
                .map(|_| format!("Queue {id} now keeps {m} items.")),
            Err(_) => Err(ApiError(
                StatusCode::BAD_REQUEST,
                "the max size must be a number".into(),
            )),
        },
        other => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no queue action {other:?}"),
        )),
    };
    back("/server", r)
}

// ---------------------------------------------------------------- registrations

struct PendingRow {
    uuid: String,
    how: &'static str,
    mail: String,
    first: String,
    last: String,
    ip: String,
}

#[derive(Template)]
#[template(path = "registrations.html")]
struct RegistrationsPage {
    l: Layout,
    pending: Vec<PendingRow>,
    approved: Vec<(String, String)>,
    shared_secret: bool,
}

async fn registrations_page(
    State(s): State<Arc<Shared>>,
    c: Ctx,
    Query(f): Query<Flash>,
) -> Response {
    let p = s.policy.snapshot();
    let page = RegistrationsPage {
        l: layout(&s, &c, &f, "registrations"),
        pending: p
            .pending
            .iter()
            .map(|(u, x)| PendingRow {
                uuid: u.simple().to_string(),
                how: if x.first_seen == 0 && x.ip.is_empty() {
                    "through Redis (another node or a reference tool)"
                } else if x.registered {
                    if x.third_party {
                        "API (third party)"
                    } else {
                        "API"
                    }
                } else {
                    "connection attempt"
                },
                mail: x.mail.clone().unwrap_or_default(),
                first: ts(x.first_seen),
                last: ts(x.last_seen),
                ip: x.ip.clone(),
            })
            .collect(),
        approved: p
            .approved
            .iter()
            .map(|u| {
                (
                    u.simple().to_string(),
                    p.settings
                        .get(u)
                        .map(|x| x.name.clone())
                        .unwrap_or_default(),
                )
            })
            .collect(),
        shared_secret: s.policy.mode() == crate::Mode::SharedSecret,
    };
    html(&page)
}

async fn registration_post(
    State(s): State<Arc<Shared>>,
    c: Ctx,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = guard(&c, &f, Role::Admin) {
        return r;
    }
    let r = match (api::parse_uuid(&id), action.as_str()) {
        (Err(e), _) => Err(e),
        (Ok(u), a @ ("approve" | "reject" | "revoke")) => {
            api::op_sensor_action(&s, u, a, ActionBody::default())
                .await
                .map(|_| {
                    format!(
                        "Sensor {} {}.",
                        u.simple(),
                        match a {
                            "approve" => "approved",
                            "reject" => "rejected",
                            _ => "revoked",
                        }
                    )
                })
        }
        (Ok(_), other) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no action {other:?}"),
        )),
    };
    back("/registrations", r)
}

// ---------------------------------------------------------------- users

struct UserRow {
    name: String,
    role: &'static str,
    must_change: bool,
    created: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    l: Layout,
    users: Vec<UserRow>,
    new_key: String,
    new_key_user: String,
}

fn users_view(s: &Shared, c: &Ctx, f: &Flash, new_key: (String, String)) -> Response {
    if c.user.role != Role::Admin {
        return message(
            s,
            c,
            StatusCode::FORBIDDEN,
            "Users",
            "Only admins manage users.",
        );
    }
    html(&UsersPage {
        l: layout(s, c, f, "users"),
        users: s
            .accounts
            .list()
            .into_iter()
            .map(|u| UserRow {
                name: u.name,
                role: u.role.as_str(),
                must_change: u.must_change_password,
                created: ts(u.created),
            })
            .collect(),
        new_key_user: new_key.0,
        new_key: new_key.1,
    })
}

async fn users_page(State(s): State<Arc<Shared>>, c: Ctx, Query(f): Query<Flash>) -> Response {
    users_view(&s, &c, &f, Default::default())
}

async fn user_create(State(s): State<Arc<Shared>>, c: Ctx, Form(f): Form<Fields>) -> Response {
    if let Some(r) = guard(&c, &f, Role::Admin) {
        return r;
    }
    let name = f.get("name").trim().to_string();
    let r = api::op_create_user(
        &s,
        CreateUser {
            name: name.clone(),
            role: f.get("role").to_string(),
            password: f.get("password").to_string(),
        },
    )
    .await;
    match r {
        // The key is shown on this answer only, never again.
        Ok(key) => users_view(
            &s,
            &c,
            &Flash {
                msg: format!("User {name} created."),
                ..Flash::default()
            },
            (name, key),
        ),
        Err(e) => back("/users", Err(e)),
    }
}

async fn user_post(
    State(s): State<Arc<Shared>>,
    c: Ctx,
    Path((name, action)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = guard(&c, &f, Role::Admin) {
        return r;
    }
    let role = Some(f.get("role").to_string()).filter(|r| !r.is_empty());
    match api::op_user_action(&s, &name, &action, role).await {
        Ok(v) if action == "api-key" => {
            let key = v["api_key"].as_str().unwrap_or_default().to_string();
            users_view(
                &s,
                &c,
                &Flash {
                    msg: format!("New API key for {name}."),
                    ..Flash::default()
                },
                (name, key),
            )
        }
        Ok(_) => back(
            "/users",
            Ok(match action.as_str() {
                "delete" => format!("User {name} deleted."),
                _ => format!("Role of {name} changed."),
            }),
        ),
        Err(e) => back("/users", Err(e)),
    }
}

// ---------------------------------------------------------------- API page, messages

#[derive(Template)]
#[template(path = "api.html")]
struct ApiPage {
    l: Layout,
    base: String,
    endpoints: Vec<(String, String, &'static str, String)>,
}

async fn api_page(
    State(s): State<Arc<Shared>>,
    c: Ctx,
    headers: HeaderMap,
    Query(f): Query<Flash>,
) -> Response {
    let doc: serde_json::Value = serde_json::from_str(api::OPENAPI).unwrap_or_default();
    let mut endpoints = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            let Some(ops) = ops.as_object() else { continue };
            for (m, op) in ops {
                let method = axum::http::Method::from_bytes(m.to_uppercase().as_bytes())
                    .unwrap_or(axum::http::Method::GET);
                let full = if path == "/metrics" {
                    path.clone()
                } else {
                    format!("/api/v1{path}")
                };
                endpoints.push((
                    m.to_uppercase(),
                    path.clone(),
                    api::required_role(&method, &full).as_str(),
                    op["summary"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:7000");
    html(&ApiPage {
        l: layout(&s, &c, &f, "api"),
        base: format!("https://{host}"),
        endpoints,
    })
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    l: Layout,
    heading: String,
    text: String,
}

fn message(s: &Shared, c: &Ctx, code: StatusCode, heading: &str, text: &str) -> Response {
    let mut r = html(&MessagePage {
        l: layout(s, c, &Flash::default(), ""),
        heading: heading.into(),
        text: text.into(),
    });
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_round_trip_and_cookie_parsing() {
        let m = "Queue 1 created; 50% \"done\" é";
        assert_eq!(dec(&enc(m)), m);
        assert_eq!(dec("%zz%4"), "%zz%4");
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {FLASH_COOKIE}=err.{}", enc(m))).unwrap(),
        );
        assert_eq!(read_flash(&h), (String::new(), m.to_string()));
        assert_eq!(cookie(&h, "a").as_deref(), Some("b"));
        assert_eq!(cookie(&h, "nope"), None);
    }
}
