//! Who gets a connection slot: one [`Admission`] for the ingest port and
//! one for the HTTPS port.
//!
//! A new connection is *unauthenticated* until it proves who it is (ingest:
//! its first frame's HMAC verifies; HTTPS: a request carries a valid API
//! token or session cookie). Unauthenticated connections have budgets of
//! their own — per address, per /24 (IPv4) or /64 (IPv6), and in all — and
//! a new connection is never refused for them: when one is spent, an older
//! unauthenticated connection of the narrowest group that is full is closed
//! ("evicted") to make room: the address's oldest when the address is full;
//! when its prefix is, the oldest of the prefix's address holding the most;
//! when all are, the same within the prefix holding the most. A flood of
//! connections that never authenticate thus churns through itself first,
//! and a sensor that authenticates within a moment of connecting (or a
//! lone connection among a flood's) gets in.
//!
//! Authenticated connections have a separate budget (`max_connections`,
//! `web_max_connections`); an authentication past it is refused (ingest) or
//! leaves the connection unauthenticated (HTTPS).
//!
//! A connection's place is a [`Slot`] (RAII: dropping it frees the place).
//! `fds` raises the open-files limit at start and sizes the budgets from it.

pub(crate) mod fds;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;

use crate::ingest::policy::prefix_of;

/// The budgets of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Unauthenticated connections in all.
    pub(crate) unauthenticated: usize,
    /// Unauthenticated connections from one address.
    pub(crate) per_ip: usize,
    /// Unauthenticated connections from one /24 or /64.
    pub(crate) per_prefix: usize,
    /// Authenticated connections.
    pub(crate) authenticated: usize,
    /// Connections of one address, authenticated or not.
    pub(crate) per_ip_total: usize,
}

/// Which budget a new connection spent, so that an older one was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// The per-address budget.
    Address,
    /// The per-address budget of all connections, authenticated or not.
    AddressTotal,
    /// The per-/24 or /64 budget.
    Prefix,
    /// The budget of all unauthenticated connections.
    All,
}

impl Full {
    /// The setting that sets this budget, for a listener (`""` or `"web_"`).
    pub(crate) fn setting(self, prefix: &str) -> String {
        let s = match self {
            Full::Address => "max_unauthenticated_per_ip",
            Full::AddressTotal => "max_connections_per_ip",
            Full::Prefix => "max_unauthenticated_per_prefix",
            Full::All => "max_unauthenticated",
        };
        format!("{prefix}{s}")
    }
}

/// What [`Slot::authenticate`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Authenticated {
    /// The connection now holds an authenticated place.
    Yes,
    /// The authenticated budget is spent: the connection stays as it was.
    Full,
    /// The connection was evicted already.
    Evicted,
}

/// Counters of one listener (`/metrics`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Unauthenticated connections closed to make room for newer ones.
    pub(crate) evicted: AtomicU64,
    /// Connections refused (accept failures for want of descriptors, per-address limit).
    pub(crate) refused: AtomicU64,
    /// Connections that authenticated.
    pub(crate) authenticated: AtomicU64,
    /// Authentications past the authenticated budget.
    pub(crate) authenticated_full: AtomicU64,
}

/// Called (outside the lock) when a connection is evicted, with the budget
/// that was full.
type OnEvict = Box<dyn FnOnce(Full) + Send>;

struct Entry {
    ip: IpAddr,
    net: IpNet,
    on_evict: OnEvict,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Unauthenticated connections, oldest first.
    unauth: BTreeMap<u64, Entry>,
    by_ip: HashMap<IpAddr, BTreeSet<u64>>,
    by_prefix: HashMap<IpNet, BTreeSet<u64>>,
    authenticated: usize,
    /// Authenticated connections per address.
    auth_by_ip: HashMap<IpAddr, usize>,
}

impl State {
    /// The oldest connection of the address with the most connections
    /// among `ids` (ties: the address whose oldest connection is older).
    fn heaviest_in(&self, ids: &BTreeSet<u64>) -> Option<u64> {
        let mut per: HashMap<IpAddr, (usize, u64)> = HashMap::new();
        for id in ids {
            if let Some(e) = self.unauth.get(id) {
                per.entry(e.ip).or_insert((0, *id)).0 += 1;
            }
        }
        per.into_values()
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, oldest)| oldest)
    }

    /// [`heaviest_in`](Self::heaviest_in) the prefix with the most
    /// connections (ties: the one whose oldest connection is older).
    fn heaviest_prefix(&self) -> Option<u64> {
        let ids = self
            .by_prefix
            .values()
            .max_by(|a, b| a.len().cmp(&b.len()).then(b.first().cmp(&a.first())))?;
        self.heaviest_in(ids)
    }

    /// Removes an unauthenticated connection from every table.
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.unauth.remove(&id)?;
        drop_member(&mut self.by_ip, &e.ip, id);
        drop_member(&mut self.by_prefix, &e.net, id);
        Some(e)
    }
}

