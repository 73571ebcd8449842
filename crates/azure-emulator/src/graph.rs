//! Microsoft Graph security API: `GET /v1.0/security/incidents[/{id}]` and
//! `GET /v1.0/security/alerts_v2[/{id}]` with Graph's auth errors, application-role checks,
//! OData paging (`$top`, `$skip`, absolute `@odata.nextLink`), `$filter` on datetimes and
//! enums, `$orderby`, `$count` and `$expand=alerts`, using the real error bodies
//! (`fixtures/graph-error-*.json`).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::config::Tenant;
use crate::state::{Bearer, Caller, Shared};
use crate::token::GRAPH_AUDIENCES;
use crate::util;

/// Microsoft Graph's audience in Azure China (21Vianet).
const CHINA_GRAPH: &str = "https://microsoftgraph.chinacloudapi.cn";

const ODATA_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
const ERROR_CONTENT_TYPE: &str = "application/json";

/// The datetime properties that `$filter` and `$orderby` accept (for both resources); an
/// [`ItemKey`] holds their parsed values in this order.
const DATE_PROPS: [&str; 2] = ["createdDateTime", "lastUpdateDateTime"];

/// Position of a datetime property (one of [`DATE_PROPS`]) in [`ItemKey::dates`].
fn date_slot(prop: &str) -> usize {
    DATE_PROPS.iter().position(|p| *p == prop).unwrap_or(0)
}

/// Which collection a request addresses.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Resource {
    Incidents,
    Alerts,
}

impl Resource {
    fn segment(self) -> &'static str {
        match self {
            Resource::Incidents => "incidents",
            Resource::Alerts => "alerts_v2",
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Resource::Incidents => "microsoft.graph.security.incident",
            Resource::Alerts => "microsoft.graph.security.alert",
        }
    }

    fn max_top(self) -> u64 {
        match self {
            Resource::Incidents => 50,
            Resource::Alerts => 2000,
        }
    }

    fn default_top(self) -> u64 {
        self.max_top()
    }

    /// Roles of which the caller needs at least one, in the order Graph lists them.
    fn required_roles(self) -> &'static [&'static str] {
        match self {
            Resource::Incidents => &[
                "SecurityIncident.Read.All",
                "SecurityIncident.ReadWrite.All",
            ],
            Resource::Alerts => &[
                "SecurityAlert.Read.All",
                "SecurityAlert.ReadWrite.All",
                "SecurityIncident.Read.All",
                "SecurityIncident.ReadWrite.All",
            ],
        }
    }

    fn date_props(self) -> &'static [&'static str] {
        &DATE_PROPS
    }

    fn string_props(self) -> &'static [&'static str] {
        match self {
            Resource::Incidents => &[
                "status",
                "severity",
                "classification",
                "determination",
                "assignedTo",
            ],
            Resource::Alerts => &[
                "status",
                "severity",
                "classification",
                "determination",
                "assignedTo",
                "serviceSource",
            ],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Error envelopes

struct Ids {
    request_id: String,
    client_request_id: String,
}

fn ids(headers: &HeaderMap) -> Ids {
    let request_id = util::uuid_v4();
    let client_request_id = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(|| request_id.clone(), str::to_owned);
    Ids {
        request_id,
        client_request_id,
    }
}

fn with_ids(mut resp: Response, ids: &Ids) -> Response {
    let h = resp.headers_mut();
    util::set_header(h, "request-id", &ids.request_id);
    util::set_header(h, "client-request-id", &ids.client_request_id);
    resp
}

/// `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`
fn graph_error(status: StatusCode, code: &str, message: &str, headers: &HeaderMap) -> Response {
    let ids = ids(headers);
    let body = json!({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": util::graph_date(),
            "request-id": ids.request_id,
            "client-request-id": ids.client_request_id,
        }
    }});
    with_ids(util::json_response(status, ERROR_CONTENT_TYPE, &body), &ids)
}

