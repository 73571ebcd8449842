//! SoCMate SIEM gateway.
//!
//! Capabilities live in their own modules (`providers`, `queries`, `incidents`, `crypto`,
//! `auth`, …), each owning its logic and storage; `http` holds the shared web plumbing and `app`
//! wires them into one router. Handlers stay thin so tests can drive the plain functions
//! underneath. The core speaks to SIEM products only through the `siem` seam; each provider type
//! lives in its own module (`sentinel`) and is registered in `provider_types`.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod crypto;
pub mod health;
pub mod http;
pub mod id;
pub mod incidents;
pub mod investigations;
mod local_claims;
pub mod metrics;
pub mod notify;
pub mod openapi;
mod private_files;
pub mod provider_types;
pub mod providers;
pub mod queries;
pub mod rate_limit;
pub mod sentinel;
pub mod siem;
pub mod store;
pub mod telemetry;
pub mod text;
