//! Control API for driving an out-of-process emulator (the binary) the same way tests drive
//! [`crate::RunningEmulator`]: inject/clear faults, read the request log, replace the config.
//! Everything lives under `/_emulator/`, a prefix no Azure path uses; these calls are neither
//! faulted nor recorded.
//!
//! | Method and path | Body | Answer |
//! |---|---|---|
//! | `POST /_emulator/faults` | a [`crate::Fault`] as JSON | 204 (400 if invalid) |
//! | `GET /_emulator/faults` | – | 200, active faults as a JSON array |
//! | `DELETE /_emulator/faults` | – | 204 |
//! | `GET /_emulator/requests` | – | 200 `{"counts":{"token":N,...},"max_concurrent":{"token":N,...},"requests":[...]}` |
//! | `DELETE /_emulator/requests` | – | 204 (clears log and counts) |
//! | `PUT /_emulator/config` | an [`crate::EmulatorConfig`] as JSON | 204 (400 if invalid) |
//! | `POST /_emulator/tokens/expire` | – | 204, every issued token now counts as expired |

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Map, Value, json};

use crate::config::EmulatorConfig;
use crate::faults::{Endpoint, Fault};
use crate::state::Shared;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/_emulator/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/_emulator/requests", get(requests).delete(clear_requests))
        .route("/_emulator/config", put(put_config))
        .route("/_emulator/tokens/expire", post(expire_tokens))
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

async fn add_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(f) if f.is_valid() => {
            shared.inject(f);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(_) => bad_request("invalid fault: status must be a valid HTTP status code".to_owned()),
        Err(e) => bad_request(format!("invalid fault JSON: {e}")),
    }
}

async fn list_faults(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.faults()).into_response()
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.clear_faults();
    StatusCode::NO_CONTENT
}

async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    let counts: Map<String, Value> = Endpoint::ALL
        .iter()
        .map(|e| (e.as_str().to_owned(), json!(shared.request_count(*e))))
        .collect();
    let max_concurrent: Map<String, Value> = Endpoint::ALL
        .iter()
        .map(|e| (e.as_str().to_owned(), json!(shared.max_concurrent(*e))))
        .collect();
    axum::Json(
        json!({"counts": counts, "max_concurrent": max_concurrent, "requests": shared.requests()}),
    )
    .into_response()
}

async fn clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.clear_requests();
    StatusCode::NO_CONTENT
}

async fn put_config(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<EmulatorConfig>(&body) {
        Ok(config) => {
            shared.update_config(|c| *c = config);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => bad_request(format!("invalid config JSON: {e}")),
    }
}

async fn expire_tokens(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.expire_tokens();
    StatusCode::NO_CONTENT
}
