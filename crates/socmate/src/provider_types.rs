//! The provider types this build supports: the one place that names them. A new type (Splunk,
//! Elastic, …) is a module implementing [`crate::siem::ProviderKind`], a line in [`registry`],
//! its settings in [`ProviderTypeArgs`] (a table of their own in the configuration file), and a
//! migration pair if it needs tables of its own.

use std::sync::Arc;

use crate::sentinel::Sentinel;
use crate::sentinel::settings::{self, SentinelArgs};
use crate::siem::Registry;

/// Each provider type's settings, under its own heading in `--help` and its own table in the
/// configuration file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProviderTypeArgs {
    #[command(
        flatten,
        next_help_heading = "Microsoft Sentinel ([sentinel] in the config file)"
    )]
    pub sentinel: SentinelArgs,
}

/// Configuration-file keys the provider types have moved, with their new place.
pub const MOVED_KEYS: &[(&str, &str)] = settings::MOVED_KEYS;

pub fn registry(settings: &ProviderTypeArgs) -> Result<Registry, reqwest::Error> {
    Ok(Registry::default().with(Arc::new(Sentinel::new(settings.sentinel.endpoints())?)))
}
