//! `/api`: the API reference page, from the OpenAPI document.

use askama::Template;
use axum::http::{header, HeaderMap};
use axum::response::Response;

use crate::http::api::OPENAPI;
use crate::http::auth::required_role;
use crate::http::web::auth::Page;
use crate::http::web::{html, layout, Layout};

// ---------------------------------------------------------------- API page, messages

#[derive(Template)]
#[template(path = "api.html")]
pub(crate) struct ApiPage {
    pub(crate) l: Layout,
    pub(crate) base: String,
    pub(crate) endpoints: Vec<(String, String, &'static str, String)>,
}

pub(crate) async fn api_page(headers: HeaderMap, Page { s, c, f }: Page) -> Response {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
    let mut endpoints = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            let Some(ops) = ops.as_object() else { continue };
            for (m, op) in ops {
                let method = axum::http::Method::from_bytes(m.to_uppercase().as_bytes())
                    .unwrap_or(axum::http::Method::GET);
                let full = if path == "/metrics" {
                    path.clone()
                } else {
                    format!("/api/v1{path}")
                };
                endpoints.push((
                    m.to_uppercase(),
                    path.clone(),
                    required_role(&method, &full).as_str(),
                    op["summary"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:7000");
    html(&ApiPage {
        l: layout(&s, &c, &f, "api"),
        base: format!("https://{host}"),
        endpoints,
    })
}
