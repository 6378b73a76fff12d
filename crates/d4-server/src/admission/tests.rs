use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::*;

fn limits(unauth: usize, per_ip: usize, per_prefix: usize, auth: usize) -> Limits {
    Limits {
        unauthenticated: unauth,
        per_ip,
        per_prefix,
        authenticated: auth,
        per_ip_total: 1000,
    }
}

/// Admits connections and records which were evicted, and why.
struct Probe {
    adm: Arc<Admission>,
    evicted: Arc<Mutex<Vec<(usize, Full)>>>,
    n: usize,
}

impl Probe {
    fn new(l: Limits) -> Probe {
        Probe {
            adm: Admission::new("test", l),
            evicted: Arc::default(),
            n: 0,
        }
    }

    /// Admits connection number `self.n` from `ip`.
    fn admit(&mut self, ip: &str) -> Slot {
        self.try_admit(ip).expect("admitted")
    }

    fn try_admit(&mut self, ip: &str) -> Option<Slot> {
        let ip: IpAddr = ip.parse().unwrap();
        let (n, log) = (self.n, self.evicted.clone());
        self.n += 1;
        self.adm
            .admit(ip, move |why| log.lock().unwrap().push((n, why)))
    }

    fn evicted(&self) -> Vec<(usize, Full)> {
        std::mem::take(&mut *self.evicted.lock().unwrap())
    }
}

#[test]
fn the_oldest_of_the_narrowest_full_group_is_evicted() {
    let mut p = Probe::new(limits(6, 2, 4, 10));
    // Per address: the third from one address evicts that address's first.
    let _a = [p.admit("192.0.2.1"), p.admit("192.0.2.1")];
    assert!(p.evicted().is_empty());
    let _a3 = p.admit("192.0.2.1");
    assert_eq!(p.evicted(), vec![(0, Full::Address)]);
    // Per /24: addresses of one prefix share 4 places; the oldest goes.
    let _b = [p.admit("192.0.2.2"), p.admit("192.0.2.3")];
    assert!(p.evicted().is_empty());
    let _b3 = p.admit("192.0.2.4");
    assert_eq!(p.evicted(), vec![(1, Full::Prefix)]);
    assert_eq!(p.adm.open(), (4, 0));
    // In all: 6 places; another prefix's newcomers push out the oldest anywhere.
    let _c = [p.admit("198.51.100.1"), p.admit("198.51.100.2")];
    assert!(p.evicted().is_empty());
    let _c3 = p.admit("198.51.100.3");
    assert_eq!(p.evicted(), vec![(2, Full::All)]);
    assert_eq!(p.adm.open(), (6, 0));
    assert_eq!(p.adm.counters.evicted.load(Ordering::Relaxed), 3);
}

#[test]
fn the_address_holding_the_most_goes_first() {
    let mut p = Probe::new(limits(5, 10, 4, 10));
    // A lone connection, then a flood from one address of its /24.
    let _lone = p.admit("192.0.2.1");
    let _f = [
        p.admit("192.0.2.9"),
        p.admit("192.0.2.9"),
        p.admit("192.0.2.9"),
    ];
    let _f4 = p.admit("192.0.2.9");
    // The flood's oldest goes, not the lone (older) connection.
    assert_eq!(p.evicted(), vec![(1, Full::Prefix)]);
    // In all: the prefix holding the most gives way first.
    let _other = p.admit("198.51.100.1");
    let _more = p.admit("203.0.113.1");
    assert_eq!(p.evicted(), vec![(2, Full::All)]);
    // Equal counts: the older address's oldest.
    let mut q = Probe::new(limits(100, 10, 2, 10));
    let _a = [q.admit("192.0.2.1"), q.admit("192.0.2.2")];
    let _c = q.admit("192.0.2.3");
    assert_eq!(q.evicted(), vec![(0, Full::Prefix)]);
}

#[test]
fn ipv6_prefixes_are_64_bits_and_mapped_addresses_are_ipv4() {
    let mut p = Probe::new(limits(100, 1, 2, 10));
    let _a = [p.admit("2001:db8::1"), p.admit("2001:db8::2")];
    let _a3 = p.admit("2001:db8:0:0:ffff::3");
    assert_eq!(p.evicted(), vec![(0, Full::Prefix)]);
    // Another /64 is apart.
    let _b = p.admit("2001:db8:0:1::1");
    assert!(p.evicted().is_empty());
    // ::ffff:192.0.2.1 is 192.0.2.1.
    let _c = p.admit("192.0.2.1");
    let _c2 = p.admit("::ffff:192.0.2.1");
    assert_eq!(p.evicted(), vec![(4, Full::Address)]);
}

