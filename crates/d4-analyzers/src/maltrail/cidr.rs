//! Network (CIDR) trails, `192.0.2.0/24` or `2001:db8::/32`: every address
//! inside the prefix is a trail.
//!
//! Maltrail expands such ranges into their addresses when it builds its
//! trails (its feeds and remote custom lists, IPv4 ranges of up to 1,024
//! addresses), so its event names the address that matched, type `IP`,
//! with the range's info and reference; a range left as it is in its
//! `trails.csv` matches nothing. Here a prefix of any length (but 0) and of
//! either family is kept as one entry and looked up, and the event is the
//! one the expansion would give.
//!
//! The table: one hash map per family keyed by (network, prefix length),
//! and the prefix lengths present, longest first; an address costs one
//! lookup per length present (feeds use a handful), and the longest prefix
//! that holds it wins (the most specific trail).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use foldhash::fast::RandomState;

/// A network: an address with its host bits cleared, and a prefix length
/// (1 to 32 for IPv4, 1 to 128 for IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Network {
    addr: IpAddr,
    len: u8,
}

impl Network {
    /// The network of `len` bits holding `addr` (host bits cleared, as
    /// Maltrail masks them); `None` when `len` is 0 or longer than the
    /// address.
    pub fn new(addr: IpAddr, len: u8) -> Option<Network> {
        if len == 0 || u32::from(len) > bits(addr) {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask4(len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask6(len))),
        };
        Some(Network { addr, len })
    }

    /// The first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `a` is inside.
    pub fn contains(&self, a: IpAddr) -> bool {
        Network::new(a, self.len) == Some(*self)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Network {
    type Err = String;

    /// `ADDRESS/LENGTH`; the reason when it is not one.
    fn from_str(s: &str) -> Result<Network, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| "not a network (ADDRESS/LENGTH)".to_string())?;
        let a: IpAddr = a
            .parse()
            .map_err(|_| "not a network: the address does not parse".to_string())?;
        let max = bits(a);
        let family = if a.is_ipv4() { "IPv4" } else { "IPv6" };
        if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "not a network: the prefix length is not a number of 1 to {max}"
            ));
        }
        let len: u32 = l.parse().unwrap_or(u32::MAX);
        if len == 0 {
            return Err("a network of prefix length 0 would match every address".into());
        }
        if len > max {
            return Err(format!(
                "not a network: prefix length {len} is over {max} ({family})"
            ));
        }
        Network::new(a, len as u8).ok_or_else(|| "not a network".to_string())
    }
}

fn bits(a: IpAddr) -> u32 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// Networks, each mapped to a trail's index.
#[derive(Debug, Default)]
pub(crate) struct Networks {
    v4: HashMap<(u32, u8), u32, RandomState>,
    v6: HashMap<(u128, u8), u32, RandomState>,
    /// The prefix lengths present, longest first.
    v4_lens: Vec<u8>,
    v6_lens: Vec<u8>,
}

impl Networks {
    /// Networks held.
    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Maps `n` to `m`; the index it had, if it was there.
    pub(crate) fn insert(&mut self, n: Network, m: u32) -> Option<u32> {
        let (old, lens) = match n.addr {
            IpAddr::V4(a) => (self.v4.insert((u32::from(a), n.len), m), &mut self.v4_lens),
            IpAddr::V6(a) => (self.v6.insert((u128::from(a), n.len), m), &mut self.v6_lens),
        };
        if let Err(at) = lens.binary_search_by(|l| n.len.cmp(l)) {
            lens.insert(at, n.len);
        }
        old
    }

