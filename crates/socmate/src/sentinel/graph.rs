//! Reading incidents (with their alerts) from the Microsoft Graph security API, page by page.
//!
//! `@odata.nextLink` is followed only when it points at the configured Graph endpoint: a link to
//! any other origin could carry the bearer token elsewhere.

use reqwest::StatusCode;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::SentinelConnection;
use super::cloud::join_segments;
use super::diagnose;
use super::incidents::map_incident;
use super::outbound::{ErrorEnvelope, SendError, read_body_limited, retry_after, send};
use super::token::{Freshness, TokenError};
use crate::siem::{FetchError, IncidentPage, PageRequest};

/// Graph's maximum page size for incidents.
pub const PAGE_SIZE: u32 = 50;
/// One page of 50 incidents with alerts is far below this.
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Deserialize)]
struct GraphPage {
    value: Vec<serde_json::Value>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

impl SentinelConnection {
    pub(super) async fn fetch_incident_page(
        &self,
        request: PageRequest,
        deadline: Instant,
    ) -> Result<IncidentPage, FetchError> {
        let url = match &request {
            PageRequest::First { updated_since } => {
                let mut url =
                    join_segments(&self.endpoints.graph, &["v1.0", "security", "incidents"]);
                url.query_pairs_mut()
                    .append_pair("$filter", &format!("lastUpdateDateTime ge {updated_since}"))
                    .append_pair("$top", &PAGE_SIZE.to_string())
                    .append_pair("$expand", "alerts");
                url
            }
            PageRequest::Next(link) => self.checked_next_link(link)?,
        };
        let token = self
            .token(
                &self.endpoints.graph_scope.clone(),
                Freshness::Cached,
                deadline,
            )
            .await
            .map_err(|e| self.fetch_token_error(&e))?;
        let response = send(
            self.sentinel
                .http
                .get(url)
                .bearer_auth(token.expose_secret())
                .header("Prefer", "include-unknown-enum-members"),
            deadline,
        )
        .await
        .map_err(send_error)?;
        let status = response.status();
        let retry = retry_after(&response);
        let body = match read_body_limited(response, deadline, MAX_PAGE_BYTES)
            .await
            .map_err(send_error)?
        {
            Ok(body) => body,
            Err(size) => {
                return Err(FetchError::Unreadable(format!(
                    "a Graph page of more than {size} bytes"
                )));
            }
        };
        match status {
            StatusCode::OK => {
                let page: GraphPage = serde_json::from_slice(&body).map_err(|e| {
                    FetchError::Unreadable(format!(
                        "a Graph page that is not an incident list: {e}"
                    ))
                })?;
                let mut mapped = IncidentPage {
                    next: page.next_link,
                    ..IncidentPage::default()
                };
                for record in &page.value {
                    match map_incident(record, &self.credentials.tenant_id) {
                        Ok(incident) => mapped.incidents.push(incident),
                        Err(e) => mapped.skipped.push(e.to_string()),
                    }
                }
                Ok(mapped)
            }
            StatusCode::TOO_MANY_REQUESTS => Err(FetchError::Throttled { retry_after: retry }),
            StatusCode::UNAUTHORIZED => {
                // A revoked token: drop it so the next attempt fetches a new one.
                self.sentinel
                    .forget_credentials(&self.credentials.tenant_id, &self.credentials.client_id);
                Err(FetchError::Server {
                    status: 401,
                    retry_after: retry,
                })
            }
            s if s.is_server_error() => Err(FetchError::Server {
                status: s.as_u16(),
                retry_after: retry,
            }),
            s => {
                // The token carries the app's roles as granted when it was issued: after a 403,
                // a new token is the only way to see consent granted since (Microsoft Q&A 141122;
                // docs/azure/real-behaviour.md C6).
                if s == StatusCode::FORBIDDEN {
                    self.sentinel.forget_credentials(
                        &self.credentials.tenant_id,
                        &self.credentials.client_id,
                    );
                }
                let envelope = ErrorEnvelope::parse(&body);
                let d = diagnose::graph_failure(
                    s.as_u16(),
                    &envelope,
                    "SecurityIncident.Read.All and SecurityAlert.Read.All",
                );
                tracing::warn!(
                    http_status = s.as_u16(),
                    code = d.code,
                    correlation_id = envelope.trace_id().unwrap_or(""),
                    "Graph refused the incident request"
                );
                Err(FetchError::Denied {
                    code: d.code,
                    hint: d.hint,
                })
            }
        }
    }

    fn checked_next_link(&self, link: &str) -> Result<Url, FetchError> {
        let url = Url::parse(link)
            .map_err(|_| FetchError::Unreadable("an @odata.nextLink that is not a URL".into()))?;
        let graph = &self.endpoints.graph;
        if url.origin() != graph.origin() {
            return Err(FetchError::Unreadable(format!(
                "an @odata.nextLink to {} instead of the configured Graph endpoint; refused",
                url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    fn fetch_token_error(&self, error: &TokenError) -> FetchError {
        match error {
            TokenError::Send(e) => send_error(e.clone()),
            TokenError::UnexpectedResponse { status } => FetchError::Server {
                status: *status,
                retry_after: None,
            },
            other => {
                let d = diagnose::token_failure(
                    other,
                    &self.credentials.tenant_id,
                    &self.credentials.client_id,
                    "Entra ID",
                    0.0,
                );
                FetchError::Denied {
                    code: d.code,
                    hint: d.hint,
                }
            }
        }
    }
}

fn send_error(error: SendError) -> FetchError {
    match error {
        SendError::Timeout => FetchError::Timeout,
        SendError::Unreachable(cause) => FetchError::Unavailable(cause),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use crate::sentinel::cloud::{AzureCloud, EndpointOverrides, parse_endpoint};
    use crate::sentinel::{Sentinel, SentinelCredentials};

    #[test]
    fn next_links_are_followed_only_to_the_configured_graph_origin() {
        let overrides = EndpointOverrides {
            graph: Some(parse_endpoint("graph", "http://127.0.0.1:4000").unwrap()),
            ..Default::default()
        };
        let sentinel = Sentinel::new(overrides).unwrap();
        let connection = sentinel.connect_with(SentinelCredentials {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: SecretString::from("s".to_owned()),
            workspace_id: "w".into(),
            cloud: AzureCloud::AzurePublic,
        });
        assert!(
            connection
                .checked_next_link("http://127.0.0.1:4000/v1.0/security/incidents?$skip=50")
                .is_ok()
        );
        for foreign in [
            "http://127.0.0.2:4000/v1.0/security/incidents?$skip=50",
            "http://127.0.0.1:4001/v1.0/security/incidents",
            "https://127.0.0.1:4000/v1.0/security/incidents",
            "http://evil.example/v1.0/security/incidents",
            "not a url",
        ] {
            assert!(connection.checked_next_link(foreign).is_err(), "{foreign}");
        }
    }
}
