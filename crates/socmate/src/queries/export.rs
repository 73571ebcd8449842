//! A query result as CSV (RFC 4180), for `Accept: text/csv`: the first table (the one a KQL
//! query's `PrimaryResult` is), a header row of column names, then every row kept. Values keep
//! their exact text — a long beyond 2^53, a decimal string — because cells are read as the raw
//! JSON they were written as, never through a double; strings are unescaped, nulls are empty,
//! and `dynamic` values are their JSON text.

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Table<'a> {
    #[serde(borrow, default)]
    columns: Vec<Column<'a>>,
    #[serde(borrow, default)]
    rows: Vec<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct Column<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
}

/// The first table of `tables_json` (SoCMate's result tables) as CSV; empty without tables.
pub fn first_table_csv(tables_json: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let tables: Vec<Table<'_>> = serde_json::from_slice(tables_json)?;
    let Some(table) = tables.first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(tables_json.len());
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_ref()).collect();
    write_record(&mut out, names.iter().map(|n| Cell::Text(n)));
    for row in &table.rows {
        let cells = row.iter().map(|raw| cell(raw));
        let cells: Vec<Cell<'_>> = cells.collect::<Result<_, _>>()?;
        write_record(&mut out, cells.into_iter());
    }
    Ok(out)
}

enum Cell<'a> {
    Text(&'a str),
    Owned(String),
}

fn cell(raw: &RawValue) -> Result<Cell<'_>, serde_json::Error> {
    let text = raw.get();
    Ok(match text.as_bytes().first() {
        Some(b'"') => Cell::Owned(serde_json::from_str::<String>(text)?),
        _ if text == "null" => Cell::Text(""),
        // Numbers, booleans and dynamic objects or arrays: their JSON text, exactly.
        _ => Cell::Text(text),
    })
}

fn write_record<'a>(out: &mut Vec<u8>, cells: impl Iterator<Item = Cell<'a>>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let text = match &cell {
            Cell::Text(t) => *t,
            Cell::Owned(t) => t.as_str(),
        };
        if text.contains([',', '"', '\n', '\r']) {
            out.push(b'"');
            out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        } else {
            out.extend_from_slice(text.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_exact_text_and_fields_are_quoted_as_rfc_4180_says() {
        let tables = br#"[{"name":"PrimaryResult","columns":[{"name":"n","type":"long"},{"name":"d","type":"decimal"},{"name":"s","type":"string"},{"name":"j","type":"dynamic"},{"name":"z","type":"string"}],
            "rows":[[9223372036854775807,"79228162514264337593543950335","a, \"quoted\"\nline",{"a":[1,2]},null]]},
            {"name":"Other","columns":[],"rows":[]}]"#;
        let csv = String::from_utf8(first_table_csv(tables).unwrap()).unwrap();
        assert_eq!(
            csv,
            "n,d,s,j,z\r\n9223372036854775807,79228162514264337593543950335,\"a, \"\"quoted\"\"\nline\",\"{\"\"a\"\":[1,2]}\",\r\n"
        );
        assert_eq!(first_table_csv(b"[]").unwrap(), b"");
    }
}
