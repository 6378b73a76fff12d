//! Certificates: DER → the fields the store keeps and the lookups show
//! (x509-parser), and the hashes they are known by.

use serde::{Deserialize, Serialize};
use sha2::Digest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Largest certificate accepted (DER bytes).
pub const MAX_DER: usize = 64 * 1024;

/// SHA-1 of `b`.
pub fn sha1(b: &[u8]) -> [u8; 20] {
    sha1::Sha1::digest(b).into()
}

/// SHA-256 of `b`.
pub fn sha256(b: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(b).into()
}

pub use crate::hello::hex;

/// What is known of a certificate (without its DER, kept apart).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// SHA-1 of the DER, hex (the reference's `CertHash`).
    pub sha1: String,
    /// SHA-256 of the DER, hex.
    pub sha256: String,
    /// Whether the DER parsed as an X.509 certificate; when not, only the
    /// hashes, the sightings and the DER are kept.
    pub parsed: bool,
    /// Why it did not parse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The subject (RFC 4514 form).
    #[serde(default)]
    pub subject: String,
    /// The subject's common name, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_cn: Option<String>,
    /// The issuer (RFC 4514 form).
    #[serde(default)]
    pub issuer: String,
    /// The serial number, hex.
    #[serde(default)]
    pub serial: String,
    /// DNS names and addresses of the subject alternative names.
    #[serde(default)]
    pub sans: Vec<String>,
    /// Start of validity (Unix seconds).
    #[serde(default)]
    pub not_before: i64,
    /// End of validity (Unix seconds).
    #[serde(default)]
    pub not_after: i64,
    /// `RSA`, `EC`, `Ed25519`, `DSA`... or the algorithm's name.
    #[serde(default)]
    pub key_type: String,
    /// Key size in bits (0 when unknown).
    #[serde(default)]
    pub key_bits: u32,
    /// The signature algorithm (e.g. `sha256WithRSAEncryption`).
    #[serde(default)]
    pub signature_algorithm: String,
    /// Subject key identifier, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ski: Option<String>,
    /// Authority key identifier, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aki: Option<String>,
    /// Basic constraints say it is a CA.
    #[serde(default)]
    pub is_ca: bool,
    /// Issuer and subject are the same name.
    #[serde(default)]
    pub self_issued: bool,
    /// First seen in a session (Unix seconds).
    pub first_seen: i64,
    /// Last seen in a session (Unix seconds).
    pub last_seen: i64,
    /// Sessions (chains) it was seen in.
    pub count: u64,
}

/// Keys for linking chains: hashes of the raw subject and issuer names,
/// and the key identifiers, as bytes.
#[derive(Debug, Default, Clone)]
pub struct Links {
    /// First 16 bytes of SHA-256 of the subject's DER.
    pub subject: Option<[u8; 16]>,
    /// First 16 bytes of SHA-256 of the issuer's DER.
    pub issuer: Option<[u8; 16]>,
    /// Subject key identifier.
    pub ski: Option<Vec<u8>>,
}

fn name_hash(raw: &[u8]) -> [u8; 16] {
    let h = sha256(raw);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h[..16]);
    out
}

/// A name key for the store: the SHA-256 prefix of a DER name.
pub fn name_key(raw: &[u8]) -> [u8; 16] {
    name_hash(raw)
}

fn key_type(c: &X509Certificate<'_>) -> (String, u32) {
    use x509_parser::public_key::PublicKey;
    let spki = c.public_key();
    let alg = x509_parser::objects::oid2sn(
        &spki.algorithm.algorithm,
        x509_parser::objects::oid_registry(),
    )
    .map(str::to_string)
    .unwrap_or_else(|_| spki.algorithm.algorithm.to_id_string());
    match spki.parsed() {
        Ok(PublicKey::RSA(k)) => ("RSA".into(), k.key_size() as u32),
        Ok(PublicKey::EC(k)) => ("EC".into(), k.key_size() as u32),
        Ok(PublicKey::DSA(y)) => ("DSA".into(), (y.len() * 8) as u32),
        _ if alg.eq_ignore_ascii_case("ed25519") => ("Ed25519".into(), 256),
        _ if alg.eq_ignore_ascii_case("ed448") => ("Ed448".into(), 456),
        _ => (alg, 0),
    }
}

/// Parses a DER certificate; one that does not parse gives `parsed:
/// false` and the reason, with its hashes.
pub fn parse(der: &[u8]) -> (CertInfo, Links) {
    let mut info = CertInfo {
        sha1: hex(&sha1(der)),
        sha256: hex(&sha256(der)),
        ..CertInfo::default()
    };
    let mut links = Links::default();
    let c = match X509Certificate::from_der(der) {
        Ok((_, c)) => c,
        Err(e) => {
            info.error = Some(e.to_string());
            return (info, links);
        }
    };
    info.parsed = true;
    info.subject = c.subject().to_string();
    info.subject_cn = c
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    info.issuer = c.issuer().to_string();
    info.serial = hex(c.raw_serial());
    info.not_before = c.validity().not_before.timestamp();
    info.not_after = c.validity().not_after.timestamp();
    (info.key_type, info.key_bits) = key_type(&c);
    info.signature_algorithm = x509_parser::objects::oid2sn(
        &c.signature_algorithm.algorithm,
        x509_parser::objects::oid_registry(),
    )
    .map(str::to_string)
    .unwrap_or_else(|_| c.signature_algorithm.algorithm.to_id_string());
    info.self_issued = c.subject().as_raw() == c.issuer().as_raw();
    links.subject = Some(name_hash(c.subject().as_raw()));
    links.issuer = Some(name_hash(c.issuer().as_raw()));
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => {
                info.ski = Some(hex(k.0));
                links.ski = Some(k.0.to_vec());
            }
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                info.aki = a.key_identifier.as_ref().map(|k| hex(k.0));
            }
            ParsedExtension::BasicConstraints(b) => info.is_ca = b.ca,
            ParsedExtension::SubjectAlternativeName(san) => {
                for n in &san.general_names {
                    match n {
                        GeneralName::DNSName(d) => info.sans.push(d.to_ascii_lowercase()),
                        GeneralName::IPAddress(b) => {
                            if let Ok(a) = <[u8; 4]>::try_from(*b) {
                                info.sans.push(std::net::Ipv4Addr::from(a).to_string());
                            } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                                info.sans.push(std::net::Ipv6Addr::from(a).to_string());
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (info, links)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fields_of_a_generated_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p =
            rcgen::CertificateParams::new(vec!["www.example.org".into(), "*.example.org".into()])
                .unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "www.example.org");
        p.not_before = rcgen::date_time_ymd(2024, 1, 2);
        p.not_after = rcgen::date_time_ymd(2025, 1, 2);
        let der = p.self_signed(&key).unwrap().der().to_vec();
        let (c, l) = parse(&der);
        assert!(c.parsed);
        assert_eq!(c.subject_cn.as_deref(), Some("www.example.org"));
        assert_eq!(c.sans, ["www.example.org", "*.example.org"]);
        assert_eq!(c.not_before, 1_704_153_600);
        assert_eq!((c.key_type.as_str(), c.key_bits), ("EC", 256));
        assert_eq!(c.signature_algorithm, "ecdsa-with-SHA256");
        assert!(c.self_issued);
        assert_eq!(l.subject, l.issuer);
        assert_eq!(c.sha1.len(), 40);
        let (bad, _) = parse(b"not a certificate");
        assert!(!bad.parsed && bad.error.is_some());
    }
}
