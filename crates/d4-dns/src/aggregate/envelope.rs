//! One reducer output as it arrives (a JSON line, a Redis message, a queue
//! item): the envelope `{"type": <ReducerName>, "serverId": <id>, "data":
//! <shape>}` checked and turned into a [`Window`], or the reason it is
//! refused ([`Reject`]). Nothing here panics on input: every size is
//! checked against a bound before it is kept.
//!
//! The shapes (the contract with `d4 dns reduce`):
//!
//! | type | data |
//! |------|------|
//! | `QueriesPerSecond`, `AnswersPerSecond`, `PacketsPerSecond` | `{"qps": f}`, `{"aps": f}`, `{"pps": f}` |
//! | `QueriesNameCounter` | `{qname: n}` |
//! | `TopNQ` | `[[qname, n], ...]` |
//! | `QueriesWithUnderscoredName` | `{qname: [{"sender", "server", "query": {qname, qtype, qclass}}]}` |
//! | `MalformedPackets` | `{"count": n, "senders": {ip: n}}` |
//! | `PacketSummary` | `{client: {qtype: [qname, ...]}}` |
//! | `AlonePackets` | `{"queries": [{"sender", "server", "id", "query": {...}}], "answers": [same]}` |
//! | `QtypeCounter`, `RcodeCounter` | `{"A": n}`, `{"NOERROR": n}` |
//!
//! A `qtype` or `qclass` inside a query object may be a number or a
//! mnemonic; numbers become mnemonics (`28` → `AAAA`).

use serde_json::{Map, Value};

/// The longest message accepted by default (bytes); `--max-message-bytes`.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// The longest `serverId` (bytes).
pub const MAX_SERVER_ID: usize = 128;
/// The longest name kept (a DNS name in presentation form is at most 253
/// characters; escapes make it longer).
pub const MAX_NAME: usize = 1024;
/// The longest other string kept (addresses, types, ids).
pub const MAX_FIELD: usize = 128;
/// Findings (query objects) kept from one message; the rest are counted.
pub const MAX_MESSAGE_FINDINGS: usize = 1000;

/// The reducers' names, in the order the dashboard lists them.
pub const TYPES: [&str; 12] = [
    "QueriesPerSecond",
    "AnswersPerSecond",
    "PacketsPerSecond",
    "QueriesNameCounter",
    "TopNQ",
    "QueriesWithUnderscoredName",
    "MalformedPackets",
    "PacketSummary",
    "AlonePackets",
    "QtypeCounter",
    "RcodeCounter",
    // Not a reducer: what the aggregator counts as such.
    "unknown",
];

/// Why a message was not taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Reject {
    /// Longer than the bound (its length).
    TooLarge(usize),
    /// Not JSON, or not an envelope of three keys.
    Malformed(String),
    /// A reducer this aggregator does not know (its name, cut).
    Unknown(String),
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reject::TooLarge(n) => write!(f, "message of {n} bytes, over the bound"),
            Reject::Malformed(m) => write!(f, "malformed: {m}"),
            Reject::Unknown(t) => write!(f, "unknown reducer type {t:?}"),
        }
    }
}

/// A query seen by a reducer that reports queries one by one
/// (underscored names, alone packets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Who sent the packet.
    pub sender: String,
    /// Who it went to.
    pub server: String,
    /// The DNS message id (alone packets), as the reducer wrote it.
    pub id: Option<String>,
    /// The question's name.
    pub qname: String,
    /// Its type mnemonic.
    pub qtype: String,
    /// Its class mnemonic.
    pub qclass: String,
}

/// Names with their counts.
pub type Counts = Vec<(String, u64)>;

