//! Address pseudonymisation: Crypto-PAn (prefix-preserving, IPv4 and IPv6)
//! and tcprewrite-style `--pnat` prefix rewriting.
//!
//! Crypto-PAn: Xu, Fan, Ammar, Moon, "Prefix-Preserving IP Address
//! Anonymization" (2002). The 32-byte key is an AES-128 key (bytes 0..16) and
//! a pad source (bytes 16..32, encrypted once). Bit `i` of the output is bit
//! `i` of the input XOR the first bit of AES(first `i` input bits ++ the pad's
//! remaining bits): two addresses sharing a `k`-bit prefix map to two
//! addresses sharing exactly a `k`-bit prefix. IPv4 addresses take the first
//! 32 bits of the 128-bit block, as the reference implementation does; IPv6
//! addresses all 128.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use aes::Aes128;

/// A Crypto-PAn instance for one key.
#[derive(Clone)]
pub struct CryptoPan {
    cipher: Aes128,
    /// AES(key[16..32]): supplies the bits after the prefix.
    pad: u128,
}

impl std::fmt::Debug for CryptoPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CryptoPan(<key>)")
    }
}

/// Why a key or a rule is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnonError {
    /// A Crypto-PAn key must be exactly 32 bytes.
    #[error("a Crypto-PAn key is 32 bytes, not {0}")]
    KeyLength(usize),
    /// A key file that cannot be read, or holds neither 32 raw bytes nor
    /// 64 hex digits.
    #[error("{path}: {why}")]
    KeyFile {
        /// The file.
        path: String,
        /// What was wrong.
        why: String,
    },
    /// A `--pnat` rule that does not parse.
    #[error("{0:?} is not a pnat rule (from/len:to/len, IPv6 as [v6/len]:[v6/len])")]
    Rule(String),
}

impl CryptoPan {
    /// Prepares the cipher and the pad from a 32-byte key.
    pub fn new(key: &[u8]) -> Result<CryptoPan, AnonError> {
        if key.len() != 32 {
            return Err(AnonError::KeyLength(key.len()));
        }
        let mut k = [0u8; 16];
        k.copy_from_slice(&key[..16]);
        let cipher = Aes128::new(&Array::from(k));
        let mut p = [0u8; 16];
        p.copy_from_slice(&key[16..]);
        let mut block = Array::from(p);
        cipher.encrypt_block(&mut block);
        let pad = u128::from_be_bytes(block.into());
        Ok(CryptoPan { cipher, pad })
    }

    /// The first bit of AES(`input`).
    fn first_bit(&self, input: u128) -> u128 {
        let mut block = Array::from(input.to_be_bytes());
        self.cipher.encrypt_block(&mut block);
        u128::from(block[0] >> 7)
    }

    /// Anonymises the top `bits` bits of `addr` (an address left-aligned in
    /// 128 bits); the rest of the block comes from the pad.
    fn anonymize_bits(&self, addr: u128, bits: u32) -> u128 {
        let mut otp = 0u128;
        for pos in 0..bits {
            // The first `pos` bits of the address, then the pad's bits.
            let keep = if pos == 0 {
                0
            } else {
                u128::MAX << (128 - pos)
            };
            let input = (addr & keep) | (self.pad & !keep);
            otp |= self.first_bit(input) << (127 - pos);
        }
        addr ^ otp
    }

    /// Anonymises an IPv4 address.
    pub fn ipv4(&self, a: Ipv4Addr) -> Ipv4Addr {
        let left = u128::from(u32::from(a)) << 96;
        Ipv4Addr::from((self.anonymize_bits(left, 32) >> 96) as u32)
    }

    /// Anonymises an IPv6 address.
    pub fn ipv6(&self, a: Ipv6Addr) -> Ipv6Addr {
        Ipv6Addr::from(self.anonymize_bits(u128::from(a), 128))
    }

    /// Anonymises either.
    pub fn ip(&self, a: IpAddr) -> IpAddr {
        match a {
            IpAddr::V4(v4) => IpAddr::V4(self.ipv4(v4)),
            IpAddr::V6(v6) => IpAddr::V6(self.ipv6(v6)),
        }
    }
}

/// Reads a Crypto-PAn key file (`--cryptopan-key`): 32 raw bytes, or 64
/// hex digits (surrounding white space allowed).
pub fn read_key(path: &std::path::Path) -> Result<Vec<u8>, AnonError> {
    let err = |why: String| AnonError::KeyFile {
        path: path.display().to_string(),
        why,
    };
    let raw = std::fs::read(path).map_err(|e| err(format!("cannot read the key: {e}")))?;
    if raw.len() == 32 {
        return Ok(raw);
    }
    let text = String::from_utf8_lossy(&raw);
    let hex = text.trim();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok((0..32)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect());
    }
    Err(err(format!(
        "a Crypto-PAn key is 32 raw bytes or 64 hex digits ({} bytes found)",
        raw.len()
    )))
}