fn bad_request(message: &str, headers: &HeaderMap) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", message, headers)
}

/// The `$top` limit error, verbatim from `graph-error-400-top-limit.json` (note `"code": ""`).
fn top_limit(limit: u64, requested: &str, headers: &HeaderMap) -> Response {
    let ids = ids(headers);
    let body = json!({"error": {
        "code": "",
        "message": format!("The query specified in the URI is not valid. The limit of '{limit}' for Top query has been exceeded. The value from the incoming request is '{requested}'."),
        "details": [],
        "innerError": {
            "date": util::graph_date(),
            "request-id": ids.request_id,
            "client-request-id": ids.client_request_id,
        }
    }});
    with_ids(
        util::json_response(StatusCode::BAD_REQUEST, ERROR_CONTENT_TYPE, &body),
        &ids,
    )
}

fn unauthenticated(message: &str, headers: &HeaderMap) -> Response {
    let mut resp = graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        message,
        headers,
    );
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        ),
    );
    resp
}

/// Error body for an injected status fault on a Graph endpoint.
pub(crate) fn error_for_status(status: StatusCode, headers: &HeaderMap) -> Response {
    let (code, message) = match status.as_u16() {
        400 => ("BadRequest", "Invalid request."),
        401 => (
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ),
        403 => ("Forbidden", "Access is denied to the requested resource."),
        404 => ("NotFound", "The requested resource does not exist."),
        429 => ("TooManyRequests", "Please retry again later."),
        500 => ("InternalServerError", "An internal server error occurred."),
        501 => ("NotImplemented", "The requested feature isn't implemented."),
        502 => ("BadGateway", "Bad gateway."),
        503 => (
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry later.",
        ),
        504 => ("GatewayTimeout", "The gateway timed out."),
        n if (400..600).contains(&n) => ("UnknownError", "An error occurred."),
        _ => return with_ids(status.into_response(), &ids(headers)),
    };
    graph_error(status, code, message, headers)
}

/// 429 with `Retry-After` verbatim and the body of `graph-error-429-throttled.json`.
pub(crate) fn throttled(retry_after: &str, headers: &HeaderMap) -> Response {
    let ids = ids(headers);
    let body = json!({"error": {
        "code": "TooManyRequests",
        "innerError": {
            "code": "429",
            "date": util::graph_date(),
            "message": "Please retry after",
            "request-id": ids.request_id,
            "status": "429",
        },
        "message": "Please retry again later.",
    }});
    let mut resp = with_ids(
        util::json_response(StatusCode::TOO_MANY_REQUESTS, ERROR_CONTENT_TYPE, &body),
        &ids,
    );
    util::set_header(resp.headers_mut(), "retry-after", retry_after);
    resp
}

/// Graph's answer for unknown paths under `/v1.0/`.
pub(crate) fn unknown_segment(path: &str, headers: &HeaderMap) -> Response {
    let segment = path
        .trim_start_matches("/v1.0/")
        .split('/')
        .find(|s| !s.is_empty() && *s != "security")
        .unwrap_or("");
    bad_request(
        &format!("Resource not found for the segment '{segment}'."),
        headers,
    )
}

fn ok_json(body: &Value, headers: &HeaderMap) -> Response {
    let ids = ids(headers);
    let mut resp = with_ids(
        util::json_response(StatusCode::OK, ODATA_CONTENT_TYPE, body),
        &ids,
    );
    resp.headers_mut()
        .insert("odata-version", HeaderValue::from_static("4.0"));
    resp
}

// ---------------------------------------------------------------------------------------------
// Authentication and authorization

