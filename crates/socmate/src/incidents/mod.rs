//! Incident sync from the providers' SIEMs into the local store, and the incidents API.
//!
//! `sync` runs the engine and the scheduler, `store` holds incidents, alerts, sync state and
//! leases, `routes` serves `/api/incidents` and the admin sync trigger and status. Each provider
//! type maps its SIEM's records into [`crate::siem::Incident`]s.

mod routes;
pub mod store;
pub mod sync;

pub use routes::{admin_routes, router};
pub use sync::{IncidentSync, RunOutcome, SyncError, SyncSettings};
