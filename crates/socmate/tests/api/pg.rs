//! The PostgreSQL half of the test matrix: with `SOCMATE_TEST_DATABASE_URL` set, every test app
//! gets a fresh database on that server; without it the suite runs on SQLite.

use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};

pub async fn fresh_database() -> Option<String> {
    let server = std::env::var("SOCMATE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).expect("random");
    let name = format!(
        "socmate_test_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let mut conn = PgConnection::connect(&server).await.unwrap_or_else(|e| {
        panic!("SOCMATE_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}")
    });
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create database");
    let mut url = url::Url::parse(&server).expect("SOCMATE_TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    Some(url.to_string())
}
