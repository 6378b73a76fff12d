//! File descriptors: the open-files limit is raised from its soft value
//! (often 1,024) to the hard one at start, and the connection budgets are
//! sized from it so that a reserve always stays for sensors that
//! authenticate, their data files, and the store.
//!
//! Each authenticated sensor session counts for [`FDS_PER_SESSION`]
//! descriptors (its socket, the file it writes, the one being compressed);
//! [`RESERVE`] more stay for the store, TLS files, Redis and logs. When the
//! limit is reached anyway (another process, a huge flood), `accept` fails
//! with EMFILE: the listeners then close an unauthenticated connection
//! (as when their whole budget is spent) and wait [`ACCEPT_BACKOFF`] instead of spinning or stopping.

use std::time::Duration;

use super::Limits;
use crate::config::ServerConfig;

/// Descriptors kept for the store, TLS files, Redis, logs and stdio.
pub(crate) const RESERVE: u64 = 128;
/// Descriptors one authenticated sensor session may need.
pub(crate) const FDS_PER_SESSION: u64 = 3;
/// How long a listener waits after `accept` failed for want of descriptors.
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The open-files limit at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FdLimit {
    /// The soft limit before it was raised.
    pub(crate) was: u64,
    /// The soft limit in force (the hard one when it could be raised).
    pub(crate) soft: u64,
    /// The hard limit.
    pub(crate) hard: u64,
}

/// A limit too large to mean anything (unlimited) counts as this many.
const UNLIMITED: u64 = 1 << 20;

/// Raises the soft RLIMIT_NOFILE to the hard limit, and logs both.
pub(crate) fn raise() -> FdLimit {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let r = getrlimit(Resource::Nofile);
    let was = r.current.unwrap_or(UNLIMITED).min(UNLIMITED);
    let hard = r.maximum.unwrap_or(UNLIMITED).min(UNLIMITED);
    let mut soft = was;
    if was < hard {
        let new = Rlimit {
            current: Some(hard),
            maximum: r.maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => {
                soft = hard;
                tracing::info!("open files: soft limit raised from {was} to the hard limit {hard}");
            }
            Err(e) => tracing::warn!(
                "open files: cannot raise the soft limit {was} to the hard limit {hard}: {e}"
            ),
        }
    } else {
        tracing::info!("open files: limit {soft} (hard {hard})");
    }
    FdLimit { was, soft, hard }
}

/// Budgets (ingest, web) within `limit` descriptors: the configured ones,
/// lowered if the limit cannot hold them with the reserve. Unauthenticated
/// connections get at most an eighth of what is left (web: a sixteenth,
/// twice), authenticated sessions the rest at [`FDS_PER_SESSION`] each.
pub(crate) fn budgets(cfg: &ServerConfig, limit: u64) -> (Limits, Limits) {
    let avail = limit.saturating_sub(RESERVE).max(16) as usize;
    let web_unauth = cfg.web_max_unauthenticated.min(avail / 16);
    let web_auth = cfg.web_max_connections.min(avail / 16);
    let unauth = cfg.max_unauthenticated.min(avail / 8);
    let left = avail.saturating_sub(web_unauth + web_auth + unauth);
    let auth = cfg
        .max_connections
        .min(left / FDS_PER_SESSION as usize)
        .max(1);
    let ingest = Limits {
        unauthenticated: unauth.max(1),
        per_ip: cfg.max_unauthenticated_per_ip.min(unauth).max(1),
        per_prefix: cfg.max_unauthenticated_per_prefix.min(unauth).max(1),
        authenticated: auth,
        per_ip_total: cfg.max_connections_per_ip,
    };
    let web = Limits {
        unauthenticated: web_unauth.max(1),
        per_ip: cfg.web_max_unauthenticated_per_ip.min(web_unauth).max(1),
        per_prefix: cfg
            .web_max_unauthenticated_per_prefix
            .min(web_unauth)
            .max(1),
        authenticated: web_auth.max(1),
        per_ip_total: usize::MAX,
    };
    let lowered = unauth < cfg.max_unauthenticated
        || auth < cfg.max_connections
        || web_unauth < cfg.web_max_unauthenticated
        || web_auth < cfg.web_max_connections;
    let msg = format!(
        "connection budgets: ingest {} unauthenticated ({} per address, {} per /24 or /64) and {} sensor sessions; \
         web {} unauthenticated ({} per address, {} per prefix) and {} authenticated; open-files limit {limit}",
        ingest.unauthenticated,
        ingest.per_ip,
        ingest.per_prefix,
        ingest.authenticated,
        web.unauthenticated,
        web.per_ip,
        web.per_prefix,
        web.authenticated,
    );
    if lowered {
        tracing::warn!("{msg}: lowered from the configuration to keep {RESERVE} descriptors and {FDS_PER_SESSION} per sensor session (raise the hard limit, e.g. LimitNOFILE= in the systemd unit)");
    } else {
        tracing::info!("{msg}");
    }
    (ingest, web)
}

/// Whether an `accept` error means no descriptor is left (EMFILE, ENFILE,
/// or the kernel's buffers: ENOBUFS, ENOMEM).
pub(crate) fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}