fn authorize(shared: &Shared, headers: &HeaderMap, resource: Resource) -> Result<Caller, Response> {
    let token = match shared.bearer(headers) {
        Bearer::Missing => return Err(unauthenticated("Access token is empty.", headers)),
        Bearer::Expired(_) => {
            return Err(unauthenticated(
                "Access token has expired or is not yet valid.",
                headers,
            ));
        }
        Bearer::Unknown => return Err(unauthenticated("Invalid token", headers)),
        Bearer::Valid(t) => t,
    };
    if !GRAPH_AUDIENCES.contains(&token.audience.as_str()) {
        return Err(unauthenticated(
            "Access token validation failure. Invalid audience.",
            headers,
        ));
    }
    // Graph in China (21Vianet) offers no security incidents or alerts (the national-cloud
    // table of `security-list-incidents.md` and `security-list-alerts_v2.md`); the exact answer
    // is not documented, so it is Graph's answer for a segment it does not know.
    if token.audience == CHINA_GRAPH {
        return Err(bad_request(
            &format!(
                "Resource not found for the segment '{}'.",
                resource.segment()
            ),
            headers,
        ));
    }
    let Some(caller) = shared.caller(token) else {
        return Err(unauthenticated("Invalid token", headers));
    };
    // The token's roles, as granted when it was issued (not the app's roles now).
    let granted = &caller.roles;
    let required = resource.required_roles();
    if !required.iter().any(|r| granted.iter().any(|g| g == r)) {
        return Err(graph_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "Missing application roles. API required roles: {}, application roles: {}.",
                required.join(","),
                granted.join(",")
            ),
            headers,
        ));
    }
    Ok(caller)
}

// ---------------------------------------------------------------------------------------------
// Query options

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn parse(op: &str) -> Option<Cmp> {
        Some(match op.to_ascii_lowercase().as_str() {
            "eq" => Cmp::Eq,
            "ne" => Cmp::Ne,
            "gt" => Cmp::Gt,
            "ge" => Cmp::Ge,
            "lt" => Cmp::Lt,
            "le" => Cmp::Le,
            _ => return None,
        })
    }

    fn odata_kind(self) -> &'static str {
        match self {
            Cmp::Eq => "Equal",
            Cmp::Ne => "NotEqual",
            Cmp::Gt => "GreaterThan",
            Cmp::Ge => "GreaterThanOrEqual",
            Cmp::Lt => "LessThan",
            Cmp::Le => "LessThanOrEqual",
        }
    }

    fn holds(self, ord: Ordering) -> bool {
        match self {
            Cmp::Eq => ord == Ordering::Equal,
            Cmp::Ne => ord != Ordering::Equal,
            Cmp::Gt => ord == Ordering::Greater,
            Cmp::Ge => ord != Ordering::Less,
            Cmp::Lt => ord == Ordering::Less,
            Cmp::Le => ord != Ordering::Greater,
        }
    }
}

#[derive(Debug, PartialEq)]
enum Clause {
    Date {
        prop: &'static str,
        cmp: Cmp,
        at: DateTime<Utc>,
    },
    Text {
        prop: &'static str,
        negate: bool,
        value: String,
    },
}

impl Clause {
    /// Whether `item`, whose precomputed values are `key`, satisfies the clause.
    fn matches(&self, item: &Value, key: &ItemKey) -> bool {
        match self {
            Clause::Date { prop, cmp, at } => {
                key.dates[date_slot(prop)].is_some_and(|t| cmp.holds(t.cmp(at)))
            }
            Clause::Text {
                prop,
                negate,
                value,
            } => {
                let actual = item.get(*prop).and_then(Value::as_str);
                let equal = actual.is_some_and(|a| a.eq_ignore_ascii_case(value));
                equal != *negate
            }
        }
    }
}

/// Parses a Graph/OData datetime (`Z` or offset, 0–9 fractional digits).
fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn instant(item: &Value, prop: &str) -> Option<DateTime<Utc>> {
    item.get(prop)
        .and_then(Value::as_str)
        .and_then(parse_instant)
}

