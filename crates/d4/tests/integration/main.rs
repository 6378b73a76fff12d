#![allow(unreachable_pub, clippy::unwrap_used)]
//! Integration tests: the real `d4` binary over real TLS on loopback.
//! One test binary (links once); modules by area.

mod bad_input;
mod cli;
mod client_faults;
mod disk_full;
mod e2e;
mod harness;
mod monitoring;
mod pdns;
mod redis;
mod sharing;
mod web;
mod web_api;
mod web_confirm;
mod web_live;
