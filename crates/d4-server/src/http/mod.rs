//! The HTTPS port (default 127.0.0.1:7000; axum over hyper on TLS from the
//! server's CA): one port for the web UI and the REST API.
//!
//! At most [`MAX_WEB_CONNECTIONS`] connections at once (more are closed at
//! accept); the TLS handshake and each request header must arrive within
//! [`WEB_HEADER_TIMEOUT`], which also closes idle keep-alive connections.
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

use axum::Extension;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::server::Shared;

/// Most HTTPS connections served at once; past it, new ones are closed.
pub(crate) const MAX_WEB_CONNECTIONS: usize = 256;

/// Time allowed for the TLS handshake, and for each request's header (also
/// how long an idle keep-alive connection stays open).
pub(crate) const WEB_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The UI and the API on one router, with the UI's middleware on both.
fn app(shared: Arc<Shared>) -> axum::Router {
    web::routes()
        .merge(api::router(shared.clone()))
        .layer(axum::middleware::from_fn(web::clear_flash))
        .layer(axum::middleware::from_fn(web::security_headers))
        .with_state(shared)
}

/// Serves the web UI and the API over TLS until shutdown.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener, acceptor: TlsAcceptor) {
    let app = app(shared.clone());
    let mut sd = shared.shutdown.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_WEB_CONNECTIONS));
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = sd.changed() => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(
                "HTTPS connection from {peer} closed: {MAX_WEB_CONNECTIONS} already open"
            );
            continue;
        };
        let (app, acceptor) = (app.clone(), acceptor.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Ok(tls)) = tokio::time::timeout(WEB_HEADER_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let app = app.layer(Extension(PeerAddr(peer)));
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            b.http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(WEB_HEADER_TIMEOUT);
            let _ = b.serve_connection(TokioIo::new(tls), svc).await;
        });
    }
}

/// The peer address of an HTTPS connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerAddr(pub std::net::SocketAddr);
