//! The provider seam is real: a second provider type, written here against the public traits
//! only, goes through provider management, the connection test, queries and incident sync without
//! the core knowing it exists — and without any Sentinel code on its path.
//!
//! "Acme SIEM" is a small HTTP service started by the test: bearer-token auth, a search endpoint
//! and a paged incident feed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use socmate::incidents::RunOutcome;
use socmate::siem::{
    Alert, BoxFuture, Check, ConnectionReport, FetchError, Fields, FormCheck, FormField,
    FormOption, Incident, IncidentScope, IncidentSink, ProviderForm, ProviderKind, QueryError,
    QueryHelp, QueryRequest, QueryResult, ReadReport, ResultStream, ResultSummary, SecretHelp,
    SiemConnector, SyncWindow,
};
use utoipa::openapi::{RefOr, Schema};

use crate::helpers::{Options, With, spawn_app_with};

const TOKEN: &str = "acme-token-0123456789";
const PAGE: usize = 2;

// ---------------------------------------------------------------------------------------------
// The Acme service

#[derive(Clone)]
struct Acme {
    incidents: Arc<Mutex<Vec<Value>>>,
    searches: Arc<AtomicUsize>,
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"))
}

async fn health(headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if authorized(&headers) {
        (StatusCode::OK, Json(json!({"ok": true})))
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad token"})),
        )
    }
}

async fn search(
    State(acme): State<Acme>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad token"})),
        );
    }
    acme.searches.fetch_add(1, Ordering::SeqCst);
    if body["q"] == "bad" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unknown command 'bad'"})),
        );
    }
    (
        StatusCode::OK,
        Json(
            json!({"columns": ["host", "count"], "rows": [["web-1", 3], ["web-2", 9007199254740993_i64]]}),
        ),
    )
}

#[derive(Deserialize)]
struct Feed {
    since: String,
    after: Option<usize>,
}

async fn incidents(
    State(acme): State<Acme>,
    headers: HeaderMap,
    Query(feed): Query<Feed>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad token"})),
        );
    }
    let Ok(since) = DateTime::parse_from_rfc3339(&feed.since) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "since"})));
    };
    let all: Vec<Value> = acme
        .incidents
        .lock()
        .unwrap()
        .iter()
        .filter(|i| DateTime::parse_from_rfc3339(i["updated"].as_str().unwrap()).unwrap() >= since)
        .cloned()
        .collect();
    let start = feed.after.unwrap_or(0);
    let items: Vec<Value> = all.iter().skip(start).take(PAGE).cloned().collect();
    let next = (start + PAGE < all.len()).then_some(start + PAGE);
    (StatusCode::OK, Json(json!({"items": items, "next": next})))
}

async fn start_acme(incidents: Vec<Value>) -> (String, Acme) {
    let acme = Acme {
        incidents: Arc::new(Mutex::new(incidents)),
        searches: Arc::default(),
    };
    let router = axum::Router::new()
        .route("/api/health", get(health))
        .route("/api/search", post(search))
        .route("/api/incidents", get(self::incidents))
        .with_state(acme.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, acme)
}

// ---------------------------------------------------------------------------------------------
// The Acme provider type, against socmate's public seam only

struct AcmeKind {
    http: reqwest::Client,
    forgotten: Arc<AtomicUsize>,
}

/// The documented shape of Acme's connection fields.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct AcmeFields {
    base_url: String,
    region: Option<String>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct AcmeChanges {
    base_url: Option<String>,
    region: Option<String>,
}

fn check_url(value: &str) -> Result<String, String> {
    url::Url::parse(value)
        .ok()
        .filter(|u| u.scheme() == "http" || u.scheme() == "https")
        .map(|_| value.trim_end_matches('/').to_owned())
        .ok_or_else(|| "base_url must be the Acme server's URL, e.g. https://acme.example".into())
}

fn check_region(value: &str) -> Result<String, String> {
    ["eu", "us"]
        .contains(&value)
        .then(|| value.to_owned())
        .ok_or_else(|| "region must be eu or us".into())
}

