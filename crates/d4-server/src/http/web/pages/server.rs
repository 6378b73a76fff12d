//! `/server`: settings, blocklists, accepted types and queues, with their actions.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::http::ops::policy::{op_block_net, op_set_types, op_unblock_net, TypesBody};
use crate::http::ops::queues::{
    op_create_queue, op_delete_queue, op_empty_queue, op_resize_queue, CreateQueue,
};
use crate::http::ops::sensors::{op_sensor_action, ActionBody};
use crate::http::ops::{parse_uuid, ApiError};
use crate::http::web::auth::{AdminForm, Page};
use crate::http::web::cookies::enc;
use crate::http::web::pages::confirm::{confirm_first, Ask};
use crate::http::web::{back, html, layout, ts, Layout};
use crate::server::Shared;

// ---------------------------------------------------------------- server

pub(crate) struct QueueRow {
    pub(crate) uuid: String,
    pub(crate) ty: String,
    pub(crate) description: String,
    pub(crate) sensors: String,
    pub(crate) length: u64,
    pub(crate) max_size: u64,
    pub(crate) dropped: u64,
    pub(crate) updated: String,
    pub(crate) preview: Vec<String>,
}

#[derive(Template)]
#[template(path = "server.html")]
pub(crate) struct ServerPage {
    pub(crate) l: Layout,
    pub(crate) mode: String,
    pub(crate) listen: String,
    pub(crate) sessions: usize,
    pub(crate) started: String,
    pub(crate) types: Vec<(u8, &'static str, bool)>,
    pub(crate) extended: String,
    pub(crate) nets: Vec<String>,
    pub(crate) uuids: Vec<String>,
    pub(crate) queues: Vec<QueueRow>,
    pub(crate) default_size: u64,
}

pub(crate) fn type_name(t: u8) -> &'static str {
    match t {
        1 => "pcap",
        2 => "meta-header",
        3 => "log",
        4 => "dnscap",
        5 => "pcapng",
        6 => "NDJSON",
        7 => "YAF/IPFIX",
        8 => "passivedns",
        254 => "extended",
        _ => "",
    }
}

pub(crate) async fn server_page(Page { s, c, f }: Page) -> Response {
    let p = s.policy.snapshot();
    let accepted = s.policy.accepted_types();
    let queues = s
        .queues
        .list()
        .into_iter()
        .map(|q| QueueRow {
            uuid: q.uuid.to_string(),
            ty: q.ty.to_string(),
            description: q.description.clone(),
            sensors: q
                .sensors
                .iter()
                .map(|u| u.simple().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            length: q.len(),
            max_size: q.max_size,
            dropped: q.dropped,
            updated: ts(q.last_updated),
            preview: s
                .queues
                .peek(q.uuid, 3)
                .unwrap_or_default()
                .iter()
                .map(|i| String::from_utf8_lossy(i).chars().take(120).collect())
                .collect(),
        })
        .collect();
    let page = ServerPage {
        l: layout(&s, &c, &f, "server"),
        mode: match s.policy.mode() {
            crate::Mode::Registration => "registration".into(),
            crate::Mode::SharedSecret => "shared-secret".into(),
        },
        listen: s.ingest_addr.to_string(),
        sessions: s.sensors.live().len(),
        started: ts(s.started),
        types: d4_proto::D4Type::DEFINED
            .iter()
            .map(|t| (*t, type_name(*t), accepted.contains(t)))
            .collect(),
        extended: s
            .policy
            .accepted_extended()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", "),
        nets: p.blocked_nets.iter().map(|n| n.to_string()).collect(),
        uuids: p
            .blocked_uuids
            .iter()
            .map(|u| u.simple().to_string())
            .collect(),
        queues,
        default_size: s.cfg.default_queue_size,
    };
    html(&page)
}