/// Crypto-PAn with a memory of the addresses already seen (traffic repeats
/// them; each costs one AES block per address bit), within a bound: past
/// 2^20 addresses the memory starts afresh.
#[derive(Clone, Debug)]
pub struct CachedCryptoPan {
    c: CryptoPan,
    seen: std::collections::HashMap<IpAddr, IpAddr>,
}

impl CachedCryptoPan {
    /// Most addresses remembered.
    pub const MAX_CACHED: usize = 1 << 20;

    /// Over `c`.
    pub fn new(c: CryptoPan) -> CachedCryptoPan {
        CachedCryptoPan {
            c,
            seen: std::collections::HashMap::new(),
        }
    }

    /// Anonymises `a` (as [`CryptoPan::ip`]).
    pub fn ip(&mut self, a: IpAddr) -> IpAddr {
        if let Some(v) = self.seen.get(&a) {
            return *v;
        }
        if self.seen.len() >= Self::MAX_CACHED {
            self.seen.clear();
        }
        let v = self.c.ip(a);
        self.seen.insert(a, v);
        v
    }
}

/// One `--pnat` rule: addresses in `from` get the first `to_len` bits of `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PnatRule {
    from: IpAddr,
    from_len: u8,
    to: IpAddr,
    to_len: u8,
}

fn mask(bits: u32, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        (u128::MAX << (bits - u32::from(len))) & (u128::MAX >> (128 - bits))
    }
}

