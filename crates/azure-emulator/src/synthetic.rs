//! Large, typed query results without a `serde_json::Value` tree: the `SyntheticRows` table and
//! `range` results are written straight into byte buffers, and big ones are streamed to the
//! client chunk by chunk. That lets tests exercise SoCMate with result sets of realistic size
//! (hundreds of MB) and every Log Analytics column type, encoded the way the real service does
//! (`fixtures/la-query-response-all-types.json`, `la-query-response-nan-inf.json`).
//!
//! `SyntheticRows` columns (row `i`, 0-based; the values are a pure function of `i`):
//!
//! | column | type | value |
//! |---|---|---|
//! | `TimeGenerated` | datetime | `2026-11-01T00:00:00.0000000Z` + `i` seconds (7 fractional digits) |
//! | `Computer` | string | `host-NNNN.contoso.local`, `NNNN` = `(i + 42) % 1000` |
//! | `EventID` | int | a Windows event id; row 5 `2147483647`, row 6 `-2147483648` |
//! | `Bytes` | long | row 0 `9223372036854775807`, row 1 `-9223372036854775808` |
//! | `Ratio` | real | row 0 `1.7976931348623157e308`, row 1 `5e-324`, rows 2–4 `"NaN"`, `"Infinity"`, `"-Infinity"` (strings), else a finite fraction |
//! | `Success` | bool | `i % 4 != 3` |
//! | `Id` | guid | a v4-shaped GUID derived from `i` |
//! | `Duration` | timespan | .NET style, row 0 `00:00:01.5000000`, some rows with days (`1.02:03:04.5000000`) |
//! | `Amount` | decimal | string; row 0 `"79228162514264337593543950335"`, row 1 its negation |
//! | `Details` | dynamic | JSON-encoded string of an object (`user`, `tags`, `ip`, `process`, `logonType`, `sessionId`, sometimes `note` with quotes, a newline and non-ASCII); `null` when `i % 10 == 0` |

use std::fmt::Write as _;

use axum::body::Body;
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use crate::kql::Plan;

/// Responses with more rows than this are streamed instead of built in memory.
const STREAM_ABOVE_ROWS: u64 = 10_000;
/// Rows written per streamed chunk (about 100 KB for `SyntheticRows`).
const CHUNK_ROWS: u64 = 256;
/// Buffer of the in-process pipe between the row writer and the response body.
const PIPE_BYTES: usize = 256 * 1024;

/// Unix time of the first `SyntheticRows` `TimeGenerated` (2026-11-01T00:00:00Z).
const SYNTHETIC_EPOCH_SECS: i64 = 1_793_491_200;

/// The `error` object of a partial result, exactly as in
/// `fixtures/la-query-response-partial-error.json`.
pub(crate) const PARTIAL_ERROR: &str = r#"{"code":"PartialError","message":"There were some errors when processing your query.","details":[{"code":"EngineError","message":"Something went wrong processing your query on the server.","innererror":{"code":"-2133196797","message":"The results of this query exceed the set limit of 1 records.","severity":2,"severityName":"Error"}}]}"#;

const SYNTHETIC_COLUMNS: [(&str, &str); 10] = [
    ("TimeGenerated", "datetime"),
    ("Computer", "string"),
    ("EventID", "int"),
    ("Bytes", "long"),
    ("Ratio", "real"),
    ("Success", "bool"),
    ("Id", "guid"),
    ("Duration", "timespan"),
    ("Amount", "decimal"),
    ("Details", "dynamic"),
];

const EVENT_IDS: [i32; 10] = [4624, 4625, 4634, 4648, 4672, 4688, 4720, 4768, 4769, 5140];
const TAGS: [&str; 6] = ["a", "b", "prod", "tier0", "ops", "eu-west"];
const PROCESSES: [&str; 4] = [
    r"C:\Windows\System32\svchost.exe",
    r"C:\Windows\System32\lsass.exe",
    r"C:\Program Files\Contoso\agent.exe",
    "/usr/sbin/sshd",
];

/// Top-level members written after `tables`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extras {
    /// Serialized `statistics` object, if requested.
    pub statistics: Option<String>,
    /// Add `"render":{}`.
    pub render: bool,
    /// Add the partial-result `error` object.
    pub partial: bool,
}

/// Body of the response to `SyntheticRows | take n` (without statistics), as the emulator sends it.
/// Meant for benchmarks and for comparing against what a client received.
pub fn synthetic_rows_response(n: usize) -> Vec<u8> {
    let plan = Plan::Synthetic { rows: n };
    let mut out = String::with_capacity(256 + n.saturating_mul(330));
    write_head(&mut out, &plan);
    write_rows(&mut out, &plan, 0, n as u64);
    write_tail(&mut out, &Extras::default());
    out.into_bytes()
}

