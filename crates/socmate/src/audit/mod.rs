//! The admin audit log: every admin action, in the same transaction as the change it
//! describes (no audit row, no change), plus refused admin requests and sign-ins. Never a
//! secret: rows hold ids, names and outcome codes only.
//!
//! What an unauthenticated or refused caller can make us write is bounded: request ids are
//! short by the time they get here (`telemetry::keep_plain_request_id`), caller text is cut to
//! [`MAX_CALLER_TEXT`] characters, and the same refusal repeated by one caller within
//! [`REFUSAL_WINDOW`] adds to one row's `count` instead of writing a row per attempt. Rows older
//! than the retention period are pruned (`app::prune`).

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AuthUser, Role};
use crate::http::client_addr::ClientAddr;
use crate::http::{ApiError, AppQuery, page};
use crate::providers::model::{optional_timestamp, timestamp};
use crate::store::{Db, StoreError, with_db};

/// Who is acting, from where, in which request.
#[derive(Debug, Clone)]
pub struct AuditContext {
    pub actor: String,
    pub actor_role: &'static str,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Analyst => "analyst",
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuditContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        Ok(context_of(parts, &user))
    }
}

pub fn context_of(parts: &Parts, user: &AuthUser) -> AuditContext {
    context_for(parts, user.email.clone(), role_name(user.role))
}

/// The context of a caller who is not (yet) authenticated, such as a sign-in attempt.
pub fn context_for(parts: &Parts, actor: String, actor_role: &'static str) -> AuditContext {
    AuditContext {
        actor,
        actor_role,
        request_id: parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        client_addr: parts
            .extensions
            .get::<ClientAddr>()
            .map(|c| c.0.to_string()),
    }
}

/// Inserts one audit row with the executor `$exec` (a transaction, so the row commits or rolls
/// back with the change). A macro because the executor's type differs per database backend.
macro_rules! audit_row {
    ($exec:expr, $ctx:expr, $action:expr, $target:expr, $outcome:expr, $detail:expr) => {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, actor_role, action, target_id, outcome, detail, request_id, client_addr) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(chrono::Utc::now())
        .bind(&$ctx.actor)
        .bind($ctx.actor_role)
        .bind($action)
        .bind($target)
        .bind($outcome)
        .bind($detail)
        .bind($ctx.request_id.as_deref())
        .bind($ctx.client_addr.as_deref())
        .execute($exec)
        .await
    };
}
pub(crate) use audit_row;

/// The most characters of caller-chosen text (a path, an attempted email) an audit row keeps.
pub const MAX_CALLER_TEXT: usize = 256;

/// Repeats of one refusal from one caller within this window share a row.
pub const REFUSAL_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// `text` cut to [`MAX_CALLER_TEXT`] characters, marked when cut.
pub fn caller_text(text: &str) -> String {
    match text.char_indices().nth(MAX_CALLER_TEXT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Records a refused attempt (a denied route, a failed or rate-limited sign-in). The same
/// refusal from the same caller and address within [`REFUSAL_WINDOW`] counts on the latest
/// row (`count`, `last_at`), so a flood of attempts costs one row per window.
pub async fn record_refusal(
    db: &Db,
    ctx: &AuditContext,
    action: &str,
    outcome: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let actor = caller_text(&ctx.actor);
    let detail = detail.map(caller_text);
    let counted = with_db!(db, |pool| {
        sqlx::query(
            "UPDATE audit_log SET count = count + 1, last_at = $1 WHERE seq = (\
               SELECT seq FROM audit_log WHERE actor = $2 AND action = $3 AND outcome = $4 \
               AND client_addr IS NOT DISTINCT FROM $5 AND detail IS NOT DISTINCT FROM $6 \
               AND at >= $7 ORDER BY seq DESC LIMIT 1)",
        )
        .bind(now)
        .bind(&actor)
        .bind(action)
        .bind(outcome)
        .bind(ctx.client_addr.as_deref())
        .bind(detail.as_deref())
        .bind(now - REFUSAL_WINDOW)
        .execute(pool)
        .await?
        .rows_affected()
    });
    if counted == 0 {
        let ctx = AuditContext {
            actor,
            ..ctx.clone()
        };
        record(db, &ctx, action, None, outcome, detail.as_deref()).await?;
    }
    Ok(())
}

/// Records an action that changed nothing (a refusal, a failed change, a connection test).
pub async fn record(
    db: &Db,
    ctx: &AuditContext,
    action: &str,
    target: Option<&str>,
    outcome: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    with_db!(db, |pool| {
        audit_row!(pool, ctx, action, target, outcome, detail)?;
    });
    Ok(())
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
#[schema(as = AdminAuditEntry)]
pub struct AuditEntry {
    #[serde(skip)]
    pub seq: i64,
    #[serde(serialize_with = "timestamp")]
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
    pub actor: String,
    pub actor_role: String,
    pub action: String,
    pub target_id: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    /// How many times this happened: refusals repeated within ten minutes share a row.
    pub count: i64,
    /// When the last of `count` repeats happened (absent for a single event).
    #[serde(
        serialize_with = "optional_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
    /// Only this actor's entries (an email, or `socmate keys rotate`).
    actor: Option<String>,
    /// Only this action, such as `provider.create` or `auth.login`.
    action: Option<String>,
    /// Only entries about this resource id.
    target_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = AdminAuditPage)]
struct AuditPage {
    entries: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

/// `GET /api/admin/audit-log`.
pub fn router() -> OpenApiRouter<Db> {
    OpenApiRouter::new().routes(routes!(list))
}

/// The admin audit log, newest first.
#[utoipa::path(get, path = "", tag = "Audit log (admin)", params(ListQuery),
    responses((status = 200, description = "One page of audit entries", body = AuditPage)))]
async fn list(
    State(db): State<Db>,
    AppQuery(q): AppQuery<ListQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page::limit(q.limit, 200)?;
    let before = page::seq_cursor(q.cursor.as_deref())?;
    let sql = "SELECT seq, at, actor, actor_role, action, target_id, outcome, detail, request_id, client_addr, count, last_at \
               FROM audit_log WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) \
               AND ($3 IS NULL OR target_id = $3) AND ($4 IS NULL OR seq < $4) ORDER BY seq DESC LIMIT $5";
    let mut entries: Vec<AuditEntry> = with_db!(&db, |pool| {
        sqlx::query_as(sql)
            .bind(&q.actor)
            .bind(&q.action)
            .bind(&q.target_id)
            .bind(before)
            .bind(limit + 1)
            .fetch_all(pool)
            .await
            .map_err(StoreError::from)?
    });
    let next_cursor = page::next_cursor(&mut entries, limit, |e| e.seq.to_string());
    Ok(Json(AuditPage {
        entries,
        next_cursor,
    }))
}
