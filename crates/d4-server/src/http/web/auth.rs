//! Who is asking and whether the form may act: the `Ctx` extractor turns
//! the `d4_session` cookie into the operator, and sends an account with a
//! password to change to `/password` whatever it asks for;
//! `sensor_register` accounts never open a page. Every state change is a
//! POST form with the session's CSRF token, checked by [`guard`] with the
//! role it needs: handlers take the form as an [`AdminForm`] or a
//! [`SessionForm`], which run that check before the handler does.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use crate::accounts::{Role, User};
use crate::http::web::cookies::{cookie, read_flash, SESSION_COOKIE};
use crate::http::web::{now, Flash};
use crate::server::Shared;

/// The logged-in operator of a page request.
pub(crate) struct Ctx {
    pub(crate) user: User,
    pub(crate) csrf: String,
    pub(crate) cookie: String,
    /// The message the previous action left (message, error).
    pub(crate) flash: (String, String),
}

impl FromRequestParts<Arc<Shared>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<Shared>) -> Result<Ctx, Response> {
        let Some(c) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(Redirect::to("/login").into_response());
        };
        let Some((ws, user)) = s.accounts.session(&c, now()) else {
            return Err(Redirect::to("/login").into_response());
        };
        // A valid session: the connection holds an authenticated place.
        crate::http::WebConn::mark(&parts.extensions);
        // sensor_register accounts are API-only, whatever session they hold.
        if !user.role.allows(Role::User) {
            return Err(Redirect::to("/login").into_response());
        }
        let path = parts.uri.path();
        if user.must_change_password && path != "/password" && path != "/logout" {
            return Err(Redirect::to("/password").into_response());
        }
        Ok(Ctx {
            user,
            csrf: ws.csrf,
            cookie: c,
            flash: read_flash(&parts.headers),
        })
    }
}

/// What a page handler starts from: the server, the operator (as [`Ctx`]),
/// and the page's query (filters).
pub(crate) struct Page {
    pub(crate) s: Arc<Shared>,
    pub(crate) c: Ctx,
    pub(crate) f: Flash,
}

impl FromRequestParts<Arc<Shared>> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<Shared>) -> Result<Page, Response> {
        let c = Ctx::from_request_parts(parts, s).await?;
        let Query(f) = Query::<Flash>::from_request_parts(parts, s)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Page { s: s.clone(), c, f })
    }
}

/// A submitted form: every field, repeated ones too.
#[derive(Deserialize)]
#[serde(transparent)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub(crate) fn get(&self, k: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub(crate) fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

pub(crate) fn forbidden(text: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_string(),
    )
        .into_response()
}

/// Checks the CSRF token of a form and the role an action needs; the
/// refusal to send, if any.
fn guard(c: &Ctx, f: &Fields, needed: Role) -> Option<Response> {
    if !crate::accounts::ct_eq(f.get("csrf").as_bytes(), c.csrf.as_bytes()) {
        tracing::warn!(
            "form from {:?} refused: CSRF token missing or wrong",
            c.user.name
        );
        return Some(forbidden(
            "CSRF token missing or wrong: reload the page and submit the form again",
        ));
    }
    if !c.user.role.allows(needed) {
        return Some(forbidden(&format!(
            "this needs the {} role; you have {}",
            needed.as_str(),
            c.user.role.as_str()
        )));
    }
    None
}

/// A form posted by the operator of a session, its CSRF token checked and
/// the role it needs held (admin when `ADMIN`, else any account that can
/// open a page); otherwise the request is refused with [`guard`]'s answer
/// (or [`Ctx`]'s redirect, or the form's rejection).
pub(crate) struct Checked<const ADMIN: bool> {
    /// Who posted it.
    pub(crate) c: Ctx,
    /// The fields.
    pub(crate) f: Fields,
}

/// A form only an admin may post.
pub(crate) type AdminForm = Checked<true>;

/// A form any logged-in operator may post (only its CSRF token is checked:
/// [`Ctx`] already turns away the roles that cannot open a page).
pub(crate) type SessionForm = Checked<false>;

impl<const ADMIN: bool> FromRequest<Arc<Shared>> for Checked<ADMIN> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &Arc<Shared>) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let c = Ctx::from_request_parts(&mut parts, s).await?;
        let Form(f) = Form::<Fields>::from_request(Request::from_parts(parts, body), s)
            .await
            .map_err(IntoResponse::into_response)?;
        let needed = if ADMIN { Role::Admin } else { Role::User };
        match guard(&c, &f, needed) {
            Some(refusal) => Err(refusal),
            None => Ok(Checked { c, f }),
        }
    }
}
