//! Sentinel's settings: where the three Azure services are reached. Flags and `SOCMATE_AZURE_*`
//! variables, or the `[sentinel]` table of the configuration file; unset, each provider's cloud
//! decides. They move requests only: token scopes stay the cloud's resource ids.

use url::Url;

use super::cloud::{EndpointError, EndpointOverrides, parse_endpoint};

/// Keys an earlier version read at the top level of the configuration file, and their place now.
pub const MOVED_KEYS: &[(&str, &str)] = &[
    ("azure_authority_host", "authority_host in [sentinel]"),
    (
        "azure_log_analytics_endpoint",
        "log_analytics_endpoint in [sentinel]",
    ),
    ("azure_graph_endpoint", "graph_endpoint in [sentinel]"),
];

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

#[cfg(test)]
mod tests {
    use crate::config::entries;
    use crate::config::tests::serve;

    #[test]
    fn the_sentinel_table_of_the_file() {
        let got = entries(
            "[sentinel]\ngraph_endpoint = \"http://127.0.0.1:4000\"\n",
            &serve(),
        )
        .unwrap();
        assert_eq!(
            got,
            [(
                "sentinel.graph_endpoint".to_owned(),
                "http://127.0.0.1:4000".to_owned()
            )]
        );
        let insecure = entries(
            "[sentinel]\ngraph_endpoint = \"http://graph.example.com\"",
            &serve(),
        )
        .unwrap_err();
        assert!(insecure.contains("https"), "{insecure}");
        let moved = entries("azure_graph_endpoint = \"https://x\"", &serve()).unwrap_err();
        assert!(moved.contains("graph_endpoint in [sentinel]"), "{moved}");
        assert!(
            crate::config::Settings::defaults()
                .provider_types
                .sentinel
                .authority_host
                .is_none()
        );
    }
}
