//! Investigations pin the provider that was default when they were opened, link stored incidents
//! and list the queries run in them by anyone.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use socmate::auth::Role;
use socmate::store::Db;

use crate::helpers::{Options, TestApp, WORKSPACE};
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

/// The incident ids SoCMate stores, newest update first.
async fn stored_incidents(app: &TestApp) -> Vec<(String, String)> {
    let listing = app
        .analyst(Method::GET, "/api/incidents?limit=100", None)
        .await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.body);
    listing.body["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["display_name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn linked_ids(page: &Value) -> Vec<&str> {
    page["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["incident_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn investigations_link_stored_incidents_and_list_everyones_queries_in_them() {
    let app = query_app(crate::incidents::with_incidents(3, 11)).await;
    let provider = provider_on(&app, "Primary", WORKSPACE).await;
    app.sync.run_once(&provider).await.unwrap();
    let incidents = stored_incidents(&app).await;
    assert_eq!(incidents.len(), 3);
    let (first, first_title) = &incidents[0];
    let (second, _) = &incidents[1];
    let bob = app.token_for("bob@example.com", Role::Analyst);

    // An unknown incident: nothing is opened.
    let reply = app
        .analyst(
            Method::POST,
            "/api/investigations",
            Some(json!({"title": "Ghost", "incident_id": "0123456789abcdef01234567"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    let list = app.analyst(Method::GET, "/api/investigations", None).await;
    assert_eq!(list.body["investigations"].as_array().unwrap().len(), 0);

    // Opened from an incident: linked at once.
    let opened = app
        .analyst(
            Method::POST,
            "/api/investigations",
            Some(json!({"title": "From the incident", "incident_id": first})),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    let id = opened.body["id"].as_str().unwrap().to_owned();
    let links_path = format!("/api/investigations/{id}/incidents");
    let links = app.analyst(Method::GET, &links_path, None).await;
    assert_eq!(links.status, StatusCode::OK, "{}", links.body);
    assert_eq!(linked_ids(&links.body), [first.as_str()]);
    let link = &links.body["incidents"][0];
    assert_eq!(link["stored"], true);
    assert_eq!(link["title"], first_title.as_str());
    assert_eq!(link["linked_by"], "analyst@example.com");

    // Anyone links another; linking again changes nothing.
    let second_path = format!("{links_path}/{second}");
    let reply = app.call(Method::PUT, &second_path, Some(&bob), None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["linked_by"], "bob@example.com");
    let reply = app.analyst(Method::PUT, &second_path, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body["linked_by"], "bob@example.com",
        "the first link stands"
    );
    let links = app.analyst(Method::GET, &links_path, None).await;
    assert_eq!(linked_ids(&links.body), [second.as_str(), first.as_str()]);
    let page = app
        .analyst(Method::GET, &format!("{links_path}?limit=1"), None)
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let rest = app
        .analyst(
            Method::GET,
            &format!("{links_path}?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(linked_ids(&rest.body), [first.as_str()]);

    // Unknown incidents and investigations are refused.
    let reply = app
        .analyst(
            Method::PUT,
            &format!("{links_path}/0123456789abcdef01234567"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = app
        .analyst(
            Method::PUT,
            &format!("/api/investigations/0123456789abcdef01234567/incidents/{first}"),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // An incident names the investigations it is linked to.
    let other = app
        .analyst(
            Method::POST,
            "/api/investigations",
            Some(json!({"title": "Unrelated"})),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    let of_first = app
        .analyst(
            Method::GET,
            &format!("/api/investigations?incident_id={first}"),
            None,
        )
        .await;
    let titles: Vec<&str> = of_first.body["investigations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["From the incident"]);
    let third = &incidents[2].0;
    let of_third = app
        .analyst(
            Method::GET,
            &format!("/api/investigations?incident_id={third}"),
            None,
        )
        .await;
    assert_eq!(of_third.body["investigations"], json!([]));
    // A filter that is no incident id is refused, not read as "none match".
    for bad in ["", "INC-1", "0123456789ABCDEF01234567"] {
        let reply = app
            .analyst(
                Method::GET,
                &format!("/api/investigations?incident_id={bad}"),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(reply.body["code"], "invalid_incident_id");
    }

    // Unlinking removes the link, not the incident.
    let reply = app.analyst(Method::DELETE, &second_path, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = app.analyst(Method::DELETE, &second_path, None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(stored_incidents(&app).await.len(), 3);

    // Queries run in it by anyone are listed there; each analyst's history keeps their own.
    let query_path = format!("/api/investigations/{id}/query");
    let mine = app
        .analyst(
            Method::POST,
            &query_path,
            Some(json!({"query": "print mine=1"})),
        )
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    let his = app
        .call(
            Method::POST,
            &query_path,
            Some(&bob),
            Some(json!({"query": "print his=1"})),
        )
        .await;
    assert_eq!(his.status, StatusCode::OK, "{}", his.body);
    app.analyst(
        Method::POST,
        "/api/siem/query",
        Some(json!({"query": "print elsewhere=1"})),
    )
    .await;
    let in_it = app
        .analyst(
            Method::GET,
            &format!("/api/investigations/{id}/queries"),
            None,
        )
        .await;
    assert_eq!(in_it.status, StatusCode::OK, "{}", in_it.body);
    let ran: Vec<(&str, &str)> = in_it.body["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["actor"].as_str().unwrap(), q["query"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ran,
        [
            ("bob@example.com", "print his=1"),
            ("analyst@example.com", "print mine=1")
        ]
    );
    let history = app.analyst(Method::GET, "/api/siem/queries", None).await;
    assert_eq!(history.body["queries"].as_array().unwrap().len(), 2);

    // A linked incident replaced in the store (as a scope merge does) stays listed, marked.
    delete_incident(&app, first).await;
    let links = app.analyst(Method::GET, &links_path, None).await;
    assert_eq!(links.body["incidents"][0]["incident_id"], first.as_str());
    assert_eq!(links.body["incidents"][0]["stored"], false);
    assert_eq!(links.body["incidents"][0]["title"], Value::Null);
}

/// Removes an incident row the way a scope merge replaces one.
async fn delete_incident(app: &TestApp, id: &str) {
    let statements = [
        "DELETE FROM incident_sources WHERE incident_id = $1",
        "DELETE FROM incidents WHERE id = $1",
    ];
    for sql in statements {
        match app.sync.db() {
            Db::Sqlite(pool) => {
                sqlx::query(sql).bind(id).execute(pool).await.unwrap();
            }
            Db::Postgres(pool) => {
                sqlx::query(sql).bind(id).execute(pool).await.unwrap();
            }
        }
    }
}
