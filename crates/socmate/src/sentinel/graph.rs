//! Reading the tenant's incidents (with their alerts) from the Microsoft Graph security API, in a
//! way that large tenants do not stall.
//!
//! - **Slices, never one deep listing.** A window is read as slices
//!   `lastUpdateDateTime ge A and lastUpdateDateTime lt B`, each asked for its size with
//!   `$count=true` (documented for `GET /security/incidents`). A slice larger than
//!   [`MAX_SLICE_INCIDENTS`] is split before its listing goes deep: Graph's security API documents
//!   a `$skip` limit of 500 (`security-error-codes.md`) and was seen to stop returning
//!   `@odata.nextLink` past an offset (elastic/integrations#20234). A slice whose listing ends
//!   before its count is read again, then split; a slice of one second still short is reported
//!   incomplete — never as a success.
//! - **Fallbacks for heavy pages.** On a large tenant `$expand=alerts` answered HTTP 500 every
//!   time (elastic/integrations#18144), and a page of 50 incidents with thousands of alerts can
//!   exceed what SoCMate reads. A slice whose expanded pages keep failing is read again with a
//!   smaller `$top`, then without `$expand`; each incident's alerts then come from
//!   `GET /security/incidents/{id}?$expand=alerts`, and for an incident that fails even alone,
//!   from `alerts_v2` (which cannot be filtered by `incidentId`: its documented filters are
//!   assignedTo, classification, determination, createdDateTime, lastUpdateDateTime, severity,
//!   serviceSource and status), scanned by creation time around the incident.
//! - `@odata.nextLink` is followed only to the configured Graph origin, and never with userinfo:
//!   a link anywhere else could carry the bearer token there.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use reqwest::StatusCode;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::SentinelConnection;
use super::cloud::join_segments;
use super::diagnose;
use super::incidents::{map_alert, map_incident};
use super::outbound::{ErrorEnvelope, SendError, read_body_limited, retry_after, send};
use super::token::{Freshness, TokenError};
use crate::siem::retry::{MAX_ATTEMPTS, with_attempts};
use crate::siem::{FetchError, Incident, IncidentSink, ReadReport, SyncWindow};

/// Graph's maximum page size for incidents.
pub const PAGE_SIZE: u32 = 50;
/// The page size tried when expanded pages of [`PAGE_SIZE`] keep failing.
const SMALL_PAGE_SIZE: u32 = 10;
/// A slice larger than this is split before it is read, keeping every `$skip` below 500.
pub const MAX_SLICE_INCIDENTS: u64 = 450;
/// The narrowest slice; one still short of its count is reported incomplete.
const MIN_SLICE: TimeDelta = TimeDelta::seconds(1);
/// One page of 50 incidents with alerts is usually far below this; above it, a page is "heavy".
const MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;
/// A page request never waits longer than this for Graph.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How far before an incident's creation its alerts are looked for in `alerts_v2`.
const ALERT_LOOKBACK: TimeDelta = TimeDelta::days(30);
/// `alerts_v2` page size for that scan (elastic/integrations#20348 lowered 2000 to 1000).
const ALERT_PAGE_SIZE: u32 = 1000;
/// Pages of `alerts_v2` scanned for one incident before giving up on its alerts.
const MAX_ALERT_PAGES: usize = 20;
/// Tries of a failing expanded page before a lighter way of reading is tried instead.
const ATTEMPTS_BEFORE_LIGHTER: u32 = 2;

#[derive(Deserialize)]
struct GraphPage {
    #[serde(default)]
    value: Vec<Value>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.count")]
    count: Option<u64>,
}

/// How a slice's pages are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Expanded {
        top: u32,
    },
    /// Incidents without `$expand`; alerts fetched per incident.
    Plain,
}

impl Mode {
    /// The next, lighter way to read, if any.
    fn lighter(self) -> Option<Mode> {
        match self {
            Mode::Expanded { top } if top > SMALL_PAGE_SIZE => Some(Mode::Expanded {
                top: SMALL_PAGE_SIZE,
            }),
            Mode::Expanded { .. } => Some(Mode::Plain),
            Mode::Plain => None,
        }
    }
}

