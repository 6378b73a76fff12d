//! Monitoring that fires: every `monitor_interval_secs` the server looks for
//! sensors silent past their monitoring delay, queues that are full, and
//! non-empty queues nobody popped for `queue_stale_secs`. Alerts are shown in
//! the UI, listed by `GET /api/v1/alerts` (and, for sensors, by the
//! reference's `GET /api/v1/sensors/monitoring/errors`), and POSTed to
//! `webhook_url` when they fire and when they resolve
//! (`{"source":"d4","state":"fired"|"resolved","alert":{...}}`; failures
//! counted in `/metrics`). Each round's deliveries run in a task of their
//! own (10 s per request, 30 s in all), so a slow receiver never delays the
//! checks; logs name only the URL's host.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::server::Shared;

/// One condition that needs an operator.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct Alert {
    /// `sensor_silent`, `queue_full` or `queue_stale`.
    pub(crate) kind: &'static str,
    /// Sensor UUID (32 hex) or queue UUID.
    pub(crate) subject: String,
    /// What is wrong, in words.
    pub(crate) message: String,
    /// Unix seconds when it was first seen.
    pub(crate) since: i64,
}

/// The alerts in force.
#[derive(Default)]
pub(crate) struct Monitor {
    alerts: Mutex<BTreeMap<(String, &'static str), Alert>>,
    /// Webhook deliveries that failed (metrics).
    pub(crate) webhook_failures: std::sync::atomic::AtomicU64,
    /// When this server first saw each queue that has no creation or pop
    /// time (a queue a reference tool made): its staleness counts from
    /// here, not from the epoch.
    first_seen: Mutex<BTreeMap<uuid::Uuid, i64>>,
}

impl Monitor {
    /// The alerts in force, oldest first.
    pub(crate) fn alerts(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self
            .alerts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|a| a.since);
        v
    }

    /// Replaces the alerts with `now`; returns (fired, resolved).
    fn update(&self, found: Vec<Alert>) -> (Vec<Alert>, Vec<Alert>) {
        let mut cur = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = BTreeMap::new();
        let mut fired = Vec::new();
        for mut a in found {
            let k = (a.subject.clone(), a.kind);
            match cur.remove(&k) {
                Some(old) => a.since = old.since,
                None => fired.push(a.clone()),
            }
            next.insert(k, a);
        }
        let resolved = std::mem::replace(&mut *cur, next).into_values().collect();
        (fired, resolved)
    }
}

/// What is wrong now.
pub(crate) fn check(s: &Shared, now: i64) -> Vec<Alert> {
    let mut out = Vec::new();
    let p = s.policy.snapshot();
    for (u, set) in &p.settings {
        let Some(delay) = set.monitor_delay_secs else {
            continue;
        };
        let last = s.sensors.get(*u).map(|m| m.last_seen).unwrap_or(0);
        if now - last > delay as i64 {
            let name = if set.name.is_empty() {
                String::new()
            } else {
                format!(" ({})", set.name)
            };
            out.push(Alert {
                kind: "sensor_silent",
                subject: u.simple().to_string(),
                message: if last == 0 {
                    format!("sensor {}{name} has never sent data", u.simple())
                } else {
                    format!(
                        "sensor {}{name} silent for {} s (monitoring delay {delay} s)",
                        u.simple(),
                        now - last
                    )
                },
                since: now,
            });
        }
    }
    let queues = s.queues.list();
    let mut first_seen = s
        .monitor
        .first_seen
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    first_seen.retain(|u, _| queues.iter().any(|q| q.uuid == *u));
    for q in queues {
        if q.len() >= q.max_size {
            out.push(Alert {
                kind: "queue_full",
                subject: q.uuid.to_string(),
                message: format!(
                    "queue {} (type {}) is full: {} items, {} dropped so far",
                    q.uuid, q.ty, q.max_size, q.dropped
                ),
                since: now,
            });
        }
        // A queue made by a reference tool has neither time: it counts from
        // when this server first saw it.
        let consumed = if q.last_popped == 0 && q.created == 0 {
            *first_seen.entry(q.uuid).or_insert(now)
        } else {
            q.last_popped.max(q.created)
        };
        if !q.is_empty() && now - consumed > s.cfg.queue_stale_secs as i64 {
            out.push(Alert {
                kind: "queue_stale",
                subject: q.uuid.to_string(),
                message: format!(
                    "queue {} (type {}) has {} items and no consumer for {} s",
                    q.uuid,
                    q.ty,
                    q.len(),
                    now - consumed
                ),
                since: now,
            });
        }
    }
    out
}

