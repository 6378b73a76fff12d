//! Server-wide policy operations: address blocklist, accepted types.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::StatusCode;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::http::ops::sensors::close_sessions_in;
use crate::http::ops::{bad, policy_update, ApiError, ApiResult};
use crate::server::Shared;

/// Parses an address or a CIDR range.
pub(crate) fn parse_net(s: &str) -> ApiResult<IpNet> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| bad(format!("{s:?} is neither an IP address nor a CIDR range")))
}

/// Adds an address or range to the IP blocklist and closes its sessions.
pub(crate) async fn op_block_net(s: &Arc<Shared>, net: &str) -> ApiResult<IpNet> {
    let n = parse_net(net)?;
    policy_update(s, move |p| p.blocked_nets.insert(n)).await?;
    close_sessions_in(s, &[n]);
    tracing::info!("{n} added to the IP blocklist");
    Ok(n)
}

/// Removes an address or range from the IP blocklist.
pub(crate) async fn op_unblock_net(s: &Arc<Shared>, net: &str) -> ApiResult<IpNet> {
    let n = parse_net(net)?;
    let removed = policy_update(s, move |p| p.blocked_nets.remove(&n)).await?;
    if !removed {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{n} is not in the IP blocklist"),
        ));
    }
    Ok(n)
}

/// Accepted types and extended types.
#[derive(Deserialize, Serialize)]
pub(crate) struct TypesBody {
    /// Accepted D4 types.
    pub(crate) types: Vec<u8>,
    /// Accepted extended types (empty: any valid name).
    #[serde(default)]
    pub(crate) extended: Vec<String>,
}

/// Sets the accepted types and extended types.
pub(crate) async fn op_set_types(s: &Arc<Shared>, b: TypesBody) -> ApiResult<()> {
    let mut types = BTreeSet::new();
    for t in b.types {
        if !d4_proto::D4Type::DEFINED.contains(&t) {
            return Err(bad(format!(
                "type {t} is not a D4 type (1-8, 254); type 0 is reserved"
            )));
        }
        types.insert(t);
    }
    let mut ext = BTreeSet::new();
    for e in b.extended {
        let e = e.trim().to_string();
        if e.is_empty() {
            continue;
        }
        if !d4_proto::meta::valid_extended_type(&e) {
            return Err(bad(format!(
                "{e:?} is not an extended type name ([A-Za-z0-9._-], 1-64 characters)"
            )));
        }
        ext.insert(e);
    }
    tracing::info!("accepted types now {types:?}, extended {ext:?}");
    policy_update(s, move |p| {
        p.accepted_types = Some(types);
        p.accepted_extended = Some(ext);
    })
    .await
}