fn drop_member<K: std::hash::Hash + Eq>(m: &mut HashMap<K, BTreeSet<u64>>, k: &K, id: u64) {
    if let Some(s) = m.get_mut(k) {
        s.remove(&id);
        if s.is_empty() {
            m.remove(k);
        }
    }
}

/// The connection slots of one listener.
pub(crate) struct Admission {
    /// `ingest` or `web` (logs, metrics).
    pub(crate) name: &'static str,
    limits: Limits,
    state: Mutex<State>,
    /// Counters for `/metrics`.
    pub(crate) counters: Counters,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .finish()
    }
}

const UNAUTH: u8 = 0;
const AUTH: u8 = 1;
const GONE: u8 = 2;

impl Admission {
    /// The slots of a listener with these budgets (each at least 1).
    pub(crate) fn new(name: &'static str, limits: Limits) -> Arc<Self> {
        let at_least_1 = |n: usize| n.max(1);
        Arc::new(Admission {
            name,
            limits: Limits {
                unauthenticated: at_least_1(limits.unauthenticated),
                per_ip: at_least_1(limits.per_ip),
                per_prefix: at_least_1(limits.per_prefix),
                authenticated: at_least_1(limits.authenticated),
                per_ip_total: at_least_1(limits.per_ip_total),
            },
            state: Mutex::default(),
            counters: Counters::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The budgets in force.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// (unauthenticated, authenticated) connections open now.
    pub(crate) fn open(&self) -> (usize, usize) {
        let s = self.lock();
        (s.unauth.len(), s.authenticated)
    }

    /// A place for a new unauthenticated connection from `ip`. If a budget
    /// is spent, an older unauthenticated connection of the narrowest full
    /// group (address, prefix, all) is evicted, as the module says: its
    /// `on_evict` runs. `None`
    /// (counted as refused) only when the address holds `per_ip_total`
    /// authenticated connections.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        on_evict: impl FnOnce(Full) + Send + 'static,
    ) -> Option<Slot> {
        let ip = ip.to_canonical();
        let net = prefix_of(ip);
        let l = self.limits;
        let (id, victim) = {
            let mut s = self.lock();
            let oldest = |set: Option<&BTreeSet<u64>>, cap: usize| {
                set.filter(|v| v.len() >= cap)
                    .and_then(|v| v.first().copied())
            };
            let mine = s.by_ip.get(&ip);
            let authed = s.auth_by_ip.get(&ip).copied().unwrap_or(0);
            let victim = if let Some(v) = oldest(mine, l.per_ip) {
                Some((v, Full::Address))
            } else if authed + mine.map_or(0, BTreeSet::len) >= l.per_ip_total {
                match mine.and_then(|v| v.first().copied()) {
                    Some(v) => Some((v, Full::AddressTotal)),
                    None => {
                        drop(s);
                        self.counters.refused.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                }
            } else if let Some(v) = s
                .by_prefix
                .get(&net)
                .filter(|v| v.len() >= l.per_prefix)
                .and_then(|v| s.heaviest_in(v))
            {
                Some((v, Full::Prefix))
            } else if s.unauth.len() >= l.unauthenticated {
                s.heaviest_prefix().map(|v| (v, Full::All))
            } else {
                None
            };
            let victim = victim.and_then(|(v, why)| s.remove(v).map(|e| (e, why)));
            let id = s.next;
            s.next += 1;
            s.unauth.insert(
                id,
                Entry {
                    ip,
                    net,
                    on_evict: Box::new(on_evict),
                },
            );
            s.by_ip.entry(ip).or_default().insert(id);
            s.by_prefix.entry(net).or_default().insert(id);
            (id, victim)
        };
        if let Some((e, why)) = victim {
            self.counters.evicted.fetch_add(1, Ordering::Relaxed);
            (e.on_evict)(why);
        }
        Some(Slot {
            adm: self.clone(),
            id,
            ip,
            state: AtomicU8::new(UNAUTH),
        })
    }

    /// Evicts an unauthenticated connection, if any, as when the whole
    /// budget is spent (the listener is out of file descriptors). True if
    /// one was.
    pub(crate) fn evict_one(&self) -> bool {
        let victim = {
            let mut s = self.lock();
            let first = s.heaviest_prefix();
            first.and_then(|v| s.remove(v))
        };
        match victim {
            Some(e) => {
                self.counters.evicted.fetch_add(1, Ordering::Relaxed);
                (e.on_evict)(Full::All);
                true
            }
            None => false,
        }
    }
}

/// One connection's place (released on drop).
pub(crate) struct Slot {
    adm: Arc<Admission>,
    id: u64,
    ip: IpAddr,
    state: AtomicU8,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("listener", &self.adm.name)
            .field("id", &self.id)
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish()
    }
}

impl Slot {
    /// Moves the connection to the authenticated budget, once.
    pub(crate) fn authenticate(&self) -> Authenticated {
        if self.is_authenticated() {
            return Authenticated::Yes;
        }
        let a = &self.adm;
        let mut s = a.lock();
        // The state only changes under the lock.
        match self.state.load(Ordering::Acquire) {
            AUTH => return Authenticated::Yes,
            GONE => return Authenticated::Evicted,
            _ => {}
        }
        if !s.unauth.contains_key(&self.id) {
            self.state.store(GONE, Ordering::Release);
            return Authenticated::Evicted;
        }
        if s.authenticated >= a.limits.authenticated {
            a.counters
                .authenticated_full
                .fetch_add(1, Ordering::Relaxed);
            return Authenticated::Full;
        }
        s.remove(self.id);
        s.authenticated += 1;
        *s.auth_by_ip.entry(self.ip).or_insert(0) += 1;
        self.state.store(AUTH, Ordering::Release);
        a.counters.authenticated.fetch_add(1, Ordering::Relaxed);
        Authenticated::Yes
    }

    /// Whether the connection holds an authenticated place.
    pub(crate) fn is_authenticated(&self) -> bool {
        self.state.load(Ordering::Acquire) == AUTH
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut s = self.adm.lock();
        match self.state.load(Ordering::Acquire) {
            AUTH => {
                s.authenticated = s.authenticated.saturating_sub(1);
                if let Some(n) = s.auth_by_ip.get_mut(&self.ip) {
                    *n -= 1;
                    if *n == 0 {
                        s.auth_by_ip.remove(&self.ip);
                    }
                }
            }
            UNAUTH => {
                s.remove(self.id);
            }
            _ => {}
        }
    }
}

/// Both listeners' slots and the descriptor limit they were sized from.
#[derive(Debug)]
pub(crate) struct Admissions {
    /// Sensors (the TLS ingest port).
    pub(crate) ingest: Arc<Admission>,
    /// The web UI and API (the HTTPS port).
    pub(crate) web: Arc<Admission>,
    /// The open-files limit at start.
    pub(crate) fds: fds::FdLimit,
}

impl Admissions {
    /// `/metrics` rows: (name, type, help, rows).
    #[allow(clippy::type_complexity)]
    pub(crate) fn metric_rows(
        &self,
    ) -> Vec<(&'static str, &'static str, &'static str, Vec<(String, u64)>)> {
        let both = [&self.ingest, &self.web];
        let per = |f: &dyn Fn(&Admission) -> u64| {
            both.iter()
                .map(|a| (format!("{{listener=\"{}\"}}", a.name), f(a)))
                .collect::<Vec<_>>()
        };
        let c = |f: fn(&Counters) -> &AtomicU64| {
            per(&|a: &Admission| f(&a.counters).load(Ordering::Relaxed))
        };
        let by_state = |f: &dyn Fn(&Admission) -> (usize, usize)| {
            both.iter()
                .flat_map(|a| {
                    let (u, au) = f(a);
                    [
                        (
                            format!("{{listener=\"{}\",state=\"unauthenticated\"}}", a.name),
                            u as u64,
                        ),
                        (
                            format!("{{listener=\"{}\",state=\"authenticated\"}}", a.name),
                            au as u64,
                        ),
                    ]
                })
                .collect::<Vec<_>>()
        };
        let f = self.fds;
        vec![
            (
                "d4_open_files_limit",
                "gauge",
                "The open-files limit: soft (in force), hard, and the soft one at start.",
                vec![
                    ("{limit=\"soft\"}".into(), f.soft),
                    ("{limit=\"hard\"}".into(), f.hard),
                    ("{limit=\"at_start\"}".into(), f.was),
                ],
            ),
            (
                "d4_connections_evicted_total",
                "counter",
                "Unauthenticated connections closed, oldest first, to make room for newer ones.",
                c(|c| &c.evicted),
            ),
            (
                "d4_connections_refused_total",
                "counter",
                "Connections refused at accept (no file descriptor left; max_connections_per_ip authenticated ones).",
                c(|c| &c.refused),
            ),
            (
                "d4_connections_authenticated_total",
                "counter",
                "Connections that authenticated (a verified HMAC frame; a valid API token or session cookie).",
                c(|c| &c.authenticated),
            ),
            (
                "d4_connections_authenticated_full_total",
                "counter",
                "Authentications past the authenticated budget (max_connections, web_max_connections).",
                c(|c| &c.authenticated_full),
            ),
            (
                "d4_connections_open",
                "gauge",
                "Connections open, by listener and state.",
                by_state(&|a: &Admission| a.open()),
            ),
            (
                "d4_connections_budget",
                "gauge",
                "Most connections at once, by listener and state (sized from the open-files limit).",
                by_state(&|a: &Admission| {
                    let l = a.limits();
                    (l.unauthenticated, l.authenticated)
                }),
            ),
        ]
    }
}
