//! Credentials at rest: never in plaintext anywhere, bound to their row, and refused when the
//! master key is wrong.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use socmate::app::{Application, StartupError};
use socmate::crypto::KeyCheckError;
use sqlx::{Connection as _, PgConnection, SqliteConnection};

use crate::helpers::{CANARY, TestApp, With, master_key_b64, rotated_secret, settings, spawn_app};

const BASE: &str = "/api/admin/siem-providers";

pub enum Conn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

pub async fn connect(app: &TestApp) -> Conn {
    match &app.db_url {
        Some(url) => Conn::Pg(PgConnection::connect(url).await.unwrap()),
        None => Conn::Sqlite(
            SqliteConnection::connect(&format!(
                "sqlite://{}/socmate.db",
                app.data_dir.path().display()
            ))
            .await
            .unwrap(),
        ),
    }
}

/// `(status, client_secret_ciphertext)` of a row, read straight from the database.
pub async fn raw_row(app: &TestApp, id: &str) -> (String, Option<String>) {
    let sql = "SELECT status, client_secret_ciphertext FROM siem_providers WHERE id = $1";
    match connect(app).await {
        Conn::Sqlite(mut c) => sqlx::query_as(sql)
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap(),
        Conn::Pg(mut c) => sqlx::query_as(sql)
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap(),
    }
}

pub async fn set_ciphertext(app: &TestApp, id: &str, ciphertext: &str) {
    let sql = "UPDATE siem_providers SET client_secret_ciphertext = $1 WHERE id = $2";
    match connect(app).await {
        Conn::Sqlite(mut c) => assert_eq!(
            sqlx::query(sql)
                .bind(ciphertext)
                .bind(id)
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected(),
            1
        ),
        Conn::Pg(mut c) => assert_eq!(
            sqlx::query(sql)
                .bind(ciphertext)
                .bind(id)
                .execute(&mut c)
                .await
                .unwrap()
                .rows_affected(),
            1
        ),
    }
}

/// Every encoding under which a leaked canary could hide.
pub fn canary_forms() -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        CANARY.to_owned(),
        b64.encode(CANARY),
        b64url.encode(CANARY),
        // The canary's UUID part alone, in case of partial echoes.
        CANARY["CANARY-".len()..].to_owned(),
    ]
}

pub fn assert_no_canary(what: &str, haystack: &[u8]) {
    for form in canary_forms() {
        assert!(
            !haystack.windows(form.len()).any(|w| w == form.as_bytes()),
            "the secret canary ({form}) appears in {what}"
        );
    }
}

fn data_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect()
}

#[tokio::test]
async fn no_secret_in_any_response_or_data_file() {
    let app = spawn_app().await;
    let p = app.create_provider("Canary").await;
    let id = p["id"].as_str().unwrap();
    app.admin(
        Method::POST,
        &format!("{BASE}/test"),
        Some(crate::helpers::connection_body()),
    )
    .await;
    app.admin(Method::POST, &format!("{BASE}/{id}/test"), None)
        .await;
    app.admin(Method::GET, BASE, None).await;
    app.admin(Method::GET, &format!("{BASE}/{id}"), None).await;
    app.admin(
        Method::PATCH,
        &format!("{BASE}/{id}"),
        Some(json!({"client_secret": rotated_secret()})),
    )
    .await;
    app.set_default(id).await;
    // Failures too: a wrong secret, a bad body carrying a secret, a duplicate name.
    let wrong =
        crate::helpers::connection_body().with("client_secret", json!(format!("{CANARY}-wrong")));
    app.admin(Method::POST, &format!("{BASE}/test"), Some(wrong))
        .await;
    let mut bad = crate::helpers::provider_body("Canary");
    bad["workspace_id"] = json!("nope");
    app.admin(Method::POST, BASE, Some(bad)).await;
    app.admin(
        Method::POST,
        BASE,
        Some(crate::helpers::provider_body("Canary")),
    )
    .await;
    app.admin(Method::DELETE, &format!("{BASE}/{id}"), None)
        .await;

    for response in app.seen.lock().unwrap().iter() {
        assert_no_canary("an API response", response.as_bytes());
    }
    if app.db_url.is_none() {
        // Every file of the data dir, WAL included, while the server still runs...
        let files = data_files(app.data_dir.path());
        assert!(
            files.iter().any(|f| f.to_string_lossy().ends_with("-wal")),
            "{files:?}"
        );
        for file in &files {
            assert_no_canary(&file.display().to_string(), &std::fs::read(file).unwrap());
        }
        // ...and after it stopped and checkpointed.
        app.stop().await;
        for file in data_files(app.data_dir.path()) {
            assert_no_canary(&file.display().to_string(), &std::fs::read(&file).unwrap());
        }
    }
}

