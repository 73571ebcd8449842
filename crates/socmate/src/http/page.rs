//! Keyset pagination shared by the list endpoints (`?limit=&cursor=`): a page fetches one row
//! more than asked to learn whether another page follows.

use axum::http::StatusCode;

use super::ApiError;

pub const DEFAULT_LIMIT: i64 = 50;

/// The requested page size, `DEFAULT_LIMIT` when absent, refused outside `1..=max`.
pub fn limit(requested: Option<i64>, max: i64) -> Result<i64, ApiError> {
    let limit = requested.unwrap_or(DEFAULT_LIMIT);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            format!("limit must be between 1 and {max}"),
        ))
    }
}

pub fn invalid_cursor() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
        "cursor must be a next_cursor value from a previous page",
    )
}

/// A cursor that is a row sequence number: decimal digits only, as `next_cursor` writes them.
pub fn seq_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| {
            let digits = !c.is_empty() && c.len() <= 18 && c.bytes().all(|b| b.is_ascii_digit());
            digits
                .then(|| c.parse::<i64>().ok())
                .flatten()
                .ok_or_else(invalid_cursor)
        })
        .transpose()
}

/// Drops the look-ahead row and returns the cursor of the last row kept, if a page follows.
pub fn next_cursor<T>(
    rows: &mut Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> String,
) -> Option<String> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(cursor_of)
}