    /// The index of the longest network holding `a`.
    pub(crate) fn get(&self, a: IpAddr) -> Option<u32> {
        match a {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4_lens
                    .iter()
                    .find_map(|&l| self.v4.get(&(a & mask4(l), l)).copied())
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6_lens
                    .iter()
                    .find_map(|&l| self.v6.get(&(a & mask6(l), l)).copied())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn n(s: &str) -> Network {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0; 4]))
    }

    #[test]
    fn parsed_masked_and_refused() {
        assert_eq!(n("192.0.2.77/24").to_string(), "192.0.2.0/24");
        assert_eq!(n("10.1.2.3/32").to_string(), "10.1.2.3/32");
        assert_eq!(n("128.0.0.0/1").to_string(), "128.0.0.0/1");
        assert_eq!(n("2001:db8:ffff::1/32").to_string(), "2001:db8::/32");
        assert_eq!(n("2001:db8::1/128").to_string(), "2001:db8::1/128");
        for (s, why) in [
            ("192.0.2.0/33", "prefix length 33 is over 32 (IPv4)"),
            ("2001:db8::/129", "prefix length 129 is over 128 (IPv6)"),
            ("192.0.2.0/0", "would match every address"),
            ("192.0.2.0/", "not a number of 1 to 32"),
            ("192.0.2.0/1000", "not a number"),
            ("192.0.2.0/-1", "not a number"),
            ("192.0.2/24", "does not parse"),
            ("192.0.2.0", "ADDRESS/LENGTH"),
        ] {
            let e = s.parse::<Network>().expect_err(s);
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn longest_prefix_first_and_edges() {
        let mut t = Networks::default();
        t.insert(n("10.0.0.0/8"), 1);
        t.insert(n("10.1.0.0/16"), 2);
        t.insert(n("192.0.2.0/24"), 3);
        t.insert(n("2001:db8::/32"), 4);
        assert_eq!(t.insert(n("192.0.2.9/24"), 5), Some(3), "the same network");
        assert_eq!(t.len(), 4);
        assert_eq!(t.get(a("10.1.200.3")), Some(2));
        assert_eq!(t.get(a("10.2.0.1")), Some(1));
        assert_eq!(t.get(a("192.0.2.0")), Some(5));
        assert_eq!(t.get(a("192.0.2.255")), Some(5));
        assert_eq!(t.get(a("192.0.3.0")), None, "just after");
        assert_eq!(t.get(a("192.0.1.255")), None, "just before");
        assert_eq!(t.get(a("2001:db8:ffff::9")), Some(4));
        assert_eq!(t.get(a("2001:db9::")), None);
        assert_eq!(t.get(a("::ffff:10.0.0.1")), None, "families apart");
    }

    proptest! {
        /// A network prints as it parses back; its first and last address
        /// are inside, the addresses on either side are not.
        #[test]
        fn display_parses_back_and_bounds_hold(v6: bool, raw: u128, len in 1u8..=128) {
            let (addr, len) = if v6 {
                (IpAddr::V6(Ipv6Addr::from(raw)), len)
            } else {
                (IpAddr::V4(Ipv4Addr::from(raw as u32)), len % 32 + 1)
            };
            let net = Network::new(addr, len).unwrap_or_else(|| panic!("{addr}/{len}"));
            prop_assert_eq!(net.to_string().parse::<Network>(), Ok(net));
            prop_assert!(net.contains(addr));
            let (first, last, before, after) = match net.addr() {
                IpAddr::V4(f) => {
                    let f = u32::from(f);
                    let last = f | !mask4(len);
                    let v4 = |a: u32| IpAddr::V4(Ipv4Addr::from(a));
                    (v4(f), v4(last), f.checked_sub(1).map(v4), last.checked_add(1).map(v4))
                }
                IpAddr::V6(f) => {
                    let f = u128::from(f);
                    let last = f | !mask6(len);
                    let v6 = |a: u128| IpAddr::V6(Ipv6Addr::from(a));
                    (v6(f), v6(last), f.checked_sub(1).map(v6), last.checked_add(1).map(v6))
                }
            };
            let mut t = Networks::default();
            t.insert(net, 7);
            prop_assert_eq!(t.get(first), Some(7));
            prop_assert_eq!(t.get(last), Some(7));
            for out in [before, after].into_iter().flatten() {
                prop_assert_eq!(t.get(out), None);
                prop_assert!(!net.contains(out));
            }
        }
    }
}
