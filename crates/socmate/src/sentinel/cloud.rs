//! Azure clouds and where their endpoints live (docs/azure/wire-formats.md §0; Microsoft Graph's
//! `concepts/deployments.md`: GCC (moderate) tenants keep the worldwide endpoints, GCC High uses
//! `graph.microsoft.us`, DoD `dod-graph.microsoft.us`, and tokens are not interchangeable between
//! deployments; the security incidents and alerts_v2 pages' national-cloud table marks China
//! (21Vianet) as not available).
//!
//! Hosts come from this fixed table (or from the operator's `SOCMATE_AZURE_*` overrides, read
//! once at start-up), never from request input: tenant and workspace ids only ever become
//! escaped path segments, so no provider field can redirect an outbound call.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum AzureCloud {
    /// The worldwide cloud; also GCC (moderate) tenants.
    #[default]
    AzurePublic,
    /// US Government L4 (GCC High).
    AzureUSGovernment,
    /// US Government L5 (DoD): its own Graph deployment and token audience.
    AzureUSGovernmentDoD,
    /// Azure China (21Vianet): no Graph security incidents or alerts.
    AzureChinaCloud,
}

impl AzureCloud {
    pub const ALL: [Self; 4] = [
        Self::AzurePublic,
        Self::AzureUSGovernment,
        Self::AzureUSGovernmentDoD,
        Self::AzureChinaCloud,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AzurePublic => "AzurePublic",
            Self::AzureUSGovernment => "AzureUSGovernment",
            Self::AzureUSGovernmentDoD => "AzureUSGovernmentDoD",
            Self::AzureChinaCloud => "AzureChinaCloud",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// How the console names the cloud.
    pub fn label(self) -> &'static str {
        match self {
            Self::AzurePublic => "Azure (public)",
            Self::AzureUSGovernment => "Azure US Government (GCC High)",
            Self::AzureUSGovernmentDoD => "Azure US Government DoD",
            Self::AzureChinaCloud => "Azure China (21Vianet)",
        }
    }

    /// What an admin should know when choosing the cloud.
    pub fn hint(self) -> Option<&'static str> {
        match self {
            Self::AzurePublic => {
                Some("Also for GCC (moderate) tenants, which use the worldwide endpoints.")
            }
            Self::AzureUSGovernment => None,
            Self::AzureUSGovernmentDoD => {
                Some("DoD tenants have their own Microsoft Graph (dod-graph.microsoft.us).")
            }
            Self::AzureChinaCloud => Some(
                "Microsoft Graph offers no security incidents or alerts here: incidents come from the workspace's own tables.",
            ),
        }
    }

    /// Whether Microsoft Graph serves security incidents and alerts_v2 in this cloud.
    pub fn has_graph_security(self) -> bool {
        self != Self::AzureChinaCloud
    }

    fn authority_host(self) -> &'static str {
        match self {
            Self::AzurePublic => "https://login.microsoftonline.com",
            Self::AzureUSGovernment | Self::AzureUSGovernmentDoD => {
                "https://login.microsoftonline.us"
            }
            Self::AzureChinaCloud => "https://login.chinacloudapi.cn",
        }
    }

    /// The Log Analytics resource; also its default query endpoint.
    pub fn log_analytics_resource(self) -> &'static str {
        match self {
            Self::AzurePublic => "https://api.loganalytics.io",
            Self::AzureUSGovernment | Self::AzureUSGovernmentDoD => "https://api.loganalytics.us",
            Self::AzureChinaCloud => "https://api.loganalytics.azure.cn",
        }
    }

    /// The Microsoft Graph resource; also its default endpoint.
    pub fn graph_resource(self) -> &'static str {
        match self {
            Self::AzurePublic => "https://graph.microsoft.com",
            Self::AzureUSGovernment => "https://graph.microsoft.us",
            Self::AzureUSGovernmentDoD => "https://dod-graph.microsoft.us",
            Self::AzureChinaCloud => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

/// Operator overrides for the three Azure endpoints (tests point them at the emulator).
#[derive(Debug, Clone, Default)]
pub struct EndpointOverrides {
    pub authority_host: Option<Url>,
    pub log_analytics: Option<Url>,
    pub graph: Option<Url>,
}

/// The resolved endpoints of one provider.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authority_host: Url,
    pub log_analytics: Url,
    pub graph: Url,
    pub log_analytics_scope: String,
    pub graph_scope: String,
}