/// What one reducer said about one window.
#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    /// Queries per second over the window.
    Qps(f64),
    /// Answers per second.
    Aps(f64),
    /// Packets per second.
    Pps(f64),
    /// Queries per name (`QueriesNameCounter`).
    Names(Counts),
    /// The window's top names (`TopNQ`).
    TopNames(Counts),
    /// Queries for names with an underscore (`QueriesWithUnderscoredName`);
    /// `dropped` counts those past [`MAX_MESSAGE_FINDINGS`].
    Underscored {
        /// The queries kept.
        queries: Vec<Query>,
        /// Those not kept.
        dropped: u64,
    },
    /// Malformed packets and who sent them.
    Malformed {
        /// Packets.
        count: u64,
        /// Per sender.
        senders: Counts,
    },
    /// Names asked per client and type (`PacketSummary`): (client, qtype, qname).
    Clients(Vec<(String, String, String)>),
    /// Queries without an answer and answers without a query.
    Alone {
        /// Queries never answered in the window.
        queries: Vec<Query>,
        /// Answers to no query seen.
        answers: Vec<Query>,
        /// Those past [`MAX_MESSAGE_FINDINGS`], not kept.
        dropped: u64,
    },
    /// Queries per type.
    Qtypes(Counts),
    /// Answers per rcode.
    Rcodes(Counts),
}

impl Window {
    /// The reducer name of this window.
    pub fn type_name(&self) -> &'static str {
        match self {
            Window::Qps(_) => "QueriesPerSecond",
            Window::Aps(_) => "AnswersPerSecond",
            Window::Pps(_) => "PacketsPerSecond",
            Window::Names(_) => "QueriesNameCounter",
            Window::TopNames(_) => "TopNQ",
            Window::Underscored { .. } => "QueriesWithUnderscoredName",
            Window::Malformed { .. } => "MalformedPackets",
            Window::Clients(_) => "PacketSummary",
            Window::Alone { .. } => "AlonePackets",
            Window::Qtypes(_) => "QtypeCounter",
            Window::Rcodes(_) => "RcodeCounter",
        }
    }
}

/// One reducer output of one monitor.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The monitor (`serverId`).
    pub server: String,
    /// What its reducer said.
    pub window: Window,
}

type R<T> = Result<T, Reject>;

fn bad<T>(m: impl Into<String>) -> R<T> {
    Err(Reject::Malformed(m.into()))
}

/// Parses one message of at most `max_bytes` (surrounding whitespace and a
/// trailing newline allowed).
pub fn parse(msg: &[u8], max_bytes: usize) -> R<Envelope> {
    if msg.len() > max_bytes {
        return Err(Reject::TooLarge(msg.len()));
    }
    let v: Value = match serde_json::from_slice(msg) {
        Ok(v) => v,
        Err(e) => return bad(format!("not JSON: {e}")),
    };
    let Value::Object(mut m) = v else {
        return bad("not a JSON object");
    };
    let ty = match m.remove("type") {
        Some(Value::String(s)) => s,
        _ => return bad("no \"type\" string"),
    };
    let server = match m.remove("serverId") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_SERVER_ID => s,
        Some(Value::String(_)) => {
            return bad(format!(
                "\"serverId\" empty or longer than {MAX_SERVER_ID} bytes"
            ))
        }
        Some(Value::Number(n)) => n.to_string(),
        _ => return bad("no \"serverId\""),
    };
    let Some(data) = m.remove("data") else {
        return bad("no \"data\"");
    };
    if let Some(k) = m.keys().next() {
        return bad(format!("unexpected key {:?}", cut(k, 32)));
    }
    let window = match ty.as_str() {
        "QueriesPerSecond" => Window::Qps(rate(data, "qps")?),
        "AnswersPerSecond" => Window::Aps(rate(data, "aps")?),
        "PacketsPerSecond" => Window::Pps(rate(data, "pps")?),
        "QueriesNameCounter" => Window::Names(counts(data, MAX_NAME)?),
        "TopNQ" => Window::TopNames(pairs(data)?),
        "QueriesWithUnderscoredName" => underscored(data)?,
        "MalformedPackets" => malformed(data)?,
        "PacketSummary" => Window::Clients(clients(data)?),
        "AlonePackets" => alone(data)?,
        "QtypeCounter" => Window::Qtypes(
            counts(data, MAX_FIELD)?
                .into_iter()
                .map(|(k, n)| (mnemonic_str(&k), n))
                .collect(),
        ),
        "RcodeCounter" => Window::Rcodes(
            counts(data, MAX_FIELD)?
                .into_iter()
                .map(|(k, n)| (k.to_ascii_uppercase(), n))
                .collect(),
        ),
        _ => return Err(Reject::Unknown(cut(&ty, 64).to_string())),
    };
    Ok(Envelope { server, window })
}