enum SliceOutcome {
    Read,
    /// Larger than a slice may be, or short of its count: read it as two halves.
    Split(&'static str),
    /// Its listing ended before its count, in a slice that cannot be split.
    Short {
        expected: u64,
        read: u64,
    },
}

struct Slice {
    from: DateTime<Utc>,
    /// `None`: open-ended, so an update stamped ahead of SoCMate's clock is not left out.
    to: Option<DateTime<Utc>>,
    /// Where the slice nominally ends, for splitting it.
    end: DateTime<Utc>,
    /// Already read once and found short.
    reread: bool,
}

impl Slice {
    fn splittable(&self) -> bool {
        self.end - self.from > MIN_SLICE
    }

    fn halves(&self) -> [Slice; 2] {
        let middle = self.from + (self.end - self.from) / 2;
        [
            Slice {
                from: self.from,
                to: Some(middle),
                end: middle,
                reread: false,
            },
            Slice {
                from: middle,
                to: self.to,
                end: self.end,
                reread: false,
            },
        ]
    }

    fn filter(&self) -> String {
        let from = format!("lastUpdateDateTime ge {}", odata_time(self.from));
        match self.to {
            Some(to) => format!("{from} and lastUpdateDateTime lt {}", odata_time(to)),
            None => from,
        }
    }
}

impl SentinelConnection {
    pub(super) async fn read_graph_incidents(
        &self,
        window: SyncWindow,
        sink: &mut dyn IncidentSink,
    ) -> Result<ReadReport, FetchError> {
        let mut report = ReadReport::default();
        let mut mode = Mode::Expanded { top: PAGE_SIZE };
        let mut slices = vec![Slice {
            from: window.since,
            to: None,
            end: window.until,
            reread: false,
        }];
        let mut split_noted = false;
        while let Some(slice) = slices.pop() {
            let outcome = loop {
                match self.read_slice(&slice, mode, window.deadline, sink).await {
                    Err(e) if heavy(&e) => match mode.lighter() {
                        Some(lighter) => {
                            sink.note(format!(
                                "Graph failed pages of incidents with $expand=alerts ({e}); read \
                                 {}",
                                match lighter {
                                    Mode::Expanded { top } => format!("{top} incidents a page"),
                                    Mode::Plain => "incidents without $expand and their alerts \
                                                    one incident at a time"
                                        .to_owned(),
                                }
                            ));
                            mode = lighter;
                        }
                        None => break Err(e),
                    },
                    other => break other,
                }
            }?;
            match outcome {
                SliceOutcome::Read => {}
                SliceOutcome::Split(why) => {
                    if !split_noted {
                        sink.note(format!("split the window into time slices: {why}"));
                        split_noted = true;
                    }
                    let [first, second] = slice.halves();
                    slices.push(second);
                    slices.push(first);
                }
                SliceOutcome::Short { expected, read } if !slice.reread => {
                    tracing::info!(
                        expected,
                        read,
                        "a Graph slice ended short; reading it again"
                    );
                    slices.push(Slice {
                        reread: true,
                        ..slice
                    });
                }
                SliceOutcome::Short { expected, read } => report.incomplete.push(format!(
                    "Graph listed {read} of the {expected} incidents it counted for {}",
                    slice.filter()
                )),
            }
        }
        Ok(report)
    }

