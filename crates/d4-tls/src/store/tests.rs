#![allow(clippy::unwrap_used)]

use super::*;

fn session(time: i64, chain: Vec<Vec<u8>>, client: &str) -> NewSession {
    NewSession {
        session: Session {
            time,
            client_ip: client.into(),
            server_ip: "192.0.2.1".into(),
            ja3: "a".repeat(32),
            ..Session::default()
        },
        client: client.parse().ok(),
        server: "192.0.2.1".parse().ok(),
        ja3_string: "771,4865".into(),
        chain,
        ..NewSession::default()
    }
}

/// A CA and a leaf it signed.
fn chain() -> (Vec<u8>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "Test CA");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_identifier_method = rcgen::KeyIdMethod::Sha256;
    let ca = p.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(p, &ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut lp = rcgen::CertificateParams::new(vec!["leaf.example".to_string()]).unwrap();
    lp.use_authority_key_identifier_extension = true;
    let leaf = lp.signed_by(&key, &issuer).unwrap();
    (ca.der().to_vec(), leaf.der().to_vec())
}

#[test]
fn chains_are_linked_and_sightings_merged() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("t.redb")).unwrap();
    let (ca, leaf) = chain();
    let a = s
        .apply(&mut [
            session(200, vec![leaf.clone(), ca.clone()], "10.0.0.1"),
            session(100, vec![leaf.clone()], "10.0.0.2"),
        ])
        .unwrap();
    assert_eq!((a.sessions, a.new_certs, a.unparsed_certs), (2, 2, 0));
    let a = s
        .apply(&mut [session(300, vec![leaf.clone()], "10.0.0.3")])
        .unwrap();
    assert_eq!(a.new_certs, 0);
    let (info, der) = s.cert(&cert::sha1(&leaf)).unwrap().unwrap();
    assert_eq!((info.first_seen, info.last_seen, info.count), (100, 300, 3));
    assert!(info.aki.is_some());
    let (issuers, issued) = s.chain_links(&info, &der, 10).unwrap();
    assert_eq!(issuers.len(), 1);
    assert_eq!(issuers[0].sha1, cert::hex(&cert::sha1(&ca)));
    assert!(issued.is_empty());
    let (ca_info, ca_der) = s.cert(&cert::sha1(&ca)).unwrap().unwrap();
    assert!(ca_info.is_ca);
    let (up, down) = s.chain_links(&ca_info, &ca_der, 10).unwrap();
    assert!(up.is_empty(), "a self-signed CA is not its own issuer");
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].sha1, info.sha1);
    let f = s.fingerprint(key::JA3, &"a".repeat(32)).unwrap().unwrap();
    assert_eq!((f.count, f.first_seen, f.last_seen), (3, 100, 300));
    assert_eq!(f.string, "771,4865");
    // By SHA-256 too.
    assert_eq!(
        s.cert_sha1(&cert::sha256(&leaf)).unwrap(),
        Some(cert::sha1(&leaf))
    );
    let c = s.counts().unwrap();
    assert_eq!((c.sessions, c.certificates, c.fingerprints), (3, 2, 1));
}

#[test]
fn key_ranges() {
    assert_eq!(key::successor(&[1, 2]), Some(vec![1, 3]));
    assert_eq!(key::successor(&[1, 0xff]), Some(vec![2]));
    assert_eq!(key::successor(&[0xff]), None);
    let mut k = Vec::new();
    key::name("www.example.com", key::TAG_SNI, &7u64.to_be_bytes(), &mut k);
    assert!(k.starts_with(&key::name_prefix("www.example.com", true)));
    assert!(k.starts_with(&key::name_prefix("example.com", false)));
    assert!(!k.starts_with(&key::name_prefix("ample.com", false)));
    let (n, tag, rf) = key::split_name(&k).unwrap();
    assert_eq!(
        (n.as_str(), tag, rf),
        ("www.example.com", key::TAG_SNI, &7u64.to_be_bytes()[..])
    );
    assert_eq!(key::trailing_id(&k), Some(7));
}
