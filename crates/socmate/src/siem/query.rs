//! Queries as every provider type runs them, and the typed tables they return.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
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
    #[error("the query is invalid: {message}")]
    Invalid {
        message: String,
        /// The SIEM's own error object, passed through for the analyst.
        upstream: serde_json::Value,
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

/// A query result in typed tables.
#[derive(Debug, Serialize)]
pub struct QueryResult {
    pub tables: Vec<Table>,
    /// Present when the SIEM returned partial results: its error, verbatim.
    pub partial_error: Option<serde_json::Value>,
    pub statistics: Option<Box<RawValue>>,
    pub truncated: bool,
}

impl QueryResult {
    pub fn row_count(&self) -> usize {
        self.tables.iter().map(|t| t.rows.len()).sum()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

/// One value, kept exactly as the SIEM typed it: 64-bit integers never pass through `f64`,
/// decimals stay strings, `NaN`/`Infinity` stay the strings Log Analytics sends, and `dynamic`
/// values become the JSON they encode.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Real(f64),
    Text(Box<str>),
    /// Parsed JSON from a `dynamic` column, or a nested value.
    Json(Box<RawValue>),
}

impl Serialize for Cell {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Null => s.serialize_unit(),
            Cell::Bool(b) => s.serialize_bool(*b),
            Cell::Int(i) => s.serialize_i64(*i),
            Cell::UInt(u) => s.serialize_u64(*u),
            Cell::Real(f) => s.serialize_f64(*f),
            Cell::Text(t) => s.serialize_str(t),
            Cell::Json(raw) => raw.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CellVisitor;
        impl<'de> Visitor<'de> for CellVisitor {
            type Value = Cell;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table cell")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
                Ok(Cell::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cell, E> {
                Ok(Cell::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell, E> {
                Ok(i64::try_from(v).map_or(Cell::UInt(v), Cell::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell, E> {
                Ok(Cell::Real(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell::Text(v.into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Cell, E> {
                Ok(Cell::Text(v.into_boxed_str()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Cell, A::Error> {
                let value =
                    serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                to_raw(&value).map(Cell::Json).map_err(de::Error::custom)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Cell, A::Error> {
                let value =
                    serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                to_raw(&value).map(Cell::Json).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(CellVisitor)
    }
}

fn to_raw(value: &serde_json::Value) -> serde_json::Result<Box<RawValue>> {
    RawValue::from_string(serde_json::to_string(value)?)
}

impl Table {
    /// Turns `dynamic` cells (JSON encoded in a string on the wire) into the JSON they hold.
    /// A string that is not JSON stays a string rather than failing the whole result.
    pub fn decode_dynamic_columns(&mut self) {
        let dynamic: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind == "dynamic")
            .map(|(i, _)| i)
            .collect();
        if dynamic.is_empty() {
            return;
        }
        for row in &mut self.rows {
            for &i in &dynamic {
                if let Some(cell) = row.get_mut(i)
                    && let Cell::Text(text) = cell
                    && let Ok(raw) = RawValue::from_string(text.to_string())
                {
                    *cell = Cell::Json(raw);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_exact_types_through_a_round_trip() {
        let wire = r#"{"name":"PrimaryResult","columns":[{"name":"l","type":"long"},{"name":"d","type":"decimal"},
            {"name":"r","type":"real"},{"name":"n","type":"real"},{"name":"j","type":"dynamic"},{"name":"b","type":"bool"},
            {"name":"z","type":"string"}],
            "rows":[[9223372036854775807,"79228162514264337593543950335",1.7976931348623157e+308,"NaN","{\"a\":[1,2]}",true,null],
                    [-9223372036854775808,"0.1",0.1,"-Infinity","not json",false,""]]}"#;
        let mut table: Table = serde_json::from_str(wire).unwrap();
        table.decode_dynamic_columns();
        let out = serde_json::to_string(&table.rows).unwrap();
        assert_eq!(
            out,
            r#"[[9223372036854775807,"79228162514264337593543950335",1.7976931348623157e+308,"NaN",{"a":[1,2]},true,null],[-9223372036854775808,"0.1",0.1,"-Infinity","not json",false,""]]"#
        );
    }
}
