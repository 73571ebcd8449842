//! SIEM provider management: the seed's API (`/api/admin/siem-providers`).
//!
//! `service` holds the logic as plain async functions (tests call them directly), `routes` the
//! thin HTTP handlers, `store` the SQL, `cache` the live providers kept ready to serve,
//! `validate` the neutral input rules. Everything a provider
//! type adds (its connection fields, messages, how to connect) comes through [`crate::siem`].

pub mod cache;
pub mod model;
mod routes;
mod service;
pub mod store;
pub mod validate;

pub use model::{HealthStatus, Provider, ProviderStatus};
pub use routes::{directory, router};
pub use service::{ProviderError, Providers};
