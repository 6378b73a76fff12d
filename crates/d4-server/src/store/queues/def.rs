//! What a queue is: its data type and its definition with counters, as
//! stored, as the API shows it, and as Redis mode reads it back.

use std::fmt;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a queue carries: a D4 type number or an extended type name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum QueueType {
    /// A D4 type (1, 3, 4, ...).
    Type(u8),
    /// An extended type carried by type 254 (`maltrail`, `ja3-jl`, ...).
    Extended(String),
}

impl QueueType {
    /// Parses `3`, `254`-style numbers or extended type names.
    pub fn parse(s: &str) -> Result<QueueType> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u16>() {
            match n {
                0 => bail!("type 0 is reserved"),
                2 | 254 => bail!("types 2 and 254 carry extended types: give the extended type name (e.g. maltrail, ja3-jl)"),
                1..=255 => return Ok(QueueType::Type(n as u8)),
                _ => bail!("type {n} is not a D4 type (1-255)"),
            }
        }
        if d4_proto::meta::valid_extended_type(s) {
            Ok(QueueType::Extended(s.to_string()))
        } else {
            bail!("{s:?} is neither a D4 type number nor an extended type name ([A-Za-z0-9._-], 1-64 characters)")
        }
    }
}

impl fmt::Display for QueueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueType::Type(n) => write!(f, "{n}"),
            QueueType::Extended(s) => f.write_str(s),
        }
    }
}

impl From<QueueType> for String {
    fn from(t: QueueType) -> String {
        t.to_string()
    }
}

impl TryFrom<String> for QueueType {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<QueueType> {
        QueueType::parse(&s)
    }
}

/// A queue's definition and counters, as stored and as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QueueDef {
    /// Queue UUID.
    pub uuid: Uuid,
    /// Data type.
    #[serde(rename = "type")]
    pub ty: QueueType,
    /// Free text.
    pub description: String,
    /// Most items kept; older ones are dropped.
    pub max_size: u64,
    /// Sensors this queue is restricted to (empty: all sensors).
    pub sensors: Vec<Uuid>,
    /// Unix seconds of creation.
    pub created: i64,
    /// Unix seconds of the last push or pop.
    pub last_updated: i64,
    /// Sequence number of the oldest item.
    pub head: u64,
    /// Sequence number the next item gets.
    pub tail: u64,
    /// Items dropped because the queue was full.
    pub dropped: u64,
    /// Items ever pushed.
    pub pushed: u64,
    /// Unix seconds of the last pop or empty (0: never): monitoring reports
    /// a queue nobody consumes.
    #[serde(default)]
    pub last_popped: i64,
}

/// A queue to create: what its creator chooses (the store numbers and
/// dates it). [`crate::store::queues::Queues::create`] checks it.
#[derive(Clone, Debug)]
pub(crate) struct NewQueue {
    /// Data type.
    pub(crate) ty: QueueType,
    /// Free text.
    pub(crate) description: String,
    /// Most items kept (at least 1).
    pub(crate) max_size: u64,
    /// Sensors it is restricted to (empty: all sensors).
    pub(crate) sensors: Vec<Uuid>,
}

impl QueueDef {
    /// Items waiting.
    pub fn len(&self) -> u64 {
        self.tail - self.head
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_types() {
        assert_eq!(QueueType::parse("3").unwrap(), QueueType::Type(3));
        assert_eq!(
            QueueType::parse("maltrail").unwrap(),
            QueueType::Extended("maltrail".into())
        );
        assert!(QueueType::parse("0").is_err());
        assert!(QueueType::parse("254").is_err());
        assert!(QueueType::parse("../x").is_err());
        let s = serde_json::to_string(&QueueType::Type(8)).unwrap();
        assert_eq!(s, "\"8\"");
    }
}
