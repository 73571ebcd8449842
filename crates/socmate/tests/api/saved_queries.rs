//! Saved queries: each user's own, shared ones visible to everyone and editable by their owner
//! only, private ones invisible to others, names unique per owner, a cap per user.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use socmate::auth::Role;

use crate::helpers::{Options, Reply, TestApp, spawn_app_with};

const PATH: &str = "/api/siem/saved-queries";

async fn as_user(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    app.call(method, path, Some(token), body).await
}

fn names(listing: &Value) -> Vec<&str> {
    listing["saved_queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn saved_queries_are_their_owners_and_shared_ones_are_read_only_to_others() {
    let app = spawn_app_with(Options::default()).await;
    let bob = app.token_for("bob@example.com", Role::Analyst);

    let private = app
        .analyst(
            Method::POST,
            PATH,
            Some(json!({"name": "  Failed   sign-ins ", "query": " SigninLogs | where ResultType != 0 "})),
        )
        .await;
    assert_eq!(private.status, StatusCode::CREATED, "{}", private.body);
    let private_id = private.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        private.headers["location"],
        format!("{PATH}/{private_id}").as_str()
    );
    assert_eq!(
        private.body["name"], "Failed sign-ins",
        "a label in canonical form"
    );
    assert_eq!(private.body["query"], "SigninLogs | where ResultType != 0");
    assert_eq!(private.body["timespan"], "P1D", "the default time range");
    assert_eq!(private.body["shared"], false);
    assert_eq!(private.body["mine"], true);
    assert_eq!(private.body["owner"], "analyst@example.com");

    let shared = app
        .analyst(
            Method::POST,
            PATH,
            Some(json!({"name": "Team: RDP", "query": "SecurityEvent | where EventID == 4625", "timespan": "P7D", "shared": true})),
        )
        .await;
    assert_eq!(shared.status, StatusCode::CREATED, "{}", shared.body);
    let shared_id = shared.body["id"].as_str().unwrap().to_owned();

    // Bob sees the shared one only, as someone else's.
    let listing = as_user(&app, &bob, Method::GET, PATH, None).await;
    assert_eq!(listing.status, StatusCode::OK);
    assert_eq!(names(&listing.body), ["Team: RDP"]);
    assert_eq!(listing.body["saved_queries"][0]["mine"], false);
    assert_eq!(
        listing.body["saved_queries"][0]["owner"],
        "analyst@example.com"
    );
    // The private one does not exist for him, whatever he does.
    let private_path = format!("{PATH}/{private_id}");
    let edit = json!({"name": "Mine now", "query": "print 1"});
    for (method, body) in [(Method::PUT, Some(edit.clone())), (Method::DELETE, None)] {
        let reply = as_user(&app, &bob, method, &private_path, body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    }
    // The shared one he may run, not edit or delete.
    let shared_path = format!("{PATH}/{shared_id}");
    for (method, body) in [(Method::PUT, Some(edit.clone())), (Method::DELETE, None)] {
        let reply = as_user(&app, &bob, method, &shared_path, body).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap()
                .contains("analyst@example.com"),
            "{}",
            reply.body
        );
    }

    // Bob has his own namespace: the same name is his to take.
    let his = as_user(
        &app,
        &bob,
        Method::POST,
        PATH,
        Some(json!({"name": "Team: RDP", "query": "print mine=1"})),
    )
    .await;
    assert_eq!(his.status, StatusCode::CREATED, "{}", his.body);
    let listing = as_user(&app, &bob, Method::GET, PATH, None).await;
    assert_eq!(
        names(&listing.body),
        ["Team: RDP", "Team: RDP"],
        "newest first"
    );

    // The owner edits: every field replaced, the name still unique among his own.
    let taken = app
        .analyst(
            Method::PUT,
            &private_path,
            Some(json!({"name": "Team: RDP", "query": "print 1"})),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.body);
    assert_eq!(taken.body["code"], "saved_query_name_taken");
    let again = app
        .analyst(
            Method::POST,
            PATH,
            Some(json!({"name": "Failed sign-ins", "query": "print 2"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["code"], "saved_query_name_taken");
    let updated = app
        .analyst(
            Method::PUT,
            &private_path,
            Some(json!({"name": "Failed sign-ins (7d)", "query": "SigninLogs | take 5", "timespan": "P7D", "shared": true})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["name"], "Failed sign-ins (7d)");
    assert_eq!(updated.body["timespan"], "P7D");
    assert_eq!(updated.body["shared"], true);
    assert_eq!(updated.body["created_at"], private.body["created_at"]);
    let listing = as_user(&app, &bob, Method::GET, PATH, None).await;
    assert!(
        names(&listing.body).contains(&"Failed sign-ins (7d)"),
        "now shared"
    );

    // Every field's error at once.
    let invalid = app
        .analyst(
            Method::POST,
            PATH,
            Some(json!({"name": " ", "query": "", "timespan": "last week"})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = invalid.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "query", "timespan"], "{}", invalid.body);

    // An admin takes down a shared query of someone else's; private ones stay out of reach.
    let his_id = his.body["id"].as_str().unwrap();
    let reply = app
        .admin(Method::DELETE, &format!("{PATH}/{his_id}"), None)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "Bob's query is private"
    );
    let reply = app.admin(Method::DELETE, &shared_path, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let listing = app.analyst(Method::GET, PATH, None).await;
    assert_eq!(names(&listing.body), ["Failed sign-ins (7d)"]);
    // The owner deletes his own.
    let reply = app.analyst(Method::DELETE, &private_path, None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = app.analyst(Method::DELETE, &private_path, None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn one_user_keeps_at_most_two_hundred_saved_queries_paged_by_cursor() {
    let app = spawn_app_with(Options::default()).await;
    for n in 0..200 {
        let reply = app
            .analyst(
                Method::POST,
                PATH,
                Some(json!({"name": format!("q{n}"), "query": format!("print n={n}")})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{n}: {}", reply.body);
    }
    let over = app
        .analyst(
            Method::POST,
            PATH,
            Some(json!({"name": "one more", "query": "print 1"})),
        )
        .await;
    assert_eq!(over.status, StatusCode::CONFLICT, "{}", over.body);
    assert_eq!(over.body["code"], "saved_query_limit");
    // The cap is per user.
    let bob = app.token_for("bob@example.com", Role::Analyst);
    let reply = as_user(
        &app,
        &bob,
        Method::POST,
        PATH,
        Some(json!({"name": "one more", "query": "print 1"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);

    // Every one of the 200 once, newest first, through the cursor.
    let mut seen = Vec::new();
    let mut path = format!("{PATH}?limit=64");
    loop {
        let page = app.analyst(Method::GET, &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        seen.extend(names(&page.body).into_iter().map(str::to_owned));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("{PATH}?limit=64&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..200).rev().map(|n| format!("q{n}")).collect();
    assert_eq!(seen, expected);
    let reply = app
        .analyst(Method::GET, &format!("{PATH}?limit=101"), None)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}
