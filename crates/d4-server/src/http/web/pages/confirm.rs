//! The confirmation step of destructive actions (delete, empty, block,
//! reject, revoke): the first POST of such a form answers with a page that
//! asks, whose form posts the same fields again with `confirmed=yes`. No
//! script is needed; the API's operations are unchanged.

use askama::Template;
use axum::response::Response;

use crate::http::web::auth::{Ctx, Fields};
use crate::http::web::{html, layout, Flash, Layout};
use crate::server::Shared;

/// What to ask before an action.
pub(crate) struct Ask {
    /// The form's target (the action itself).
    pub(crate) action: String,
    /// The page's heading (`Delete queue …?`).
    pub(crate) heading: String,
    /// The consequence, in words.
    pub(crate) question: String,
    /// The confirming button's text.
    pub(crate) button: &'static str,
    /// Where Cancel goes.
    pub(crate) back: String,
    /// Fields of the form to post again (besides the CSRF token).
    pub(crate) keep: &'static [&'static str],
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub(crate) struct ConfirmPage {
    pub(crate) l: Layout,
    pub(crate) action: String,
    pub(crate) heading: String,
    pub(crate) question: String,
    pub(crate) button: &'static str,
    pub(crate) back: String,
    pub(crate) fields: Vec<(&'static str, String)>,
}

/// `None` when the form says `confirmed=yes`; otherwise the page that asks.
pub(crate) fn confirm_first(s: &Shared, c: &Ctx, f: &Fields, ask: Ask) -> Option<Response> {
    if f.get("confirmed") == "yes" {
        return None;
    }
    Some(html(&ConfirmPage {
        l: layout(s, c, &Flash::default(), ""),
        fields: ask
            .keep
            .iter()
            .map(|k| (*k, f.get(k).to_string()))
            .collect(),
        action: ask.action,
        heading: ask.heading,
        question: ask.question,
        button: ask.button,
        back: ask.back,
    }))
}
