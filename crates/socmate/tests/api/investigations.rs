//! Investigations pin the provider that was default when they were opened.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Options, WORKSPACE};
use crate::queries::{SECOND_WORKSPACE, provider_on, query_app};

#[tokio::test]
async fn investigations_keep_their_provider_after_the_default_changes() {
    let app = query_app(Options::default()).await;
    // No default yet: an investigation cannot be opened.
    let reply = app
        .analyst(
            Method::POST,
            "/api/investigations",
            Some(json!({"title": "Too early"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body["code"], "no_default_provider");

    let a = provider_on(&app, "Primary", WORKSPACE).await;
    let b = provider_on(&app, "Secondary", SECOND_WORKSPACE).await;
    let first = app
        .analyst(
            Method::POST,
            "/api/investigations",
            Some(json!({"title": "Phishing wave", "description": "Mailbox rules"})),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["provider_id"], a.as_str());
    assert_eq!(first.body["created_by"], "analyst@example.com");
    let first_id = first.body["id"].as_str().unwrap().to_owned();

    app.admin(
        Method::PUT,
        &format!("/api/admin/siem-providers/{b}/default"),
        None,
    )
    .await;
    let second = app
        .analyst(
            Method::POST,
            "/api/investigations",
            Some(json!({"title": "Later case"})),
        )
        .await;
    assert_eq!(second.body["provider_id"], b.as_str());

    // The old investigation still queries its own provider.
    let reply = app
        .analyst(
            Method::POST,
            &format!("/api/investigations/{first_id}/query"),
            Some(json!({"query": "print ok=1", "timespan": "P1D"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["provider_id"], a.as_str());
    assert_eq!(reply.body["investigation_id"], first_id.as_str());
    let detail = app
        .analyst(
            Method::GET,
            &format!("/api/investigations/{first_id}"),
            None,
        )
        .await;
    assert_eq!(detail.body["provider_id"], a.as_str());
    let list = app.analyst(Method::GET, "/api/investigations", None).await;
    assert_eq!(list.body["investigations"].as_array().unwrap().len(), 2);
    assert_eq!(list.body["investigations"][0]["title"], "Later case");

    // The audit row names the investigation and the provider it really ran on.
    let audit = app.admin(Method::GET, "/api/siem/queries", None).await.body;
    assert_eq!(audit["queries"][0]["investigation_id"], first_id.as_str());
    assert_eq!(audit["queries"][0]["provider_id"], a.as_str());

    // The pinned provider deleted: the investigation's queries are refused, not re-routed.
    app.admin(
        Method::DELETE,
        &format!("/api/admin/siem-providers/{a}"),
        None,
    )
    .await;
    let reply = app
        .analyst(
            Method::POST,
            &format!("/api/investigations/{first_id}/query"),
            Some(json!({"query": "print 1"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app
        .analyst(
            Method::GET,
            "/api/investigations/0123456789abcdef01234567",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app
        .analyst(
            Method::POST,
            "/api/investigations",
            Some(json!({"title": ""})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
}