/// Number of rows `plan` produces.
pub(crate) fn row_count(plan: &Plan) -> u64 {
    match plan {
        Plan::Range { rows, .. } => *rows,
        Plan::Synthetic { rows } => *rows as u64,
    }
}

/// The response body for `plan`: built in memory when small, otherwise streamed from a task
/// that writes chunks of rows into a pipe (and stops when the client goes away).
pub(crate) fn body(plan: Plan, extras: Extras) -> Body {
    let rows = row_count(&plan);
    if rows <= STREAM_ABOVE_ROWS {
        let mut out = String::new();
        write_head(&mut out, &plan);
        write_rows(&mut out, &plan, 0, rows);
        write_tail(&mut out, &extras);
        return Body::from(out);
    }
    let (mut tx, rx) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(async move {
        let mut buf = String::with_capacity(128 * 1024);
        write_head(&mut buf, &plan);
        let mut from = 0;
        while from < rows {
            let to = (from + CHUNK_ROWS).min(rows);
            write_rows(&mut buf, &plan, from, to);
            from = to;
            if tx.write_all(buf.as_bytes()).await.is_err() {
                return; // the client disconnected
            }
            buf.clear();
        }
        write_tail(&mut buf, &extras);
        if tx.write_all(buf.as_bytes()).await.is_ok() {
            let _ = tx.shutdown().await;
        }
    });
    Body::from_stream(ReaderStream::with_capacity(rx, 64 * 1024))
}

