//! Fault injection: lets tests make the emulated cloud slow, silent, failing, throttling or
//! garbled for chosen endpoints/tenants, to prove the client's timeouts, retries and error
//! classification.
//!
//! JSON form (used by `POST /_emulator/faults`): the kind is flattened into the fault object and
//! tagged by `"kind"`:
//! ```json
//! {"endpoint":"graph_incidents","tenant":"contoso.onmicrosoft.com","kind":"throttle","retry_after":"2.128","times":1}
//! {"kind":"delay","ms":1500}
//! {"kind":"hang","endpoint":"token"}
//! {"kind":"status","status":503,"endpoint":"log_analytics_query"}
//! {"kind":"malformed","endpoint":"graph_alerts","times":2}
//! {"kind":"oversized","bytes":40000000,"endpoint":"graph_incidents","times":1}
//! {"kind":"break_off","after_bytes":2000000,"endpoint":"log_analytics_query","times":1}
//! ```
//! `endpoint`, `tenant` and `times` may be omitted (or `null`): every endpoint, every tenant,
//! until cleared.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::{graph, log_analytics, token};

/// The emulated Azure endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /{tenant}/oauth2/v2.0/token`
    Token,
    /// `POST|GET /v1/workspaces/{workspaceId}/query`
    LogAnalyticsQuery,
    /// `GET /v1.0/security/incidents[/{id}]`
    GraphIncidents,
    /// `GET /v1.0/security/alerts_v2[/{id}]`
    GraphAlerts,
}

impl Endpoint {
    /// All endpoints, in a stable order.
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Token,
        Endpoint::LogAnalyticsQuery,
        Endpoint::GraphIncidents,
        Endpoint::GraphAlerts,
    ];

    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::LogAnalyticsQuery => "log_analytics_query",
            Endpoint::GraphIncidents => "graph_incidents",
            Endpoint::GraphAlerts => "graph_alerts",
        }
    }

    /// Which endpoint a request path belongs to (any method), `None` for other paths.
    pub fn classify(path: &str) -> Option<Endpoint> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segs.as_slice() {
            [t, "oauth2", "v2.0", "token"] if !t.is_empty() => Some(Endpoint::Token),
            ["v1", "workspaces", ws, "query"] if !ws.is_empty() => {
                Some(Endpoint::LogAnalyticsQuery)
            }
            ["v1.0", "security", "incidents"] | ["v1.0", "security", "incidents", _] => {
                Some(Endpoint::GraphIncidents)
            }
            ["v1.0", "security", "alerts_v2"] | ["v1.0", "security", "alerts_v2", _] => {
                Some(Endpoint::GraphAlerts)
            }
            _ => None,
        }
    }
}

/// One injected fault. The first active fault (in injection order) matching a request applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Only requests to this endpoint; `None` = every endpoint.
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    /// Only requests for this tenant (id or domain). For the token endpoint the tenant is the
    /// URL path segment; for Log Analytics and Graph it is the tenant of the bearer token.
    /// `None` = every tenant.
    #[serde(default)]
    pub tenant: Option<String>,
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many matching requests it affects before it expires; `None` = until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

/// What a fault does to a matching request. Serialized internally tagged by `"kind"` with
/// snake_case names (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Sleep `ms` milliseconds, then answer normally.
    Delay { ms: u64 },
    /// Accept the request and never answer. At emulator shutdown the request is released with
    /// a 503 so the server can stop; it stays recorded with status 0.
    Hang,
    /// Answer `status` with the endpoint's realistic error envelope (Entra / Log Analytics /
    /// Graph).
    Status { status: u16 },
    /// 429 with `Retry-After: <retry_after>` (verbatim, may be fractional) and the Graph 429 body.
    Throttle { retry_after: String },
    /// 200 with a JSON content type and a truncated, unparsable JSON body.
    Malformed,
    /// 200 with a valid but enormous body: an empty page followed by `bytes` of whitespace — a
    /// page of incidents whose expanded alerts and evidence run to tens of MiB (Defender
    /// incidents can hold more than 150 alerts, each with its evidence; docs/azure/
    /// real-behaviour.md S2).
    Oversized { bytes: usize },
    /// The real answer, its connection dropped after `after_bytes` bytes of its body. Large
    /// Kusto answers break off like this in real tenants: "Connection broken:
    /// ConnectionResetError" for a large result that a `limit 2` fetched fine
    /// (MicrosoftDocs/dataexplorer-docs#939), `IncompleteRead(4717565 bytes read)` while
    /// reading a streamed result (Azure/azure-kusto-python#457).
    BreakOff { after_bytes: usize },
}

impl Fault {
    /// A fault for every endpoint and tenant that lasts until cleared.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            endpoint: None,
            tenant: None,
            kind,
            times: None,
        }
    }

    /// Restricts the fault to one endpoint.
    pub fn on(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Restricts the fault to one tenant (id or domain).
    pub fn for_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Lets the fault affect only the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Whether the status (for [`FaultKind::Status`]) is a valid HTTP status code and an
    /// oversized body within [`MAX_OVERSIZED_BYTES`].
    pub fn is_valid(&self) -> bool {
        match &self.kind {
            FaultKind::Status { status } => StatusCode::from_u16(*status).is_ok(),
            FaultKind::Oversized { bytes } => *bytes <= MAX_OVERSIZED_BYTES,
            _ => true,
        }
    }
}

