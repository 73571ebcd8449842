//! The provider types this build supports: the one place that names them. A new type (Splunk,
//! Elastic, …) is a module implementing [`crate::siem::ProviderKind`], one line here, its
//! settings beside Sentinel's in `config`, and a migration pair if it needs tables of its own.

use std::sync::Arc;

use crate::sentinel::Sentinel;
use crate::sentinel::cloud::EndpointOverrides;
use crate::siem::Registry;

pub fn registry(sentinel: &EndpointOverrides) -> Result<Registry, reqwest::Error> {
    Ok(Registry::default().with(Arc::new(Sentinel::new(sentinel.clone())?)))
}
