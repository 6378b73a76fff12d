//! The ingest listener: accepts TCP connections and runs one
//! [`session`](super::session) task for each.
//!
//! Every connection gets a [`Slot`](crate::admission::Slot) of the ingest
//! [`Admission`](crate::admission::Admission): until its first frame's HMAC
//! verifies it is unauthenticated (`max_unauthenticated`, per address and
//! per /24 or /64; past a budget an older such connection is closed, with
//! [`Reject::Evicted`](super::reject::Reject::Evicted)); then it counts
//! against `max_connections`. At most `max_connections_per_ip` connections
//! of one address, authenticated or not, are open at once (past it the
//! address's oldest unauthenticated one is evicted; if all are
//! authenticated, the new one is refused). The accept loop never waits on
//! a budget: it keeps accepting. When `accept` fails for want of
//! descriptors, an unauthenticated connection is closed (as when the whole
//! budget is spent) and the loop waits a moment.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::sensors::CloseSignal;
use super::{policy, session};
use crate::admission::fds;
use crate::server::Shared;

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, acceptor: TlsAcceptor) {
    let adm = shared.admission.ingest.clone();
    let mut sd = shared.shutdown.clone();
    let mut sessions = JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    if fds::out_of_descriptors(&e) {
                        adm.counters.refused.fetch_add(1, Ordering::Relaxed);
                        adm.evict_one();
                        tracing::warn!("accept failed: {e}; closed an unauthenticated connection");
                        tokio::time::sleep(fds::ACCEPT_BACKOFF).await;
                    } else {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            _ = sd.changed() => break,
        };
        let ip = peer.ip().to_canonical();
        let close = Arc::new(CloseSignal::default());
        let on_evict = {
            let (close, net) = (close.clone(), policy::prefix_of(ip));
            move |full: crate::admission::Full| {
                let of = match full {
                    crate::admission::Full::Address | crate::admission::Full::AddressTotal => {
                        format!(" of {ip}")
                    }
                    crate::admission::Full::Prefix => format!(" of {net}"),
                    crate::admission::Full::All => String::new(),
                };
                close.close(policy::Reject::Evicted(format!(
                    "evicted before authenticating: an older unauthenticated connection{of}, closed for a newer one ({} reached)",
                    full.setting("")
                )))
            }
        };
        let Some(slot) = adm.admit(ip, on_evict) else {
            let r = policy::Reject::TooManyConnections(format!(
                "too many connections from {ip} (max_connections_per_ip = {})",
                shared.cfg.max_connections_per_ip
            ));
            session::reject_connection(&shared, ip, &r);
            continue;
        };
        let (s, a) = (shared.clone(), acceptor.clone());
        sessions.spawn(session::serve(s, tcp, peer, a, slot, close));
        while sessions.try_join_next().is_some() {}
    }
    // Let sessions finish their files (they saw the shutdown too).
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
}