/// `s` cut to at most `n` bytes on a character boundary.
fn cut(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut i = n;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

fn object(v: Value, what: &str) -> R<Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        _ => bad(format!("{what}: not an object")),
    }
}

/// A rate: a finite number ≥ 0.
fn rate(data: Value, key: &str) -> R<f64> {
    let mut m = object(data, "data")?;
    match m.remove(key).as_ref().and_then(Value::as_f64) {
        Some(f) if f.is_finite() && f >= 0.0 => Ok(f),
        _ => bad(format!("data.{key}: not a number ≥ 0")),
    }
}

/// A count: an integer ≥ 0 (a float is rounded; JSON numbers are often
/// written as such).
fn count(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    (f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then(|| f.round() as u64)
}

fn key(s: &str, max: usize, what: &str) -> R<()> {
    if s.is_empty() || s.len() > max {
        return bad(format!("{what} empty or longer than {max} bytes"));
    }
    Ok(())
}

/// `{key: n}`.
fn counts(data: Value, max_key: usize) -> R<Counts> {
    let m = object(data, "data")?;
    let mut out = Vec::with_capacity(m.len());
    for (k, v) in m {
        key(&k, max_key, "a name")?;
        let Some(n) = count(&v) else {
            return bad(format!("the count of {:?}: not a number ≥ 0", cut(&k, 64)));
        };
        out.push((k, n));
    }
    Ok(out)
}

/// `[[name, n], ...]`.
fn pairs(data: Value) -> R<Counts> {
    let Value::Array(a) = data else {
        return bad("data: not an array of [name, count]");
    };
    let mut out = Vec::with_capacity(a.len());
    for p in a {
        let Value::Array(mut p) = p else {
            return bad("data: an item is not [name, count]");
        };
        if p.len() != 2 {
            return bad("data: an item is not [name, count]");
        }
        let n = count(&p[1]);
        let (Value::String(name), Some(n)) = (p.swap_remove(0), n) else {
            return bad("data: an item is not [name, count]");
        };
        key(&name, MAX_NAME, "a name")?;
        out.push((name, n));
    }
    Ok(out)
}

/// The mnemonic of a type given as a number or a string.
fn mnemonic(v: Option<&Value>, class: bool) -> R<String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if s.len() <= MAX_FIELD => Ok(if class {
            s.to_ascii_uppercase()
        } else {
            mnemonic_str(s)
        }),
        Some(Value::Number(n)) => match n.as_u64().and_then(|n| u16::try_from(n).ok()) {
            Some(n) if class => Ok(d4_pdns::record::class_name(n).into_owned()),
            Some(n) => Ok(d4_pdns::record::type_name(n).into_owned()),
            None => bad("a qtype or qclass number out of range"),
        },
        _ => bad("a qtype or qclass is neither a number nor a mnemonic"),
    }
}

/// A type mnemonic, upper case; a number written as a string (`"28"`) is
/// one too.
fn mnemonic_str(s: &str) -> String {
    match s.parse::<u16>() {
        Ok(n) => d4_pdns::record::type_name(n).into_owned(),
        Err(_) => s.to_ascii_uppercase(),
    }
}

/// A string field of at most [`MAX_FIELD`] bytes (absent: empty); numbers
/// are written as such (an id of `4660`).
fn field(m: &Map<String, Value>, k: &str) -> R<String> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if s.len() <= MAX_FIELD => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => bad(format!("{k}: not a string of at most {MAX_FIELD} bytes")),
    }
}

/// `{"sender", "server", "id"?, "query": {qname, qtype, qclass}}`; the
/// name given by the map key when the query object has none.
fn query(v: Value, name: Option<&str>) -> R<Query> {
    let m = object(v, "a query")?;
    let q = match m.get("query") {
        Some(Value::Object(q)) => q,
        _ => return bad("a query without a \"query\" object"),
    };
    let qname = match (q.get("qname"), name) {
        (Some(Value::String(s)), _) => s.clone(),
        (None, Some(n)) => n.to_string(),
        _ => return bad("a query without a qname"),
    };
    key(&qname, MAX_NAME, "a qname")?;
    Ok(Query {
        sender: field(&m, "sender")?,
        server: field(&m, "server")?,
        id: m.contains_key("id").then(|| field(&m, "id")).transpose()?,
        qtype: mnemonic(q.get("qtype"), false)?,
        qclass: mnemonic(q.get("qclass"), true)?,
        qname,
    })
}

