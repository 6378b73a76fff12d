//! Sensor UUID rules: RFC 4122 version 4 only, keyed as 32 lower-case hex digits.

use uuid::Uuid;

/// Why a string is not an acceptable sensor UUID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UuidError {
    /// Not a UUID at all.
    #[error("{0:?} is not a UUID")]
    Syntax(String),
    /// A UUID, but not a random (version 4, RFC 4122 variant) one.
    #[error("{0} is not a version 4 UUID")]
    NotV4(Uuid),
}

/// Whether `u` is an RFC 4122 version 4 UUID, as the reference server demands.
pub fn is_v4(u: &Uuid) -> bool {
    u.get_version_num() == 4 && u.get_variant() == uuid::Variant::RFC4122
}

/// The key under which a sensor is known: 32 lower-case hex digits, no dashes.
pub fn uuid_key(u: &Uuid) -> String {
    u.simple().to_string()
}

/// Parses a sensor UUID (with or without dashes, any case) and demands version 4.
pub fn parse_v4(s: &str) -> Result<Uuid, UuidError> {
    let u = Uuid::try_parse(s.trim()).map_err(|_| UuidError::Syntax(s.to_string()))?;
    if is_v4(&u) {
        Ok(u)
    } else {
        Err(UuidError::NotV4(u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let u = parse_v4("9A7C4B56-1C1F-4B74-9B0E-3C1F2A1B7E01").unwrap();
        assert_eq!(uuid_key(&u), "9a7c4b561c1f4b749b0e3c1f2a1b7e01");
        assert_eq!(parse_v4("9a7c4b561c1f4b749b0e3c1f2a1b7e01").unwrap(), u);
        assert!(matches!(
            parse_v4("9a7c4b56-1c1f-1b74-9b0e-3c1f2a1b7e01"),
            Err(UuidError::NotV4(_))
        ));
        assert!(matches!(parse_v4("nope"), Err(UuidError::Syntax(_))));
        assert!(!is_v4(&Uuid::nil()));
    }
}
