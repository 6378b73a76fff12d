//! TLS material: a CA and a server certificate generated on first start into
//! `<data-dir>/tls/`, loaded on later starts. The server certificate names
//! `localhost`, `127.0.0.1`, `::1` and the host name (rcgen); the same CA
//! signs the ingest and the HTTPS certificates, and is the sensors'
//! `rootCA.crt`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Paths of the TLS files inside `<data-dir>/tls/`.
pub(crate) const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.crt";
const SERVER_KEY: &str = "server.key";

/// Creates the CA and server certificate if `dir` has none.
pub fn ensure_material(dir: &Path) -> Result<()> {
    if dir.join(SERVER_CERT).is_file() && dir.join(SERVER_KEY).is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "d4 server CA");
    ca.distinguished_name.push(DnType::OrganizationName, "d4");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_after = rcgen::date_time_ymd(2046, 1, 1);
    let ca_cert = ca.self_signed(&ca_key).context("signing the CA")?;

    let host = crate::server::host_name();
    let mut names = vec!["localhost".to_string()];
    if !host.is_empty() && host != "localhost" {
        names.push(host);
    }
    let mut leaf = CertificateParams::new(names).context("server certificate names")?;
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    leaf.distinguished_name
        .push(DnType::CommonName, "d4 server");
    leaf.not_after = rcgen::date_time_ymd(2046, 1, 1);
    let leaf_key = KeyPair::generate().context("generating the server key")?;
    let issuer = Issuer::new(ca, ca_key);
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .context("signing the server certificate")?;

    std::fs::write(dir.join(CA_CERT), ca_cert.pem())?;
    crate::server::write_private(&dir.join(CA_KEY), issuer.key().serialize_pem().as_bytes())?;
    std::fs::write(
        dir.join(SERVER_CERT),
        format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
    )?;
    crate::server::write_private(&dir.join(SERVER_KEY), leaf_key.serialize_pem().as_bytes())?;
    tracing::info!(
        "generated a TLS CA and server certificate in {}; give {} to sensors as rootCA.crt",
        dir.display(),
        dir.join(CA_CERT).display()
    );
    Ok(())
}

/// The rustls server configuration from `dir`.
pub(crate) fn server_config(dir: &Path, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>> {
    let cert_path = dir.join(SERVER_CERT);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("cannot read {}", cert_path.display()))?
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert_path.display()))?;
    let key_path = dir.join(SERVER_KEY);
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("cannot read the key {}", key_path.display()))?;
    // AES-128-GCM first (as fast as it gets with AES-NI, and ample for a
    // stream's lifetime); the server's order wins.
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let provider = Arc::new(provider);
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("server certificate and key do not match")?;
    // Sensors never resume sessions; tickets would only be bytes they must read.
    cfg.send_tls13_tickets = 0;
    cfg.ignore_client_order = true;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}
