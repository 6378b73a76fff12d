//! The pages an analyst reads (askama templates, one first-party script):
//! the live dashboard, the findings and the clients, with their links.

use super::*;

const SCRIPT: &str = include_str!("../../../templates/aggregate/dns.js");
const STYLE: &str = include_str!("../../../templates/aggregate/dns.css");

pub(super) fn enc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// `HH:MM:SS` UTC of a Unix time.
fn clock(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map_or_else(|| t.to_string(), |d| d.format("%H:%M:%S").to_string())
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.1}"))
}

/// The span switch of a page: (name, link, current).
fn spans(path: &str, current: Span, extra: &str) -> Vec<(&'static str, String, bool)> {
    Span::ALL
        .iter()
        .map(|s| {
            (
                s.as_str(),
                format!("{path}?span={}{extra}", s.as_str()),
                *s == current,
            )
        })
        .collect()
}

/// A row of the per-server table.
struct ServerRow {
    id: String,
    qps: String,
    aps: String,
    pps: String,
    windows: u64,
    queries: u64,
    malformed: u64,
    last_seen: String,
    top: String,
}

/// A row of a names table.
struct NameRow {
    name: String,
    count: u64,
    percent: String,
}

/// A row of the findings list.
struct GroupRow {
    href: String,
    qname: String,
    kind: &'static str,
    count: u64,
    monitors: String,
    senders: usize,
    qtypes: String,
    last: String,
}

/// A row of the clients list.
struct ClientLine {
    href: String,
    client: String,
    queries: u64,
    names: usize,
    qtypes: String,
    monitors: String,
}

fn group_rows(g: &[FindingGroup], span: Span) -> Vec<GroupRow> {
    g.iter()
        .map(|g| GroupRow {
            href: format!("/finding?name={}&span={}", enc(&g.qname), span.as_str()),
            qname: g.qname.clone(),
            kind: g.kind.as_str(),
            count: g.count,
            monitors: g.monitors.join(", "),
            senders: g.senders,
            qtypes: g.qtypes.join(" "),
            last: clock(g.last),
        })
        .collect()
}

