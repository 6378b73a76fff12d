//! DNS/UDP/IPv4 frames built by hand, shared by the test binaries.

/// A DNS response (QR, RD, RA; one IN A question) with these answers, each
/// named by a pointer to the question, TTL 3600.
pub(crate) fn dns_response(id: u16, rcode: u8, qname: &[u8], answers: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1, 0, answers.len() as u8, 0, 0, 0, 0]);
    m.extend_from_slice(qname);
    m.extend_from_slice(&[0, 1, 0, 1]);
    for (t, rd) in answers {
        m.extend_from_slice(&[0xc0, 12]);
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0x0e, 0x10]);
        m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        m.extend_from_slice(rd);
    }
    m
}

/// An IPv4 header (no options, checksum 0) in front of `l4`.
pub(crate) fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
    p[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    p
}

/// A UDP header (checksum 0) in front of `data`.
pub(crate) fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    u
}
