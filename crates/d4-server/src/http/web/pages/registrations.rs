//! `/registrations`: pending sensors, approve or reject.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::http::ops::sensors::{op_sensor_action, ActionBody};
use crate::http::ops::{parse_uuid, ApiError};
use crate::http::web::auth::{AdminForm, Page};
use crate::http::web::pages::confirm::{confirm_first, Ask};
use crate::http::web::{back, html, layout, ts, Layout};
use crate::server::Shared;

// ---------------------------------------------------------------- registrations

pub(crate) struct PendingRow {
    pub(crate) uuid: String,
    pub(crate) how: &'static str,
    pub(crate) mail: String,
    pub(crate) first: String,
    pub(crate) last: String,
    pub(crate) ip: String,
}

#[derive(Template)]
#[template(path = "registrations.html")]
pub(crate) struct RegistrationsPage {
    pub(crate) l: Layout,
    pub(crate) pending: Vec<PendingRow>,
    pub(crate) approved: Vec<(String, String)>,
    pub(crate) shared_secret: bool,
}

pub(crate) async fn registrations_page(Page { s, c, f }: Page) -> Response {
    let p = s.policy.snapshot();
    let page = RegistrationsPage {
        l: layout(&s, &c, &f, "registrations"),
        pending: p
            .pending
            .iter()
            .map(|(u, x)| PendingRow {
                uuid: u.simple().to_string(),
                how: if x.first_seen == 0 && x.ip.is_empty() {
                    "through Redis (another node or a reference tool)"
                } else if x.registered {
                    if x.third_party {
                        "API (third party)"
                    } else {
                        "API"
                    }
                } else {
                    "connection attempt"
                },
                mail: x.mail.clone().unwrap_or_default(),
                first: ts(x.first_seen),
                last: ts(s.policy.last_attempt(*u, x.last_seen)),
                ip: x.ip.clone(),
            })
            .collect(),
        approved: p
            .approved
            .iter()
            .map(|u| {
                (
                    u.simple().to_string(),
                    p.settings
                        .get(u)
                        .map(|x| x.name.clone())
                        .unwrap_or_default(),
                )
            })
            .collect(),
        shared_secret: s.policy.mode() == crate::Mode::SharedSecret,
    };
    html(&page)
}

pub(crate) async fn registration_post(
    State(s): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
    AdminForm { c, f }: AdminForm,
) -> Response {
    let question = match action.as_str() {
        "reject" => Some("It is no longer pending; its sessions are refused as unapproved."),
        "revoke" => Some("Its approval is withdrawn: its sessions are closed and refused."),
        _ => None,
    };
    if let (Some(q), Ok(u)) = (question, parse_uuid(&id)) {
        let ask = Ask {
            action: format!("/registrations/{}/{action}", u.simple()),
            heading: format!(
                "{} sensor {}?",
                if action == "reject" {
                    "Reject"
                } else {
                    "Revoke"
                },
                u.simple()
            ),
            question: q.into(),
            button: if action == "reject" {
                "Reject"
            } else {
                "Revoke"
            },
            back: "/registrations".into(),
            keep: &[],
        };
        if let Some(page) = confirm_first(&s, &c, &f, ask) {
            return page;
        }
    }
    let r = match (parse_uuid(&id), action.as_str()) {
        (Err(e), _) => Err(e),
        (Ok(u), a @ ("approve" | "reject" | "revoke")) => {
            op_sensor_action(&s, u, a, ActionBody::default())
                .await
                .map(|_| {
                    format!(
                        "Sensor {} {}.",
                        u.simple(),
                        match a {
                            "approve" => "approved",
                            "reject" => "rejected",
                            _ => "revoked",
                        }
                    )
                })
        }
        (Ok(_), other) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no action {other:?}"),
        )),
    };
    back("/registrations", r)
}
