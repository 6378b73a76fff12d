//! The TOML configuration of `d4 dns reduce --config FILE`: the windows,
//! named outputs, and which reducer goes to which outputs.
//!
//! ```toml
//! server_id = "ns1"            # default: the host name
//! window_messages = 10000      # a window ends after W messages,
//! window_secs = 5.0            # and/or at each T seconds of packet time
//! top = 10                     # TopNQ's N
//! max_entries = 1000000        # distinct names / entries per window
//!
//! [outputs.screen]
//! kind = "stdout"
//! [outputs.archive]
//! kind = "file"
//! path = "reducers.ndjson"     # appended to; relative to this file
//! [outputs.live]
//! kind = "redis"
//! url = "redis://127.0.0.1:6379"
//! channel = "d4:dns"           # the default
//! [outputs.server]
//! kind = "d4"
//! sensor = "dns-sensor"        # a sensor configuration (directory or TOML)
//!
//! [reducers]
//! QueriesPerSecond = ["screen", "live"]
//! TopNQ = ["live", "archive"]
//! ```
//!
//! Unknown keys, reducers and output names are errors, said with the
//! file's name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::output::{Target, DEFAULT_CHANNEL};
use super::reducers::Kind;

/// The file's content.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The `serverId` of every line.
    pub server_id: Option<String>,
    /// Messages per window.
    pub window_messages: Option<u64>,
    /// Seconds of packet time per window.
    pub window_secs: Option<f64>,
    /// TopNQ's N.
    pub top: Option<usize>,
    /// Distinct names and listed entries per reducer in a window.
    pub max_entries: Option<usize>,
    /// Named outputs.
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputConf>,
    /// Reducer name → output names.
    #[serde(default)]
    pub reducers: BTreeMap<String, Vec<String>>,
}

/// One output.
#[derive(Debug, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OutputConf {
    /// Standard output.
    Stdout {},
    /// A file, appended to.
    File {
        /// Its path (relative to the configuration file).
        path: PathBuf,
    },
    /// A Redis pub/sub channel.
    Redis {
        /// `redis://HOST:PORT[/DB]`.
        url: String,
        /// The channel.
        #[serde(default = "default_channel")]
        channel: String,
    },
    /// A D4 server.
    D4 {
        /// A sensor configuration: directory or TOML file (relative to the
        /// configuration file).
        sensor: PathBuf,
    },
}

fn default_channel() -> String {
    DEFAULT_CHANNEL.into()
}

/// Outputs and routes, resolved.
#[derive(Debug, PartialEq)]
pub struct Plan {
    /// The outputs.
    pub targets: Vec<Target>,
    /// Each reducer and the indices of its outputs.
    pub routes: Vec<(Kind, Vec<usize>)>,
}

impl Config {
    /// Reads `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// Parses the TOML text.
    pub fn parse(text: &str) -> Result<Config> {
        Ok(toml::from_str(text)?)
    }

    /// The outputs and routes; relative paths are taken from `base`.
    pub fn plan(&self, base: &Path) -> Result<Plan> {
        if self.reducers.is_empty() {
            bail!("[reducers] lists no reducer (e.g. QueriesPerSecond = [\"screen\"])");
        }
        let names: Vec<&String> = self.outputs.keys().collect();
        let targets = self
            .outputs
            .values()
            .map(|o| match o {
                OutputConf::Stdout {} => Target::Stdout,
                OutputConf::File { path } => Target::File(base.join(path)),
                OutputConf::Redis { url, channel } => Target::Redis {
                    url: url.clone(),
                    channel: channel.clone(),
                },
                OutputConf::D4 { sensor } => Target::D4(base.join(sensor)),
            })
            .collect();
        let mut routes = Vec::new();
        for (r, outs) in &self.reducers {
            let Some(k) = Kind::parse(r) else {
                bail!(
                    "[reducers]: {r:?} is not a reducer ({})",
                    Kind::ALL.map(Kind::name).join(", ")
                );
            };
            let mut to = Vec::new();
            for o in outs {
                match names.iter().position(|n| *n == o) {
                    Some(i) => to.push(i),
                    None => bail!("[reducers] {r}: no output named {o:?} in [outputs]"),
                }
            }
            routes.push((k, to));
        }
        routes.sort_by_key(|(k, _)| *k);
        Ok(Plan { targets, routes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_outputs_and_routes() {
        let c = Config::parse(
            r#"
server_id = "ns1"
window_secs = 2.5
[outputs.screen]
kind = "stdout"
[outputs.live]
kind = "redis"
url = "redis://127.0.0.1:6379"
[outputs.log]
kind = "file"
path = "r.ndjson"
[reducers]
TopNQ = ["live", "log"]
QueriesPerSecond = ["screen"]
"#,
        )
        .unwrap();
        assert_eq!(c.server_id.as_deref(), Some("ns1"));
        let p = c.plan(Path::new("/etc/d4")).unwrap();
        // Outputs by name: live, log, screen.
        assert_eq!(
            p.targets,
            [
                Target::Redis {
                    url: "redis://127.0.0.1:6379".into(),
                    channel: "d4:dns".into()
                },
                Target::File("/etc/d4/r.ndjson".into()),
                Target::Stdout,
            ]
        );
        assert_eq!(
            p.routes,
            [(Kind::QueriesPerSecond, vec![2]), (Kind::TopNQ, vec![0, 1])]
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (text, want) in [
            ("windows = 3", "unknown field"),
            ("[outputs.x]\nkind = \"fax\"", "unknown variant"),
            (
                "[outputs.x]\nkind = \"stdout\"\npath = \"y\"",
                "unknown field",
            ),
            ("[reducers]\nTopNQ = [\"nowhere\"]", "no output named"),
            ("[reducers]\nTopQ = []", "not a reducer"),
            ("", "lists no reducer"),
        ] {
            let e = Config::parse(text)
                .and_then(|c| c.plan(Path::new(".")).map(|_| ()))
                .map_err(|e| format!("{e:#}"))
                .unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