/// Splits a `$filter` into tokens; single-quoted strings (with `''` escapes) stay one token
/// and keep their quotes.
fn tokenize(filter: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = filter.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut s = String::from("'");
            loop {
                match chars.next() {
                    None => return Err("unterminated string literal".to_owned()),
                    Some('\'') if chars.peek() == Some(&'\'') => {
                        chars.next();
                        s.push('\'');
                    }
                    Some('\'') => break,
                    Some(ch) => s.push(ch),
                }
            }
            s.push('\'');
            tokens.push(s);
        } else if c == '(' || c == ')' {
            return Err("parentheses and functions are not supported".to_owned());
        } else {
            let mut s = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '(' || ch == ')' || ch == '\'' {
                    break;
                }
                s.push(ch);
                chars.next();
            }
            tokens.push(s);
        }
    }
    Ok(tokens)
}

fn parse_filter(filter: &str, resource: Resource) -> Result<Vec<Clause>, String> {
    let invalid = |detail: &str| format!("Invalid filter clause: {detail}");
    let tokens = tokenize(filter).map_err(|e| invalid(&e))?;
    if tokens.is_empty() {
        return Err(invalid("the $filter expression is empty"));
    }
    let mut clauses = Vec::new();
    let mut rest = tokens.as_slice();
    loop {
        let [prop, op, value, tail @ ..] = rest else {
            return Err(invalid(&format!(
                "expected '<property> <operator> <value>' in '{filter}'"
            )));
        };
        let cmp = Cmp::parse(op).ok_or_else(|| invalid(&format!("unsupported operator '{op}'")))?;
        if let Some(p) = resource
            .date_props()
            .iter()
            .find(|p| p.eq_ignore_ascii_case(prop))
        {
            if value.starts_with('\'') {
                return Err(format!(
                    "A binary operator with incompatible types was detected. Found operand types 'Edm.DateTimeOffset' and 'Edm.String' for operator kind '{}'.",
                    cmp.odata_kind()
                ));
            }
            let at = parse_instant(value).ok_or_else(|| {
                invalid(&format!("'{value}' is not a valid DateTimeOffset value"))
            })?;
            clauses.push(Clause::Date { prop: p, cmp, at });
        } else if let Some(p) = resource
            .string_props()
            .iter()
            .find(|p| p.eq_ignore_ascii_case(prop))
        {
            let negate = match cmp {
                Cmp::Eq => false,
                Cmp::Ne => true,
                _ => {
                    return Err(invalid(&format!(
                        "operator '{op}' is not supported for property '{p}'"
                    )));
                }
            };
            let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) else {
                return Err(invalid(&format!(
                    "the value for '{p}' must be a quoted string"
                )));
            };
            clauses.push(Clause::Text {
                prop: p,
                negate,
                value: inner.to_owned(),
            });
        } else {
            return Err(format!(
                "Could not find a property named '{prop}' on type '{}'.",
                resource.type_name()
            ));
        }
        match tail {
            [] => break,
            [and, more @ ..] if and.eq_ignore_ascii_case("and") => rest = more,
            [other, ..] => {
                return Err(invalid(&format!(
                    "'{other}' is not supported; only 'and' can join clauses"
                )));
            }
        }
    }
    Ok(clauses)
}

fn parse_orderby(orderby: &str, resource: Resource) -> Result<Vec<(&'static str, bool)>, String> {
    let mut keys = Vec::new();
    for part in orderby.split(',') {
        let mut words = part.split_whitespace();
        let Some(prop) = words.next() else {
            return Err("Invalid $orderby: empty sort key.".to_owned());
        };
        let Some(p) = resource
            .date_props()
            .iter()
            .find(|p| p.eq_ignore_ascii_case(prop))
        else {
            return Err(format!(
                "Invalid $orderby: ordering by '{prop}' is not supported (supported: createdDateTime, lastUpdateDateTime)."
            ));
        };
        let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(format!("Invalid $orderby direction '{other}'.")),
        };
        if words.next().is_some() {
            return Err(format!("Invalid $orderby clause '{part}'."));
        }
        keys.push((*p, desc));
    }
    Ok(keys)
}

