//! The HTTPS port (default 127.0.0.1:7000; axum over hyper on TLS from the
//! server's CA): one port for the web UI and the REST API.
//!
//! Each connection gets a [`Slot`] of the web
//! [`Admission`](crate::admission::Admission): unauthenticated until a
//! request carries a valid API token (`auth`) or session cookie
//! (`web::auth::Ctx`), which mark it through its [`WebConn`]. Unauthenticated
//! connections have budgets per address, per /24 or /64 and in all
//! (`web_max_unauthenticated*`; past one an older such connection is
//! closed for the new one, see [`crate::admission`]), authenticated ones their own
//! (`web_max_connections`), so idle or slow connections from a few
//! addresses cannot keep an API caller out. The TLS handshake and each
//! request header must arrive within [`WEB_HEADER_TIMEOUT`], which also
//! closes idle keep-alive connections; a request body within
//! `web_body_timeout_secs` ([`body_deadline`]: 408 and the connection
//! closed past it).
//!
//! - `auth`: API tokens and roles (`required_role`, the one place API
//!   permissions are decided).
//! - `ops/`: the operations both the API and the UI's forms call, so the two
//!   cannot drift apart.
//! - `api/`: the REST routes (`/api/v1/...`), by concern.
//! - `web/`: the server-rendered admin UI: middleware, cookies, CSRF, and
//!   `pages/`, one file per page or group of pages.
//! - `metrics`: `/metrics`, the Prometheus text format.

pub(crate) mod api;
pub(crate) mod auth;
pub(crate) mod metrics;
pub(crate) mod ops;
pub(crate) mod web;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

use crate::admission::{fds, Slot};
use crate::server::Shared;

/// Largest request body (axum's default limit for its extractors).
const MAX_BODY: usize = 2 * 1024 * 1024;

/// Time allowed for the TLS handshake, and for each request's header (also
/// how long an idle keep-alive connection stays open).
pub(crate) const WEB_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The UI and the API on one router, with the UI's middleware on both.
fn app(shared: Arc<Shared>) -> axum::Router {
    web::routes()
        .merge(api::router(shared.clone()))
        .layer(axum::middleware::from_fn(web::clear_flash))
        .layer(axum::middleware::from_fn(web::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            body_deadline,
        ))
        .with_state(shared)
}

/// A request's body must arrive within `web_body_timeout_secs`: past it the
/// answer is 408 and the connection is closed (a client that trickles a
/// body, on `/login` or anywhere, holds nothing for long). The body is
/// read here, at most [`MAX_BODY`] bytes (413 past it), and handed on whole.
pub(crate) async fn body_deadline(
    State(s): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let h = req.headers();
    let has_body = h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if !has_body {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let wait = std::time::Duration::from_secs(s.cfg.web_body_timeout_secs);
    let close = |status: StatusCode, text: String| {
        let mut r = (status, text).into_response();
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    };
    match tokio::time::timeout(wait, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Ok(Err(e)) => close(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body refused: {e} (at most {MAX_BODY} bytes)"),
        ),
        Err(_) => {
            tracing::info!(
                "HTTPS request {} {} closed: its body did not arrive within {} s",
                parts.method,
                parts.uri.path(),
                wait.as_secs()
            );
            close(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    wait.as_secs()
                ),
            )
        }
    }
}

/// Serves the web UI and the API over TLS until shutdown.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener, acceptor: TlsAcceptor) {
    let app = app(shared.clone());
    let adm = shared.admission.web.clone();
    let mut sd = shared.shutdown.clone();
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    if fds::out_of_descriptors(&e) {
                        adm.counters.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        adm.evict_one();
                        tracing::warn!("HTTPS accept failed: {e}; closed an unauthenticated connection");
                    }
                    tokio::time::sleep(fds::ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = sd.changed() => return,
        };
        let evicted = Arc::new(Notify::new());
        let e = evicted.clone();
        let Some(slot) = adm.admit(peer.ip(), move |full| {
            tracing::debug!(
                "HTTPS connection from {peer} closed before authenticating: {} reached",
                full.setting("web_")
            );
            e.notify_one();
        }) else {
            continue;
        };
        let (app, acceptor) = (app.clone(), acceptor.clone());
        tokio::spawn(async move {
            let conn = WebConn(Arc::new(slot));
            let handshake = tokio::time::timeout(WEB_HEADER_TIMEOUT, acceptor.accept(tcp));
            let tls = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(tls)) => tls,
                    _ => return,
                },
                _ = evicted.notified() => return,
            };
            let app = app.layer(Extension(PeerAddr(peer))).layer(Extension(conn));
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            b.http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(WEB_HEADER_TIMEOUT);
            // Dropping the connection closes it: an eviction ends it at once
            // (only unauthenticated connections are evicted).
            tokio::select! {
                _ = b.serve_connection(TokioIo::new(tls), svc) => {}
                _ = evicted.notified() => {}
            }
        });
    }
}

/// The peer address of an HTTPS connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerAddr(pub std::net::SocketAddr);

/// The admission slot of an HTTPS connection: a request that proves who it
/// is (an API token, a session cookie) marks the connection authenticated.
#[derive(Clone, Debug)]
pub(crate) struct WebConn(pub(crate) Arc<Slot>);

impl WebConn {
    /// Marks the connection of a request that authenticated (once; a no-op
    /// when the request did not come through the listener, in tests).
    pub(crate) fn mark(ext: &axum::http::Extensions) {
        if let Some(c) = ext.get::<WebConn>() {
            if !c.0.is_authenticated() {
                c.0.authenticate();
            }
        }
    }
}
