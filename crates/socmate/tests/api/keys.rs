//! Master-key rotation: the keyring, `socmate keys rotate` and `socmate keys status`, and a
//! rolling rotation across two replicas under load.

use std::time::Duration;

use serde_json::{Value, json};
use socmate::app::{Application, StartupError};
use socmate::crypto::KeyCheckError;
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, master_key_b64, settings, spawn_app, wait_until};
use crate::secrets::{raw_row, set_ciphertext};

const BASE: &str = "/api/admin/siem-providers";

/// Runs `socmate keys <args>` on the app's store with `SOCMATE_MASTER_KEYS=keys`.
fn keys_command(app: &TestApp, keys: &str, args: &[&str]) -> (bool, Value, String) {
    let out = app
        .socmate()
        .arg("keys")
        .args(args)
        .env_remove("SOCMATE_MASTER_KEY")
        .env("SOCMATE_MASTER_KEYS", keys)
        .output()
        .expect("socmate keys runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.success(), json, stderr)
}

fn key_id(byte: u8) -> String {
    socmate::crypto::MasterKey::from_bytes([byte; 32])
        .id()
        .to_owned()
}

/// Builds a server on the app's store with `SOCMATE_MASTER_KEYS=keys`.
async fn build_with_keys(app: &TestApp, keys: &str) -> Result<Application, StartupError> {
    let mut s = settings(
        &app.emulator,
        app.data_dir.path(),
        &app.master_key,
        app.db_url.as_deref(),
        Duration::from_secs(3),
    );
    s.secrets.master_key = None;
    s.secrets.master_keys = Some(secrecy::SecretString::from(keys.to_owned()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Application::build_with_listener(s, listener).await
}

#[tokio::test]
async fn rotation_rewraps_every_secret_once_and_old_keys_can_then_be_dropped() {
    // The app writes under key 42.
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["One", "Two", "Three"] {
        ids.push(app.create_provider_id(name).await);
    }
    app.admin(reqwest::Method::DELETE, &format!("{BASE}/{}", ids[2]), None)
        .await;
    app.stop().await;
    let (old, new) = (master_key_b64(42), master_key_b64(43));
    let ring = format!("{new},{old}");

    let (ok, status, err) = keys_command(&app, &ring, &["status"]);
    assert!(ok, "{err}");
    assert_eq!(
        status,
        json!({"active_key_id": key_id(43), "keys": [
            {"key_id": key_id(43), "state": "active", "secrets": 0},
            {"key_id": key_id(42), "state": "decrypt-only", "secrets": 2},
        ]})
    );

    // Dropping the old key before rotating is refused, naming the key and the row count.
    match build_with_keys(&app, &new).await {
        Err(StartupError::MasterKey(KeyCheckError::KeyInUse { key_id: id, rows })) => {
            assert_eq!((id, rows), (key_id(42), 2));
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("started without a key that still encrypts secrets"),
    }

    let (ok, report, err) = keys_command(&app, &ring, &["rotate", "--batch-size", "1"]);
    assert!(ok, "{err}");
    assert_eq!(report, json!({"rewrapped": 2, "failed": 0, "remaining": 0}));
    for id in &ids[..2] {
        let (_, ciphertext) = raw_row(&app, id).await;
        assert!(
            ciphertext
                .unwrap()
                .starts_with(&format!("v1:{}:", key_id(43)))
        );
    }
    let (ok, again, _) = keys_command(&app, &ring, &["rotate"]);
    assert!(ok);
    assert_eq!(again, json!({"rewrapped": 0, "failed": 0, "remaining": 0}));
    let (_, status, _) = keys_command(&app, &ring, &["status"]);
    assert_eq!(status["keys"][0]["secrets"], 2);
    assert_eq!(status["keys"][1]["secrets"], 0);

    // The new key alone now serves, and decrypts the re-encrypted secrets.
    let server = build_with_keys(&app, &new)
        .await
        .expect("starts on the new key");
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone()));
    let tested: Value = app
        .http
        .post(format!("http://{addr}{BASE}/{}/test", ids[0]))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tested["status"], "healthy", "{tested}");
    let log: Value = app
        .http
        .get(format!(
            "http://{addr}/api/admin/audit-log?action=keys.rotate"
        ))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "one audit row per re-encrypted secret");
    assert_eq!(entries[0]["actor"], "socmate keys rotate");
    shutdown.cancel();
}

