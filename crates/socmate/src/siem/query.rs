//! Queries as every provider type runs them, and the typed tables they return.

use std::time::Duration;

use serde_json::value::RawValue;

/// An analyst's query, as every provider type receives it.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub query: String,
    /// ISO 8601 duration (`P1D`) or `start/end` interval, applied on top of the query's filters.
    pub timespan: String,
    /// How long the SIEM may work on it.
    pub timeout: Duration,
    /// Rows kept per result; the rest are dropped and the result flagged `truncated`.
    pub row_cap: usize,
}

/// Why a query produced no result. Every variant says what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SIEM rejected the query itself (syntax, unknown table…): the analyst must fix it.
    /// `message` names the SIEM and says why.
    #[error("the query is invalid: {message}")]
    Invalid {
        message: String,
        /// The SIEM's own error object, passed through for the analyst.
        upstream: Box<serde_json::Value>,
    },
    /// The provider's credentials or permissions do not allow the query.
    #[error("{code}: {hint}")]
    Denied { code: &'static str, hint: String },
    /// The SIEM is throttling; retry after the given delay.
    #[error("the SIEM is throttling queries")]
    Throttled { retry_after: Option<Duration> },
    #[error("the query did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the SIEM is unavailable: {0}")]
    Unavailable(String),
    #[error("the SIEM's answer could not be read: {0}")]
    Unreadable(String),
}

/// A query result: typed tables, already serialised.
///
/// Results reach hundreds of megabytes, so providers transcode the SIEM's answer straight into
/// SoCMate's JSON table format (`[{"name", "columns": [{"name", "type"}], "rows": [[…]]}]`)
/// instead of building a value tree; the HTTP layer sends these bytes as they are. Values keep
/// their exact types: 64-bit integers never pass through `f64`, decimals stay strings, `NaN` and
/// `Infinity` stay the strings the SIEM sends, and `dynamic` values become the JSON they
/// encode.
#[derive(Debug)]
pub struct QueryResult {
    pub tables_json: Vec<u8>,
    pub row_count: usize,
    /// Present when the SIEM returned partial results: its error, verbatim.
    pub partial_error: Option<serde_json::Value>,
    pub statistics: Option<Box<RawValue>>,
    pub truncated: bool,
    /// Structured values nested deeper than [`MAX_VALUE_DEPTH`], relayed as the JSON text the
    /// SIEM sent (a string) instead of as JSON: most clients' parsers give up far sooner.
    pub values_left_encoded: usize,
}

/// The deepest nesting of a structured (`dynamic`) value relayed as JSON. Real SIEM values
/// nest a few levels; 64 keeps the whole response (its envelope adds five) inside the 128
/// levels that common parsers (serde_json, browsers' defaults vary higher) accept.
pub const MAX_VALUE_DEPTH: usize = 64;
