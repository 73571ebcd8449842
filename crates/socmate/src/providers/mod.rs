//! SIEM provider management: the seed's API (`/api/admin/siem-providers`).
//!
//! `service` holds the logic as plain async functions (tests call them directly), `routes` the
//! thin HTTP handlers, `store` the SQL, `validate` the input rules.

pub mod model;
mod routes;
mod service;
pub mod store;
pub mod validate;

pub use model::{HealthStatus, Provider, ProviderStatus, ProviderType};
pub use routes::router;
pub use service::{ProviderError, Providers};
