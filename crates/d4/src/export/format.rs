//! What one item becomes on the wire: a Maltrail event datagram, an RFC 5424
//! syslog message, or the item itself.

use chrono::{Local, NaiveDateTime, SecondsFormat, TimeZone, Utc};

/// Maltrail's `TIME_FORMAT`, the quoted first field of an event line.
use d4_analyzers::maltrail::TIME_FORMAT as MALTRAIL_TIME;

/// The datagram a Maltrail sensor sends its server (`LOG_SERVER`) for an
/// event line: `<epoch-seconds> <line>\n`.
///
/// Maltrail's server takes a datagram that starts with a digit as
/// `<sec> <event>` (split at the first space) and files the event under the
/// day of `sec`; anything else must start with the quoted local time
/// `"YYYY-MM-DD HH:MM:SS.uuuuuu"`, which it parses to find that day. Its
/// sensor sends the first form, so we do: a line that already carries the
/// seconds (a sensor's datagram captured as is) goes out unchanged; a log
/// line gets the seconds of its own timestamp, read as local time as
/// Maltrail does (`time.mktime`). `None`: neither form, a line Maltrail's
/// server would drop.
pub(crate) fn maltrail(line: &[u8]) -> Option<Vec<u8>> {
    let line = trim_newline(line);
    let sec = match line.first()? {
        b'0'..=b'9' => {
            // `<sec> <event>`: Maltrail's int(sec) must succeed.
            let sp = line.iter().position(|&b| b == b' ')?;
            let digits = &line[..sp];
            if sp + 1 >= line.len() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            None
        }
        b'"' => Some(maltrail_line_seconds(line)?),
        _ => return None,
    };
    let mut out = Vec::with_capacity(line.len() + 12);
    if let Some(sec) = sec {
        out.extend_from_slice(format!("{sec} ").as_bytes());
    }
    out.extend_from_slice(line);
    out.push(b'\n');
    Some(out)
}

/// The epoch seconds of a Maltrail log line's leading `"YYYY-MM-DD HH:MM:SS.uuuuuu"`
/// (local time; Maltrail reads up to the first `.`).
pub(crate) fn maltrail_line_seconds(line: &[u8]) -> Option<i64> {
    let rest = line.strip_prefix(b"\"")?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let text = std::str::from_utf8(&rest[..dot]).ok()?;
    let t = NaiveDateTime::parse_from_str(text, MALTRAIL_TIME).ok()?;
    // An hour that happens twice (end of summer time): the first, as mktime.
    Local
        .from_local_datetime(&t)
        .earliest()
        .map(|t| t.timestamp())
}

fn trim_newline(mut b: &[u8]) -> &[u8] {
    while let Some((&(b'\n' | b'\r'), rest)) = b.split_last() {
        b = rest;
    }
    b
}

/// RFC 5424 header fields that stay the same for every message.
pub(crate) struct Syslog {
    /// `<PRI>1 `: facility × 8 + severity.
    pri: u8,
    /// HOSTNAME, APP-NAME, PROCID, MSGID, each a PRINTUSASCII token.
    host: String,
    app: String,
    procid: String,
    msgid: String,
}

impl Syslog {
    pub(crate) fn new(facility: u8, severity: u8, host: &str, app: &str, msgid: &str) -> Syslog {
        Syslog {
            pri: facility * 8 + severity,
            host: token(host, 255),
            app: token(app, 48),
            procid: std::process::id().to_string(),
            msgid: token(msgid, 32),
        }
    }

    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG` (RFC 5424
    /// §6; no structured data; MSG the item's bytes, MSG-ANY).
    pub(crate) fn message(&self, item: &[u8]) -> Vec<u8> {
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        let mut m = format!(
            "<{}>1 {ts} {} {} {} {} - ",
            self.pri, self.host, self.app, self.procid, self.msgid
        )
        .into_bytes();
        m.extend_from_slice(item);
        m
    }
}

/// A header field: printable ASCII without spaces (RFC 5424 PRINTUSASCII),
/// at most `max` characters; `-` (the nil value) when nothing is left.
fn token(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}

/// A syslog facility by number (0-23) or name.
pub(crate) fn facility(s: &str) -> Result<u8, String> {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    if let Ok(n) = s.parse::<u8>() {
        if n < 24 {
            return Ok(n);
        }
    }
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(s))
        .map(|n| n as u8)
        .ok_or_else(|| {
            format!("{s:?}: a facility is 0-23 or a name (user, daemon, local0..local7, ...)")
        })
}

/// A severity from the reference exporter's log levels (DEBUG, INFO,
/// WARNING, ERROR, CRITICAL), a syslog name, or 0-7.
pub(crate) fn severity(s: &str) -> Result<u8, String> {
    if let Ok(n) = s.parse::<u8>() {
        if n < 8 {
            return Ok(n);
        }
    }
    match s.to_ascii_lowercase().as_str() {
        "emerg" | "emergency" => Ok(0),
        "alert" => Ok(1),
        "crit" | "critical" => Ok(2),
        "err" | "error" => Ok(3),
        "warning" | "warn" => Ok(4),
        "notice" => Ok(5),
        "info" => Ok(6),
        "debug" => Ok(7),
        _ => Err(format!(
            "{s:?}: a severity is DEBUG, INFO, WARNING, ERROR, CRITICAL (or a syslog name, or 0-7)"
        )),
    }
}

/// This machine's name (`-` when it cannot be read).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn maltrail_lines_get_the_seconds_of_their_timestamp() {
        let line = b"\"2026-11-21 10:00:05.123456\" s1 192.0.2.1 1234 198.51.100.1 80 TCP IP evil.example \"malware\" (static)\n";
        let d = maltrail(line).unwrap();
        let sec = maltrail_line_seconds(line).unwrap();
        let want = Local
            .with_ymd_and_hms(2026, 11, 21, 10, 0, 5)
            .earliest()
            .unwrap()
            .timestamp();
        assert_eq!(sec, want);
        let mut expect = format!("{sec} ").into_bytes();
        expect.extend_from_slice(line);
        assert_eq!(d, expect);
        // Already prefixed (a sensor's datagram): unchanged, one newline.
        let pre = b"1700000000 \"2026-11-21 10:00:05.1\" s1 x\r\n";
        assert_eq!(
            maltrail(pre).unwrap(),
            b"1700000000 \"2026-11-21 10:00:05.1\" s1 x\n"
        );
        for bad in [
            &b"not an event"[..],
            b"",
            b"12x4 a",
            b"1234",
            b"1234 ",
            b"\"2026-13-01 10:00:00.1\" s",
            b"\"2026-11-21 10:00:00\" s",
        ] {
            assert!(
                maltrail(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn syslog_messages_are_rfc5424() {
        let s = Syslog::new(1, 6, "my host", "d4", "maltrail");
        let m = String::from_utf8(s.message(b"hello world")).unwrap();
        let f: Vec<&str> = m.splitn(7, ' ').collect();
        assert_eq!(f[0], "<14>1");
        assert!(chrono::DateTime::parse_from_rfc3339(f[1]).is_ok(), "{m}");
        assert_eq!(&f[2..4], ["myhost", "d4"]);
        assert_eq!(f[5], "maltrail");
        assert_eq!(f[6], "- hello world");
        assert_eq!(facility("local0"), Ok(16));
        assert_eq!(severity("WARNING"), Ok(4));
        assert!(facility("24").is_err() && severity("loud").is_err());
    }
}