pub(crate) async fn server_post(
    State(s): State<Arc<Shared>>,
    Path(action): Path<String>,
    AdminForm { c, f }: AdminForm,
) -> Response {
    let ask = match action.as_str() {
        "block-ip" => Some(Ask {
            action: "/server/block-ip".into(),
            heading: format!("Block {}?", f.get("net").trim()),
            question: "Sessions from these addresses are refused until the entry is removed; live ones are closed.".into(),
            button: "Block",
            back: "/server".into(),
            keep: &["net"],
        }),
        "block-uuid" => Some(Ask {
            action: "/server/block-uuid".into(),
            heading: format!("Block sensor {}?", f.get("uuid").trim()),
            question: "Its sessions are closed and refused until it is unblocked.".into(),
            button: "Block",
            back: "/server".into(),
            keep: &["uuid"],
        }),
        _ => None,
    };
    if let Some(page) = ask.and_then(|a| confirm_first(&s, &c, &f, a)) {
        return page;
    }
    let r = match action.as_str() {
        "types" => {
            let types: Result<Vec<u8>, _> = f.all("type").iter().map(|t| t.parse::<u8>()).collect();
            match types {
                Ok(types) => op_set_types(
                    &s,
                    TypesBody {
                        types,
                        extended: f.get("extended").split(',').map(str::to_string).collect(),
                    },
                )
                .await
                .map(|()| "Accepted types saved.".to_string()),
                Err(_) => Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    "a type is not a number".into(),
                )),
            }
        }
        "block-ip" => op_block_net(&s, f.get("net"))
            .await
            .map(|n| format!("{n} blocked.")),
        "unblock-ip" => op_unblock_net(&s, f.get("net"))
            .await
            .map(|n| format!("{n} removed from the blocklist.")),
        "block-uuid" => match parse_uuid(f.get("uuid")) {
            Ok(u) => op_sensor_action(&s, u, "block", ActionBody::default())
                .await
                .map(|_| format!("{} blocked.", u.simple())),
            Err(e) => Err(e),
        },
        "create-queue" => {
            let max = f.get("max_size").trim();
            let c = CreateQueue {
                ty: f.get("type").to_string(),
                description: f.get("description").to_string(),
                max_size: if max.is_empty() {
                    None
                } else {
                    max.parse().ok()
                },
                sensors: f
                    .get("sensors")
                    .split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect(),
            };
            op_create_queue(&s, c)
                .await
                .map(|d| format!("Queue {} created for type {}.", d.uuid, d.ty))
        }
        other => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no action {other:?}"),
        )),
    };
    back("/server", r)
}

pub(crate) async fn queue_post(
    State(s): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
    AdminForm { c, f }: AdminForm,
) -> Response {
    let ask = |verb: &str, what: &str| Ask {
        action: format!("/queues/{}/{action}", enc(&id)),
        heading: format!("{verb} queue {id}?"),
        question: what.to_string(),
        button: if action == "delete" {
            "Delete"
        } else {
            "Empty"
        },
        back: "/server".into(),
        keep: &[],
    };
    let asked = match action.as_str() {
        "empty" => Some(ask(
            "Empty",
            "Every item waiting in it is removed; its consumers never see them.",
        )),
        "delete" => Some(ask(
            "Delete",
            "The queue and every item waiting in it are removed; its consumers get 404.",
        )),
        _ => None,
    };
    if let Some(page) = asked.and_then(|a| confirm_first(&s, &c, &f, a)) {
        return page;
    }
    let r = match action.as_str() {
        "empty" => op_empty_queue(&s, &id)
            .await
            .map(|n| format!("Queue {id} emptied ({n} items removed).")),
        "delete" => op_delete_queue(&s, &id)
            .await
            .map(|_| format!("Queue {id} deleted.")),
        "resize" => match f.get("max_size").trim().parse::<u64>() {
            Ok(m) => op_resize_queue(&s, &id, m)
                .await
                .map(|_| format!("Queue {id} now keeps {m} items.")),
            Err(_) => Err(ApiError(
                StatusCode::BAD_REQUEST,
                "the max size must be a number".into(),
            )),
        },
        other => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no queue action {other:?}"),
        )),
    };
    back("/server", r)
}
