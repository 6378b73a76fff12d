//! Cookies: `d4_session` (`Secure; HttpOnly; SameSite=Strict`), `d4_login`
//! (the login form's CSRF binding) and `d4_flash` (the message an action
//! redirects with, 60 s).

use axum::http::{header, HeaderMap};

pub(crate) const SESSION_COOKIE: &str = "d4_session";

pub(crate) const LOGIN_COOKIE: &str = "d4_login";

pub(crate) const FLASH_COOKIE: &str = "d4_flash";

pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) -> (header::HeaderName, String) {
    (
        header::SET_COOKIE,
        format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict"
        ),
    )
}

/// Percent-encodes a query value.
pub(crate) fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Decodes `%XX` escapes.
pub(crate) fn dec(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |x: u8| (x as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The message of the flash cookie: (message, error).
pub(crate) fn read_flash(headers: &HeaderMap) -> (String, String) {
    let Some(v) = cookie(headers, FLASH_COOKIE) else {
        return Default::default();
    };
    let text = |m: &str| dec(m).chars().take(500).collect::<String>();
    match v.split_once('.') {
        Some(("ok", m)) => (text(m), String::new()),
        Some(("err", m)) => (String::new(), text(m)),
        _ => Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn flash_round_trip_and_cookie_parsing() {
        let m = "Queue 1 created; 50% \"done\" é";
        assert_eq!(dec(&enc(m)), m);
        assert_eq!(dec("%zz%4"), "%zz%4");
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {FLASH_COOKIE}=err.{}", enc(m))).unwrap(),
        );
        assert_eq!(read_flash(&h), (String::new(), m.to_string()));
        assert_eq!(cookie(&h, "a").as_deref(), Some("b"));
        assert_eq!(cookie(&h, "nope"), None);
    }
}