    /// Reads one slice into the sink.
    async fn read_slice(
        &self,
        slice: &Slice,
        mode: Mode,
        deadline: Instant,
        sink: &mut dyn IncidentSink,
    ) -> Result<SliceOutcome, FetchError> {
        let mut url = join_segments(&self.endpoints.graph, &["v1.0", "security", "incidents"]);
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("$filter", &slice.filter())
                .append_pair("$count", "true");
            match mode {
                Mode::Expanded { top } => {
                    query
                        .append_pair("$top", &top.to_string())
                        .append_pair("$expand", "alerts");
                }
                Mode::Plain => {
                    query.append_pair("$top", &PAGE_SIZE.to_string());
                }
            }
        }
        let mut expected = None;
        let mut read = 0u64;
        let attempts = if mode.lighter().is_some() {
            ATTEMPTS_BEFORE_LIGHTER
        } else {
            MAX_ATTEMPTS
        };
        let attempts = move |e: &FetchError| if heavy(e) { attempts } else { MAX_ATTEMPTS };
        let mut page = self.page_with_attempts(url, &attempts, deadline).await?;
        loop {
            let count = page.count.unwrap_or(0);
            if expected.is_none() {
                if count > MAX_SLICE_INCIDENTS && slice.splittable() {
                    return Ok(SliceOutcome::Split(
                        "a slice held more incidents than Graph lists deeply",
                    ));
                }
                expected = Some(count);
            }
            read += page.value.len() as u64;
            let mut batch = Vec::with_capacity(page.value.len());
            for record in &page.value {
                match map_incident(record, &self.credentials.tenant_id) {
                    Ok(incident) => batch.push(incident),
                    Err(e) => sink.skip(e.to_string()),
                }
            }
            if mode == Mode::Plain {
                self.add_alerts(&mut batch, deadline, sink).await?;
            }
            let next = page
                .next_link
                .map(|link| self.checked_next_link(&link))
                .transpose()?;
            // The next page downloads while this one is written.
            let fetch_next = async {
                match next {
                    Some(url) => self
                        .page_with_attempts(url, &attempts, deadline)
                        .await
                        .map(Some),
                    None => Ok(None),
                }
            };
            let (written, fetched) = tokio::join!(sink.put(batch), fetch_next);
            written?;
            match fetched? {
                Some(next_page) => page = next_page,
                None => break,
            }
        }
        match expected {
            Some(expected) if read < expected => {
                if slice.reread && slice.splittable() {
                    Ok(SliceOutcome::Split("a listing stopped before its count"))
                } else {
                    Ok(SliceOutcome::Short { expected, read })
                }
            }
            _ => Ok(SliceOutcome::Read),
        }
    }

    /// Fills in the alerts of incidents read without `$expand`.
    async fn add_alerts(
        &self,
        incidents: &mut [Incident],
        deadline: Instant,
        sink: &mut dyn IncidentSink,
    ) -> Result<(), FetchError> {
        for incident in incidents.iter_mut() {
            let id = incident.external_id.clone();
            let mut url = join_segments(
                &self.endpoints.graph,
                &["v1.0", "security", "incidents", &id],
            );
            url.query_pairs_mut().append_pair("$expand", "alerts");
            let lighter_after = |e: &FetchError| {
                if heavy(e) {
                    ATTEMPTS_BEFORE_LIGHTER
                } else {
                    MAX_ATTEMPTS
                }
            };
            let alone = with_attempts(lighter_after, deadline, || {
                self.fetch_json(url.clone(), deadline)
            })
            .await;
            let alerts = match alone {
                Ok(record) => record
                    .get("alerts")
                    .and_then(Value::as_array)
                    .map(|alerts| alerts.iter().filter_map(map_alert).collect())
                    .unwrap_or_default(),
                Err(e) if heavy(&e) => {
                    sink.note(format!(
                        "incident {id}: Graph failed it even alone with $expand=alerts ({e}); its \
                         alerts were read from alerts_v2"
                    ));
                    self.scan_alerts_of(incident, deadline).await?
                }
                Err(e) => return Err(e),
            };
            incident.alerts = alerts;
            super::incidents::label_sources(incident);
        }
        Ok(())
    }

    /// The alerts of one incident from `alerts_v2`, scanned by creation time around it.
    async fn scan_alerts_of(
        &self,
        incident: &Incident,
        deadline: Instant,
    ) -> Result<Vec<crate::siem::Alert>, FetchError> {
        let created = incident.created.unwrap_or(incident.last_update);
        let mut url = join_segments(&self.endpoints.graph, &["v1.0", "security", "alerts_v2"]);
        url.query_pairs_mut()
            .append_pair(
                "$filter",
                &format!(
                    "createdDateTime ge {} and createdDateTime le {}",
                    odata_time(created - ALERT_LOOKBACK),
                    odata_time(incident.last_update)
                ),
            )
            .append_pair("$top", &ALERT_PAGE_SIZE.to_string());
        let mut alerts = Vec::new();
        let mut next = Some(url);
        for _ in 0..MAX_ALERT_PAGES {
            let Some(url) = next.take() else {
                return Ok(alerts);
            };
            let page = self
                .page_with_attempts(url, &|_| MAX_ATTEMPTS, deadline)
                .await?;
            alerts.extend(
                page.value
                    .iter()
                    .filter(|a| incident_id(a).as_deref() == Some(incident.external_id.as_str()))
                    .filter_map(map_alert),
            );
            next = page
                .next_link
                .map(|link| self.checked_next_link(&link))
                .transpose()?;
        }
        Err(FetchError::Unreadable(format!(
            "the alerts of incident {} are spread over more than {MAX_ALERT_PAGES} pages of alerts_v2",
            incident.external_id
        )))
    }

