//! Console sign-in: users from `socmate user add`, the session cookie, CSRF, sign-out, and the
//! sign-in and write rate limits.

use reqwest::header::{COOKIE, RETRY_AFTER, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, provider_body, spawn_app, spawn_app_with};

const PASSWORD: &str = "correct horse battery staple";

async fn app_with_users() -> TestApp {
    let app = spawn_app().await;
    app.add_user("Admin@Example.com", "admin", PASSWORD);
    app.add_user("analyst@example.com", "analyst", PASSWORD);
    app
}

/// The `name=value` part of the session cookie a login set.
fn session_cookie(response: &reqwest::Response) -> String {
    let header = response
        .headers()
        .get(SET_COOKIE)
        .expect("login sets a cookie")
        .to_str()
        .unwrap();
    header.split(';').next().unwrap().to_owned()
}

async fn with_cookie(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: bool,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app
        .http
        .request(method, format!("{}{path}", app.base))
        .header(COOKIE, cookie);
    if csrf {
        request = request.header("X-Requested-With", "SoCMate");
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_that_authenticates_the_console() {
    let app = app_with_users().await;
    // Emails are case-insensitive.
    let response = app.login("admin@EXAMPLE.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let cookie = session_cookie(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"email": "admin@example.com", "role": "admin"}));

    let (status, me) = with_cookie(&app, Method::GET, "/api/auth/me", &cookie, false, None).await;
    assert_eq!(
        (status, me["role"].as_str()),
        (StatusCode::OK, Some("admin"))
    );
    let (status, list) = with_cookie(
        &app,
        Method::GET,
        "/api/admin/siem-providers",
        &cookie,
        false,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");

    // Behind an HTTPS proxy the cookie is Secure.
    let response = app
        .http
        .post(format!("{}/api/auth/login", app.base))
        .header("X-Forwarded-Proto", "https")
        .json(&json!({"email": "admin@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_calm_answer() {
    let app = app_with_users().await;
    let mut bodies = Vec::new();
    for (email, password) in [
        ("admin@example.com", "wrong password here"),
        ("nobody@example.com", PASSWORD),
    ] {
        let response = app.login(email, password).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get(SET_COOKIE).is_none());
        let mut body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "invalid_credentials");
        assert_eq!(body["detail"], "The email or password is incorrect.");
        body.as_object_mut().unwrap().remove("instance");
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1]);
}

#[tokio::test]
async fn cookie_requests_that_change_state_need_the_csrf_header() {
    let app = app_with_users().await;
    let cookie = session_cookie(&app.login("admin@example.com", PASSWORD).await);
    let create = || Some(provider_body("From the console"));

    let (status, body) = with_cookie(
        &app,
        Method::POST,
        "/api/admin/siem-providers",
        &cookie,
        false,
        create(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "csrf_check_failed");
    assert_eq!(app.list().await["total"], 0, "nothing created");

    let (status, body) = with_cookie(
        &app,
        Method::POST,
        "/api/admin/siem-providers",
        &cookie,
        true,
        create(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The session's user is the creator and the audited actor.
    assert_eq!(body["created_by"], "admin@example.com");
}

#[tokio::test]
async fn analysts_signed_in_by_cookie_are_refused_admin_routes() {
    let app = app_with_users().await;
    let cookie = session_cookie(&app.login("analyst@example.com", PASSWORD).await);
    let (status, _) = with_cookie(&app, Method::GET, "/api/incidents", &cookie, false, None).await;
    assert_eq!(status, StatusCode::OK);
    for (method, path) in [
        (Method::GET, "/api/admin/siem-providers"),
        (Method::POST, "/api/admin/siem-providers"),
        (Method::GET, "/api/admin/audit-log"),
    ] {
        let (status, _) = with_cookie(&app, method, path, &cookie, true, Some(json!({}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
}

#[tokio::test]
async fn sign_out_ends_the_session_everywhere() {
    let app = app_with_users().await;
    let cookie = session_cookie(&app.login("admin@example.com", PASSWORD).await);
    let response = app
        .http
        .post(format!("{}/api/auth/logout", app.base))
        .header(COOKIE, &cookie)
        .header("X-Requested-With", "SoCMate")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        response.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, body) = with_cookie(&app, Method::GET, "/api/auth/me", &cookie, false, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "session_expired");
    // A forged or stale cookie is no better than none.
    let (status, _) = with_cookie(
        &app,
        Method::GET,
        "/api/auth/me",
        "socmate_session=forged",
        false,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_database_holds_only_a_hash_of_the_session_token() {
    let app = app_with_users().await;
    if app.db_url.is_some() {
        return; // The file check needs the SQLite store; the code path is the same.
    }
    let cookie = session_cookie(&app.login("admin@example.com", PASSWORD).await);
    let token = cookie.trim_start_matches("socmate_session=");
    app.stop().await;
    for entry in std::fs::read_dir(app.data_dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(token));
        assert!(!text.contains(PASSWORD));
    }
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_and_audited() {
    let app = spawn_app_with(Options {
        sign_in_rate_per_minute: 3,
        ..Options::default()
    })
    .await;
    app.add_user("admin@example.com", "admin", PASSWORD);
    assert_eq!(
        app.login("admin@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    for _ in 0..2 {
        assert_eq!(
            app.login("admin@example.com", "guess guess guess")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right password waits once the caller is over the limit.
    let response = app.login("admin@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&wait), "{wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");

    let log = app
        .admin(Method::GET, "/api/admin/audit-log?action=auth.login", None)
        .await
        .body;
    let outcomes: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    // The two failures share a row, counted: repeats of one refusal collapse.
    assert_eq!(outcomes, ["rate_limited", "failure", "success"]);
    assert_eq!(log["entries"][1]["count"], 2);
    assert!(log["entries"][1]["last_at"].is_string());
    let first = &log["entries"][2];
    assert_eq!(first["actor"], "admin@example.com");
    assert_eq!(first["client_addr"], "127.0.0.1");
    assert!(first["request_id"].as_str().is_some_and(|r| !r.is_empty()));

    // Adding the user was audited too, by the command that did it.
    let added = app
        .admin(Method::GET, "/api/admin/audit-log?action=user.add", None)
        .await
        .body;
    assert_eq!(added["entries"].as_array().unwrap().len(), 1);
    assert_eq!(added["entries"][0]["actor"], "socmate user add");
    assert_eq!(added["entries"][0]["detail"], "admin");
}

#[tokio::test]
async fn writes_are_rate_limited_per_caller_and_reads_are_not() {
    let app = spawn_app_with(Options {
        write_rate_per_minute: 2,
        ..Options::default()
    })
    .await;
    for name in ["one", "two"] {
        app.create_provider(name).await;
    }
    let refused = app
        .admin(
            Method::POST,
            "/api/admin/siem-providers",
            Some(provider_body("three")),
        )
        .await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["code"], "rate_limited");
    assert!(refused.headers.contains_key(RETRY_AFTER));
    assert_eq!(app.list().await["total"], 2);
    // Another caller has its own budget.
    let other = app
        .analyst(
            Method::POST,
            "/api/investigations",
            Some(json!({"title": "t"})),
        )
        .await;
    assert_ne!(
        other.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        other.body
    );
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_content_security_policy() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    }
    let missing = app
        .http
        .get(format!("{}/console/../Cargo.toml", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// Every module a console script imports is served: the console is split into modules, and a
/// file left out of the embedded list would break the page in the browser only.
#[tokio::test]
async fn every_console_module_that_is_imported_is_served() {
    let app = spawn_app().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    let mut scripts = vec![root.join("app.js")];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(file) = scripts.pop() {
        let text = std::fs::read_to_string(&file).unwrap();
        for import in text.split("from '/console/").skip(1) {
            let module = import.split('\'').next().unwrap().to_owned();
            if seen.insert(module.clone()) {
                scripts.push(root.join(&module));
                let response = app
                    .http
                    .get(format!("{}/console/{module}", app.base))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK, "{module}");
                let served = response.text().await.unwrap();
                assert_eq!(served, std::fs::read_to_string(root.join(&module)).unwrap());
            }
        }
    }
    assert!(seen.len() >= 10, "{seen:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_limits_and_audit_see_each_client() {
    async fn login_from(app: &TestApp, client: &str, email: &str, password: &str) -> StatusCode {
        app.http
            .post(format!("{}/api/auth/login", app.base))
            .header("X-Forwarded-For", client)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
            .status()
    }
    let app = spawn_app_with(Options {
        sign_in_rate_per_minute: 2,
        trusted_proxies: vec!["127.0.0.1"],
        ..Options::default()
    })
    .await;
    app.add_user("admin@example.com", "admin", PASSWORD);
    app.add_user("analyst@example.com", "analyst", PASSWORD);
    let guesser = "203.0.113.7";
    for _ in 0..2 {
        let status = login_from(&app, guesser, "admin@example.com", "wrong wrong wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let status = login_from(&app, guesser, "admin@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy keeps its own budget: without the trusted proxy both
    // would share the proxy's address and this sign-in would be refused too.
    let status = login_from(&app, "198.51.100.20", "analyst@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);

    let log = app
        .admin(Method::GET, "/api/admin/audit-log?action=auth.login", None)
        .await
        .body;
    let addrs: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["client_addr"].as_str().unwrap())
        .collect();
    assert_eq!(addrs, ["198.51.100.20", guesser, guesser]);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = app_with_users().await;
    let response = app
        .http
        .post(format!("{}/api/auth/login", app.base))
        .header("X-Forwarded-For", "198.51.100.1")
        .json(&json!({"email": "admin@example.com", "password": "not the password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let log = app
        .admin(Method::GET, "/api/admin/audit-log?action=auth.login", None)
        .await
        .body;
    assert_eq!(log["entries"][0]["client_addr"], "127.0.0.1");
}

#[tokio::test]
async fn a_password_reset_or_removal_ends_the_users_sessions() {
    let app = app_with_users().await;
    let cookie = session_cookie(&app.login("analyst@example.com", PASSWORD).await);
    let new_password = "a brand new passphrase";

    let out = app.user_command(&["passwd", "--email", "Analyst@example.com"], new_password);
    crate::process::assert_succeeded(&out);
    let (status, _) = with_cookie(&app, Method::GET, "/api/auth/me", &cookie, false, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old session ended");
    let old = app.login("analyst@example.com", PASSWORD).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let fresh = app.login("analyst@example.com", new_password).await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let cookie = session_cookie(&fresh);

    let listed = app.user_command(&["list"], "");
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "admin@example.com\tadmin\nanalyst@example.com\tanalyst\n"
    );

    let out = app.user_command(&["remove", "--email", "analyst@example.com"], "");
    crate::process::assert_succeeded(&out);
    let (status, _) = with_cookie(&app, Method::GET, "/api/auth/me", &cookie, false, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let gone = app.login("analyst@example.com", new_password).await;
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);
    let missing = app.user_command(&["remove", "--email", "analyst@example.com"], "");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user with email"));

    let log = app
        .admin(Method::GET, "/api/admin/audit-log", None)
        .await
        .body;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|a| a.starts_with("user."))
        .collect();
    assert_eq!(
        actions,
        ["user.remove", "user.password_reset", "user.add", "user.add"]
    );
}
