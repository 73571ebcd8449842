//! "Exactly one default at any moment, under any concurrency": racing requests on one server.

use reqwest::{Method, StatusCode};

use crate::helpers::{provider_body, spawn_app};

const BASE: &str = "/api/admin/siem-providers";

async fn defaults(app: &crate::helpers::TestApp) -> Vec<String> {
    app.list().await["providers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["is_default"] == true)
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_racing_set_defaults_leave_exactly_one() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(app.create_provider_id(&format!("Workspace {i}")).await);
    }
    for round in 0..3 {
        let calls = (0..50).map(|i| {
            let path = format!("{BASE}/{}/default", ids[(i * 7 + round) % ids.len()]);
            let app = &app;
            async move { app.admin(Method::PUT, &path, None).await.status }
        });
        let statuses = futures::future::join_all(calls).await;
        for status in statuses {
            assert!(
                status == StatusCode::OK || status == StatusCode::CONFLICT,
                "{status}"
            );
        }
        let defaults = defaults(&app).await;
        assert_eq!(defaults.len(), 1, "round {round}: {defaults:?}");
        assert!(ids.contains(&defaults[0]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_racing_first_creates_leave_exactly_one_default() {
    let app = spawn_app().await;
    let calls = (0..20).map(|i| {
        let app = &app;
        async move {
            app.admin(
                Method::POST,
                BASE,
                Some(provider_body(&format!("Racer {i}"))),
            )
            .await
            .status
        }
    });
    let statuses = futures::future::join_all(calls).await;
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count()
            >= 19
    );
    assert_eq!(defaults(&app).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_default_racing_delete_of_the_default_never_leaves_two() {
    let app = spawn_app().await;
    for round in 0..5 {
        let a = app.create_provider_id(&format!("A{round}")).await;
        let b = app.create_provider_id(&format!("B{round}")).await;
        app.set_default(&a).await;
        let (set_path, delete_path) = (format!("{BASE}/{b}/default"), format!("{BASE}/{a}"));
        let (set, del) = tokio::join!(
            app.admin(Method::PUT, &set_path, None),
            app.admin(Method::DELETE, &delete_path, None),
        );
        assert!(!set.status.is_server_error() && !del.status.is_server_error());
        assert!(defaults(&app).await.len() <= 1);
    }
}