impl EndpointOverrides {
    pub fn resolve(&self, cloud: AzureCloud) -> Endpoints {
        let pick = |over: &Option<Url>, default: &str| {
            over.clone()
                // The defaults are literals in this file, checked by a unit test.
                .unwrap_or_else(|| Url::parse(default).unwrap_or_else(|_| unreachable!()))
        };
        // Overrides change where requests go, never which resource a token is for.
        Endpoints {
            authority_host: pick(&self.authority_host, cloud.authority_host()),
            log_analytics: pick(&self.log_analytics, cloud.log_analytics_resource()),
            graph: pick(&self.graph, cloud.graph_resource()),
            log_analytics_scope: format!("{}/.default", cloud.log_analytics_resource()),
            graph_scope: format!("{}/.default", cloud.graph_resource()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("{name} is not a URL: {value}")]
    NotAUrl { name: &'static str, value: String },
    #[error("{name} must use https (plain http is allowed for loopback addresses only): {value}")]
    InsecureScheme { name: &'static str, value: String },
    #[error("{name} must be a bare endpoint without credentials, query or fragment: {value}")]
    NotBare { name: &'static str, value: String },
}

/// Validates an endpoint override: https anywhere, http only on loopback.
pub fn parse_endpoint(name: &'static str, value: &str) -> Result<Url, EndpointError> {
    let url = Url::parse(value).map_err(|_| EndpointError::NotAUrl {
        name,
        value: value.to_owned(),
    })?;
    if url.cannot_be_a_base()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(EndpointError::NotBare {
            name,
            value: value.to_owned(),
        });
    }
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(EndpointError::InsecureScheme {
            name,
            value: value.to_owned(),
        }),
    }
}

/// Everything but RFC 3986's unreserved characters is escaped in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `base` with `segments` appended, each percent-escaped as exactly one path segment: `/`, `?`,
/// `#`, `%`, `@`, controls (CR/LF/tab included, which URL parsers would otherwise drop) and
/// non-ASCII are escaped, so every segment decodes back to itself. `.` and `..` are escaped twice
/// (`%252E`): a normaliser that decodes `%2E` would still never see a dot segment.
pub fn join_segments(base: &Url, segments: &[&str]) -> Url {
    let mut path = base.path().trim_end_matches('/').to_owned();
    for segment in segments {
        path.push('/');
        match *segment {
            "." => path.push_str("%252E"),
            ".." => path.push_str("%252E%252E"),
            other => path.extend(utf8_percent_encode(other, SEGMENT)),
        }
    }
    let mut url = base.clone();
    url.set_path(&path);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_for_every_cloud() {
        for cloud in AzureCloud::ALL {
            for host in [
                cloud.authority_host(),
                cloud.log_analytics_resource(),
                cloud.graph_resource(),
            ] {
                assert!(parse_endpoint("x", host).is_ok(), "{host}");
            }
            assert_eq!(AzureCloud::parse(cloud.as_str()), Some(cloud));
        }
    }

    #[test]
    fn overrides_move_requests_but_keep_scopes() {
        let overrides = EndpointOverrides {
            log_analytics: Some(parse_endpoint("x", "http://127.0.0.1:9/").unwrap()),
            ..Default::default()
        };
        let e = overrides.resolve(AzureCloud::AzurePublic);
        assert_eq!(e.log_analytics.as_str(), "http://127.0.0.1:9/");
        assert_eq!(
            e.log_analytics_scope,
            "https://api.loganalytics.io/.default"
        );
        assert_eq!(e.graph_scope, "https://graph.microsoft.com/.default");
        let gov = EndpointOverrides::default().resolve(AzureCloud::AzureUSGovernment);
        assert_eq!(
            gov.authority_host.as_str(),
            "https://login.microsoftonline.us/"
        );
        assert_eq!(gov.graph_scope, "https://graph.microsoft.us/.default");
        let dod = EndpointOverrides::default().resolve(AzureCloud::AzureUSGovernmentDoD);
        assert_eq!(dod.graph.as_str(), "https://dod-graph.microsoft.us/");
        assert_eq!(dod.graph_scope, "https://dod-graph.microsoft.us/.default");
        assert_eq!(
            dod.authority_host.as_str(),
            "https://login.microsoftonline.us/"
        );
        assert!(!AzureCloud::AzureChinaCloud.has_graph_security());
    }

    #[test]
    fn plain_http_only_on_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://[::1]:1",
            "http://localhost:3000",
            "https://example.com",
        ] {
            assert!(parse_endpoint("x", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://example.com",
            "ftp://127.0.0.1",
            "https://user:pw@example.com",
            "https://example.com/?a=b",
            "not a url",
        ] {
            assert!(parse_endpoint("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostile_segments_stay_inside_their_segment() {
        let base = Url::parse("https://login.microsoftonline.com").unwrap();
        for hostile in [
            "..",
            ".",
            "../../evil",
            "a/b",
            "x?y=1",
            "x#frag",
            "%2F",
            "@evil.com",
            "a\r\nb",
            "ünï",
            &"a".repeat(10_000),
        ] {
            let url = join_segments(&base, &[hostile, "oauth2", "v2.0", "token"]);
            assert_eq!(
                url.host_str(),
                Some("login.microsoftonline.com"),
                "{hostile}"
            );
            assert_eq!(url.query(), None, "{hostile}");
            assert_eq!(url.fragment(), None, "{hostile}");
            let segments: Vec<_> = url.path_segments().unwrap().collect();
            assert_eq!(segments.len(), 4, "{hostile}: {url}");
            assert_eq!(&segments[1..], ["oauth2", "v2.0", "token"]);
        }
    }
}