    async fn page_with_attempts(
        &self,
        url: Url,
        attempts: &(dyn Fn(&FetchError) -> u32 + Sync),
        deadline: Instant,
    ) -> Result<GraphPage, FetchError> {
        let body = with_attempts(attempts, deadline, || {
            self.fetch_json(url.clone(), deadline)
        })
        .await?;
        serde_json::from_value(body)
            .map_err(|e| FetchError::Unreadable(format!("a Graph page that is not a list: {e}")))
    }

    /// One GET of a Graph security resource, answered as JSON or as a typed failure.
    async fn fetch_json(&self, url: Url, deadline: Instant) -> Result<Value, FetchError> {
        let deadline = deadline.min(Instant::now() + PAGE_TIMEOUT);
        let token = self
            .token(&self.endpoints.graph_scope, Freshness::Cached, deadline)
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
            Err(size) => return Err(FetchError::Unreadable(too_large(size))),
        };
        match status {
            StatusCode::OK => serde_json::from_slice(&body).map_err(|e| {
                FetchError::Unreadable(format!("a Graph answer that is not JSON: {e}"))
            }),
            StatusCode::TOO_MANY_REQUESTS => Err(FetchError::Throttled { retry_after: retry }),
            StatusCode::UNAUTHORIZED => {
                // A revoked token: drop it so the next attempt fetches a new one.
                self.forget_tokens();
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
                    self.forget_tokens();
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

    fn forget_tokens(&self) {
        self.sentinel
            .forget_credentials(&self.credentials.tenant_id, &self.credentials.client_id);
    }

    pub(super) fn checked_next_link(&self, link: &str) -> Result<Url, FetchError> {
        let url = Url::parse(link)
            .map_err(|_| FetchError::Unreadable("an @odata.nextLink that is not a URL".into()))?;
        let graph = &self.endpoints.graph;
        // Graph links to its own origin, never with credentials in the URL: a page that says
        // otherwise was rewritten on its way, and following it could send them elsewhere.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::Unreadable(
                "an @odata.nextLink carrying user credentials (user:password@); refused".into(),
            ));
        }
        if url.origin() != graph.origin() {
            return Err(FetchError::Unreadable(format!(
                "an @odata.nextLink to {} instead of the configured Graph endpoint; refused",
                url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    pub(super) fn fetch_token_error(&self, error: &TokenError) -> FetchError {
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

/// A failure that a lighter way of reading may avoid: a persistent 5xx, or a page too large.
fn heavy(error: &FetchError) -> bool {
    match error {
        FetchError::Server { status, .. } => *status >= 500,
        FetchError::Unreadable(why) => why.starts_with(TOO_LARGE),
        _ => false,
    }
}

const TOO_LARGE: &str = "a Graph answer larger than";

fn too_large(limit: usize) -> String {
    format!("{TOO_LARGE} {limit} bytes")
}

fn incident_id(alert: &Value) -> Option<String> {
    match alert.get("incidentId")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An OData datetime literal (UTC, 7 fractional digits as Graph writes them).
fn odata_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
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
            incident_source: Default::default(),
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
            "http://user:pw@127.0.0.1:4000/v1.0/security/incidents",
            "http://user@127.0.0.1:4000/v1.0/security/incidents",
            "not a url",
        ] {
            assert!(connection.checked_next_link(foreign).is_err(), "{foreign}");
        }
    }
}
