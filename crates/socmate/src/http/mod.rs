//! Web plumbing shared by every capability: the problem+json error type and extractors that
//! turn malformed input into those errors instead of axum's plain-text rejections.

pub mod client_addr;
mod error;
mod extract;
pub mod page;
pub mod server;

pub(crate) use error::Problem;
pub use error::{ApiError, FieldError};
pub use extract::{AppJson, AppQuery};
