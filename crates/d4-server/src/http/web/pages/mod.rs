//! The pages of the web UI, one file per page or group of pages; each
//! holds its askama template struct(s) (templates in
//! `crates/d4-server/templates/`) and its handlers.

pub(crate) mod api;
pub(crate) mod charts;
pub(crate) mod confirm;
pub(crate) mod dashboard;
pub(crate) mod login;
pub(crate) mod registrations;
pub(crate) mod sensors;
pub(crate) mod server;
pub(crate) mod users;
