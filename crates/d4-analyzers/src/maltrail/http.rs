//! The HTTP request at the start of a TCP segment, read as Maltrail's
//! sensor reads it: the request line `METHOD PATH HTTP/x` (two spaces) and
//! the `Host` header; the URL forms it looks up.

/// Bytes of a segment searched for the request line and headers.
const MAX_HEAD: usize = 8192;

/// What a request asks for, lower-cased.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// Host: the header's (`:80` dropped), or the absolute URL's, or the
    /// CONNECT target's; `None` without one.
    pub(crate) host: Option<String>,
    /// The path and query (`/` for CONNECT).
    pub(crate) path: String,
}

/// The request a segment starts with, if it starts with one.
pub(crate) fn request(data: &[u8]) -> Option<Request> {
    // Most segments are not a request's start: a method (letters, then a
    // space, in the first 16 bytes) before any search for the line's end.
    let sp = data.iter().take(16).position(|&b| b == b' ')?;
    if sp == 0 || !data[..sp].iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    let head = &data[..data.len().min(MAX_HEAD)];
    let eol = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..eol]).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !version.starts_with("HTTP/")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_alphabetic())
        || target.is_empty()
    {
        return None;
    }
    let target = target.to_ascii_lowercase();
    let mut host = header(&head[eol..], b"host").map(|h| {
        let h = h.trim().to_ascii_lowercase();
        h.strip_suffix(":80").map(str::to_string).unwrap_or(h)
    });
    let path = if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        // A proxy request: the URL names the host.
        let (h, p) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        host = Some(h.strip_suffix(":80").unwrap_or(h).to_string());
        if p.is_empty() {
            "/".to_string()
        } else {
            p.to_string()
        }
    } else if method.eq_ignore_ascii_case("CONNECT") {
        host = Some(target);
        "/".to_string()
    } else {
        target
    };
    Some(Request { host, path })
}

/// A header's value (the first with that name, any case), from the bytes
/// after the request line.
fn header<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a str> {
    let mut rest = head;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        rest = &rest[i + 2..];
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or(rest.len());
        let line = &rest[..end];
        if line.is_empty() {
            return None; // the end of the headers
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            if line[..colon].eq_ignore_ascii_case(name) {
                return std::str::from_utf8(&line[colon + 1..]).ok();
            }
        }
        rest = &rest[end..];
    }
    None
}

/// The forms of a path looked up as URL trails (alone, then after the
/// host), in Maltrail's order: the path, without its query, up to its
/// first `=`, without the extension, its folder, its last part; then
/// every folder above, deepest first (Maltrail stops one folder up).
/// Final `/` dropped; empty forms left out.
pub(crate) fn url_forms(path: &str) -> Vec<&str> {
    let mut v: Vec<&str> = Vec::with_capacity(8);
    let full = path.trim_end_matches('/');
    v.push(full);
    let no_query = match path.find('?') {
        Some(q) => {
            let nq = path[..q].trim_end_matches('/');
            v.push(nq);
            if let Some(e) = path.find('=') {
                v.push(&path[..=e]);
            }
            nq
        }
        None => full,
    };
    let last = v.last().copied().unwrap_or_default();
    // os.path.splitext: a dot in the last part, not leading it.
    let base = last.rfind('/').map_or(0, |i| i + 1);
    if let Some(dot) = last[base..].rfind('.') {
        if last[base..][..dot].bytes().any(|b| b != b'.') {
            v.push(&last[..base + dot]);
        }
    }
    let last = v.last().copied().unwrap_or_default();
    if last.matches('/').count() > 1 {
        if let Some(i) = last.rfind('/') {
            v.push(&last[..i]);
        }
        if let Some(i) = full.rfind('/') {
            let tail = &full[i..];
            v.push(tail.split('?').next().unwrap_or(tail));
        }
    }
    // Every folder above.
    let mut p = no_query;
    while let Some(i) = p.rfind('/') {
        p = &p[..i];
        if !p.is_empty() {
            v.push(p);
        }
    }
    let mut seen = Vec::with_capacity(v.len());
    v.retain(|f| {
        !f.is_empty() && !seen.contains(f) && {
            seen.push(*f);
            true
        }
    });
    v
}

/// Maltrail's URL trail text: the request's URL with the matched part as
/// it is and the parts around it in parentheses
/// (`evil.example/gate.php(?id=1)`, `(host)/gate.php`).
pub(crate) fn url_trail(url: &str, matched: &str, out: &mut String) {
    out.clear();
    for (i, part) in url.split(matched).enumerate() {
        if i > 0 {
            out.push_str(matched);
        }
        if !part.is_empty() {
            out.push('(');
            out.push_str(part);
            out.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Option<Request> {
        request(s.as_bytes())
    }

    #[test]
    fn request_line_and_host() {
        let r =
            req("GET /Gate.php?ID=1 HTTP/1.1\r\nUser-Agent: x\r\nhost: Evil.Example:80\r\n\r\n");
        assert_eq!(
            r,
            Some(Request {
                host: Some("evil.example".into()),
                path: "/gate.php?id=1".into()
            })
        );
        let r = req("GET /x HTTP/1.0\r\n\r\nHost: late.example\r\n");
        assert_eq!(
            r.map(|r| r.host),
            Some(None),
            "a header after the blank line is body"
        );
        let r = req("GET http://Proxy.Example:8080/a/b HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(
            r,
            Some(Request {
                host: Some("proxy.example:8080".into()),
                path: "/a/b".into()
            })
        );
        let r = req("CONNECT evil.example:443 HTTP/1.1\r\n\r\n");
        assert_eq!(r.map(|r| r.host), Some(Some("evil.example:443".into())));
        for no in [
            "GET /x HTTP/1.1",
            "GET  /x HTTP/1.1\r\n",
            "GET /x FTP/1.1\r\n",
            "\u{16}\u{3} /x HTTP/1.1\r\n",
            "HTTP/1.1 200 OK\r\n",
        ] {
            assert_eq!(req(no), None, "{no:?}");
        }
    }

    #[test]
    fn forms_in_maltrail_order_then_folders() {
        assert_eq!(
            url_forms("/a/b/c.php?x=1"),
            [
                "/a/b/c.php?x=1",
                "/a/b/c.php",
                "/a/b/c.php?x=",
                "/a/b/c",
                "/a/b",
                "/c.php",
                "/a"
            ]
        );
        assert_eq!(url_forms("/gate.php"), ["/gate.php", "/gate"]);
        assert_eq!(url_forms("/"), Vec::<&str>::new());
        assert_eq!(url_forms("/a/b/"), ["/a/b", "/a", "/b"]);
        assert_eq!(url_forms("/.hidden"), ["/.hidden"]);
    }

    #[test]
    fn trail_text() {
        let mut s = String::new();
        url_trail(
            "evil.example/gate.php?id=1",
            "evil.example/gate.php",
            &mut s,
        );
        assert_eq!(s, "evil.example/gate.php(?id=1)");
        url_trail("host.example/gate.php", "/gate.php", &mut s);
        assert_eq!(s, "(host.example)/gate.php");
        url_trail("e.example/x", "e.example/x", &mut s);
        assert_eq!(s, "e.example/x");
    }
}