#[tokio::test]
async fn a_secret_no_key_can_read_is_reported_as_failed_and_left_alone() {
    let app = spawn_app().await;
    let a = app.create_provider_id("A").await;
    let b = app.create_provider_id("B").await;
    // B's ciphertext copied into A: bound to B's row, so it cannot authenticate as A's.
    let (_, b_cipher) = raw_row(&app, &b).await;
    set_ciphertext(&app, &a, b_cipher.as_deref().unwrap()).await;
    app.stop().await;

    let ring = format!("{},{}", master_key_b64(43), master_key_b64(42));
    let (ok, report, err) = keys_command(&app, &ring, &["rotate"]);
    assert!(!ok, "a failed secret makes the command fail");
    assert!(err.contains("could not be decrypted"), "{err}");
    assert_eq!(report, json!({"rewrapped": 1, "failed": 1, "remaining": 1}));
    assert_eq!(raw_row(&app, &a).await.1, b_cipher, "left as it was");
}

#[tokio::test]
async fn bad_key_lists_are_refused_without_echoing_them() {
    let app = spawn_app().await;
    app.stop().await;
    let (ok, _, err) = keys_command(&app, "not-a-key,also-bad", &["status"]);
    assert!(!ok);
    assert!(err.contains("entry 1"), "{err}");
    assert!(!err.contains("not-a-key"), "{err}");
}