impl ProviderKind for AcmeKind {
    fn provider_type(&self) -> &'static str {
        "acme"
    }

    fn form(&self) -> ProviderForm {
        ProviderForm {
            provider_type: "acme",
            label: "Acme SIEM",
            name_placeholder: "Acme EU",
            intro: "Create an API token in Acme first.",
            fields: vec![
                FormField {
                    name: "base_url",
                    label: "Server URL",
                    help: "Acme > Settings > API",
                    required: true,
                    input: "text",
                    placeholder: Some("https://acme.example"),
                    pattern: None,
                    options: Vec::new(),
                },
                FormField {
                    name: "region",
                    label: "Region",
                    help: "Where the tenant lives",
                    required: false,
                    input: "select",
                    placeholder: None,
                    pattern: None,
                    options: vec![
                        FormOption {
                            value: "eu",
                            label: "Europe",
                            hint: None,
                        },
                        FormOption {
                            value: "us",
                            label: "United States",
                            hint: None,
                        },
                    ],
                },
                FormField {
                    name: "client_secret",
                    label: "API token",
                    help: "Acme > Settings > API tokens",
                    required: true,
                    input: "secret",
                    placeholder: None,
                    pattern: None,
                    options: Vec::new(),
                },
            ],
            checks: vec![FormCheck {
                name: "api",
                label: "Acme API",
            }],
            query: QueryHelp {
                language: "Acme search",
                example: "count by host",
                hint: "Runs on the Acme server.",
            },
        }
    }

    fn healthy_message(&self) -> &'static str {
        "Connected to Acme SIEM"
    }

    fn secret_help(&self) -> SecretHelp {
        SecretHelp {
            location: "Acme > Settings > API tokens",
            expiry_location: "Acme > Settings > API tokens (Expires)",
            renewal: "Create a new token in Acme and enter it here.",
        }
    }

    fn new_connection(&self, fields: &mut Fields) -> Option<Map<String, Value>> {
        let base_url = fields.required("base_url", check_url);
        let region = fields
            .optional("region", check_region)
            .unwrap_or_else(|| "eu".into());
        let mut connection = Map::new();
        connection.insert("base_url".into(), Value::String(base_url?));
        connection.insert("region".into(), Value::String(region));
        Some(connection)
    }

    fn changed_connection(
        &self,
        current: &Map<String, Value>,
        fields: &mut Fields,
    ) -> Option<Map<String, Value>> {
        let sent = fields.has("base_url") || fields.has("region");
        let mut connection = current.clone();
        if let Some(url) = fields.optional("base_url", check_url) {
            connection.insert("base_url".into(), Value::String(url));
        }
        if let Some(region) = fields.optional("region", check_region) {
            connection.insert("region".into(), Value::String(region));
        }
        sent.then_some(connection)
    }

    fn connect(
        &self,
        connection: &Map<String, Value>,
        secret: SecretString,
    ) -> Result<Box<dyn SiemConnector>, String> {
        let base = connection
            .get("base_url")
            .and_then(Value::as_str)
            .ok_or("no base_url")?;
        Ok(Box::new(AcmeConnection {
            http: self.http.clone(),
            base: base.to_owned(),
            token: secret,
        }))
    }

    fn forget(&self, _connection: &Map<String, Value>) {
        self.forgotten.fetch_add(1, Ordering::SeqCst);
    }

    fn describe(&self, connection: &Map<String, Value>) -> String {
        format!("Acme at {}", connection["base_url"])
    }

    fn connection_schemas(&self) -> (RefOr<Schema>, RefOr<Schema>) {
        use utoipa::PartialSchema as _;
        (AcmeFields::schema(), AcmeChanges::schema())
    }
}

struct AcmeConnection {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

impl AcmeConnection {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token.expose_secret())
    }
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.as_str()?)
        .ok()
        .map(|t| t.to_utc())
}

