//! HTTP requests as Maltrail's sensor reads them: the request line
//! `METHOD PATH HTTP/x` (two spaces) and the `Host` header; where a
//! request's head ends in a reassembled stream ([`head`]); the URL forms
//! looked up.

/// Most bytes of a request head read (the request line and headers); a
/// longer head is read as far as this.
pub(crate) const MAX_HEAD: usize = 8192;

/// Where a request's head ends, in stream bytes that start at a segment's
/// start or after a previous head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Head {
    /// Not the start of a request.
    No,
    /// The start of a request whose head is not whole yet: wait for more.
    Partial,
    /// A head of this many bytes (up to the blank line, or [`MAX_HEAD`]).
    Complete(usize),
}

/// Whether bytes may start a request: a method (capital letters) then a
/// space in the first 16 bytes, or only capitals so far. Most segments are
/// not a request's start; this is all they cost.
pub(crate) fn may_start(b: &[u8]) -> bool {
    let first = &b[..b.len().min(16)];
    match first.iter().position(|&c| c == b' ') {
        Some(sp) => sp > 0 && first[..sp].iter().all(u8::is_ascii_uppercase),
        None => !first.is_empty() && first.len() < 16 && first.iter().all(u8::is_ascii_uppercase),
    }
}

/// Where the head of the request `b` starts with ends, if it starts with one.
pub(crate) fn head(b: &[u8]) -> Head {
    if b.is_empty() {
        return Head::Partial;
    }
    if !may_start(b) {
        return Head::No;
    }
    let window = &b[..b.len().min(MAX_HEAD)];
    if let Some(i) = find(window, b"\r\n\r\n") {
        return Head::Complete(i + 4);
    }
    if let Some(eol) = find(window, b"\r\n") {
        if request_line(&window[..eol]).is_none() {
            return Head::No;
        }
    }
    if b.len() >= MAX_HEAD {
        Head::Complete(MAX_HEAD)
    } else {
        Head::Partial
    }
}

fn find(b: &[u8], what: &[u8]) -> Option<usize> {
    b.windows(what.len()).position(|w| w == what)
}

/// A request line's method and target.
fn request_line(line: &[u8]) -> Option<(&str, &str)> {
    let line = std::str::from_utf8(line).ok()?;
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
    Some((method, target))
}

/// What a request asks for, lower-cased.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// Host: the header's (`:80` dropped), or the absolute URL's, or the
    /// CONNECT target's; `None` without one.
    pub(crate) host: Option<String>,
    /// The path and query (`/` for CONNECT).
    pub(crate) path: String,
}

/// The request a head (from [`head`]) holds, if it is one.
pub(crate) fn request(data: &[u8]) -> Option<Request> {
    if !may_start(data) {
        return None;
    }
    let head = &data[..data.len().min(MAX_HEAD)];
    let eol = find(head, b"\r\n")?;
    let (method, target) = request_line(&head[..eol])?;
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
    fn where_a_head_ends() {
        let h = |s: &[u8]| head(s);
        let get = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\nbody";
        assert_eq!(h(get), Head::Complete(get.len() - 4));
        for cut in 1..get.len() - 4 {
            assert_eq!(h(&get[..cut]), Head::Partial, "{cut}");
        }
        assert_eq!(h(b""), Head::Partial);
        assert_eq!(h(b"GE"), Head::Partial, "a method cut short");
        for no in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"\x16\x03\x01\x02\x00",
            b"get /x HTTP/1.1\r\n",
            b"HELLO world\r\n",
            b"GET /x FTP/1.0\r\nHost",
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        ] {
            assert_eq!(h(no), Head::No, "{no:?}");
        }
        // A head longer than MAX_HEAD is read as far as that.
        let mut long = b"GET /x HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert_eq!(h(&long), Head::Complete(MAX_HEAD));
        assert_eq!(h(&long[..MAX_HEAD - 1]), Head::Partial);
        assert!(may_start(b"POST /") && may_start(b"OPTIONS") && !may_start(b"Get /"));
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
