//! The web console: a small static app (plain HTML, CSS and JavaScript over the JSON API),
//! embedded in the binary so `socmate serve` needs no files and no network at run time.
//!
//! `/api/docs` renders the OpenAPI document (`/api/openapi.json`) with our own small script.
//!
//! Its pages are the API's own views, so there is no second implementation of any rule here:
//! the browser signs in (`/api/auth/login`) and calls the same endpoints as any API client.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::http::ApiError;

/// Scripts, styles and requests from our own origin only; no framing, no inline code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: &str = include_str!("../console/index.html");
const API_DOCS: &str = include_str!("../console/api-docs.html");
/// A console script, by its path under `console/`.
macro_rules! script {
    ($name:literal) => {
        Asset {
            name: $name,
            content_type: "text/javascript; charset=utf-8",
            body: include_str!(concat!("../console/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    script!("app.js"),
    script!("api.js"),
    script!("dom.js"),
    script!("form.js"),
    script!("router.js"),
    script!("shell.js"),
    script!("ui.js"),
    script!("pages/incident.js"),
    script!("pages/incidents.js"),
    script!("pages/provider-form.js"),
    script!("pages/provider-parts.js"),
    script!("pages/providers.js"),
    script!("pages/query.js"),
    script!("pages/records.js"),
    script!("pages/sign-in.js"),
    script!("api-docs.js"),
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../console/app.css"),
    },
];

pub fn router() -> Router {
    Router::new()
        .route("/", get(|| page(INDEX)))
        .route("/api/docs", get(|| page(API_DOCS)))
        .route("/console/{*name}", get(asset))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

async fn page(html: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found("no such console file"))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, asset.content_type),
            // Revalidated on each load: assets change with the binary, and they are small.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
        .into_response())
}