impl SiemConnector for AcmeConnection {
    fn test_connection(&self, budget: Duration) -> BoxFuture<'_, ConnectionReport> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let check = match self.get("/api/health").timeout(budget).send().await {
                Ok(r) if r.status().is_success() => Check::passed("api", started.elapsed()),
                Ok(r) => Check::failed(
                    "api",
                    started.elapsed(),
                    "unauthorized",
                    format!("Acme answered HTTP {}: check the API token", r.status()),
                ),
                Err(_) => Check::failed(
                    "api",
                    started.elapsed(),
                    "unreachable",
                    "Acme did not answer".into(),
                ),
            };
            ConnectionReport {
                checks: vec![check],
                latency: started.elapsed(),
            }
        })
    }

    fn query(&self, request: QueryRequest) -> BoxFuture<'_, Result<ResultStream, QueryError>> {
        Box::pin(async move {
            let response = self
                .http
                .post(format!("{}/api/search", self.base))
                .bearer_auth(self.token.expose_secret())
                .json(&json!({"q": request.query, "range": request.timespan}))
                .timeout(request.timeout)
                .send()
                .await
                .map_err(|e| QueryError::Unavailable(e.to_string()))?;
            let status = response.status();
            let body: Value = response
                .json()
                .await
                .map_err(|e| QueryError::Unreadable(e.to_string()))?;
            if status == StatusCode::BAD_REQUEST {
                return Err(QueryError::Invalid {
                    message: format!("Acme rejected the search: {}", body["error"]),
                    upstream: Box::new(body),
                });
            }
            let columns: Vec<Value> = body["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| json!({"name": c, "type": "dynamic"}))
                .collect();
            let rows = body["rows"].as_array().cloned().unwrap_or_default();
            let tables = json!([{"name": "PrimaryResult", "columns": columns, "rows": rows}]);
            Ok(ResultStream::whole(QueryResult {
                tables_json: serde_json::to_vec(&tables).unwrap(),
                summary: ResultSummary {
                    row_count: rows.len(),
                    ..ResultSummary::default()
                },
            }))
        })
    }

    fn incident_scope(&self) -> BoxFuture<'_, Result<IncidentScope, FetchError>> {
        let key = format!("acme:{}", self.base);
        Box::pin(async move {
            Ok(IncidentScope {
                key,
                aliases: Vec::new(),
            })
        })
    }

    fn read_incidents<'a>(
        &'a self,
        window: SyncWindow,
        sink: &'a mut dyn IncidentSink,
    ) -> BoxFuture<'a, Result<ReadReport, FetchError>> {
        Box::pin(async move {
            let since = urlencode(&window.since.to_rfc3339());
            let mut after: Option<u64> = None;
            loop {
                let mut url = format!("/api/incidents?since={since}");
                if let Some(after) = after {
                    url.push_str(&format!("&after={after}"));
                }
                let body = self.feed_page(&url).await?;
                let mut batch = Vec::new();
                for item in body["items"].as_array().into_iter().flatten() {
                    match acme_incident(item) {
                        Some(incident) => batch.push(incident),
                        None => sink.skip(format!("an Acme item without id: {item}")),
                    }
                }
                sink.put(batch).await?;
                match body["next"].as_u64() {
                    Some(next) => after = Some(next),
                    None => return Ok(ReadReport::default()),
                }
            }
        })
    }
}

impl AcmeConnection {
    async fn feed_page(&self, url: &str) -> Result<Value, FetchError> {
        let response = self
            .get(url)
            .send()
            .await
            .map_err(|e| FetchError::Unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(FetchError::Server {
                status: response.status().as_u16(),
                retry_after: None,
            });
        }
        response
            .json()
            .await
            .map_err(|e| FetchError::Unreadable(e.to_string()))
    }
}