#[tokio::test]
async fn a_tampered_ciphertext_is_credential_unreadable() {
    let app = spawn_app().await;
    let p = app.create_provider("Tampered").await;
    let id = p["id"].as_str().unwrap();
    let (_, ciphertext) = raw_row(&app, id).await;
    let ciphertext = ciphertext.unwrap();
    assert!(ciphertext.starts_with("v1:"));
    // Flip one character of the sealed part.
    let mut bytes = ciphertext.into_bytes();
    let last = bytes.len() - 5;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    set_ciphertext(&app, id, &String::from_utf8(bytes).unwrap()).await;

    // Reading still works: list and detail never decrypt.
    assert_eq!(
        app.admin(Method::GET, &format!("{BASE}/{id}"), None)
            .await
            .status,
        StatusCode::OK
    );
    let reply = app
        .admin(Method::POST, &format!("{BASE}/{id}/test"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "error");
    assert_eq!(
        reply.body["checks"][0]["code"], "credential_unreadable",
        "{}",
        reply.body
    );
    assert_eq!(
        app.admin(Method::GET, &format!("{BASE}/{id}"), None)
            .await
            .body["status"],
        "error"
    );
    // Entering the secret again repairs it.
    app.admin(
        Method::PATCH,
        &format!("{BASE}/{id}"),
        Some(json!({"client_secret": rotated_secret()})),
    )
    .await;
    let reply = app
        .admin(Method::POST, &format!("{BASE}/{id}/test"), None)
        .await;
    assert_eq!(reply.body["status"], "healthy", "{}", reply.body);
}

#[tokio::test]
async fn a_ciphertext_copied_to_another_row_does_not_decrypt() {
    let app = spawn_app().await;
    let a = app.create_provider("A").await;
    let b = app.create_provider("B").await;
    let (_, a_secret) = raw_row(&app, a["id"].as_str().unwrap()).await;
    let b_id = b["id"].as_str().unwrap();
    set_ciphertext(&app, b_id, &a_secret.unwrap()).await;
    let reply = app
        .admin(Method::POST, &format!("{BASE}/{b_id}/test"), None)
        .await;
    assert_eq!(reply.body["checks"][0]["code"], "credential_unreadable");
    assert_eq!(
        app.emulator.request_count(azure_emulator::Endpoint::Token),
        0,
        "never authenticated with A's secret"
    );
}

#[tokio::test]
async fn a_restart_decrypts_and_a_wrong_or_missing_key_refuses_to_start() {
    let app = spawn_app().await;
    let p = app.create_provider("Survivor").await;
    let id = p["id"].as_str().unwrap().to_owned();
    app.stop().await;

    let build = |key: Option<String>| {
        let mut s = settings(
            &app.emulator,
            app.data_dir.path(),
            &app.master_key,
            app.db_url.as_deref(),
            Duration::from_secs(3),
        );
        s.secrets.master_key = key.map(secrecy::SecretString::from);
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            Application::build_with_listener(s, listener).await
        }
    };
    match build(Some(master_key_b64(7))).await {
        Err(StartupError::MasterKey(KeyCheckError::WrongKey { .. })) => {}
        Err(e) => panic!("wrong key gave another error: {e}"),
        Ok(_) => panic!("a wrong master key was accepted"),
    }
    match build(None).await {
        Err(StartupError::MasterKey(KeyCheckError::Missing { .. })) => {}
        Err(e) => panic!("missing key gave another error: {e}"),
        Ok(_) => panic!("started without the master key"),
    }
    assert!(
        !app.data_dir.path().join("master.key").exists(),
        "no key may be generated for a database that has one"
    );

    let restarted = build(Some(app.master_key.clone())).await.unwrap();
    let addr = restarted.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(restarted.run(shutdown.clone()));
    let reply = app
        .http
        .post(format!("http://{addr}{BASE}/{id}/test"))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["status"], "healthy", "{body}");
    shutdown.cancel();
}
