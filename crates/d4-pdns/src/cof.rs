//! The Passive DNS Common Output Format (draft-dulaunoy-dnsop-passive-dns-cof):
//! one JSON object per record, mandatory `rrname`, `rrtype`, `rdata`,
//! `time_first`, `time_last`; optional `count`, `bailiwick`, `sensor_id`,
//! `origin`. A [`Record`] is one such object through serde: we write `count`
//! always and `sensor_id` as an array of strings (a record may be seen by
//! several sensors), never `bailiwick` or `origin`; we read `sensor_id` as
//! a string or an array, and accept (and do not keep) `bailiwick` and
//! `origin`.

use serde::Deserialize;

use crate::record::Record;

/// Parses one NDJSON line into a normalised record: name, type and rdata
/// normalised as [`Record::new`] does, `count` at least 1, `time_last` not
/// before `time_first`, at most [`crate::store::MAX_SENSORS`] sensor ids.
pub fn parse(line: &str) -> serde_json::Result<Record> {
    let c: Record = serde_json::from_str(line)?;
    let mut r = Record::new(&c.rrname, &c.rrtype, &c.rdata, c.time_first, c.count.max(1));
    r.time_last = c.time_last.max(c.time_first);
    r.sensors = c.sensors;
    r.sensors.truncate(crate::store::MAX_SENSORS);
    Ok(r)
}

/// `count` when a COF object has none.
pub(crate) fn one() -> u64 {
    1
}

/// `count`: a number, or `null` (1).
pub(crate) fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(1))
}

/// `sensor_id`: one string or an array of them.
pub(crate) fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_string_or_array_sensor_ids_and_minimal_records() {
        let c = parse(r#"{"rrname":"a.example","rrtype":"A","rdata":"192.0.2.1","time_first":1,"time_last":2,"sensor_id":"s1"}"#).unwrap();
        assert_eq!(c.sensors, ["s1"]);
        let c = parse(r#"{"rrname":"A.example.","rrtype":"a","rdata":"192.0.2.1","time_first":3,"time_last":2,"bailiwick":"example","origin":"x"}"#).unwrap();
        assert_eq!(c, Record::new("a.example", "A", "192.0.2.1", 3, 1));
        let c = parse(r#"{"rrname":"a.example","rrtype":"A","rdata":"192.0.2.1","time_first":1,"time_last":2,"count":null}"#).unwrap();
        assert_eq!(c.count, 1);
        assert!(parse(r#"{"rrname":"a"}"#).is_err());
    }

    #[test]
    fn written_as_the_lookup_server_always_wrote_it() {
        let mut r = Record::new("a.example", "A", "192.0.2.1", 1, 3);
        r.time_last = 2;
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"rrname":"a.example","rrtype":"A","rdata":"192.0.2.1","time_first":1,"time_last":2,"count":3}"#
        );
        r.sensors = vec!["s1".into(), "s2".into()];
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"rrname":"a.example","rrtype":"A","rdata":"192.0.2.1","time_first":1,"time_last":2,"count":3,"sensor_id":["s1","s2"]}"#
        );
    }

    proptest::proptest! {
        #[test]
        fn round_trip(
            name in "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){0,3}",
            t in "(A|AAAA|CNAME|MX|TXT|TYPE65534)",
            d in "[ -~]{0,40}",
            first in 0u64..u64::MAX / 2,
            span in 0u64..1_000_000,
            count in 1u64..1_000_000,
            sensors in proptest::collection::vec("[a-z0-9-]{1,12}", 0..3),
        ) {
            let c = Record {
                rrname: name,
                rrtype: t,
                rdata: d,
                time_first: first,
                time_last: first + span,
                count,
                sensors,
            };
            let line = serde_json::to_string(&c).unwrap();
            proptest::prop_assert!(!line.contains('\n'));
            proptest::prop_assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), c);
        }
    }
}
