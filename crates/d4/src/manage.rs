//! `d4 queue ...` and `d4 sensor ...`.

use anyhow::Result;
use serde_json::{json, Value};

use d4_api::{Api, Conn};

/// Queue commands.
#[derive(clap::Subcommand)]
pub(crate) enum QueueCmd {
    /// Create a queue; prints its UUID alone.
    #[command(
        after_help = "Examples:\n  d4 queue create -t 1                       # pcap: items are paths of finished .cap.gz files\n  d4 queue create -t 8 --max-size 100000     # passivedns lines\n  d4 queue create -t maltrail --sensor 9a7c4b56-1c1f-4b74-9b0e-3c1f2a1b7e01"
    )]
    Create {
        /// D4 type number (1, 3, 4, 5, 6, 7, 8) or extended type name (maltrail, ja3-jl, ...).
        #[arg(short = 't', long = "type")]
        ty: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// Most items kept (older ones are dropped and counted). Default: the server's (10,000).
        #[arg(long)]
        max_size: Option<u64>,
        /// Only receive data from this sensor (repeat for a group).
        #[arg(long = "sensor")]
        sensors: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List queues.
    #[command(
        after_help = "Examples:\n  d4 queue list\n  d4 queue list --json | jq '.[] | select(.dropped > 0)'"
    )]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one queue (JSON), with a preview of its first items.
    #[command(after_help = "Example:\n  d4 queue show 3f0c6f8e-6c4b-4b8e-9a57-2d1f5a0b7c11")]
    Show {
        /// Queue UUID.
        uuid: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove every item of a queue (the queue stays).
    #[command(after_help = "Example:\n  d4 queue empty 3f0c6f8e-6c4b-4b8e-9a57-2d1f5a0b7c11")]
    Empty {
        /// Queue UUID.
        uuid: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a queue and its items.
    #[command(after_help = "Example:\n  d4 queue delete 3f0c6f8e-6c4b-4b8e-9a57-2d1f5a0b7c11")]
    Delete {
        /// Queue UUID.
        uuid: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Sensor commands.
#[derive(clap::Subcommand)]
pub(crate) enum SensorCmd {
    /// List sensors: status, types, last seen, last error.
    #[command(
        after_help = "Examples:\n  d4 sensor list\n  d4 sensor list --json | jq '.[] | select(.status == \"pending\")'"
    )]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one sensor (JSON).
    #[command(after_help = "Example:\n  d4 sensor show 9a7c4b56-1c1f-4b74-9b0e-3c1f2a1b7e01")]
    Show {
        /// Sensor UUID.
        uuid: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Approve a sensor (registration mode).
    #[command(
        after_help = "Example:\n  d4 sensor approve 9a7c4b56-1c1f-4b74-9b0e-3c1f2a1b7e01 --key 'a long random secret'"
    )]
    Approve {
        /// Sensor UUID.
        uuid: String,
        /// Also set its HMAC key.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Reject a pending sensor (forget its registration request).
    #[command(after_help = "Example:\n  d4 sensor reject 9a7c4b56-1c1f-4b74-9b0e-3c1f2a1b7e01")]
    Reject {
        /// Sensor UUID.
        uuid: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Set a sensor's HMAC key (never shown back).
    #[command(
        after_help = "Example:\n  d4 sensor key 9a7c4b56-1c1f-4b74-9b0e-3c1f2a1b7e01 \"$(head -c 24 /dev/urandom | base64)\""
    )]
    Key {
        /// Sensor UUID.
        uuid: String,
        /// The key.
        key: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Block a sensor (closes its sessions).
    #[command(after_help = "Example:\n  d4 sensor block 9a7c4b56-1c1f-4b74-9b0e-3c1f2a1b7e01")]
    Block {
        /// Sensor UUID.
        uuid: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Unblock a sensor.
    #[command(after_help = "Example:\n  d4 sensor unblock 9a7c4b56-1c1f-4b74-9b0e-3c1f2a1b7e01")]
    Unblock {
        /// Sensor UUID.
        uuid: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Close a sensor's sessions and refuse it for 30 s.
    #[command(after_help = "Example:\n  d4 sensor kick 9a7c4b56-1c1f-4b74-9b0e-3c1f2a1b7e01")]
    Kick {
        /// Sensor UUID.
        uuid: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Block an IP address or CIDR range (closes its sessions).
    #[command(
        after_help = "Examples:\n  d4 sensor block-ip 192.0.2.7\n  d4 sensor block-ip 2001:db8::/32"
    )]
    BlockIp {
        /// Address or range, e.g. 192.0.2.7 or 2001:db8::/32.
        net: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove an IP address or range from the blocklist.
    #[command(after_help = "Example:\n  d4 sensor unblock-ip 192.0.2.7")]
    UnblockIp {
        /// Address or range.
        net: String,
        #[command(flatten)]
        conn: Conn,
    },
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn ago(t: i64) -> String {
    if t <= 0 {
        return "never".into();
    }
    let d = chrono::Utc::now().timestamp() - t;
    match d {
        d if d < 60 => format!("{d}s ago"),
        d if d < 3600 => format!("{}m ago", d / 60),
        d if d < 86400 => format!("{}h ago", d / 3600),
        d => format!("{}d ago", d / 86400),
    }
}

pub(crate) fn queue(c: QueueCmd) -> Result<()> {
    match c {
        QueueCmd::Create {
            ty,
            description,
            max_size,
            sensors,
            conn,
        } => {
            let api = Api::connect(&conn)?;
            let mut body = json!({"type": ty, "description": description, "sensors": sensors});
            if let Some(m) = max_size {
                body["max_size"] = json!(m);
            }
            let q = api.post("/queues", &body)?;
            println!("{}", q["uuid"].as_str().unwrap_or_default());
        }
        QueueCmd::List { json, conn } => {
            let v = Api::connect(&conn)?.get("/queues")?;
            if json {
                return print_json(&v);
            }
            println!(
                "{:<36}  {:<10} {:>9} {:>9} {:>9}  {:<10} DESCRIPTION",
                "UUID", "TYPE", "LENGTH", "MAX", "DROPPED", "UPDATED"
            );
            for q in v.as_array().into_iter().flatten() {
                println!(
                    "{:<36}  {:<10} {:>9} {:>9} {:>9}  {:<10} {}{}",
                    q["uuid"].as_str().unwrap_or(""),
                    q["type"].as_str().unwrap_or(""),
                    q["length"].as_u64().unwrap_or(0),
                    q["max_size"].as_u64().unwrap_or(0),
                    q["dropped"].as_u64().unwrap_or(0),
                    ago(q["last_updated"].as_i64().unwrap_or(0)),
                    q["description"].as_str().unwrap_or(""),
                    match q["sensors"].as_array() {
                        Some(s) if !s.is_empty() => format!(" [{} sensors]", s.len()),
                        _ => String::new(),
                    }
                );
            }
        }
        QueueCmd::Show { uuid, conn } => {
            let api = Api::connect(&conn)?;
            let mut q = api.get(&format!("/queues/{uuid}"))?;
            q["preview"] = api.get(&format!("/queues/{uuid}/peek?count=5"))?;
            print_json(&q)?;
        }
        QueueCmd::Empty { uuid, conn } => {
            let r = Api::connect(&conn)?.post(&format!("/queues/{uuid}/empty"), &json!({}))?;
            eprintln!("emptied queue {uuid} ({} items removed)", r["removed"]);
        }
        QueueCmd::Delete { uuid, conn } => {
            let q = Api::connect(&conn)?.delete(&format!("/queues/{uuid}"))?;
            eprintln!(
                "deleted queue {} ({} items)",
                q["uuid"].as_str().unwrap_or(""),
                q["length"]
            );
        }
    }
    Ok(())
}

pub(crate) fn sensor(c: SensorCmd) -> Result<()> {
    let action = |conn: &Conn, uuid: &str, what: &str, body: Value| -> Result<Value> {
        Api::connect(conn)?.post(&format!("/sensors/{uuid}/{what}"), &body)
    };
    match c {
        SensorCmd::List { json, conn } => {
            let v = Api::connect(&conn)?.get("/sensors")?;
            if json {
                return print_json(&v);
            }
            println!(
                "{:<32}  {:<9} {:<5} {:<12} {:<10} LAST ERROR",
                "UUID", "STATUS", "LIVE", "TYPES", "LAST SEEN"
            );
            for s in v.as_array().into_iter().flatten() {
                let types: Vec<&str> = s["types"]
                    .as_object()
                    .map(|m| m.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let err = match &s["last_error"] {
                    Value::Null => String::new(),
                    e => format!(
                        "{} ({}, {})",
                        e["reason"].as_str().unwrap_or(""),
                        e["ip"].as_str().unwrap_or(""),
                        ago(e["time"].as_i64().unwrap_or(0))
                    ),
                };
                println!(
                    "{:<32}  {:<9} {:<5} {:<12} {:<10} {}",
                    s["uuid"].as_str().unwrap_or("").replace('-', ""),
                    s["status"].as_str().unwrap_or(""),
                    if s["connected"].as_bool().unwrap_or(false) {
                        "yes"
                    } else {
                        "no"
                    },
                    types.join(","),
                    ago(s["last_seen"].as_i64().unwrap_or(0)),
                    err
                );
            }
        }
        SensorCmd::Show { uuid, conn } => {
            print_json(&Api::connect(&conn)?.get(&format!("/sensors/{uuid}"))?)?
        }
        SensorCmd::Approve { uuid, key, conn } => {
            action(&conn, &uuid, "approve", json!({}))?;
            if let Some(k) = key {
                action(&conn, &uuid, "key", json!({"key": k}))?;
            }
            eprintln!("sensor {uuid} approved");
        }
        SensorCmd::Reject { uuid, conn } => {
            action(&conn, &uuid, "reject", json!({}))?;
            eprintln!("pending sensor {uuid} rejected");
        }
        SensorCmd::Key { uuid, key, conn } => {
            action(&conn, &uuid, "key", json!({"key": key}))?;
            eprintln!("key of sensor {uuid} set");
        }
        SensorCmd::Block { uuid, conn } => {
            action(&conn, &uuid, "block", json!({}))?;
            eprintln!("sensor {uuid} blocked");
        }
        SensorCmd::Unblock { uuid, conn } => {
            action(&conn, &uuid, "unblock", json!({}))?;
            eprintln!("sensor {uuid} unblocked");
        }
        SensorCmd::Kick { uuid, conn } => {
            let r = action(&conn, &uuid, "kick", json!({}))?;
            eprintln!(
                "sensor {uuid} kicked ({} sessions closed)",
                r["sessions_closed"]
            );
        }
        SensorCmd::BlockIp { net, conn } => {
            let r = Api::connect(&conn)?.post("/blocklist/ip", &json!({"net": net}))?;
            eprintln!("{} blocked", r["net"].as_str().unwrap_or(""));
        }
        SensorCmd::UnblockIp { net, conn } => {
            let r = Api::connect(&conn)?.post("/blocklist/ip/remove", &json!({"net": net}))?;
            eprintln!("{} unblocked", r["net"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}