fn acme_incident(item: &Value) -> Option<Incident> {
    let id = item["id"].as_str()?;
    let updated = time(&item["updated"])?;
    Some(Incident {
        external_id: id.to_owned(),
        status: item["state"].as_str().map(str::to_owned),
        severity: item["priority"].as_str().map(str::to_owned),
        title: item["title"].as_str().map(str::to_owned),
        owner: None,
        last_update: updated,
        created: None,
        tenant_id: None,
        sources: vec!["acme".into()],
        data: json!({"display_name": item["title"], "status": item["state"], "severity": item["priority"]}),
        alerts: vec![Alert {
            external_id: format!("{id}-a"),
            last_update: updated,
            data: json!({"title": format!("signal of {id}")}),
        }],
    })
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn acme_incidents(n: usize) -> Vec<Value> {
    let now = Utc::now();
    (0..n)
        .map(|i| {
            json!({
                "id": format!("ACME-{i}"),
                "title": format!("Suspicious thing {i}"),
                "state": if i % 2 == 0 { "active" } else { "resolved" },
                "priority": "high",
                "updated": (now - chrono::TimeDelta::minutes(i as i64)).to_rfc3339(),
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_second_provider_type_goes_through_the_whole_core() {
    let (acme_url, acme) = start_acme(acme_incidents(5)).await;
    let forgotten = Arc::new(AtomicUsize::new(0));
    let app = spawn_app_with(Options {
        provider_types: vec![Arc::new(AcmeKind {
            http: reqwest::Client::new(),
            forgotten: Arc::clone(&forgotten),
        })],
        ..Options::default()
    })
    .await;
    const BASE: &str = "/api/admin/siem-providers";

    // The console learns the type's form from the API.
    let types = app
        .analyst(Method::GET, "/api/siem/provider-types", None)
        .await;
    let names: Vec<&str> = types.body["provider_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["provider_type"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sentinel", "acme"]);
    assert_eq!(
        types.body["provider_types"][1]["fields"][0]["name"],
        "base_url"
    );
    // And so does the OpenAPI document: one body schema per type.
    let document = app.call(Method::GET, "/api/openapi.json", None, None).await;
    let bodies = &document.body["components"]["schemas"]["NewProvider"]["oneOf"];
    assert_eq!(bodies.as_array().map(Vec::len), Some(2), "{bodies}");

    let body = |token: &str| json!({"name": "Acme EU", "provider_type": "acme", "base_url": acme_url, "client_secret": token});

    // Test before saving: a wrong token fails its check, the right one passes.
    let wrong = app
        .admin(
            Method::POST,
            &format!("{BASE}/test"),
            Some(body("wrong-token-xxxx")),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::OK);
    assert_eq!(wrong.body["status"], "error");
    assert_eq!(
        wrong.body["message"],
        "Connection test failed. Check server logs for details."
    );
    assert_eq!(wrong.body["checks"][0]["code"], "unauthorized");
    let right = app
        .admin(Method::POST, &format!("{BASE}/test"), Some(body(TOKEN)))
        .await;
    assert_eq!(right.body["status"], "healthy", "{}", right.body);
    assert_eq!(right.body["message"], "Connected to Acme SIEM");

    // Its own validation, reported by the core's 422.
    let missing = body(TOKEN).without("base_url").with(
        "workspace_id",
        json!("c0ffee00-0000-4000-8000-00000000beef"),
    );
    let refused = app.admin(Method::POST, BASE, Some(missing)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["base_url", "workspace_id"], "{}", refused.body);

    // Create, show, change, test the saved provider.
    let created = app.admin(Method::POST, BASE, Some(body(TOKEN))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["provider_type"], "acme");
    assert_eq!(created.body["base_url"], acme_url.as_str());
    assert_eq!(created.body["region"], "eu");
    assert_eq!(created.body["client_secret_masked"], "****6789");
    assert_eq!(created.body["is_default"], true);
    assert!(created.body.get("workspace_id").is_none());
    let patched = app
        .admin(
            Method::PATCH,
            &format!("{BASE}/{id}"),
            Some(json!({"region": "us"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["region"], "us");
    assert_eq!(
        forgotten.load(Ordering::SeqCst),
        1,
        "re-pointing forgets cached state"
    );
    let saved = app
        .admin(Method::POST, &format!("{BASE}/{id}/test"), None)
        .await;
    assert_eq!(saved.body["status"], "healthy");
    let shown = app.admin(Method::GET, &format!("{BASE}/{id}"), None).await;
    assert_eq!(shown.body["last_health_status"], "healthy");

    // A query on the default provider, exact integers kept, and the type's own error text.
    let ran = app
        .analyst(
            Method::POST,
            "/api/siem/query",
            Some(json!({"query": "count by host"})),
        )
        .await;
    assert_eq!(ran.status, StatusCode::OK, "{}", ran.body);
    assert_eq!(ran.body["provider_id"], id.as_str());
    assert_eq!(
        ran.body["tables"][0]["rows"][1][1],
        json!(9007199254740993_i64)
    );
    let bad = app
        .analyst(
            Method::POST,
            "/api/siem/query",
            Some(json!({"query": "bad"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Acme rejected the search"),
        "{}",
        bad.body
    );
    assert_eq!(acme.searches.load(Ordering::SeqCst), 2);

    // Incident sync through the core's engine and store: every page, once.
    let outcome = app.sync.run_once(&id).await.unwrap();
    assert_eq!(
        outcome,
        RunOutcome::Completed {
            fetched: 5,
            created: 5,
            updated: 0
        }
    );
    let listed = app
        .analyst(
            Method::GET,
            &format!("/api/incidents?provider_id={id}&limit=10"),
            None,
        )
        .await;
    assert_eq!(listed.body["total"], 5, "{}", listed.body);
    let first = &listed.body["incidents"][0];
    assert_eq!(first["external_id"], "ACME-0", "{}", listed.body);
    assert_eq!(first["display_name"], "Suspicious thing 0");
    let resolved = app
        .analyst(Method::GET, "/api/incidents?status=resolved", None)
        .await;
    assert_eq!(resolved.body["total"], 2);
    let detail = app
        .analyst(
            Method::GET,
            &format!("/api/incidents/{}", first["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(detail.body["alerts"][0]["title"], "signal of ACME-0");
    assert_eq!(detail.body["provider_ids"], json!([id]));
    let again = app.sync.run_once(&id).await.unwrap();
    assert!(
        matches!(again, RunOutcome::Completed { created: 0, .. }),
        "{again:?}"
    );

    // Delete: gone, and the type forgets its cached state once more.
    let deleted = app
        .admin(Method::DELETE, &format!("{BASE}/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(forgotten.load(Ordering::SeqCst), 2);
    assert_eq!(app.list().await["total"], 0);
}