struct Options {
    pairs: Vec<(String, String)>,
    top: u64,
    skip: u64,
    filter: Vec<Clause>,
    orderby: Vec<(&'static str, bool)>,
    expand_alerts: bool,
    count: bool,
}

fn parse_options(
    raw: Option<&str>,
    resource: Resource,
    headers: &HeaderMap,
) -> Result<Options, Response> {
    let pairs: Vec<(String, String)> = raw
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let non_negative = |name: &str, v: &str| {
        v.parse::<u64>().map_err(|_| {
            bad_request(
                &format!("Invalid value '{v}' for {name} query option found. The {name} query option requires a non-negative integer value."),
                headers,
            )
        })
    };
    let top = match get("$top") {
        None => resource.default_top(),
        Some(v) => {
            let n = non_negative("$top", v)?;
            if n > resource.max_top() {
                return Err(top_limit(resource.max_top(), v, headers));
            }
            n
        }
    };
    let skip = match get("$skip") {
        None => 0,
        Some(v) => non_negative("$skip", v)?,
    };
    let filter = match get("$filter") {
        None => Vec::new(),
        Some(f) => parse_filter(f, resource).map_err(|m| bad_request(&m, headers))?,
    };
    let orderby = match get("$orderby") {
        None => vec![("createdDateTime", true)],
        Some(o) => parse_orderby(o, resource).map_err(|m| bad_request(&m, headers))?,
    };
    let expand_alerts = match get("$expand") {
        None => false,
        Some(e) if resource == Resource::Incidents && e.eq_ignore_ascii_case("alerts") => true,
        Some(e) => {
            return Err(bad_request(
                &format!(
                    "Could not find a property named '{e}' on type '{}'.",
                    resource.type_name()
                ),
                headers,
            ));
        }
    };
    let count = match get("$count").map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad_request(
                &format!(
                    "Invalid value '{other}' for $count query option found. Valid values are 'true' and 'false'."
                ),
                headers,
            ));
        }
    };
    Ok(Options {
        pairs,
        top,
        skip,
        filter,
        orderby,
        expand_alerts,
        count,
    })
}

// ---------------------------------------------------------------------------------------------
// Handlers

fn base_url(shared: &Shared, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map_or_else(|| shared.base_url.clone(), |h| format!("http://{h}"))
}

