//! One pass from a Log Analytics answer to SoCMate's table JSON, without a value tree.
//!
//! The answer is deserialised with seeds that write each value straight into the output
//! buffer as it is read: scalars are copied with their exact JSON form (integers through
//! `i64`/`u64`, never `f64`), `dynamic` cells — JSON encoded in a string on the wire — are
//! validated and emitted as the JSON they hold (unless they nest deeper than
//! [`MAX_VALUE_DEPTH`]: then they stay the string they came as, and are counted), and rows past
//! the cap are skipped unread.
//! Log Analytics sends `name`, `columns`, then `rows`; should rows ever come before columns,
//! dynamic cells pass through as strings rather than failing the result.

use std::fmt;
use std::io::Write as _;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::siem::MAX_VALUE_DEPTH;

/// What a Log Analytics answer holds besides its tables.
#[derive(Debug, Default)]
pub struct Transcoded {
    pub tables_json: Vec<u8>,
    pub row_count: usize,
    pub truncated: bool,
    pub error: Option<serde_json::Value>,
    pub statistics: Option<Box<RawValue>>,
    pub saw_tables: bool,
    pub values_left_encoded: usize,
}

struct State {
    out: Vec<u8>,
    row_cap: usize,
    rows_kept: usize,
    truncated: bool,
    values_left_encoded: usize,
}

/// Transcodes a whole answer; `size_hint` pre-sizes the output to avoid regrowing it.
pub fn transcode<'de, D: Deserializer<'de>>(
    d: D,
    row_cap: usize,
    size_hint: usize,
) -> Result<Transcoded, D::Error> {
    let mut state = State {
        out: Vec::with_capacity(size_hint),
        row_cap,
        rows_kept: 0,
        truncated: false,
        values_left_encoded: 0,
    };
    let (error, statistics, saw_tables) = d.deserialize_map(Answer(&mut state))?;
    if !saw_tables {
        state.out.extend_from_slice(b"[]");
    }
    Ok(Transcoded {
        tables_json: state.out,
        row_count: state.rows_kept,
        truncated: state.truncated,
        error,
        statistics,
        saw_tables,
        values_left_encoded: state.values_left_encoded,
    })
}

/// Whether the JSON text `json` nests arrays and objects deeper than `limit` (brackets inside
/// strings do not count). serde_json validates raw values without a depth limit.
fn nests_deeper_than(json: &str, limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for byte in json.bytes() {
        match (in_string, escaped, byte) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') | (false, _, b'"') => in_string = !in_string,
            (false, _, b'[' | b'{') => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn write_json<T: serde::Serialize + ?Sized, E: de::Error>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), E> {
    serde_json::to_writer(out, value).map_err(E::custom)
}

struct Answer<'a>(&'a mut State);

impl<'de> Visitor<'de> for Answer<'_> {
    type Value = (Option<serde_json::Value>, Option<Box<RawValue>>, bool);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Log Analytics query answer")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut error, mut statistics, mut saw_tables) = (None, None, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "tables" if !saw_tables => {
                    saw_tables = true;
                    map.next_value_seed(Tables(&mut *self.0))?;
                }
                "error" => error = map.next_value()?,
                "statistics" => statistics = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((error, statistics, saw_tables))
    }
}

struct Tables<'a>(&'a mut State);

impl<'de> DeserializeSeed<'de> for Tables<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Tables<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of tables")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.out.push(b'[');
        let mut first = true;
        loop {
            let mark = self.0.out.len();
            if !first {
                self.0.out.push(b',');
            }
            if seq.next_element_seed(TableSeed(&mut *self.0))?.is_none() {
                self.0.out.truncate(mark);
                break;
            }
            first = false;
        }
        self.0.out.push(b']');
        Ok(())
    }
}

struct TableSeed<'a>(&'a mut State);

impl<'de> DeserializeSeed<'de> for TableSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

