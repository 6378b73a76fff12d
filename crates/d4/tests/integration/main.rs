#![allow(unreachable_pub, clippy::unwrap_used)]
//! Integration tests: the real `d4` binary over real TLS on loopback.
//! One test binary (links once); modules by area.

mod bad_input;
mod captures;
mod cli;
mod client_faults;
mod disk_full;
mod dns;
mod dns_dashboard;
mod e2e;
mod export;
mod floods;
mod harness;
mod idle;
mod maltrail;
mod monitoring;
mod parity;
mod pdns;
mod redis;
mod sharing;
mod sources;
/// The fault campaign's flood tool, also the floods tests'.
#[path = "../../examples/swarm.rs"]
#[allow(dead_code)]
mod swarm;
mod tls;
mod web;
mod web_api;
mod web_confirm;
mod web_live;