fn id_of(item: &Value) -> String {
    match item.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// An alert's `incidentId` in the form compared with [`id_of`] of an incident.
fn incident_id_of(alert: &Value) -> Option<String> {
    match alert.get("incidentId") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// What a listing needs of one incident or alert, computed once per configuration snapshot
/// instead of once per comparison.
pub(crate) struct ItemKey {
    /// Index of the item in the tenant's `incidents` or `alerts`.
    pos: usize,
    /// The parsed [`DATE_PROPS`] (`None` if missing or not a datetime).
    dates: [Option<DateTime<Utc>>; DATE_PROPS.len()],
    /// [`id_of`] the item.
    id: String,
    /// `id` as a number, if it is one.
    numeric_id: Option<u64>,
}

impl ItemKey {
    fn new(pos: usize, item: &Value) -> Self {
        let id = id_of(item);
        Self {
            pos,
            dates: DATE_PROPS.map(|p| instant(item, p)),
            numeric_id: id.parse().ok(),
            id,
        }
    }

    /// Ids compare as numbers if both are numbers, else as text.
    fn compare_ids(&self, other: &Self) -> Ordering {
        match (self.numeric_id, other.numeric_id) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => self.id.cmp(&other.id),
        }
    }
}

/// Indexes over one tenant's incidents and alerts, each built on first use and kept with the
/// configuration snapshot they were built from (see [`crate::state::Snapshot`]).
#[derive(Default)]
pub(crate) struct GraphIndex {
    incidents: OnceLock<Vec<ItemKey>>,
    alerts: OnceLock<Vec<ItemKey>>,
    /// `incidentId` → positions in the tenant's `alerts`, in their order.
    alerts_by_incident: OnceLock<HashMap<String, Vec<usize>>>,
    /// Recent listings, filtered and sorted, by resource, `$filter` and `$orderby`, so that
    /// walking the pages of one listing sorts it once. A speed measure of this emulator only:
    /// every page is what sorting afresh would give, and a client paging deep measures the wire
    /// rather than this emulator's sorting (docs/benchmarks.md, incident sync).
    listings: Mutex<HashMap<ListingKey, Arc<[usize]>>>,
}

/// Which listing: the resource, and its `$filter` and `$orderby` as sent.
type ListingKey = (Resource, String, String);

/// How many listings [`GraphIndex`] remembers before it starts again.
const LISTINGS_KEPT: usize = 64;

impl GraphIndex {
    fn keys(&self, tenant: &Tenant, resource: Resource) -> &[ItemKey] {
        let (cell, items) = match resource {
            Resource::Incidents => (&self.incidents, &tenant.incidents),
            Resource::Alerts => (&self.alerts, &tenant.alerts),
        };
        cell.get_or_init(|| {
            items
                .iter()
                .enumerate()
                .map(|(pos, item)| ItemKey::new(pos, item))
                .collect()
        })
    }

    /// Positions (in [`Self::keys`]) of the items `opts` lists, in its order, computed once per
    /// listing.
    fn listing(&self, tenant: &Tenant, resource: Resource, opts: &Options) -> Arc<[usize]> {
        let raw = |name: &str| {
            opts.pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map_or_else(String::new, |(_, v)| v.clone())
        };
        let key = (resource, raw("$filter"), raw("$orderby"));
        let mut listings = self.listings.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = listings.get(&key) {
            return found.clone();
        }
        let keys = self.keys(tenant, resource);
        let source = match resource {
            Resource::Incidents => &tenant.incidents,
            Resource::Alerts => &tenant.alerts,
        };
        let mut order: Vec<usize> = (0..keys.len())
            .filter(|&i| {
                let key = &keys[i];
                opts.filter.iter().all(|c| c.matches(&source[key.pos], key))
            })
            .collect();
        let orderby: Vec<(usize, bool)> = opts
            .orderby
            .iter()
            .map(|(prop, desc)| (date_slot(prop), *desc))
            .collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&keys[a], &keys[b]);
            for (slot, desc) in &orderby {
                let ord = a.dates[*slot].cmp(&b.dates[*slot]);
                let ord = if *desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            a.compare_ids(b)
        });
        let order: Arc<[usize]> = order.into();
        if listings.len() >= LISTINGS_KEPT {
            listings.clear();
        }
        listings.insert(key, order.clone());
        order
    }

    /// The tenant's alerts whose `incidentId` is `incident_id`, in their order.
    fn alerts_of(&self, tenant: &Tenant, incident_id: &str) -> Vec<Value> {
        let by_incident = self.alerts_by_incident.get_or_init(|| {
            let mut map: HashMap<String, Vec<usize>> = HashMap::new();
            for (pos, alert) in tenant.alerts.iter().enumerate() {
                if let Some(id) = incident_id_of(alert) {
                    map.entry(id).or_default().push(pos);
                }
            }
            map
        });
        by_incident
            .get(incident_id)
            .map_or_else(Vec::new, |positions| {
                positions
                    .iter()
                    .map(|&p| tenant.alerts[p].clone())
                    .collect()
            })
    }
}

/// Adds (`$expand=alerts`, from `alerts_of(incident id)`) or strips the `alerts` relationship
/// of an incident.
fn shape_incident(
    mut item: Value,
    expand: bool,
    alerts_of: impl FnOnce(&str) -> Vec<Value>,
) -> Value {
    let id = id_of(&item);
    if let Some(obj) = item.as_object_mut() {
        if expand {
            if !obj.get("alerts").is_some_and(Value::is_array) {
                obj.insert("alerts".to_owned(), Value::Array(alerts_of(&id)));
            }
        } else {
            obj.remove("alerts");
        }
    }
    item
}

