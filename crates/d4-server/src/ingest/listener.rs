//! The ingest listener: accepts TCP connections (at most `max_connections`,
//! a semaphore, and `max_connections_per_ip` per address) and runs one
//! [`session`](super::session) task for each.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::{policy, session};
use crate::server::Shared;

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, acceptor: TlsAcceptor) {
    let limit = Arc::new(Semaphore::new(shared.cfg.max_connections));
    let per_ip_count: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let mut sd = shared.shutdown.clone();
    let mut sessions = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = sd.changed() => break,
            // A finished session's task (sized for the whole session) is
            // freed only once joined: join them as they end, not at the next
            // accept, so memory goes back when sensors leave.
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        let (tcp, peer) = tokio::select! {
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = sd.changed() => break,
        };
        let ip = peer.ip().to_canonical();
        let per_ip = {
            let mut m = per_ip_count.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(ip).or_insert(0);
            *n += 1;
            *n
        };
        if per_ip > shared.cfg.max_connections_per_ip {
            release(&per_ip_count, ip);
            let r = policy::Reject::TooManyConnections(format!(
                "too many connections from {ip} (max_connections_per_ip = {})",
                shared.cfg.max_connections_per_ip
            ));
            session::reject_connection(&shared, ip, &r);
            continue;
        }
        let (s, a, counts) = (shared.clone(), acceptor.clone(), per_ip_count.clone());
        sessions.spawn(async move {
            session::serve(s, tcp, peer, a).await;
            release(&counts, ip);
            drop(permit);
        });
        while sessions.try_join_next().is_some() {}
    }
    // Let sessions finish their files (they saw the shutdown too).
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
}

/// One connection from `ip` ended.
fn release(counts: &std::sync::Mutex<HashMap<IpAddr, usize>>, ip: IpAddr) {
    let mut m = counts.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = m.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            m.remove(&ip);
        }
    }
}
