//! The monitoring examples of docs/monitoring/ (Grafana dashboard, Prometheus
//! alert rules) use only metrics a running server exposes, scraped the way
//! docs/monitoring/prometheus.yml does (`Authorization: Bearer <API key>`).

use std::collections::BTreeSet;

use crate::harness::*;

/// The `d4_*` metric names in a document's PromQL expressions.
fn metric_names(doc: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = doc.as_bytes();
    let mut i = 0;
    while let Some(at) = doc[i..].find("d4_") {
        let start = i + at;
        let mut end = start + 3;
        while end < b.len() && (b[end].is_ascii_lowercase() || b[end] == b'_') {
            end += 1;
        }
        // Only whole identifiers (not `grafana-d4.json` or `d4_ca.crt` paths).
        let whole = start == 0
            || !(b[start - 1].is_ascii_alphanumeric()
                || b[start - 1] == b'_'
                || b[start - 1] == b'-'
                || b[start - 1] == b'/');
        if whole && end > start + 3 {
            out.insert(doc[start..end].to_string());
        }
        i = end;
    }
    out
}

/// `# TYPE` names of a scrape made with a Bearer API key.
fn scraped(server: &Server) -> BTreeSet<String> {
    let (_, key) = server.admin_credentials();
    let text = server
        .http
        .get(format!("{}/metrics", server.api))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn grafana_dashboard_and_alert_rules_use_metrics_the_server_exposes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/monitoring");
    let dashboard = std::fs::read_to_string(root.join("grafana-d4.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let exprs: Vec<String> = v["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 15, "{} queries", exprs.len());
    let mut used = metric_names(&exprs.join("\n"));
    used.extend(metric_names(
        &std::fs::read_to_string(root.join("d4-alerts.yml")).unwrap(),
    ));
    assert!(used.contains("d4_queue_dropped_total"), "{used:?}");

    let server = Server::start(&[]);
    let have = scraped(&server);
    let (redis_only, plain): (Vec<_>, Vec<_>) =
        used.iter().partition(|m| m.starts_with("d4_redis_"));
    for m in &plain {
        assert!(
            have.contains(*m),
            "{m} is used by docs/monitoring but not in /metrics"
        );
    }
    // The Redis backend's own metrics exist when it is in use.
    let Some(redis) = RedisServer::start() else {
        eprintln!("SKIPPED: the d4_redis_* metrics of docs/monitoring (no redis-server here)");
        return;
    };
    let server = Server::start(&["--store", &redis.url(0)]);
    let have = scraped(&server);
    for m in &redis_only {
        assert!(
            have.contains(*m),
            "{m} is used by docs/monitoring but not in /metrics (Redis mode)"
        );
    }
}

/// The package's files (crates/d4/Cargo.toml, [package.metadata.deb]) exist,
/// and the systemd units call `d4` with flags it has.
#[test]
fn package_files_exist_and_units_use_real_flags() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::fs::read_to_string(manifest.join("Cargo.toml")).unwrap();
    let mut sources = 0;
    for line in cargo.lines().map(str::trim) {
        let Some(src) = line.strip_prefix("[\"../../") else {
            continue;
        };
        let src = &src[..src.find('"').unwrap()];
        let path = manifest.join("../..").join(src);
        let found = match src.rsplit_once('/') {
            Some((dir, pat)) if pat.contains('*') => {
                let ext = pat.trim_start_matches('*');
                std::fs::read_dir(path.parent().unwrap())
                    .unwrap_or_else(|e| panic!("{dir}: {e}"))
                    .filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().ends_with(ext))
            }
            _ => path.is_file(),
        };
        assert!(found, "package asset {src} is missing");
        sources += 1;
    }
    assert!(sources >= 7, "{sources} assets");
    let units = manifest.join("../../dist/systemd");
    for unit in std::fs::read_dir(&units).unwrap().filter_map(Result::ok) {
        let text = std::fs::read_to_string(unit.path()).unwrap();
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{:?}: no ExecStart", unit.file_name()));
        let call = &exec[exec.find("/usr/bin/d4 ").unwrap() + "/usr/bin/d4 ".len()..];
        let words: Vec<&str> = call.split_whitespace().collect();
        let sub: Vec<&str> = words
            .iter()
            .take_while(|w| !w.starts_with('-'))
            .copied()
            .collect();
        let help = std::process::Command::new(D4)
            .args(&sub)
            .arg("--help")
            .output()
            .unwrap();
        assert!(help.status.success(), "d4 {sub:?} --help");
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "{:?}: d4 {} has no {flag}",
                unit.file_name(),
                sub.join(" ")
            );
        }
    }
}