fn underscored(data: Value) -> R<Window> {
    let m = object(data, "data")?;
    let (mut queries, mut dropped) = (Vec::new(), 0u64);
    for (name, list) in m {
        key(&name, MAX_NAME, "a qname")?;
        let Value::Array(list) = list else {
            return bad("data: a name's queries are not an array");
        };
        for q in list {
            if queries.len() >= MAX_MESSAGE_FINDINGS {
                dropped += 1;
                continue;
            }
            queries.push(query(q, Some(&name))?);
        }
    }
    Ok(Window::Underscored { queries, dropped })
}

fn malformed(data: Value) -> R<Window> {
    let mut m = object(data, "data")?;
    let Some(count) = m.remove("count").as_ref().and_then(count) else {
        return bad("data.count: not a number ≥ 0");
    };
    let senders = match m.remove("senders") {
        None | Some(Value::Null) => Vec::new(),
        Some(s) => counts(s, MAX_FIELD)?,
    };
    Ok(Window::Malformed { count, senders })
}

fn clients(data: Value) -> R<Vec<(String, String, String)>> {
    let m = object(data, "data")?;
    let mut out = Vec::new();
    for (client, types) in m {
        key(&client, MAX_FIELD, "a client")?;
        for (qtype, names) in object(types, "a client's types")? {
            key(&qtype, MAX_FIELD, "a qtype")?;
            let qtype = mnemonic_str(&qtype);
            let Value::Array(names) = names else {
                return bad("a client's names are not an array");
            };
            for n in names {
                let Value::String(n) = n else {
                    return bad("a client's name is not a string");
                };
                key(&n, MAX_NAME, "a qname")?;
                out.push((client.clone(), qtype.clone(), n));
            }
        }
    }
    Ok(out)
}

