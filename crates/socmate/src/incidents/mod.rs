//! Incident sync from Microsoft Graph into the local store, and the incidents API.
//!
//! `sync` runs the engine and the scheduler, `store` holds incidents, alerts, sync state and
//! leases, `model` maps Graph's records, `routes` serves `/api/incidents` and the admin sync
//! trigger and status.

pub mod model;
mod routes;
pub mod store;
pub mod sync;

pub use routes::{admin_routes, router};
pub use sync::{IncidentSync, RunOutcome, SyncSettings};