impl<'de> Visitor<'de> for TableSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        state.out.push(b'{');
        let mut dynamic: Vec<bool> = Vec::new();
        let mut first = true;
        while let Some(key) = map.next_key::<String>()? {
            if !matches!(key.as_str(), "name" | "columns" | "rows") {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if !first {
                state.out.push(b',');
            }
            first = false;
            write_json::<_, A::Error>(&mut state.out, &key)?;
            state.out.push(b':');
            match key.as_str() {
                "name" => {
                    let name: String = map.next_value()?;
                    write_json::<_, A::Error>(&mut state.out, &name)?;
                }
                "columns" => {
                    let columns: Vec<Column> = map.next_value()?;
                    dynamic = columns.iter().map(|c| c.kind == "dynamic").collect();
                    write_json::<_, A::Error>(&mut state.out, &columns)?;
                }
                _ => map.next_value_seed(Rows {
                    state: &mut *state,
                    dynamic: &dynamic,
                })?,
            }
        }
        state.out.push(b'}');
        Ok(())
    }
}

struct Rows<'a> {
    state: &'a mut State,
    dynamic: &'a [bool],
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.state;
        state.out.push(b'[');
        let mut first = true;
        loop {
            if state.rows_kept >= state.row_cap {
                // Past the cap: read the rest without keeping it.
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                state.truncated = true;
                continue;
            }
            let mark = state.out.len();
            if !first {
                state.out.push(b',');
            }
            if seq
                .next_element_seed(Row {
                    state: &mut *state,
                    dynamic: self.dynamic,
                })?
                .is_none()
            {
                state.out.truncate(mark);
                break;
            }
            first = false;
            state.rows_kept += 1;
        }
        state.out.push(b']');
        Ok(())
    }
}

struct Row<'a> {
    state: &'a mut State,
    dynamic: &'a [bool],
}

impl<'de> DeserializeSeed<'de> for Row<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Row<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.state.out.push(b'[');
        let mut index = 0;
        loop {
            if index > 0 {
                self.state.out.push(b',');
            }
            let dynamic = self.dynamic.get(index).copied().unwrap_or(false);
            if seq
                .next_element_seed(CellSeed {
                    state: &mut *self.state,
                    dynamic,
                })?
                .is_none()
            {
                if index > 0 {
                    self.state.out.pop();
                }
                break;
            }
            index += 1;
        }
        self.state.out.push(b']');
        Ok(())
    }
}

/// Copies one cell to the output in its exact JSON form.
struct CellSeed<'a> {
    state: &'a mut State,
    dynamic: bool,
}

impl<'de> DeserializeSeed<'de> for CellSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a cell value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.state.out.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.state
            .out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        write!(self.state.out, "{v}").map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        write!(self.state.out, "{v}").map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        write_json(&mut self.state.out, &v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        if self.dynamic
            && let Ok(raw) = serde_json::from_str::<&RawValue>(v)
        {
            if !nests_deeper_than(raw.get(), MAX_VALUE_DEPTH) {
                self.state.out.extend_from_slice(raw.get().as_bytes());
                return Ok(());
            }
            self.state.values_left_encoded += 1;
        }
        write_json(&mut self.state.out, v)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.visit_str(v)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.visit_str(&v)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let value = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        write_json(&mut self.state.out, &value)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let value = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        write_json(&mut self.state.out, &value)
    }
}

use serde::Deserialize as _;

#[cfg(test)]
mod tests {
    use super::*;

    fn run(wire: &str, cap: usize) -> Transcoded {
        transcode(&mut serde_json::Deserializer::from_str(wire), cap, 0).unwrap()
    }

