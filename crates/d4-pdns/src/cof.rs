//! The Passive DNS Common Output Format (draft-dulaunoy-dnsop-passive-dns-cof):
//! one JSON object per record, mandatory `rrname`, `rrtype`, `rdata`,
//! `time_first`, `time_last`; optional `count`, `bailiwick`, `sensor_id`,
//! `origin`. We write `sensor_id` as an array of strings (a record may be
//! seen by several sensors) and read either a string or an array.

use serde::{Deserialize, Serialize};

use crate::record::{normalize_name, normalize_rdata, Observation};
use crate::store::Stored;

/// One COF record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cof {
    /// Owner name.
    pub rrname: String,
    /// Type mnemonic.
    pub rrtype: String,
    /// Rdata in presentation form.
    pub rdata: String,
    /// First seen (seconds since the epoch).
    pub time_first: u64,
    /// Last seen.
    pub time_last: u64,
    /// Times seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Zone the answer was authoritative for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bailiwick: Option<String>,
    /// Sensors that saw it.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub sensor_id: Vec<String>,
    /// Where the record comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl From<Stored> for Cof {
    fn from(s: Stored) -> Cof {
        Cof {
            rrname: s.rrname,
            rrtype: s.rrtype,
            rdata: s.rdata,
            time_first: s.time_first,
            time_last: s.time_last,
            count: Some(s.count),
            bailiwick: None,
            sensor_id: s.sensors,
            origin: None,
        }
    }
}

impl Cof {
    /// The observation this record stands for (normalised).
    pub fn into_observation(self) -> Observation {
        let mut o = Observation::new(
            &self.rrname,
            &self.rrtype,
            &self.rdata,
            self.time_first,
            self.count.unwrap_or(1).max(1),
        );
        o.time_last = self.time_last.max(self.time_first);
        o.sensors = self.sensor_id;
        o.sensors.truncate(crate::store::MAX_SENSORS);
        o
    }

    /// Parses one NDJSON line.
    pub fn parse(line: &str) -> serde_json::Result<Cof> {
        serde_json::from_str(line)
    }
}

/// Normalised COF record of an observation.
pub fn from_observation(o: &Observation) -> Cof {
    Cof {
        rrname: normalize_name(&o.rrname),
        rrtype: o.rrtype.clone(),
        rdata: normalize_rdata(&o.rrtype, &o.rdata),
        time_first: o.time_first,
        time_last: o.time_last,
        count: Some(o.count),
        bailiwick: None,
        sensor_id: o.sensors.clone(),
        origin: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_string_or_array_sensor_ids_and_minimal_records() {
        let c = Cof::parse(r#"{"rrname":"a.example","rrtype":"A","rdata":"192.0.2.1","time_first":1,"time_last":2,"sensor_id":"s1"}"#).unwrap();
        assert_eq!(c.sensor_id, ["s1"]);
        let c = Cof::parse(r#"{"rrname":"a.example","rrtype":"A","rdata":"192.0.2.1","time_first":1,"time_last":2}"#).unwrap();
        assert_eq!(c.count, None);
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(
            s,
            r#"{"rrname":"a.example","rrtype":"A","rdata":"192.0.2.1","time_first":1,"time_last":2}"#
        );
        assert!(Cof::parse(r#"{"rrname":"a"}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn round_trip(
            name in "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){0,3}",
            t in "(A|AAAA|CNAME|MX|TXT|TYPE65534)",
            d in "[ -~]{0,40}",
            first in 0u64..u64::MAX / 2,
            span in 0u64..1_000_000,
            count in proptest::option::of(1u64..1_000_000),
            sensors in proptest::collection::vec("[a-z0-9-]{1,12}", 0..3),
        ) {
            let c = Cof {
                rrname: name,
                rrtype: t,
                rdata: d,
                time_first: first,
                time_last: first + span,
                count,
                bailiwick: None,
                sensor_id: sensors,
                origin: None,
            };
            let line = serde_json::to_string(&c).unwrap();
            proptest::prop_assert!(!line.contains('\n'));
            proptest::prop_assert_eq!(Cof::parse(&line).unwrap(), c);
        }
    }
}