#[test]
fn a_flood_never_keeps_a_newcomer_out_and_authenticated_places_are_apart() {
    let mut p = Probe::new(limits(8, 4, 8, 2));
    let sensor = p.admit("10.0.0.1");
    assert_eq!(sensor.authenticate(), Authenticated::Yes);
    assert!(sensor.is_authenticated());
    // 1,000 connections that never authenticate from 17 addresses of the
    // sensor's /24: the authenticated one is never touched.
    let mut flood = Vec::new();
    for i in 0..1000 {
        flood.push(p.admit(&format!("10.0.0.{}", 2 + i % 17)));
    }
    assert_eq!(p.adm.open(), (8, 1));
    assert_eq!(p.evicted().len(), 992);
    // A newcomer gets in, authenticates, and is no longer evictable.
    let second = p.admit("10.0.0.1");
    assert_eq!(second.authenticate(), Authenticated::Yes);
    for _ in 0..20 {
        flood.push(p.admit("10.0.0.3"));
    }
    assert!(p.evicted().iter().all(|(n, _)| *n != 1001));
    assert_eq!(p.adm.open(), (8, 2));
    // The authenticated budget is spent: a third stays unauthenticated...
    let third = p.admit("10.0.0.1");
    assert_eq!(third.authenticate(), Authenticated::Full);
    assert!(!third.is_authenticated());
    assert_eq!(p.adm.counters.authenticated_full.load(Ordering::Relaxed), 1);
    // ...and gets its place once one is freed.
    drop(sensor);
    assert_eq!(third.authenticate(), Authenticated::Yes);
    assert_eq!(p.adm.counters.authenticated.load(Ordering::Relaxed), 3);
}

#[test]
fn an_evicted_connection_cannot_authenticate_and_drops_free_places() {
    let mut p = Probe::new(limits(2, 2, 2, 2));
    let first = p.admit("192.0.2.1");
    let second = p.admit("192.0.2.1");
    let _third = p.admit("192.0.2.1");
    assert_eq!(p.evicted(), vec![(0, Full::Address)]);
    assert_eq!(first.authenticate(), Authenticated::Evicted);
    drop(first); // already gone: nothing else is released
    assert_eq!(p.adm.open(), (2, 0));
    drop(second);
    assert_eq!(p.adm.open(), (1, 0));
    let _fourth = p.admit("192.0.2.1");
    assert!(p.evicted().is_empty());
    // Out of descriptors: one goes, as when the whole budget is spent.
    assert!(p.adm.evict_one());
    assert_eq!(p.evicted(), vec![(2, Full::All)]);
    assert_eq!(p.adm.open(), (1, 0));
}

#[test]
fn an_address_holds_at_most_per_ip_total_connections_of_either_kind() {
    let mut p = Probe::new(Limits {
        per_ip_total: 3,
        ..limits(100, 2, 100, 100)
    });
    let a = [p.admit("192.0.2.1"), p.admit("192.0.2.1")];
    assert!(a.iter().all(|s| s.authenticate() == Authenticated::Yes));
    let _b = p.admit("192.0.2.1");
    // Full with an unauthenticated one among them: that one goes.
    let _c = p.admit("192.0.2.1");
    assert_eq!(p.evicted(), vec![(2, Full::AddressTotal)]);
    assert_eq!(_c.authenticate(), Authenticated::Yes);
    // Full with authenticated ones only: refused.
    assert!(p.try_admit("192.0.2.1").is_none());
    assert_eq!(p.adm.counters.refused.load(Ordering::Relaxed), 1);
    // Other addresses are not concerned; a freed place is free again.
    let _d = p.admit("192.0.2.2");
    drop(a);
    let _e = p.admit("192.0.2.1");
    assert!(p.evicted().is_empty());
}

#[test]
fn budgets_keep_a_reserve_within_the_descriptor_limit() {
    let cfg = crate::config::ServerConfig::default();
    // A raised limit holds the configuration as is.
    let (ingest, web) = fds::budgets(&cfg, 20_000);
    assert_eq!(
        ingest,
        Limits {
            per_ip_total: 64,
            ..limits(256, 32, 64, 1024)
        }
    );
    assert_eq!(
        web,
        Limits {
            per_ip_total: usize::MAX,
            ..limits(128, 32, 64, 256)
        }
    );
    // 1,024 that cannot be raised: everything fits, with the reserve and
    // three descriptors per sensor session.
    for limit in [1024u64, 256, 0] {
        let (i, w) = fds::budgets(&cfg, limit);
        let used = (i.unauthenticated
            + w.unauthenticated
            + w.authenticated
            + i.authenticated * fds::FDS_PER_SESSION as usize) as u64;
        assert!(
            used + fds::RESERVE <= limit.max(fds::RESERVE + 16 * fds::FDS_PER_SESSION),
            "{limit}: {i:?} {w:?}"
        );
        assert!(
            i.authenticated >= 1 && i.per_ip <= i.unauthenticated,
            "{i:?}"
        );
        assert!(
            w.authenticated >= 1 && w.per_prefix <= w.unauthenticated,
            "{w:?}"
        );
    }
    let (i, _) = fds::budgets(&cfg, 1024);
    assert_eq!((i.unauthenticated, i.authenticated), (112, 224));
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_one() {
    let f = fds::raise();
    assert_eq!(f.soft, f.hard, "{f:?}");
    assert!(f.was <= f.soft);
}