fn alone(data: Value) -> R<Window> {
    let mut m = object(data, "data")?;
    let mut dropped = 0u64;
    let mut kept = 0usize;
    let mut list = |k: &str| -> R<Vec<Query>> {
        let Some(v) = m.remove(k) else {
            return Ok(Vec::new());
        };
        let Value::Array(a) = v else {
            return bad(format!("data.{k}: not an array"));
        };
        let mut out = Vec::new();
        for q in a {
            if kept >= MAX_MESSAGE_FINDINGS {
                dropped += 1;
                continue;
            }
            kept += 1;
            out.push(query(q, None)?);
        }
        Ok(out)
    };
    let queries = list("queries")?;
    let answers = list("answers")?;
    Ok(Window::Alone {
        queries,
        answers,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> R<Envelope> {
        parse(s.as_bytes(), MAX_MESSAGE_BYTES)
    }

    #[test]
    fn every_shape_of_the_contract_parses() {
        let e = p(r#"{"type":"QueriesPerSecond","serverId":"ns1","data":{"qps":12.5}}"#).unwrap();
        assert_eq!((e.server.as_str(), e.window), ("ns1", Window::Qps(12.5)));
        let e =
            p(r#"{"serverId":"ns1","data":[["a.example",3],["b.example",1.0]],"type":"TopNQ"}"#)
                .unwrap();
        assert_eq!(
            e.window,
            Window::TopNames(vec![("a.example".into(), 3), ("b.example".into(), 1)])
        );
        let e = p(r#"{"type":"QueriesWithUnderscoredName","serverId":"ns1","data":{"_ldap._tcp.example":[{"sender":"10.0.0.1","server":"10.0.0.53","query":{"qname":"_ldap._tcp.example","qtype":33,"qclass":1}}]}}"#).unwrap();
        let Window::Underscored { queries, dropped } = e.window else {
            panic!()
        };
        assert_eq!(dropped, 0);
        assert_eq!(
            queries[0],
            Query {
                sender: "10.0.0.1".into(),
                server: "10.0.0.53".into(),
                id: None,
                qname: "_ldap._tcp.example".into(),
                qtype: "SRV".into(),
                qclass: "IN".into(),
            }
        );
        let e = p(r#"{"type":"AlonePackets","serverId":"ns1","data":{"queries":[{"sender":"10.0.0.1","server":"10.0.0.53","id":"0x1234","query":{"qname":"x.example","qtype":"aaaa","qclass":"IN"}}],"answers":[]}}"#).unwrap();
        let Window::Alone {
            queries, answers, ..
        } = e.window
        else {
            panic!()
        };
        assert_eq!(
            (queries[0].qtype.as_str(), queries[0].id.as_deref()),
            ("AAAA", Some("0x1234"))
        );
        assert!(answers.is_empty());
        let e = p(r#"{"type":"PacketSummary","serverId":"ns1","data":{"10.0.0.1":{"A":["a.example","a.example"],"28":["b.example"]}}}"#).unwrap();
        let Window::Clients(mut c) = e.window else {
            panic!()
        };
        c.sort();
        let t = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            c,
            [
                t("10.0.0.1", "A", "a.example"),
                t("10.0.0.1", "A", "a.example"),
                t("10.0.0.1", "AAAA", "b.example"),
            ]
        );
        let e = p(r#"{"type":"MalformedPackets","serverId":"ns1","data":{"count":2,"senders":{"10.0.0.9":2}}}"#).unwrap();
        assert_eq!(
            e.window,
            Window::Malformed {
                count: 2,
                senders: vec![("10.0.0.9".into(), 2)]
            }
        );
        let e = p(r#"{"type":"QtypeCounter","serverId":"ns1","data":{"a":2,"28":1}}"#).unwrap();
        let Window::Qtypes(mut q) = e.window else {
            panic!()
        };
        q.sort();
        assert_eq!(q, [("A".to_string(), 2), ("AAAA".to_string(), 1)]);
    }

    #[test]
    fn bad_messages_say_why() {
        assert_eq!(
            parse(b"{}", 1).unwrap_err(),
            Reject::TooLarge(2),
            "size checked first"
        );
        for bad in [
            "not json",
            "[1,2]",
            r#"{"type":"QueriesPerSecond","data":{"qps":1}}"#,
            r#"{"type":"QueriesPerSecond","serverId":"a","data":{"qps":-1}}"#,
            r#"{"type":"QueriesPerSecond","serverId":"a","data":{"qps":"1"}}"#,
            r#"{"type":"QueriesPerSecond","serverId":"a","data":{"qps":1},"extra":1}"#,
            r#"{"type":"TopNQ","serverId":"a","data":[["a"]]}"#,
            r#"{"type":"QueriesNameCounter","serverId":"a","data":{"a":-3}}"#,
            r#"{"type":"QueriesNameCounter","serverId":"","data":{}}"#,
        ] {
            assert!(
                matches!(p(bad), Err(Reject::Malformed(_))),
                "{bad}: {:?}",
                p(bad)
            );
        }
        assert_eq!(
            p(r#"{"type":"Nope","serverId":"a","data":1}"#).unwrap_err(),
            Reject::Unknown("Nope".into())
        );
        let long = format!(
            r#"{{"type":"QueriesNameCounter","serverId":"a","data":{{"{}":1}}}}"#,
            "a".repeat(MAX_NAME + 1)
        );
        assert!(matches!(p(&long), Err(Reject::Malformed(_))));
    }

    #[test]
    fn findings_past_the_message_bound_are_counted_not_kept() {
        let q =
            r#"{"sender":"s","server":"d","query":{"qname":"_x.example","qtype":1,"qclass":1}}"#;
        let list = vec![q; MAX_MESSAGE_FINDINGS + 5].join(",");
        let m = format!(
            r#"{{"type":"QueriesWithUnderscoredName","serverId":"a","data":{{"_x.example":[{list}]}}}}"#
        );
        let Window::Underscored { queries, dropped } = p(&m).unwrap().window else {
            panic!()
        };
        assert_eq!((queries.len(), dropped), (MAX_MESSAGE_FINDINGS, 5));
    }
}