fn list(shared: &Shared, headers: &HeaderMap, raw: Option<&str>, resource: Resource) -> Response {
    let caller = match authorize(shared, headers, resource) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let opts = match parse_options(raw, resource, headers) {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    let tenant = caller.tenant();
    let index = caller.graph_index();
    let source = match resource {
        Resource::Incidents => &tenant.incidents,
        Resource::Alerts => &tenant.alerts,
    };
    let keys = index.keys(tenant, resource);
    let items = index.listing(tenant, resource, &opts);
    let total = items.len() as u64;
    let start = opts.skip.min(total) as usize;
    let end = opts.skip.saturating_add(opts.top).min(total) as usize;
    let (max_skip, expand_limit) =
        shared.with_config(|c| (c.graph_max_skip, c.graph_expand_alert_limit));
    let next_link_base = shared.with_config(|c| c.graph_next_link_base.clone());
    let page: Vec<Value> = items[start..end]
        .iter()
        .map(|&i| {
            let item = source[keys[i].pos].clone();
            match resource {
                Resource::Incidents => {
                    shape_incident(item, opts.expand_alerts, |id| index.alerts_of(tenant, id))
                }
                Resource::Alerts => item,
            }
        })
        .collect();

    if opts.expand_alerts && too_heavy(&page, expand_limit) {
        return error_for_status(StatusCode::INTERNAL_SERVER_ERROR, headers);
    }
    let base = base_url(shared, headers);
    let context_suffix = if opts.expand_alerts { "(alerts())" } else { "" };
    let mut body = Map::new();
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!(
            "{base}/v1.0/$metadata#security/{}{context_suffix}",
            resource.segment()
        )),
    );
    if opts.count {
        body.insert("@odata.count".to_owned(), json!(total));
    }
    let deep = max_skip.is_some_and(|max| end as u64 > max);
    if opts.top > 0 && (end as u64) < total && !deep {
        body.insert(
            "@odata.nextLink".to_owned(),
            Value::String(next_link(
                next_link_base.as_deref().unwrap_or(&base),
                resource,
                &opts.pairs,
                end as u64,
            )),
        );
    }
    body.insert("value".to_owned(), Value::Array(page));
    ok_json(&Value::Object(body), headers)
}

/// Whether an expanded answer holds an incident with more alerts than `limit`.
fn too_heavy(incidents: &[Value], limit: Option<usize>) -> bool {
    limit.is_some_and(|limit| {
        incidents.iter().any(|i| {
            i.get("alerts")
                .and_then(Value::as_array)
                .is_some_and(|a| a.len() > limit)
        })
    })
}

/// The same request with `$skip` set to `skip`, as an absolute URL.
fn next_link(base: &str, resource: Resource, pairs: &[(String, String)], skip: u64) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let encode_key = |k: &str| {
        let plain = k.strip_prefix('$').is_some_and(|rest| {
            !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric())
        });
        if plain { k.to_owned() } else { encode(k) }
    };
    let mut out: Vec<String> = Vec::new();
    let mut replaced = false;
    for (k, v) in pairs {
        if k.eq_ignore_ascii_case("$skip") {
            if !replaced {
                out.push(format!("$skip={skip}"));
                replaced = true;
            }
        } else {
            out.push(format!("{}={}", encode_key(k), encode(v)));
        }
    }
    if !replaced {
        out.push(format!("$skip={skip}"));
    }
    format!(
        "{base}/v1.0/security/{}?{}",
        resource.segment(),
        out.join("&")
    )
}

