//! The type-2 meta-header that announces the extended type of a type-254 stream.

use serde_json::{Map, Value};

/// Largest meta-header accepted (all type-2 payloads of a session together).
pub const MAX_META_HEADER: usize = 64 * 1024;

/// A parsed meta-header.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaHeader {
    /// The extended type name (`ja3-jl`, `maltrail`, ...). Safe as a path
    /// component: 1..=64 bytes of `[A-Za-z0-9._-]`, not starting with a dot.
    pub ty: String,
    /// The whole JSON object, as sent.
    pub fields: Map<String, Value>,
}

/// Why a meta-header is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The type-2 payloads grew past [`MAX_META_HEADER`].
    #[error("meta-header larger than {MAX_META_HEADER} bytes")]
    TooLarge,
    /// Not a JSON object.
    #[error("meta-header is not a JSON object: {0}")]
    NotJson(String),
    /// No string field `type`.
    #[error("meta-header has no string field \"type\"")]
    NoType,
    /// A `type` that cannot name a queue or a folder.
    #[error("meta-header type {0:?} is not 1-64 characters of [A-Za-z0-9._-] (not all digits)")]
    BadType(String),
}

/// Whether `name` may be used as an extended type name (and as a path
/// component, and in `analyzer:<type>:<queue>` keys: never all digits, which
/// would collide with type numbers).
pub fn valid_extended_type(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && !name.bytes().all(|b| b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl MetaHeader {
    /// Parses a complete meta-header (newlines are ignored, as in the reference).
    pub fn parse(raw: &[u8]) -> Result<MetaHeader, MetaError> {
        if raw.len() > MAX_META_HEADER {
            return Err(MetaError::TooLarge);
        }
        let cleaned: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\n').collect();
        let v: Value =
            serde_json::from_slice(&cleaned).map_err(|e| MetaError::NotJson(e.to_string()))?;
        let Value::Object(fields) = v else {
            return Err(MetaError::NotJson("not an object".into()));
        };
        let ty = match fields.get("type") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(MetaError::NoType),
        };
        if !valid_extended_type(&ty) {
            return Err(MetaError::BadType(ty));
        }
        Ok(MetaHeader { ty, fields })
    }
}

/// Collects the type-2 payloads of a session, bounded.
#[derive(Debug, Default)]
pub struct MetaHeaderBuilder {
    /// Concatenated type-2 payloads so far.
    raw: Vec<u8>,
}

impl MetaHeaderBuilder {
    /// Adds one type-2 payload.
    pub fn push(&mut self, payload: &[u8]) -> Result<(), MetaError> {
        if self.raw.len() + payload.len() > MAX_META_HEADER {
            return Err(MetaError::TooLarge);
        }
        self.raw.extend_from_slice(payload);
        Ok(())
    }

    /// The bytes collected so far.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Parses what was collected.
    pub fn finish(&self) -> Result<MetaHeader, MetaError> {
        MetaHeader::parse(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reference_example_split_over_frames() {
        let mut b = MetaHeaderBuilder::default();
        b.push(br#"{"type": "ja3-jl", "encoding": "utf-8","#)
            .unwrap();
        b.push(b"\n \"tags\": [\"tlp:white\"]}\n").unwrap();
        let m = b.finish().unwrap();
        assert_eq!(m.ty, "ja3-jl");
        assert_eq!(m.fields["encoding"], "utf-8");
    }

    #[test]
    fn refuses_bad_types() {
        assert_eq!(MetaHeader::parse(b"{}"), Err(MetaError::NoType));
        assert_eq!(MetaHeader::parse(br#"{"type":3}"#), Err(MetaError::NoType));
        assert!(matches!(
            MetaHeader::parse(br#"{"type":"../etc"}"#),
            Err(MetaError::BadType(_))
        ));
        assert!(matches!(
            MetaHeader::parse(br#"{"type":"1"}"#),
            Err(MetaError::BadType(_))
        ));
        assert!(matches!(
            MetaHeader::parse(b"[1]"),
            Err(MetaError::NotJson(_))
        ));
        let mut b = MetaHeaderBuilder::default();
        assert_eq!(
            b.push(&vec![b' '; MAX_META_HEADER + 1]),
            Err(MetaError::TooLarge)
        );
    }
}