fn client_lines(c: &[ClientRow], span: Span) -> Vec<ClientLine> {
    c.iter()
        .map(|c| ClientLine {
            href: format!("/client?ip={}&span={}", enc(&c.client), span.as_str()),
            client: c.client.clone(),
            queries: c.queries,
            names: c.names,
            qtypes: c
                .qtypes
                .iter()
                .map(|(t, n)| format!("{t} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            monitors: c.monitors.join(", "),
        })
        .collect()
}

fn name_rows(n: &[super::super::spans::NameShare]) -> Vec<NameRow> {
    n.iter()
        .map(|n| NameRow {
            name: n.name.clone(),
            count: n.count,
            percent: format!("{:.1}", n.percent),
        })
        .collect()
}

/// The live dashboard.
#[derive(Template)]
#[template(path = "aggregate/dashboard.html")]
struct DashboardPage {
    span: &'static str,
    spans: Vec<(&'static str, String, bool)>,
    span_secs: i64,
    qps: String,
    aps: String,
    pps: String,
    monitors: usize,
    queries: u64,
    malformed: u64,
    findings: u64,
    clients: u64,
    servers: Vec<ServerRow>,
    names: Vec<NameRow>,
    qtypes: Vec<(String, u64)>,
    rcodes: Vec<(String, u64)>,
    groups: Vec<GroupRow>,
    top_clients: Vec<ClientLine>,
    input: Counters,
    updated: String,
}

/// The findings list.
#[derive(Template)]
#[template(path = "aggregate/findings.html")]
struct FindingsPage {
    span: &'static str,
    spans: Vec<(&'static str, String, bool)>,
    kinds: Vec<(&'static str, String, bool)>,
    groups: Vec<GroupRow>,
}

/// One finding name's queries.
struct FindingLine {
    time: String,
    kind: &'static str,
    monitor: String,
    sender: String,
    server: String,
    qtype: String,
    qclass: String,
    id: String,
    client_href: String,
}

/// One finding name.
#[derive(Template)]
#[template(path = "aggregate/finding.html")]
struct FindingPage {
    span: &'static str,
    spans: Vec<(&'static str, String, bool)>,
    qname: String,
    rows: Vec<FindingLine>,
}

/// The clients list.
#[derive(Template)]
#[template(path = "aggregate/clients.html")]
struct ClientsPage {
    span: &'static str,
    spans: Vec<(&'static str, String, bool)>,
    rows: Vec<ClientLine>,
}

/// One client.
#[derive(Template)]
#[template(path = "aggregate/client.html")]
struct ClientPage {
    span: &'static str,
    spans: Vec<(&'static str, String, bool)>,
    ip: String,
    found: bool,
    queries: u64,
    monitors: String,
    /// (qtype, queries, names).
    by_qtype: Vec<(String, u64, Vec<NameRow>)>,
    findings_href: String,
}

fn html(t: impl Template) -> Response {
    match t.render() {
        Ok(h) => {
            let mut r = Html(h).into_response();
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            );
            r
        }
        Err(e) => {
            tracing::error!("template: {e}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "page error")
        }
    }
}

pub(super) async fn dashboard(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let span = Params::from(p)?.span()?;
            let ev = with_state(&app, move |a, t| live_event(a, span, t)).await?;
            let s = ev.summary;
            let mut qtypes: Vec<(String, u64)> = s.qtypes.into_iter().collect();
            qtypes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let mut rcodes: Vec<(String, u64)> = s.rcodes.into_iter().collect();
            rcodes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let f = &s.findings;
            Ok(html(DashboardPage {
                span: span.as_str(),
                spans: spans("/", span, ""),
                span_secs: span.secs(),
                qps: rate(s.total.qps),
                aps: rate(s.total.aps),
                pps: rate(s.total.pps),
                monitors: s.servers.len(),
                queries: s.total.queries,
                malformed: s.total.malformed,
                findings: f.underscored + f.alone_queries + f.alone_answers,
                clients: s.clients,
                servers: s
                    .servers
                    .iter()
                    .map(|v| ServerRow {
                        id: v.id.clone(),
                        qps: rate(v.totals.qps),
                        aps: rate(v.totals.aps),
                        pps: rate(v.totals.pps),
                        windows: v.totals.windows,
                        queries: v.totals.queries,
                        malformed: v.totals.malformed,
                        last_seen: clock(v.last_seen),
                        top: v.top_names.first().map_or_else(String::new, |n| {
                            format!("{} ({:.1} %)", n.name, n.percent)
                        }),
                    })
                    .collect(),
                names: name_rows(&s.top_names),
                qtypes,
                rcodes,
                groups: group_rows(&ev.finding_groups, span),
                top_clients: client_lines(&ev.top_clients, span),
                input: s.input,
                updated: clock(s.time),
            }))
        }
        .await,
    )
}

/// The kind filter of the findings page: (label, link, current).
fn kind_links(span: Span, current: &str) -> Vec<(&'static str, String, bool)> {
    [
        ("all", ""),
        ("underscored", "underscored"),
        ("alone queries", "alone-query"),
        ("alone answers", "alone-answer"),
    ]
    .iter()
    .map(|(label, k)| {
        (
            *label,
            format!("/findings?span={}&kind={k}", span.as_str()),
            *k == current,
        )
    })
    .collect()
}

pub(super) async fn findings_page(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let p = Params::from(p)?;
            let (span, kinds, k) = (p.span()?, p.kinds()?, p.limit(MAX_LIMIT)?);
            let kind = p.kind.clone().unwrap_or_default();
            let g = with_state(&app, move |a, t| a.findings(span, t, &kinds, k)).await?;
            Ok(html(FindingsPage {
                span: span.as_str(),
                spans: spans("/findings", span, &format!("&kind={}", enc(&kind))),
                kinds: kind_links(span, &kind),
                groups: group_rows(&g, span),
            }))
        }
        .await,
    )
}

pub(super) async fn finding_page(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let p = Params::from(p)?;
            let span = p.span()?;
            let name = required(p.name, "name")?;
            let n = name.clone();
            let f = with_state(&app, move |a, t| a.finding(span, t, &n, MAX_LIMIT)).await?;
            Ok(html(FindingPage {
                span: span.as_str(),
                spans: spans("/finding", span, &format!("&name={}", enc(&name))),
                rows: f
                    .iter()
                    .map(|f| FindingLine {
                        time: clock(f.time),
                        kind: f.kind.as_str(),
                        monitor: f.monitor.to_string(),
                        client_href: format!(
                            "/client?ip={}&span={}",
                            enc(&f.sender),
                            span.as_str()
                        ),
                        sender: f.sender.clone(),
                        server: f.server.clone(),
                        qtype: f.qtype.clone(),
                        qclass: f.qclass.clone(),
                        id: f.id.clone().unwrap_or_default(),
                    })
                    .collect(),
                qname: name,
            }))
        }
        .await,
    )
}

pub(super) async fn clients_page(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let p = Params::from(p)?;
            let (span, k) = (p.span()?, p.limit(MAX_LIMIT)?);
            let c = with_state(&app, move |a, t| a.clients(span, t, k)).await?;
            Ok(html(ClientsPage {
                span: span.as_str(),
                spans: spans("/clients", span, ""),
                rows: client_lines(&c, span),
            }))
        }
        .await,
    )
}

pub(super) async fn client_page(State(app): State<Arc<App>>, p: P) -> Response {
    answer(
        async {
            let p = Params::from(p)?;
            let span = p.span()?;
            let ip = required(p.ip, "ip")?;
            let i = ip.clone();
            let c = with_state(&app, move |a, t| a.client(span, t, &i, MAX_LIMIT)).await?;
            let (found, queries, monitors, by_qtype) = match c {
                Some(c) => (
                    true,
                    c.row.queries,
                    c.row.monitors.join(", "),
                    c.by_qtype
                        .iter()
                        .map(|q| (q.qtype.clone(), q.queries, name_rows(&q.names)))
                        .collect(),
                ),
                None => (false, 0, String::new(), Vec::new()),
            };
            Ok(html(ClientPage {
                span: span.as_str(),
                spans: spans("/client", span, &format!("&ip={}", enc(&ip))),
                findings_href: format!("/findings?span={}", span.as_str()),
                ip,
                found,
                queries,
                monitors,
                by_qtype,
            }))
        }
        .await,
    )
}

pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

pub(super) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}
