//! `/users`: accounts (admin only).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::accounts::Role;
use crate::http::ops::users::{op_create_user, op_user_action, CreateUser};
use crate::http::web::auth::{AdminForm, Ctx, Page};
use crate::http::web::cookies::enc;
use crate::http::web::pages::confirm::{confirm_first, Ask};
use crate::http::web::{back, html, layout, message, ts, Flash, Layout};
use crate::server::Shared;

// ---------------------------------------------------------------- users

pub(crate) struct UserRow {
    pub(crate) name: String,
    pub(crate) role: &'static str,
    pub(crate) must_change: bool,
    pub(crate) created: String,
}

#[derive(Template)]
#[template(path = "users.html")]
pub(crate) struct UsersPage {
    pub(crate) l: Layout,
    pub(crate) users: Vec<UserRow>,
    pub(crate) new_key: String,
    pub(crate) new_key_user: String,
}

pub(crate) fn users_view(s: &Shared, c: &Ctx, f: &Flash, new_key: (String, String)) -> Response {
    if c.user.role != Role::Admin {
        return message(
            s,
            c,
            StatusCode::FORBIDDEN,
            "Users",
            "Only admins manage users.",
        );
    }
    html(&UsersPage {
        l: layout(s, c, f, "users"),
        users: s
            .accounts
            .list()
            .into_iter()
            .map(|u| UserRow {
                name: u.name,
                role: u.role.as_str(),
                must_change: u.must_change_password,
                created: ts(u.created),
            })
            .collect(),
        new_key_user: new_key.0,
        new_key: new_key.1,
    })
}

/// The users page with `msg` and a new API key: shown on this answer
/// only, never again.
fn key_shown(s: &Shared, c: &Ctx, msg: String, user: String, key: String) -> Response {
    let f = Flash {
        msg,
        ..Flash::default()
    };
    users_view(s, c, &f, (user, key))
}

pub(crate) async fn users_page(Page { s, c, f }: Page) -> Response {
    users_view(&s, &c, &f, Default::default())
}

pub(crate) async fn user_create(
    State(s): State<Arc<Shared>>,
    AdminForm { c, f }: AdminForm,
) -> Response {
    let name = f.get("name").trim().to_string();
    let r = op_create_user(
        &s,
        CreateUser {
            name: name.clone(),
            role: f.get("role").to_string(),
            password: f.get("password").to_string(),
        },
    )
    .await;
    match r {
        Ok(key) => key_shown(&s, &c, format!("User {name} created."), name, key),
        Err(e) => back("/users", Err(e)),
    }
}

pub(crate) async fn user_post(
    State(s): State<Arc<Shared>>,
    Path((name, action)): Path<(String, String)>,
    AdminForm { c, f }: AdminForm,
) -> Response {
    if action == "delete" {
        let ask = Ask {
            action: format!("/users/{}/delete", enc(&name)),
            heading: format!("Delete user {name}?"),
            question: "The account, its sessions and its API key are removed.".into(),
            button: "Delete",
            back: "/users".into(),
            keep: &[],
        };
        if let Some(page) = confirm_first(&s, &c, &f, ask) {
            return page;
        }
    }
    let role = Some(f.get("role").to_string()).filter(|r| !r.is_empty());
    match op_user_action(&s, &name, &action, role).await {
        Ok(v) if action == "api-key" => {
            let key = v["api_key"].as_str().unwrap_or_default().to_string();
            key_shown(&s, &c, format!("New API key for {name}."), name, key)
        }
        Ok(_) => back(
            "/users",
            Ok(match action.as_str() {
                "delete" => format!("User {name} deleted."),
                _ => format!("Role of {name} changed."),
            }),
        ),
        Err(e) => back("/users", Err(e)),
    }
}