/// Time one round of webhook deliveries may take, all requests included.
const WEBHOOK_BUDGET: Duration = Duration::from_secs(30);

/// The host of a URL, for logs (its path and query may hold a secret).
fn url_host(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "(invalid URL)".into())
}

/// POSTs one round's events in order, within [`WEBHOOK_BUDGET`]; counts and
/// logs (by host only) the ones not delivered.
async fn deliver(
    s: Arc<Shared>,
    http: reqwest::Client,
    url: String,
    events: Vec<serde_json::Value>,
) {
    let host = url_host(&url);
    let fail = |why: String| {
        s.monitor
            .webhook_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!("webhook to {host}: cannot deliver an alert: {why}");
    };
    let total = events.len();
    let mut done = 0;
    let send_all = async {
        for body in &events {
            let r = http.post(&url).json(body).send().await;
            done += 1;
            match r {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => fail(format!("HTTP {}", r.status())),
                Err(e) => fail(e.without_url().to_string()),
            }
        }
    };
    if tokio::time::timeout(WEBHOOK_BUDGET, send_all)
        .await
        .is_err()
    {
        for _ in done..total {
            fail(format!("not sent within {} s", WEBHOOK_BUDGET.as_secs()));
        }
    }
}

/// Runs the checks until shutdown. Webhook deliveries run in tasks of
/// their own: a slow receiver never delays the checks.
pub(crate) async fn run(s: Arc<Shared>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok();
    let mut sd = s.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(s.cfg.monitor_interval_secs)) => {}
            _ = sd.changed() => return,
        }
        let (fired, resolved) = s.monitor.update(check(&s, chrono::Utc::now().timestamp()));
        for a in &fired {
            tracing::warn!("alert: {}", a.message);
        }
        for a in &resolved {
            tracing::info!("alert resolved: {}", a.message);
        }
        let (Some(url), Some(http)) = (&s.cfg.webhook_url, &http) else {
            continue;
        };
        let events: Vec<serde_json::Value> = fired
            .iter()
            .map(|a| ("fired", a))
            .chain(resolved.iter().map(|a| ("resolved", a)))
            .map(|(state, a)| {
                serde_json::json!({
                    "source": "d4",
                    "state": state,
                    "alert": a,
                })
            })
            .collect();
        if !events.is_empty() {
            tokio::spawn(deliver(s.clone(), http.clone(), url.clone(), events));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(subject: &str, since: i64) -> Alert {
        Alert {
            kind: "queue_full",
            subject: subject.into(),
            message: String::new(),
            since,
        }
    }

    #[test]
    fn only_the_host_of_a_webhook_url_is_logged() {
        assert_eq!(
            url_host("https://user:pw@hooks.example.org/T0/secret?token=x"),
            "hooks.example.org"
        );
        assert_eq!(url_host("http://127.0.0.1:9/hook"), "127.0.0.1");
    }

    #[test]
    fn fires_once_and_resolves() {
        let m = Monitor::default();
        let (f, r) = m.update(vec![alert("a", 1)]);
        assert_eq!((f.len(), r.len()), (1, 0));
        let (f, r) = m.update(vec![alert("a", 2), alert("b", 2)]);
        assert_eq!((f.len(), r.len()), (1, 0));
        assert_eq!(m.alerts()[0].since, 1, "an alert keeps its start");
        let (f, r) = m.update(vec![alert("b", 3)]);
        assert_eq!((f.len(), r.len()), (0, 1));
        assert_eq!(r[0].subject, "a");
    }
}
