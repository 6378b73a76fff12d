//! The `ja3-jl` record: one JSON line per TLS session, with the keys of the
//! reference sensor (sensor-d4-tls-fingerprinting): `ServerIP`,
//! `ServerPort`, `ClientIP`, `ClientPort`, `TLSH`, `Timestamp` (RFC 3339),
//! `JA3`, `JA3Digest`, `JA3S`, `JA3SDigest`, `Certificates` (each with
//! `CertHash` and `Raw`, the base64 DER). Ports are strings there; we write
//! strings and read strings or numbers. Our extra keys (`SNI`, `ALPN`,
//! `JA4`, and `SHA1`/`SHA256` per certificate) are ignored by the reference
//! tools, which read only the keys above.

use serde::{Deserialize, Deserializer, Serialize};

/// One TLS session.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    /// The server's address (the side that sent the ServerHello, or the
    /// ClientHello's destination).
    #[serde(rename = "ServerIP")]
    pub server_ip: String,
    /// The server's TCP port (a string, as the reference writes it).
    #[serde(deserialize_with = "port")]
    pub server_port: String,
    /// The client's address.
    #[serde(rename = "ClientIP")]
    pub client_ip: String,
    /// The client's TCP port.
    #[serde(deserialize_with = "port")]
    pub client_port: String,
    /// The reference's TLSH of the fingerprints and names (empty: we do not
    /// compute it).
    #[serde(rename = "TLSH", default)]
    pub tlsh: String,
    /// When the ClientHello was seen (RFC 3339).
    pub timestamp: String,
    /// The JA3 string (`ver,ciphers,extensions,curves,pointformats`).
    #[serde(rename = "JA3", default)]
    pub ja3: String,
    /// MD5 of [`Record::ja3`], hex.
    #[serde(rename = "JA3Digest", default)]
    pub ja3_digest: String,
    /// The JA3S string (`ver,cipher,extensions`).
    #[serde(rename = "JA3S", default)]
    pub ja3s: String,
    /// MD5 of [`Record::ja3s`], hex.
    #[serde(rename = "JA3SDigest", default)]
    pub ja3s_digest: String,
    /// The JA4 fingerprint of the ClientHello (ours).
    #[serde(rename = "JA4", default, skip_serializing_if = "String::is_empty")]
    pub ja4: String,
    /// The server name of the ClientHello (ours).
    #[serde(rename = "SNI", default, skip_serializing_if = "String::is_empty")]
    pub sni: String,
    /// The ALPN protocols offered by the client (ours).
    #[serde(rename = "ALPN", default, skip_serializing_if = "Vec::is_empty")]
    pub alpn: Vec<String>,
    /// The server's certificate chain, leaf first.
    #[serde(default, deserialize_with = "null_is_empty")]
    pub certificates: Vec<Cert>,
}

/// One certificate of a chain.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Cert {
    /// The hash the certificate is known by: SHA-1 of the DER, hex.
    #[serde(rename = "CertHash")]
    pub cert_hash: String,
    /// The DER, base64 (standard alphabet, padded).
    #[serde(rename = "Raw")]
    pub raw: String,
    /// SHA-256 of the DER, hex (ours).
    #[serde(rename = "SHA256", default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
}

fn port<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum P {
        S(String),
        N(u64),
    }
    Ok(match P::deserialize(d)? {
        P::S(s) => s,
        P::N(n) => n.to_string(),
    })
}

fn null_is_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cert>, D::Error> {
    Ok(Option::<Vec<Cert>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_the_reference_keys_and_extra_go_fields() {
        let line = r#"{"ServerIP":"192.0.2.1","ServerPort":"443","ClientIP":"192.0.2.9","ClientPort":50000,"TLSH":"","Timestamp":"2021-10-01T10:00:00.123456Z","JA3":"771,4865,0-10,29,0","JA3Digest":"x","JA3S":"771,4865,43","JA3SDigest":"y","Certificates":[{"CertHash":"ab","Raw":"AAE=","Version":3,"IsCA":false}]}"#;
        let r: Record = serde_json::from_str(line).unwrap();
        assert_eq!(r.client_port, "50000");
        assert_eq!(r.certificates[0].raw, "AAE=");
        let again: Record = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(again, r);
        let none: Record = serde_json::from_str(&line.replace(
            r#"[{"CertHash":"ab","Raw":"AAE=","Version":3,"IsCA":false}]"#,
            "null",
        ))
        .unwrap();
        assert!(none.certificates.is_empty());
    }
}
