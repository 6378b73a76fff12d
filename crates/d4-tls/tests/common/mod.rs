//! Hand-written ja3-jl records with certificates built by rcgen (so their
//! parsed fields are known), and an in-process server on loopback.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::sync::Arc;

use base64::Engine;
use d4_tls::store::Store;

/// A certificate for `names` (the first is the CN), valid 2024-01-02 to
/// 2025-01-02, ECDSA P-256 (or Ed25519).
pub fn cert(names: &[&str], ed25519: bool) -> Vec<u8> {
    let alg = if ed25519 {
        &rcgen::PKCS_ED25519
    } else {
        &rcgen::PKCS_ECDSA_P256_SHA256
    };
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, names[0]);
    p.not_before = rcgen::date_time_ymd(2024, 1, 2);
    p.not_after = rcgen::date_time_ymd(2025, 1, 2);
    p.self_signed(&key).unwrap().der().to_vec()
}

/// Hex SHA-1.
pub fn sha1(der: &[u8]) -> String {
    d4_tls::cert::hex(&d4_tls::cert::sha1(der))
}

/// A digest made of one repeated hex digit.
pub fn digest(c: char) -> String {
    std::iter::repeat_n(c, 32).collect()
}

/// One ja3-jl line.
#[allow(clippy::too_many_arguments)]
pub fn line(
    client: (&str, u16),
    server: (&str, u16),
    ja3: &str,
    ja3s: &str,
    ja4: &str,
    sni: &str,
    chain: &[&[u8]],
    ts: &str,
) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let certs: Vec<_> = chain
        .iter()
        .map(|d| serde_json::json!({"CertHash": sha1(d), "Raw": b64.encode(d)}))
        .collect();
    serde_json::json!({
        "ClientIP": client.0, "ClientPort": client.1.to_string(),
        "ServerIP": server.0, "ServerPort": server.1.to_string(),
        "TLSH": "", "Timestamp": ts,
        "JA3": format!("771,4865-{ja3}"), "JA3Digest": ja3,
        "JA3S": "771,4865,43", "JA3SDigest": ja3s,
        "JA4": ja4, "SNI": sni,
        "Certificates": certs,
    })
    .to_string()
}

/// Serves `store` on 127.0.0.1 (an ephemeral port) in a thread; the base URL.
pub fn serve(store: Arc<Store>, rate: f64) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        rt.block_on(d4_tls::serve::serve(
            listener,
            store,
            rate,
            std::future::pending(),
        ))
    });
    base
}
