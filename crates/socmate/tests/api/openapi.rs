//! The OpenAPI document: served, printed by `socmate openapi`, equal to the committed copy, and
//! describing exactly the routes the server answers.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::spawn_app;

const COMMITTED: &str = include_str!("../../../../docs/openapi.json");

#[test]
fn the_committed_document_is_current() {
    let registry =
        socmate::provider_types::registry(&socmate::config::Settings::defaults().provider_types)
            .unwrap();
    let generated: Value = serde_json::from_str(
        &socmate::openapi::document(&registry)
            .to_pretty_json()
            .unwrap(),
    )
    .unwrap();
    let committed: Value = serde_json::from_str(COMMITTED).unwrap();
    assert!(
        generated == committed,
        "docs/openapi.json is out of date: run `cargo run --bin socmate -- openapi > docs/openapi.json`"
    );
}

/// Every `$ref` names a schema the document defines (a provider type's field schemas are merged in
/// after generation, so their references must come along).
#[test]
fn every_reference_resolves() {
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let document: Value = serde_json::from_str(COMMITTED).unwrap();
    let mut found = Vec::new();
    refs(&document, &mut found);
    assert!(!found.is_empty());
    for reference in found {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "{reference} does not resolve"
        );
    }
}

#[test]
fn socmate_openapi_prints_the_document() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_socmate"))
        .arg("openapi")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["openapi"], "3.1.0");
    assert_eq!(printed, serde_json::from_str::<Value>(COMMITTED).unwrap());
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_served_publicly() {
    let app = spawn_app().await;
    let served: Value = app
        .http
        .get(format!("{}/api/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, serde_json::from_str::<Value>(COMMITTED).unwrap());

    let paths = served["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{}", paths.len());
    for (path, item) in paths {
        let concrete = path.replace("{id}", "000000000000000000000000");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let reply = app.admin(method.clone(), &concrete, None).await;
            // A route that exists answers with its own errors, never the router's "no such
            // endpoint" or "method not allowed".
            assert_ne!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_ne!(
                reply.body["detail"], "no such API endpoint",
                "{method} {path} is documented but not routed"
            );
        }
    }
}