    #[test]
    fn values_keep_their_exact_types() {
        let wire = r#"{"tables":[{"name":"PrimaryResult","columns":[{"name":"l","type":"long"},{"name":"d","type":"decimal"},
            {"name":"r","type":"real"},{"name":"n","type":"real"},{"name":"j","type":"dynamic"},{"name":"b","type":"bool"},
            {"name":"z","type":"string"}],
            "rows":[[9223372036854775807,"79228162514264337593543950335",1.7976931348623157e308,"NaN","{\"a\":[1,2]}",true,null],
                    [-9223372036854775808,"0.1",0.1,"-Infinity","not json",false,"é\"\n"]]}]}"#;
        let t = run(wire, 100);
        let out = String::from_utf8(t.tables_json).unwrap();
        assert_eq!(
            out,
            r#"[{"name":"PrimaryResult","columns":[{"name":"l","type":"long"},{"name":"d","type":"decimal"},{"name":"r","type":"real"},{"name":"n","type":"real"},{"name":"j","type":"dynamic"},{"name":"b","type":"bool"},{"name":"z","type":"string"}],"rows":[[9223372036854775807,"79228162514264337593543950335",1.7976931348623157e+308,"NaN",{"a":[1,2]},true,null],[-9223372036854775808,"0.1",0.1,"-Infinity","not json",false,"é\"\n"]]}]"#
        );
        assert_eq!(t.row_count, 2);
        assert!(!t.truncated);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed[0]["rows"][0][0].as_i64(), Some(i64::MAX));
    }

    #[test]
    fn dynamic_values_nested_too_deep_stay_their_string_and_are_counted() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let quoted = |text: &str| serde_json::to_string(text).unwrap();
        // Brackets inside strings are text, not nesting.
        let in_strings = format!("[{}]", quoted(&"[".repeat(500)));
        let wire = format!(
            r#"{{"tables":[{{"name":"t","columns":[{{"name":"j","type":"dynamic"}}],"rows":[[{}],[{}],[{}]]}}]}}"#,
            quoted(&nested(MAX_VALUE_DEPTH)),
            quoted(&nested(MAX_VALUE_DEPTH + 1)),
            quoted(&in_strings),
        );
        let t = run(&wire, 100);
        let out: serde_json::Value = serde_json::from_slice(&t.tables_json).unwrap();
        let rows = &out[0]["rows"];
        assert!(
            rows[0][0].is_array(),
            "the deepest allowed is relayed as JSON"
        );
        assert_eq!(
            rows[1][0],
            nested(MAX_VALUE_DEPTH + 1),
            "one deeper stays a string"
        );
        assert!(rows[2][0].is_array());
        assert_eq!(t.values_left_encoded, 1);
        assert!(nests_deeper_than(&nested(1_000_000), MAX_VALUE_DEPTH));
    }

    #[test]
    fn the_cap_spans_tables_and_the_rest_is_flagged() {
        let wire = r#"{"tables":[{"name":"a","columns":[{"name":"x","type":"long"}],"rows":[[1],[2],[3]]},
            {"name":"b","columns":[{"name":"x","type":"long"}],"rows":[[4],[5]]}],
            "error":{"code":"PartialError"},"statistics":{"query":{"executionTime":0.1}},"render":{}}"#;
        let t = run(wire, 4);
        assert_eq!(
            String::from_utf8(t.tables_json).unwrap(),
            r#"[{"name":"a","columns":[{"name":"x","type":"long"}],"rows":[[1],[2],[3]]},{"name":"b","columns":[{"name":"x","type":"long"}],"rows":[[4]]}]"#
        );
        assert!(t.truncated);
        assert_eq!(t.row_count, 4);
        assert_eq!(t.error.unwrap()["code"], "PartialError");
        assert_eq!(
            t.statistics.unwrap().get(),
            r#"{"query":{"executionTime":0.1}}"#
        );
    }

    #[test]
    fn empty_and_malformed_answers() {
        let t = run(r#"{"tables":[]}"#, 10);
        assert_eq!(t.tables_json, b"[]");
        let t = run(r#"{"tables":[{"name":"a","columns":[],"rows":[[]]}]}"#, 10);
        assert_eq!(
            String::from_utf8(t.tables_json).unwrap(),
            r#"[{"name":"a","columns":[],"rows":[[]]}]"#
        );
        assert!(!run("{}", 10).saw_tables);
        assert!(
            transcode(
                &mut serde_json::Deserializer::from_str(r#"{"tables":[{"rows":[[1,"#),
                10,
                0
            )
            .is_err()
        );
    }
}