/// The largest body an [`FaultKind::Oversized`] fault may send.
pub const MAX_OVERSIZED_BYTES: usize = 256 * 1024 * 1024;

/// `response` cut off by a dropped connection after `after_bytes` bytes of its body.
pub(crate) async fn break_off(response: Response, after_bytes: usize) -> Response {
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, MAX_OVERSIZED_BYTES)
        .await
        .unwrap_or_default();
    let pieces = [
        Ok(body.slice(..after_bytes.min(body.len()))),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "fault: the connection dropped mid-answer",
        )),
    ];
    Response::from_parts(
        parts,
        axum::body::Body::from_stream(futures::stream::iter(pieces)),
    )
}

/// Builds the response of a non-timing fault (status, throttle, malformed).
pub(crate) fn fault_response(
    kind: &FaultKind,
    endpoint: Option<Endpoint>,
    request_headers: &HeaderMap,
    base_url: &str,
) -> Response {
    match kind {
        FaultKind::Status { status } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match endpoint {
                Some(Endpoint::Token) => token::error_for_status(status),
                Some(Endpoint::LogAnalyticsQuery) => log_analytics::error_for_status(status),
                Some(Endpoint::GraphIncidents | Endpoint::GraphAlerts) => {
                    graph::error_for_status(status, request_headers)
                }
                None => (status, status.canonical_reason().unwrap_or("")).into_response(),
            }
        }
        FaultKind::Throttle { retry_after } => graph::throttled(retry_after, request_headers),
        FaultKind::Malformed => {
            let body = match endpoint {
                Some(Endpoint::Token) => {
                    "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,\"access_tok"
                        .to_owned()
                }
                Some(Endpoint::LogAnalyticsQuery) => {
                    "{\"tables\":[{\"name\":\"PrimaryResult\",\"columns\":[{\"name\":\"ok\",\"type\":\"lo"
                        .to_owned()
                }
                Some(Endpoint::GraphAlerts) => format!(
                    "{{\"@odata.context\":\"{base_url}/v1.0/$metadata#security/alerts_v2\",\"value\":[{{\"id\":\"da6"
                ),
                _ => format!(
                    "{{\"@odata.context\":\"{base_url}/v1.0/$metadata#security/incidents\",\"value\":[{{\"id\":\"29"
                ),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                body,
            )
                .into_response()
        }
        FaultKind::Oversized { bytes } => {
            let mut body = String::with_capacity(bytes + 16);
            body.push_str("{\"value\":[]}");
            body.extend(std::iter::repeat_n(' ', *bytes));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                body,
            )
                .into_response()
        }
        // Faults that wait or need the real answer are handled by the server middleware;
        // answering 500 here is a safe default.
        FaultKind::Delay { .. } | FaultKind::Hang | FaultKind::BreakOff { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_paths() {
        assert_eq!(
            Endpoint::classify("/contoso.onmicrosoft.com/oauth2/v2.0/token"),
            Some(Endpoint::Token)
        );
        assert_eq!(
            Endpoint::classify("/v1/workspaces/abc/query"),
            Some(Endpoint::LogAnalyticsQuery)
        );
        assert_eq!(
            Endpoint::classify("/v1.0/security/incidents"),
            Some(Endpoint::GraphIncidents)
        );
        assert_eq!(
            Endpoint::classify("/v1.0/security/incidents/12"),
            Some(Endpoint::GraphIncidents)
        );
        assert_eq!(
            Endpoint::classify("/v1.0/security/alerts_v2"),
            Some(Endpoint::GraphAlerts)
        );
        assert_eq!(Endpoint::classify("/_emulator/faults"), None);
        assert_eq!(Endpoint::classify("/"), None);
    }

    #[test]
    fn fault_json_is_flat_and_tagged() -> Result<(), serde_json::Error> {
        let f = Fault::new(FaultKind::Throttle {
            retry_after: "2.128".into(),
        })
        .on(Endpoint::GraphIncidents)
        .times(1);
        let v = serde_json::to_value(&f)?;
        assert_eq!(
            v,
            serde_json::json!({"endpoint":"graph_incidents","tenant":null,"kind":"throttle","retry_after":"2.128","times":1})
        );
        let back: Fault = serde_json::from_value(v)?;
        assert_eq!(back, f);
        let minimal: Fault = serde_json::from_str(r#"{"kind":"hang"}"#)?;
        assert_eq!(minimal, Fault::new(FaultKind::Hang));
        let status: Fault = serde_json::from_str(r#"{"kind":"status","status":503,"tenant":"t"}"#)?;
        assert_eq!(status.kind, FaultKind::Status { status: 503 });
        assert_eq!(status.tenant.as_deref(), Some("t"));
        Ok(())
    }
}
