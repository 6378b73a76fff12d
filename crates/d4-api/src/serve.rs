//! The HTTP side the analyzers' lookup servers (`d4 pdns serve`, `d4 tls
//! serve`) share: their runtime, the listening socket and its announce
//! line, serving a router with the client address known (for the rate
//! limit of [`crate::lookup`]) until shutdown, and JSON error answers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::lookup::Limiter;

/// The runtime of a lookup server: lookups run on its threads (a page read
/// that misses the cache blocks one of them), so more threads than cores.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) * 4;
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.clamp(4, 64))
        .enable_all()
        .build()?)
}

/// Binds `addr` and prints `{who}: listening on http://ADDR` on stdout (the
/// bound address: port 0 gives an ephemeral one, which tests read there).
pub async fn listen(addr: SocketAddr, who: &str) -> Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("{who}: listening on http://{}", listener.local_addr()?);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok(listener)
}

/// Serves `router` (with `ConnectInfo<SocketAddr>`) until `shutdown`
/// completes; requests under way are finished.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("HTTP server failed")
}

/// A JSON error answer: `{"error": msg}`.
pub fn error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        crate::lookup::error_body(msg),
    )
        .into_response()
}

/// `router` with a per-client rate limit of `rate` requests/s (bursts of
/// twice that; 0: none): beyond it, 429. The routes added to the result
/// afterwards are not limited.
pub fn rate_limited<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    rate: f64,
) -> axum::Router<S> {
    match crate::lookup::limiter(rate) {
        None => router,
        Some(l) => router.layer(axum::middleware::from_fn_with_state(Arc::new(l), limit)),
    }
}

/// Refuses clients over their rate (429).
async fn limit(
    State(l): State<Arc<Mutex<Limiter>>>,
    ConnectInfo(who): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if !crate::lookup::allowed(Some(&l), who.ip()) {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded; slow down",
        );
    }
    next.run(req).await
}
