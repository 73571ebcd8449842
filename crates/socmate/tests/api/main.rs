//! One integration-test binary for the whole API (fast to link, shared helpers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod audit;
mod auth;
mod binary;
mod concurrency;
mod connection_test;
mod expiry;
mod graph_reality;
mod health;
mod helpers;
mod incidents;
mod investigations;
mod keys;
mod migrations;
mod openapi;
mod ops;
mod pg;
mod process;
mod providers;
mod queries;
mod replicas;
mod second_type;
mod secrets;
mod sessions;
mod workspace_source;
