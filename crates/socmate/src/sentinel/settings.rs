//! Sentinel's settings: where the three Azure services are reached. Flags and `SOCMATE_AZURE_*`
//! variables, or the `[sentinel]` table of the configuration file; unset, each provider's cloud
//! decides. They move requests only: token scopes stay the cloud's resource ids.

use url::Url;

use super::cloud::{EndpointError, EndpointOverrides, parse_endpoint};

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SentinelArgs {
    /// Entra ID authority host, e.g. https://login.microsoftonline.com [default: the provider's
    /// cloud].
    #[arg(id = "sentinel.authority_host", long = "azure-authority-host", value_name = "URL", env = "SOCMATE_AZURE_AUTHORITY_HOST", value_parser = endpoint)]
    pub authority_host: Option<Url>,
    /// Log Analytics query endpoint (the host root; SoCMate appends /v1/...) [default: the
    /// provider's cloud].
    #[arg(id = "sentinel.log_analytics_endpoint", long = "azure-log-analytics-endpoint", value_name = "URL", env = "SOCMATE_AZURE_LOG_ANALYTICS_ENDPOINT", value_parser = endpoint)]
    pub log_analytics_endpoint: Option<Url>,
    /// Microsoft Graph endpoint (the host root; SoCMate appends /v1.0/...) [default: the
    /// provider's cloud].
    #[arg(id = "sentinel.graph_endpoint", long = "azure-graph-endpoint", value_name = "URL", env = "SOCMATE_AZURE_GRAPH_ENDPOINT", value_parser = endpoint)]
    pub graph_endpoint: Option<Url>,
}

impl SentinelArgs {
    pub fn endpoints(&self) -> EndpointOverrides {
        EndpointOverrides {
            authority_host: self.authority_host.clone(),
            log_analytics: self.log_analytics_endpoint.clone(),
            graph: self.graph_endpoint.clone(),
        }
    }
}

fn endpoint(value: &str) -> Result<Url, EndpointError> {
    parse_endpoint("the endpoint", value)
}
