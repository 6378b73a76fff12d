//! The HTTPS port: the REST API and the web UI.

pub(crate) mod api;
pub(crate) mod web;
