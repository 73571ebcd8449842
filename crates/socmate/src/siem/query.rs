//! Queries as every provider type runs them, and the typed tables they return.

use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

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

/// A query result: typed tables, already serialised, and what follows them.
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
    pub summary: ResultSummary,
}

/// What is known of a result only once all of it has been read.
#[derive(Debug, Default)]
pub struct ResultSummary {
    pub row_count: usize,
    /// Present when the SIEM returned partial results: its error, verbatim.
    pub partial_error: Option<serde_json::Value>,
    pub statistics: Option<Box<RawValue>>,
    pub truncated: bool,
    /// Structured values nested deeper than [`MAX_VALUE_DEPTH`], relayed as the JSON text the
    /// SIEM sent (a string) instead of as JSON: most clients' parsers give up far sooner.
    pub values_left_encoded: usize,
}

/// One piece of a result on its way from a provider.
#[derive(Debug)]
pub enum ResultPiece {
    /// The next bytes of the table JSON.
    Tables(Bytes),
    /// The result's end: its summary, or why it broke off.
    End(Result<ResultSummary, QueryError>),
}

/// A result as a provider sends it: pieces of table JSON in order, then its end. A provider
/// sends them while the SIEM's answer downloads, so that a large result can be answered before
/// all of it has arrived, from a few pieces in memory at a time.
#[derive(Debug)]
pub struct ResultStream {
    pieces: mpsc::Receiver<ResultPiece>,
}

impl ResultStream {
    /// Pieces a provider may send ahead of the reader.
    const PIECES_IN_FLIGHT: usize = 8;

    /// A stream and the sender a provider fills it with. Dropping the stream tells the sender
    /// (its sends fail) that nobody reads any more.
    pub fn channel() -> (mpsc::Sender<ResultPiece>, Self) {
        let (sender, pieces) = mpsc::channel(Self::PIECES_IN_FLIGHT);
        (sender, Self { pieces })
    }

    /// A result that is already whole.
    pub fn whole(result: QueryResult) -> Self {
        let (sender, pieces) = mpsc::channel(2);
        // Two sends into room for two, with the receiver held here: neither can fail.
        let _ = sender.try_send(ResultPiece::Tables(result.tables_json.into()));
        let _ = sender.try_send(ResultPiece::End(Ok(result.summary)));
        Self { pieces }
    }

    /// The next piece. A provider that stopped sending before the end is an unavailable SIEM.
    pub async fn next(&mut self) -> ResultPiece {
        self.pieces.recv().await.unwrap_or_else(|| {
            ResultPiece::End(Err(QueryError::Unavailable(
                "the provider stopped before the end of the result".into(),
            )))
        })
    }

    /// Reads the whole result.
    pub async fn collect(mut self) -> Result<QueryResult, QueryError> {
        let mut tables_json = Vec::new();
        loop {
            match self.next().await {
                ResultPiece::Tables(piece) => tables_json.extend_from_slice(&piece),
                ResultPiece::End(summary) => {
                    return Ok(QueryResult {
                        tables_json,
                        summary: summary?,
                    });
                }
            }
        }
    }
}

/// The deepest nesting of a structured (`dynamic`) value relayed as JSON. Real SIEM values
/// nest a few levels; 64 keeps the whole response (its envelope adds five) inside the 128
/// levels that common parsers (serde_json, browsers' defaults vary higher) accept.
pub const MAX_VALUE_DEPTH: usize = 64;
