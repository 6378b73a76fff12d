//! What the analyzers' HTTP lookup servers (`d4 pdns serve`, `d4 tls
//! serve`) share, free of any HTTP framework: the per-client rate limiter,
//! the cursor encoding of paged answers (a store key, hex), the JSON-lines
//! body, the content negotiation between a JSON document and NDJSON, and
//! the page-size bounds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use serde::Serialize;

/// Content type of NDJSON answers.
pub const NDJSON: &str = "application/x-ndjson";

/// Per-client token buckets: `rate` requests per second, bursts of
/// `2 × rate`.
pub struct Limiter {
    /// Tokens added per second.
    rate: f64,
    /// Most tokens a bucket holds.
    burst: f64,
    /// Tokens left and when they were counted, per client address.
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl Limiter {
    /// `rate` requests per second, bursts of `2 × rate`.
    pub fn new(rate: f64) -> Limiter {
        Limiter {
            rate,
            burst: (rate * 2.0).max(1.0),
            buckets: HashMap::new(),
        }
    }

    /// Whether `who` may make a request now.
    pub fn allow(&mut self, who: IpAddr, now: Instant) -> bool {
        if self.buckets.len() > 100_000 {
            // Forget clients whose bucket has refilled (they lose nothing).
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, (t, at)| {
                *t + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = self.buckets.entry(who).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate)
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A shared limiter, or none (`rate` 0: no limit).
pub fn limiter(rate: f64) -> Option<std::sync::Mutex<Limiter>> {
    (rate > 0.0).then(|| std::sync::Mutex::new(Limiter::new(rate)))
}

/// Whether `who` may make a request now under `l` (always without one; a
/// poisoned lock lets requests through rather than refusing them all).
pub fn allowed(l: Option<&std::sync::Mutex<Limiter>>, who: IpAddr) -> bool {
    match l {
        None => true,
        Some(l) => l
            .lock()
            .map(|mut l| l.allow(who, Instant::now()))
            .unwrap_or(true),
    }
}

/// A cursor: the store key a page ended on, in hex.
pub fn cursor(key: &[u8]) -> String {
    key.iter().map(|x| format!("{x:02x}")).collect()
}

/// The key of a cursor, or `None` when it is not hex (or longer than
/// `max` bytes: no allocation beyond what a key may be).
pub fn parse_cursor(s: &str, max: usize) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() / 2 > max {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The page size asked for: `None` → `default`; refused (`Err`, the
/// message) outside `1..=max`.
pub fn page_limit(asked: Option<usize>, default: usize, max: usize) -> Result<usize, String> {
    match asked.unwrap_or(default) {
        n if n == 0 || n > max => Err(format!("limit must be 1..={max}")),
        n => Ok(n),
    }
}

/// One JSON document per line (items that do not serialise are left out).
pub fn ndjson<T: Serialize>(items: impl IntoIterator<Item = T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    for r in items {
        if serde_json::to_writer(&mut out, &r).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// Whether an `Accept` header asks for NDJSON rather than JSON (it names
/// `application/x-ndjson` or `application/jsonl` before any JSON type).
pub fn wants_ndjson(accept: Option<&str>) -> bool {
    let Some(a) = accept else { return false };
    for t in a.split(',') {
        let t = t.split(';').next().unwrap_or("").trim();
        if t.eq_ignore_ascii_case(NDJSON)
            || t.eq_ignore_ascii_case("application/jsonl")
            || t.eq_ignore_ascii_case("application/x-jsonlines")
        {
            return true;
        }
        if t.eq_ignore_ascii_case("application/json") {
            return false;
        }
    }
    false
}

/// A DNS name with its labels in reverse order (`www.example.com` →
/// `com.example.www`), as the lookup stores key names: a name and every
/// name under a suffix are then each one prefix scan.
pub fn reverse_name(n: &str) -> String {
    let mut out = String::with_capacity(n.len());
    reverse_name_into(n, &mut out);
    out
}

/// [`reverse_name`] appended to `out` (the root `.` adds nothing).
pub fn reverse_name_into(n: &str, out: &mut String) {
    if n == "." {
        return;
    }
    for (i, l) in n.rsplit('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(l);
    }
}

/// The body of an error answer: `{"error": msg}`.
pub fn error_body(msg: &str) -> String {
    serde_json::json!({ "error": msg }).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn token_bucket() {
        let mut l = Limiter::new(2.0);
        let t = Instant::now();
        let who: IpAddr = "192.0.2.1".parse().unwrap();
        let allowed = (0..10).filter(|_| l.allow(who, t)).count();
        assert_eq!(allowed, 4);
        assert!(l.allow(who, t + std::time::Duration::from_millis(600)));
        assert!(l.allow("192.0.2.2".parse().unwrap(), t));
    }

    #[test]
    fn cursors_limits_and_negotiation() {
        assert_eq!(
            parse_cursor(&cursor(&[0, 0xab, 7]), 8).unwrap(),
            [0, 0xab, 7]
        );
        assert!(parse_cursor("zz", 8).is_none());
        assert!(parse_cursor("abc", 8).is_none());
        assert!(parse_cursor("0011", 1).is_none());
        assert_eq!(page_limit(None, 100, 1000), Ok(100));
        assert!(page_limit(Some(0), 100, 1000).is_err());
        assert!(page_limit(Some(1001), 100, 1000).is_err());
        assert!(wants_ndjson(Some("application/x-ndjson")));
        assert!(wants_ndjson(Some("text/html;q=0.1, application/jsonl")));
        assert!(!wants_ndjson(Some(
            "application/json, application/x-ndjson"
        )));
        assert!(!wants_ndjson(None));
        assert_eq!(ndjson([1, 2]), b"1\n2\n");
        assert_eq!(reverse_name("www.example.com"), "com.example.www");
        assert_eq!(reverse_name(&reverse_name("a.b.c")), "a.b.c");
    }
}