/// The documented procedure (docs/operations.md), run against two replicas on one PostgreSQL
/// while a load balancer keeps sending them requests: every replica is restarted three times,
/// `keys rotate` runs in between, and no request may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: set SOCMATE_TEST_DATABASE_URL and pass --include-ignored (CI does)"]
async fn rolling_key_rotation_across_two_replicas_under_load_fails_no_request() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, RwLock};

    use crate::helpers::{Options, provider_body, rotated_secret, secret};
    use crate::process::{Server, command, issue_token};

    let url = crate::pg::fresh_database()
        .await
        .expect("SOCMATE_TEST_DATABASE_URL must be set for this test");
    let emulator = azure_emulator::RunningEmulator::start(Options::default().emulator)
        .await
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let (k1, k2) = (master_key_b64(51), master_key_b64(52));
    let env = |keys: String| {
        vec![
            ("SOCMATE_DATABASE_URL", url.clone()),
            ("SOCMATE_MASTER_KEYS", keys),
            ("SOCMATE_SYNC_INTERVAL", "0".to_owned()),
            ("SOCMATE_WRITE_RATE", "100000".to_owned()),
            ("SOCMATE_CONNECTION_TEST_RATE", "100000".to_owned()),
        ]
    };
    let start = |name: &'static str, keys: String, generation: usize| {
        let dir = root.path().join(name);
        let emulator = &emulator;
        let envs = env(keys);
        async move {
            let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Server::start(
                &dir,
                Some(emulator),
                &envs,
                &format!("{name}-{generation}.log"),
            )
            .await
        }
    };
    let mut replicas = vec![
        start("r1", k1.clone(), 0).await,
        start("r2", k1.clone(), 0).await,
    ];
    let token = issue_token(&root.path().join("cli"), "admin");
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..6 {
        let created: Value = http
            .post(format!("{}{BASE}", replicas[0].base))
            .bearer_auth(&token)
            .json(&provider_body(&format!("Workspace {i}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }

    // The load balancer: requests go round-robin to the replicas currently in rotation, and a
    // replica taken out of rotation is drained (its requests in flight finish) before it stops.
    let in_rotation = Arc::new(RwLock::new(
        replicas.iter().map(|r| r.base.clone()).collect::<Vec<_>>(),
    ));
    let in_flight = Arc::new(Mutex::new(std::collections::HashMap::<String, usize>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (in_rotation, in_flight, stop, served, failures) = (
                in_rotation.clone(),
                in_flight.clone(),
                stop.clone(),
                served.clone(),
                failures.clone(),
            );
            let (http, token, ids) = (http.clone(), token.clone(), ids.clone());
            tokio::spawn(async move {
                let mut n = worker;
                while !stop.load(Ordering::Relaxed) {
                    n += 4;
                    let base = {
                        let bases = in_rotation.read().unwrap();
                        let base = bases[n % bases.len()].clone();
                        *in_flight.lock().unwrap().entry(base.clone()).or_default() += 1;
                        base
                    };
                    let id = &ids[n % ids.len()];
                    let request = match n % 10 {
                        0 => http
                            .patch(format!("{base}{BASE}/{id}"))
                            .json(&json!({"client_secret":
                                if n % 20 == 0 { secret() } else { rotated_secret() }})),
                        1 => http
                            .post(format!("{base}{BASE}"))
                            .json(&provider_body(&format!("Load {worker}-{n}"))),
                        2..=5 => http.post(format!("{base}{BASE}/{id}/test")),
                        6 => http.get(format!("{base}{BASE}/{id}")),
                        _ => http.get(format!("{base}{BASE}")),
                    };
                    match request.bearer_auth(&token).send().await {
                        Ok(r) if r.status().is_success() => {
                            let body: Value = r.json().await.unwrap_or(Value::Null);
                            // A connection test must decrypt the secret and pass.
                            if body.get("checks").is_some() && body["status"] != "healthy" {
                                failures.lock().unwrap().push(format!("{base}: {body}"));
                            } else {
                                served.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(r) => {
                            let status = r.status();
                            let body = r.text().await.unwrap_or_default();
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("{base}: {status} {body}"));
                        }
                        Err(e) => failures.lock().unwrap().push(format!("{base}: {e}")),
                    }
                    if let Some(count) = in_flight.lock().unwrap().get_mut(&base) {
                        *count -= 1;
                    }
                }
            })
        })
        .collect();

    // One rolling restart: drain a replica, stop it gracefully, start it with `keys`, re-admit.
    let mut generation = 0;
    let mut roll = async |replicas: &mut Vec<Server>, keys: &str| {
        generation += 1;
        for (slot, name) in [(0, "r1"), (1, "r2")] {
            let old = replicas.remove(slot);
            in_rotation.write().unwrap().retain(|b| *b != old.base);
            wait_until(Duration::from_secs(30), "the replica to drain", || async {
                match in_flight
                    .lock()
                    .unwrap()
                    .get(&old.base)
                    .copied()
                    .unwrap_or(0)
                {
                    0 => Ok(()),
                    n => Err(format!("{n} requests in flight")),
                }
            })
            .await;
            let exit = tokio::task::spawn_blocking(move || old.terminate())
                .await
                .unwrap();
            assert!(exit.success(), "graceful stop");
            let fresh = start(name, keys.to_owned(), generation).await;
            in_rotation.write().unwrap().push(fresh.base.clone());
            replicas.insert(slot, fresh);
            // Deliberately a while under load with this replica set, not a wait for a state.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let rotate = |keys: &str| {
        let out = command(&root.path().join("cli"), None, &[])
            .args(["keys", "rotate"])
            .env("SOCMATE_DATABASE_URL", &url)
            .env("SOCMATE_MASTER_KEYS", keys)
            .output()
            .unwrap();
        crate::process::assert_succeeded(&out);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };

    tokio::time::sleep(Duration::from_millis(300)).await;
    // 1. Every replica learns the new key, for decryption only.
    roll(&mut replicas, &format!("{k1},{k2}")).await;
    // 2. Every replica encrypts under the new key.
    roll(&mut replicas, &format!("{k2},{k1}")).await;
    // 3. Re-encrypt what the old key still holds.
    let first = rotate(&format!("{k2},{k1}"));
    assert_eq!(first["failed"], 0, "{first}");
    assert_eq!(first["remaining"], 0, "{first}");
    // 4. Drop the old key.
    roll(&mut replicas, &k2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    let served = served.load(Ordering::Relaxed);
    assert!(served > 100, "too little load to prove anything: {served}");
    assert_eq!(
        rotate(&k2),
        json!({"rewrapped": 0, "failed": 0, "remaining": 0}),
        "a second rotation has nothing to do"
    );
    let out = command(&root.path().join("cli"), None, &[])
        .args(["keys", "status"])
        .env("SOCMATE_DATABASE_URL", &url)
        .env("SOCMATE_MASTER_KEYS", &k2)
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = status["keys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        1,
        "only the new key encrypts anything: {status}"
    );
    assert_eq!(keys[0]["key_id"], key_id(52));
    println!("rolling rotation: {served} requests served, 0 failed, first rotate {first}");
    for replica in replicas {
        replica.kill();
    }
}

#[tokio::test]
async fn a_lost_key_can_be_forgotten_and_its_secrets_entered_again() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["One", "Two"] {
        ids.push(app.create_provider_id(name).await);
    }
    app.stop().await;
    // Key 43 joined the ring (its check value is recorded), then key 42 was lost before
    // `keys rotate` ran: only key 43 is left.
    let (ok, _, err) = keys_command(
        &app,
        &format!("{},{}", master_key_b64(43), master_key_b64(42)),
        &["status"],
    );
    assert!(ok, "{err}");
    let survivor = master_key_b64(43);
    assert!(matches!(
        build_with_keys(&app, &survivor).await,
        Err(StartupError::MasterKey(KeyCheckError::KeyInUse { .. }))
    ));
    let (ok, _, err) = keys_command(&app, &survivor, &["forget", "--key-id", &key_id(43)]);
    assert!(!ok && err.contains("is configured"), "{err}");
    let (ok, _, err) = keys_command(&app, &survivor, &["forget", "--key-id", &key_id(42)]);
    assert!(ok, "{err}");
    let (_, status, _) = keys_command(&app, &survivor, &["status"]);
    assert_eq!(
        status["keys"][1],
        json!({"key_id": key_id(42), "state": "forgotten", "secrets": 2})
    );

    let server = build_with_keys(&app, &survivor)
        .await
        .expect("starts once the lost key is declared forgotten");
    let base = format!("http://{}", server.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone()));
    let test = |id: String| {
        let (http, base, token) = (app.http.clone(), base.clone(), app.admin.clone());
        async move {
            http.post(format!("{base}{BASE}/{id}/test"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let unreadable = test(ids[0].clone()).await;
    assert_eq!(unreadable["status"], "error");
    assert_eq!(unreadable["checks"][0]["code"], "credential_unreadable");
    // The admin enters the secret again: it is stored under the surviving key.
    let patched = app
        .http
        .patch(format!("{base}{BASE}/{}", ids[0]))
        .bearer_auth(&app.admin)
        .json(&json!({"client_secret": crate::helpers::secret()}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), reqwest::StatusCode::OK);
    assert_eq!(test(ids[0].clone()).await["status"], "healthy");
    shutdown.cancel();

    let (ok, report, err) = keys_command(&app, &survivor, &["rotate"]);
    assert!(ok, "secrets under a forgotten key are not failures: {err}");
    assert_eq!(report, json!({"rewrapped": 0, "failed": 0, "remaining": 1}));
}