fn as_bits(a: IpAddr) -> (u128, u32) {
    match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

fn from_bits(v: u128, bits: u32) -> IpAddr {
    if bits == 32 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    let (a, l) = s.split_once('/')?;
    let a: IpAddr = a.trim_end_matches(']').parse().ok()?;
    let l: u8 = l.parse().ok()?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    (l <= max).then_some((a, l))
}

impl PnatRule {
    /// Parses `from/len:to/len` (IPv4) or `[from/len]:[to/len]` (IPv6).
    pub fn parse(s: &str) -> Result<PnatRule, AnonError> {
        let bad = || AnonError::Rule(s.to_string());
        let (from, to) = if s.trim_start().starts_with('[') {
            let i = s.find("]:").ok_or_else(bad)?;
            (&s[..=i], &s[i + 2..])
        } else {
            s.split_once(':').ok_or_else(bad)?
        };
        let (from, from_len) = parse_net(from).ok_or_else(bad)?;
        let (to, to_len) = parse_net(to).ok_or_else(bad)?;
        if from.is_ipv4() != to.is_ipv4() {
            return Err(bad());
        }
        Ok(PnatRule {
            from,
            from_len,
            to,
            to_len,
        })
    }

    /// Parses a comma-separated list of rules.
    pub fn parse_list(s: &str) -> Result<Vec<PnatRule>, AnonError> {
        s.split(',')
            .filter(|r| !r.trim().is_empty())
            .map(PnatRule::parse)
            .collect()
    }

    /// The rewritten address, if `a` is in this rule's `from` network.
    pub fn apply(&self, a: IpAddr) -> Option<IpAddr> {
        if a.is_ipv4() != self.from.is_ipv4() {
            return None;
        }
        let (v, bits) = as_bits(a);
        let (f, _) = as_bits(self.from);
        let (t, _) = as_bits(self.to);
        let fm = mask(bits, self.from_len);
        if v & fm != f & fm {
            return None;
        }
        let tm = mask(bits, self.to_len);
        Some(from_bits(
            (t & tm) | (v & !tm & (u128::MAX >> (128 - bits))),
            bits,
        ))
    }
}

/// Applies the first matching rule (addresses no rule matches are unchanged).
pub fn pnat(rules: &[PnatRule], a: IpAddr) -> IpAddr {
    rules.iter().find_map(|r| r.apply(a)).unwrap_or(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [
        21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131,
        121, 121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
    ];

    #[test]
    fn key_files_raw_or_hex() {
        let d = tempfile::tempdir().unwrap();
        let raw = d.path().join("raw");
        std::fs::write(&raw, KEY).unwrap();
        assert_eq!(read_key(&raw).unwrap(), KEY);
        let hex = d.path().join("hex");
        let text: String = KEY.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&hex, format!("{text}\n")).unwrap();
        assert_eq!(read_key(&hex).unwrap(), KEY);
        std::fs::write(&hex, "short").unwrap();
        let e = read_key(&hex).unwrap_err().to_string();
        assert!(e.contains("64 hex digits (5 bytes found)"), "{e}");
        assert!(read_key(&d.path().join("missing")).is_err());
        let mut c = CachedCryptoPan::new(CryptoPan::new(&KEY).unwrap());
        let a: IpAddr = "128.11.68.132".parse().unwrap();
        assert_eq!(c.ip(a), "135.242.180.132".parse::<IpAddr>().unwrap());
        assert_eq!(c.ip(a), "135.242.180.132".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn cryptopan_reference_check_values() {
        let c = CryptoPan::new(&KEY).unwrap();
        for (a, b) in [
            ("128.11.68.132", "135.242.180.132"),
            ("129.118.74.4", "134.136.186.123"),
            ("24.0.250.221", "100.15.198.226"),
            ("64.14.118.196", "0.255.183.58"),
        ] {
            assert_eq!(
                c.ipv4(a.parse().unwrap()),
                b.parse::<Ipv4Addr>().unwrap(),
                "{a}"
            );
        }
        assert_eq!(
            CryptoPan::new(&KEY[..31]).unwrap_err(),
            AnonError::KeyLength(31)
        );
    }

    /// IPv6 with the same key; the values agree with an independent
    /// implementation (yacryptopan 1.x, Python).
    #[test]
    fn cryptopan_ipv6_check_values() {
        let c = CryptoPan::new(&KEY).unwrap();
        for (a, b) in [
            ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
            ("2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"),
            ("fe80::1", "cf7f:c0e:1fc3:da1c:70:b18e:f7f3:2101"),
            ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
            (
                "2a00:1450:4007:80e::200e",
                "4a30:ebed:a039:f6f6:e07f:707f:1f03:df07",
            ),
        ] {
            assert_eq!(
                c.ipv6(a.parse().unwrap()),
                b.parse::<Ipv6Addr>().unwrap(),
                "{a}"
            );
        }
    }

    #[test]
    fn pnat_reference_semantics() {
        let r = PnatRule::parse_list("10.1.0.0/16:192.168.0.0/16").unwrap();
        assert_eq!(
            pnat(&r, "10.1.2.3".parse().unwrap()),
            "192.168.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            pnat(&r, "10.2.2.3".parse().unwrap()),
            "10.2.2.3".parse::<IpAddr>().unwrap()
        );
        let r = PnatRule::parse_list("172.16.0.0/12:10.1.0.0/24").unwrap();
        assert_eq!(
            pnat(&r, "172.16.5.9".parse().unwrap()),
            "10.1.0.9".parse::<IpAddr>().unwrap()
        );
        let r =
            PnatRule::parse_list("[2001:db8::/32]:[fd00:1::/48],10.0.0.0/8:192.0.2.0/24").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            pnat(&r, "2001:db8:aaaa:bbbb::1".parse().unwrap()),
            "fd00:1:0:bbbb::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            pnat(&r, "10.9.8.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert!(PnatRule::parse("10.0.0.0/33:1.0.0.0/8").is_err());
        assert!(PnatRule::parse("10.0.0.0/8:[::/8]").is_err());
        assert!(PnatRule::parse("nonsense").is_err());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn common_prefix(a: u128, b: u128, bits: u32) -> u32 {
        ((a ^ b).leading_zeros()).min(bits)
    }

    proptest! {
        #[test]
        fn cryptopan_preserves_exactly_the_common_prefix_v4(key in any::<[u8; 32]>(), a in any::<u32>(), b in any::<u32>()) {
            let c = CryptoPan::new(&key).unwrap();
            let (x, y) = (u32::from(c.ipv4(a.into())), u32::from(c.ipv4(b.into())));
            let k = common_prefix(u128::from(a) << 96, u128::from(b) << 96, 32);
            prop_assert_eq!(common_prefix(u128::from(x) << 96, u128::from(y) << 96, 32), k);
        }

        #[test]
        fn cryptopan_preserves_exactly_the_common_prefix_v6(key in any::<[u8; 32]>(), a in any::<u128>(), flip in 0u32..128) {
            let c = CryptoPan::new(&key).unwrap();
            let b = a ^ (1u128 << (127 - flip)); // shares exactly `flip` leading bits with a
            let (x, y) = (u128::from(c.ipv6(a.into())), u128::from(c.ipv6(b.into())));
            prop_assert_eq!(common_prefix(x, y, 128), flip);
        }
    }
}