fn get_one(
    shared: &Shared,
    headers: &HeaderMap,
    raw: Option<&str>,
    resource: Resource,
    id: &str,
) -> Response {
    let caller = match authorize(shared, headers, resource) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let opts = match parse_options(raw, resource, headers) {
        Ok(o) => o,
        Err(resp) => return resp,
    };
    let tenant = caller.tenant();
    let source = match resource {
        Resource::Incidents => &tenant.incidents,
        Resource::Alerts => &tenant.alerts,
    };
    let Some(item) = source.iter().find(|i| id_of(i) == id) else {
        let noun = match resource {
            Resource::Incidents => "Incident",
            Resource::Alerts => "Alert",
        };
        return graph_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("{noun} '{id}' was not found."),
            headers,
        );
    };
    let item = match resource {
        Resource::Incidents => shape_incident(item.clone(), opts.expand_alerts, |id| {
            // One incident: a scan is cheaper than building the index.
            tenant
                .alerts
                .iter()
                .filter(|a| match a.get("incidentId") {
                    Some(Value::String(s)) => s == id,
                    Some(Value::Number(n)) => n.to_string() == id,
                    _ => false,
                })
                .cloned()
                .collect()
        }),
        Resource::Alerts => item.clone(),
    };
    let expand_limit = shared.with_config(|c| c.graph_expand_alert_limit);
    if opts.expand_alerts && too_heavy(std::slice::from_ref(&item), expand_limit) {
        return error_for_status(StatusCode::INTERNAL_SERVER_ERROR, headers);
    }
    let base = base_url(shared, headers);
    let mut body = Map::new();
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!(
            "{base}/v1.0/$metadata#security/{}/$entity",
            resource.segment()
        )),
    );
    if let Value::Object(fields) = item {
        body.extend(fields);
    }
    ok_json(&Value::Object(body), headers)
}

/// `GET /v1.0/security/incidents`
pub(crate) async fn list_incidents(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    list(&shared, &headers, raw.as_deref(), Resource::Incidents)
}

/// `GET /v1.0/security/alerts_v2`
pub(crate) async fn list_alerts(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    list(&shared, &headers, raw.as_deref(), Resource::Alerts)
}

/// `GET /v1.0/security/incidents/{id}`
pub(crate) async fn get_incident(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    get_one(&shared, &headers, raw.as_deref(), Resource::Incidents, &id)
}

/// `GET /v1.0/security/alerts_v2/{id}`
pub(crate) async fn get_alert(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    get_one(&shared, &headers, raw.as_deref(), Resource::Alerts, &id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() -> Result<(), String> {
        let f = parse_filter(
            "lastUpdateDateTime ge 2024-03-26T13:35:45.1234567Z and status eq 'active'",
            Resource::Incidents,
        )?;
        assert_eq!(f.len(), 2);
        assert!(parse_filter("displayName eq 'x'", Resource::Incidents).is_err());
        assert!(
            parse_filter(
                "lastUpdateDateTime ge '2024-01-01T00:00:00Z'",
                Resource::Incidents
            )
            .is_err()
        );
        assert!(
            parse_filter(
                "createdDateTime ge 2024-01-01T00:00:00Z or status eq 'x'",
                Resource::Incidents
            )
            .is_err()
        );
        assert!(parse_filter("startswith(displayName,'x')", Resource::Incidents).is_err());
        Ok(())
    }

    #[test]
    fn instants_compare_across_precisions() {
        let a = parse_instant("2024-03-26T13:35:45.23Z");
        let b = parse_instant("2024-03-26T13:35:45.2300000Z");
        let c = parse_instant("2024-03-26T13:35:45Z");
        assert!(a.is_some());
        assert_eq!(a, b);
        assert!(c < a);
    }

    #[test]
    fn next_link_replaces_skip() {
        let pairs = vec![
            ("$top".to_owned(), "50".to_owned()),
            (
                "$filter".to_owned(),
                "lastUpdateDateTime ge 2024-01-01T00:00:00Z".to_owned(),
            ),
            ("$skip".to_owned(), "50".to_owned()),
        ];
        assert_eq!(
            next_link("http://h:1", Resource::Incidents, &pairs, 100),
            "http://h:1/v1.0/security/incidents?$top=50&$filter=lastUpdateDateTime+ge+2024-01-01T00%3A00%3A00Z&$skip=100"
        );
    }
}