fn write_head(out: &mut String, plan: &Plan) {
    out.push_str(r#"{"tables":[{"name":"PrimaryResult","columns":["#);
    match plan {
        Plan::Range { column, .. } => {
            out.push_str(r#"{"name":"#);
            write_json_str(out, column);
            out.push_str(r#","type":"long"}"#);
        }
        Plan::Synthetic { .. } => {
            for (k, (name, ty)) in SYNTHETIC_COLUMNS.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                let _ = write!(out, r#"{{"name":"{name}","type":"{ty}"}}"#);
            }
        }
    }
    out.push_str(r#"],"rows":["#);
}

/// Rows `from..to` (each preceded by a comma except row 0).
fn write_rows(out: &mut String, plan: &Plan, from: u64, to: u64) {
    for i in from..to {
        if i > 0 {
            out.push(',');
        }
        match plan {
            Plan::Range { start, step, .. } => {
                // Within [start, end] by construction, so it fits in an i64.
                let v = i128::from(*start) + i128::from(*step) * i128::from(i);
                let _ = write!(out, "[{v}]");
            }
            Plan::Synthetic { .. } => write_synthetic_row(out, i),
        }
    }
}

fn write_tail(out: &mut String, extras: &Extras) {
    out.push_str("]}]");
    if let Some(stats) = &extras.statistics {
        out.push_str(r#","statistics":"#);
        out.push_str(stats);
    }
    if extras.render {
        out.push_str(r#","render":{}"#);
    }
    if extras.partial {
        out.push_str(r#","error":"#);
        out.push_str(PARTIAL_ERROR);
    }
    out.push('}');
}

fn write_synthetic_row(out: &mut String, i: u64) {
    out.push('[');

    // TimeGenerated
    let secs = SYNTHETIC_EPOCH_SECS + i as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "\"{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.0000000Z\",",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );

    // Computer, EventID
    let _ = write!(out, "\"host-{:04}.contoso.local\",", (i + 42) % 1000);
    let event_id = match i {
        5 => i32::MAX,
        6 => i32::MIN,
        _ => EVENT_IDS[(i % 10) as usize],
    };
    let _ = write!(out, "{event_id},");

    // Bytes
    let bytes = match i {
        0 => i64::MAX,
        1 => i64::MIN,
        _ => ((i.wrapping_mul(1_048_583) + 512) % 10_000_000_000) as i64,
    };
    let _ = write!(out, "{bytes},");

    // Ratio: Debug formatting of a finite f64 is the shortest round-trip form and valid JSON
    // (`1.7976931348623157e308`, `5e-324`, `0.25`).
    match i {
        0 => out.push_str("1.7976931348623157e308,"),
        1 => out.push_str("5e-324,"),
        2 => out.push_str("\"NaN\","),
        3 => out.push_str("\"Infinity\","),
        4 => out.push_str("\"-Infinity\","),
        _ => {
            let ratio = (i as f64 * 0.618_033_988_749_895).fract();
            let _ = write!(out, "{ratio:?},");
        }
    }

    // Success
    out.push_str(if i % 4 != 3 { "true," } else { "false," });

    // Id
    let a = splitmix64(i);
    let b = splitmix64(i ^ 0xA5A5_5A5A_C3C3_3C3C);
    let _ = write!(
        out,
        "\"{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}\",",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    );

    // Duration (100 ns ticks, .NET `[d.]hh:mm:ss.fffffff`)
    let ticks = 15_000_000 + i.wrapping_mul(79_199_933_371) % (2 * 864_000_000_000);
    let total_secs = ticks / 10_000_000;
    let frac = ticks % 10_000_000;
    let (days, rem) = (total_secs / 86_400, total_secs % 86_400);
    out.push('"');
    if days > 0 {
        let _ = write!(out, "{days}.");
    }
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{frac:07}\",",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );

    // Amount
    match i {
        0 => out.push_str("\"79228162514264337593543950335\","),
        1 => out.push_str("\"-79228162514264337593543950335\","),
        _ => {
            let _ = write!(out, "\"{}.{:02}\",", i * 1237 % 1_000_000, i % 100);
        }
    }

    // Details
    if i.is_multiple_of(10) {
        out.push_str("null");
    } else {
        let mut inner = String::with_capacity(160);
        let _ = write!(
            inner,
            r#"{{"user":"u{}","tags":["{}","{}"],"ip":"10.{}.{}.{}","process":"#,
            i % 1000,
            TAGS[(i % 6) as usize],
            TAGS[(i / 6 % 6) as usize],
            i / 65_536 % 256,
            i / 256 % 256,
            i % 256
        );
        write_json_str(&mut inner, PROCESSES[(i % 4) as usize]);
        if i.is_multiple_of(7) {
            inner.push_str(r#","note":"#);
            write_json_str(&mut inner, "said \"hi\"\nnaïve café ✓");
        }
        let _ = write!(
            inner,
            r#","logonType":{},"sessionId":{}}}"#,
            [2, 3, 10][(i % 3) as usize],
            a % 1_000_000
        );
        write_json_str(out, &inner);
    }

    out.push(']');
}

/// Writes `s` as a JSON string literal.
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};
    use serde_json::Value;

    #[test]
    fn civil_dates_match_chrono() {
        let epoch = DateTime::<Utc>::from_timestamp(SYNTHETIC_EPOCH_SECS, 0).unwrap_or_default();
        assert_eq!(epoch.to_rfc3339(), "2026-11-01T00:00:00+00:00");
        for days in [-1, 0, 59, 365, 10_957, 20_000, 20_758, 40_000] {
            let d = DateTime::<Utc>::UNIX_EPOCH + Duration::days(days);
            let want = (
                i64::from(chrono::Datelike::year(&d)),
                chrono::Datelike::month(&d),
                chrono::Datelike::day(&d),
            );
            assert_eq!(civil_from_days(days), want, "{days}");
        }
    }

    #[test]
    fn rows_are_valid_json_with_expected_encodings() -> Result<(), serde_json::Error> {
        let body = synthetic_rows_response(25);
        let v: Value = serde_json::from_slice(&body)?;
        let rows = v["tables"][0]["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(rows.len(), 25);
        assert_eq!(rows[0][0], "2026-11-01T00:00:00.0000000Z");
        assert_eq!(rows[24][0], "2026-11-01T00:00:24.0000000Z");
        assert_eq!(rows[0][1], "host-0042.contoso.local");
        assert_eq!(rows[0][3].as_i64(), Some(i64::MAX));
        assert_eq!(rows[1][3].as_i64(), Some(i64::MIN));
        assert_eq!(rows[0][4].as_f64(), Some(f64::MAX));
        assert_eq!(rows[2][4], "NaN");
        assert_eq!(rows[0][7], "00:00:01.5000000");
        assert_eq!(rows[0][9], Value::Null);
        let details: Value = serde_json::from_str(rows[7][9].as_str().unwrap_or_default())?;
        assert_eq!(details["user"], "u7");
        assert_eq!(details["note"], "said \"hi\"\nnaïve café ✓");
        assert!(rows.iter().any(|r| {
            r[7].as_str()
                .is_some_and(|d| d.contains('.') && d.find('.') < d.find(':'))
        }));
        Ok(())
    }

    #[test]
    fn range_rows() -> Result<(), serde_json::Error> {
        let plan = Plan::Range {
            column: "x".into(),
            start: -3,
            step: 2,
            rows: 4,
        };
        let mut out = String::new();
        write_head(&mut out, &plan);
        write_rows(&mut out, &plan, 0, 4);
        write_tail(
            &mut out,
            &Extras {
                partial: true,
                ..Extras::default()
            },
        );
        let v: Value = serde_json::from_str(&out)?;
        assert_eq!(
            v["tables"][0]["rows"],
            serde_json::json!([[-3], [-1], [1], [3]])
        );
        assert_eq!(v["error"]["code"], "PartialError");
        Ok(())
    }
}
