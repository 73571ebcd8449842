//! Just enough KQL to answer table-free probes and size/encoding tests, so tests never depend on
//! a real Kusto engine:
//!
//! - a single `print` statement with literal values, e.g. `print ok=1` or
//!   `print a=1, b="x", c=true, d=1.5, t=datetime(2024-01-01)`;
//! - `range x from A to B step S` (integer literals, `S > 0`, `B` inclusive) → one `long` column;
//! - the built-in table `SyntheticRows` (see [`crate::synthetic`]);
//!
//! each of the last two optionally followed by `| take N` / `| limit N` operators. A query that
//! starts with any other identifier followed by `|` or the end is answered like a query naming a
//! table that does not exist (semantic error). Everything else is answered from canned queries
//! or rejected as a syntax error.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Value, json};

/// Why a `print` statement could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 0-based character offset of the offending token.
    pub pos: usize,
    /// The offending token text (may be empty at end of input).
    pub token: String,
    pub detail: String,
}

/// Evaluates `query` if it is a `print` statement: `Ok(Some(table))` with the
/// `PrimaryResult` table, `Ok(None)` if it is not a print statement.
pub(crate) fn evaluate_print(query: &str) -> Result<Option<Value>, SyntaxError> {
    let q = query.trim();
    let q = q.strip_suffix(';').unwrap_or(q).trim_end();
    let Some(rest) = q.strip_prefix("print") else {
        return Ok(None);
    };
    if rest
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
    {
        return Ok(None);
    }
    let offset = q.len() - rest.len();
    let mut p = Parser {
        chars: rest.chars().collect(),
        i: 0,
        offset,
    };
    let mut columns = Vec::new();
    let mut row = Vec::new();
    loop {
        p.skip_ws();
        let index = columns.len();
        let start = p.i;
        let name = match p.ident() {
            Some(id) => {
                p.skip_ws();
                if p.peek() == Some('=') {
                    p.i += 1;
                    Some(id)
                } else {
                    p.i = start;
                    None
                }
            }
            None => None,
        };
        p.skip_ws();
        let (ty, value) = p.literal()?;
        columns.push(json!({
            "name": name.unwrap_or_else(|| format!("print_{index}")),
            "type": ty,
        }));
        row.push(value);
        p.skip_ws();
        match p.peek() {
            None => break,
            Some(',') => p.i += 1,
            Some(_) => return Err(p.error("expected ',' or end of statement")),
        }
    }
    Ok(Some(json!({
        "name": "PrimaryResult",
        "columns": columns,
        "rows": [row],
    })))
}

/// Most rows a `range` may produce; larger ranges are rejected (400) rather than streamed.
pub(crate) const RANGE_MAX_ROWS: u64 = 2_000_000;
/// The built-in synthetic table (see [`crate::synthetic`]).
pub(crate) const SYNTHETIC_TABLE: &str = "SyntheticRows";
/// Rows in `SyntheticRows`; `take N` with a larger `N` returns all of them.
pub(crate) const SYNTHETIC_TABLE_ROWS: usize = 1_000_000;
/// Rows returned by a bare `SyntheticRows` (no `take`), so an accidental query stays small.
pub(crate) const SYNTHETIC_DEFAULT_ROWS: usize = 100;

/// Words that start a KQL statement or tabular expression without being a table name: a query
/// starting with one of them is not reported as an unknown table.
const NON_TABLE_WORDS: [&str; 10] = [
    "let",
    "set",
    "declare",
    "union",
    "search",
    "find",
    "datatable",
    "evaluate",
    "print",
    "range",
];

/// A query the emulator can produce rows for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// `range column from start to ... step step`, limited to `rows` rows.
    Range {
        column: String,
        start: i64,
        step: i64,
        rows: u64,
    },
    /// The first `rows` rows of `SyntheticRows`.
    Synthetic { rows: usize },
}

/// Why [`plan`] rejected a query it recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueryError {
    Syntax(SyntaxError),
    /// The query starts with `name`, which is not a known table; `operator` is the operator
    /// applied to it (`take` if none).
    UnknownTable {
        operator: String,
        name: String,
    },
    /// `range` with a step that is not positive.
    InvalidStep(i64),
    /// `range` that would produce this many rows (more than [`RANGE_MAX_ROWS`]).
    TooManyRows(u128),
}

impl From<SyntaxError> for QueryError {
    fn from(e: SyntaxError) -> Self {
        QueryError::Syntax(e)
    }
}

/// Plans a `range` or `SyntheticRows` query, or recognises an unknown table. `Ok(None)` means
/// the query is none of these (the caller answers with a syntax error).
pub(crate) fn plan(query: &str) -> Result<Option<Plan>, QueryError> {
    let mut p = Parser {
        chars: query.chars().collect(),
        i: 0,
        offset: 0,
    };
    p.skip_ws();
    let Some(first) = p.ident() else {
        return Ok(None);
    };
    let mut plan = match first.as_str() {
        "range" => p.range()?,
        SYNTHETIC_TABLE => {
            p.skip_ws();
            // A bare table name returns a small default; any `take` replaces it.
            if p.peek() == Some('|') {
                Plan::Synthetic {
                    rows: SYNTHETIC_TABLE_ROWS,
                }
            } else {
                Plan::Synthetic {
                    rows: SYNTHETIC_DEFAULT_ROWS,
                }
            }
        }
        word if NON_TABLE_WORDS.contains(&word) => return Ok(None),
        name => {
            p.skip_ws();
            return match p.peek() {
                None | Some(';') => Err(QueryError::UnknownTable {
                    operator: "take".to_owned(),
                    name: name.to_owned(),
                }),
                Some('|') => {
                    p.i += 1;
                    p.skip_ws();
                    Err(QueryError::UnknownTable {
                        operator: p.ident().unwrap_or_else(|| "take".to_owned()),
                        name: name.to_owned(),
                    })
                }
                Some(_) => Ok(None),
            };
        }
    };
    let source = first;
    loop {
        p.skip_ws();
        match p.peek() {
            None => break,
            Some(';') => {
                p.i += 1;
                p.skip_ws();
                if p.peek().is_some() {
                    return Err(p.error("azure-emulator supports a single statement").into());
                }
                break;
            }
            Some('|') => {
                p.i += 1;
                p.skip_ws();
                let start = p.i;
                match p.ident().as_deref() {
                    Some("take" | "limit") => {
                        let n = p.int()?;
                        let Ok(n) = u64::try_from(n) else {
                            return Err(p.error("the row count must not be negative").into());
                        };
                        plan = match plan {
                            Plan::Range {
                                column,
                                start,
                                step,
                                rows,
                            } => Plan::Range {
                                column,
                                start,
                                step,
                                rows: rows.min(n),
                            },
                            Plan::Synthetic { rows } => Plan::Synthetic {
                                rows: usize::try_from(n).map_or(rows, |n| rows.min(n)),
                            },
                        };
                    }
                    _ => {
                        p.i = start;
                        return Err(p
                            .error(&format!(
                                "azure-emulator supports only 'take N' and 'limit N' after '{source}'"
                            ))
                            .into());
                    }
                }
            }
            Some(_) => return Err(p.error("expected '|' or the end of the query").into()),
        }
    }
    if let Plan::Synthetic { rows } = &mut plan {
        *rows = (*rows).min(SYNTHETIC_TABLE_ROWS);
    }
    Ok(Some(plan))
}

struct Parser {
    chars: Vec<char>,
    i: usize,
    offset: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    /// Skips whitespace and `//` line comments.
    fn skip_ws(&mut self) {
        loop {
            while self.peek().is_some_and(char::is_whitespace) {
                self.i += 1;
            }
            if self.peek() == Some('/') && self.chars.get(self.i + 1) == Some(&'/') {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.i += 1;
                }
            } else {
                return;
            }
        }
    }

    /// Expects the keyword `word` (after optional whitespace).
    fn keyword(&mut self, word: &str) -> Result<(), SyntaxError> {
        self.skip_ws();
        let start = self.i;
        if self.ident().as_deref() == Some(word) {
            return Ok(());
        }
        self.i = start;
        Err(self.error(&format!("expected '{word}'")))
    }

    /// An integer literal (optionally negative) that fits in an `i64`.
    fn int(&mut self) -> Result<i64, SyntaxError> {
        self.skip_ws();
        let start = self.i;
        if self.peek() == Some('-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let followed_by_word = self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        let text: String = self.chars[start..self.i].iter().collect();
        match text.parse::<i64>() {
            Ok(n) if !followed_by_word => Ok(n),
            _ => {
                self.i = start;
                Err(self.error("expected an integer literal"))
            }
        }
    }

    /// The rest of `range column from A to B step S` after the `range` keyword.
    fn range(&mut self) -> Result<Plan, QueryError> {
        self.skip_ws();
        let Some(column) = self.ident() else {
            return Err(self.error("expected a column name after 'range'").into());
        };
        self.keyword("from")?;
        let start = self.int()?;
        self.keyword("to")?;
        let end = self.int()?;
        self.keyword("step")?;
        let step = self.int()?;
        if step <= 0 {
            return Err(QueryError::InvalidStep(step));
        }
        let rows = if end < start {
            0
        } else {
            (i128::from(end) - i128::from(start)) / i128::from(step) + 1
        };
        let rows = u128::try_from(rows).unwrap_or(0);
        if rows > u128::from(RANGE_MAX_ROWS) {
            return Err(QueryError::TooManyRows(rows));
        }
        Ok(Plan::Range {
            column,
            start,
            step,
            rows: u64::try_from(rows).unwrap_or(0),
        })
    }

    fn error(&self, detail: &str) -> SyntaxError {
        let token: String = self.chars[self.i.min(self.chars.len())..]
            .iter()
            .take_while(|c| !c.is_whitespace() && **c != ',')
            .collect();
        SyntaxError {
            pos: self.offset + self.i,
            token,
            detail: detail.to_owned(),
        }
    }

    fn ident(&mut self) -> Option<String> {
        let first = self.peek()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.i += 1;
        }
        Some(self.chars[start..self.i].iter().collect())
    }

    fn literal(&mut self) -> Result<(&'static str, Value), SyntaxError> {
        match self.peek() {
            Some('"' | '\'') => Ok(("string", Value::String(self.string()?))),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                let word = self.ident().unwrap_or_default();
                match word.as_str() {
                    "true" => Ok(("bool", Value::Bool(true))),
                    "false" => Ok(("bool", Value::Bool(false))),
                    "now" | "datetime" | "int" | "long" | "real" => {
                        self.skip_ws();
                        if self.peek() != Some('(') {
                            self.i = start;
                            return Err(self.error("expected '(' after function name"));
                        }
                        self.i += 1;
                        let arg_start = self.i;
                        while self.peek().is_some_and(|c| c != ')') {
                            self.i += 1;
                        }
                        if self.peek() != Some(')') {
                            return Err(self.error("missing ')'"));
                        }
                        let arg: String = self.chars[arg_start..self.i].iter().collect();
                        self.i += 1;
                        self.call(&word, arg.trim(), start)
                    }
                    _ => {
                        self.i = start;
                        Err(self.error("expected a literal value"))
                    }
                }
            }
            _ => Err(self.error("expected a literal value")),
        }
    }

    fn call(
        &mut self,
        func: &str,
        arg: &str,
        start: usize,
    ) -> Result<(&'static str, Value), SyntaxError> {
        let fail = |p: &mut Parser, detail: &str| {
            p.i = start;
            Err(p.error(detail))
        };
        match func {
            "now" if arg.is_empty() => Ok((
                "datetime",
                Value::String(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
            )),
            "datetime" => match parse_datetime(arg) {
                Some(dt) => Ok((
                    "datetime",
                    Value::String(dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
                )),
                None => fail(self, "invalid datetime literal"),
            },
            "int" => match arg.parse::<i32>() {
                Ok(n) => Ok(("int", json!(n))),
                Err(_) => fail(self, "invalid int literal"),
            },
            "long" => match arg.parse::<i64>() {
                Ok(n) => Ok(("long", json!(n))),
                Err(_) => fail(self, "invalid long literal"),
            },
            "real" => match arg.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(("real", json!(n))),
                _ => fail(self, "invalid real literal"),
            },
            _ => fail(self, "unsupported function"),
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.i;
        let quote = self.peek().unwrap_or('"');
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    self.i = start;
                    return Err(self.error("unterminated string literal"));
                }
                Some(c) if c == quote => {
                    self.i += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.i += 1;
                    let escaped = match self.peek() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some(c) => c,
                        None => continue,
                    };
                    out.push(escaped);
                    self.i += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<(&'static str, Value), SyntaxError> {
        let start = self.i;
        if self.peek() == Some('-') {
            self.i += 1;
        }
        let mut real = false;
        while let Some(c) = self.peek() {
            match c {
                '0'..='9' => {}
                '.' => real = true,
                'e' | 'E' => {
                    real = true;
                    if matches!(self.chars.get(self.i + 1), Some('-' | '+')) {
                        self.i += 1;
                    }
                }
                _ => break,
            }
            self.i += 1;
        }
        let text: String = self.chars[start..self.i].iter().collect();
        let parsed = if real {
            text.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(|f| ("real", json!(f)))
        } else {
            text.parse::<i64>().ok().map(|n| ("long", json!(n)))
        };
        parsed.ok_or_else(|| {
            self.i = start;
            self.error("invalid numeric literal")
        })
    }
}

pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(dt.and_utc());
    }
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(dt.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_columns() -> Result<(), SyntaxError> {
        let t = evaluate_print(r#"print a=1, b="x", c=true, d=1.5"#)?;
        assert_eq!(
            t,
            Some(json!({
                "name": "PrimaryResult",
                "columns": [
                    {"name": "a", "type": "long"},
                    {"name": "b", "type": "string"},
                    {"name": "c", "type": "bool"},
                    {"name": "d", "type": "real"}
                ],
                "rows": [[1, "x", true, 1.5]]
            }))
        );
        Ok(())
    }

    #[test]
    fn unnamed_and_functions() -> Result<(), SyntaxError> {
        let t = evaluate_print("print 1, x='y', datetime(2024-01-02), -3")?;
        let t = t.unwrap_or_default();
        assert_eq!(t["columns"][0]["name"], "print_0");
        assert_eq!(t["columns"][1]["name"], "x");
        assert_eq!(t["columns"][2]["type"], "datetime");
        assert_eq!(t["rows"][0][2], "2024-01-02T00:00:00Z");
        assert_eq!(t["rows"][0][3], -3);
        Ok(())
    }

    #[test]
    fn not_print_and_errors() {
        assert_eq!(evaluate_print("SecurityIncident | take 1"), Ok(None));
        assert_eq!(evaluate_print("printer"), Ok(None));
        assert!(evaluate_print("print").is_err());
        assert!(evaluate_print("print a=").is_err());
        assert!(evaluate_print("print a=1 | take 1").is_err());
        assert!(evaluate_print("print a=\"x").is_err());
        assert!(evaluate_print("print 99999999999999999999").is_err());
    }

    #[test]
    fn plans_range_and_synthetic() {
        assert_eq!(
            plan("range x from 1 to 10 step 3"),
            Ok(Some(Plan::Range {
                column: "x".into(),
                start: 1,
                step: 3,
                rows: 4
            }))
        );
        assert_eq!(
            plan("range Value from -5 to -6 step 1;"),
            Ok(Some(Plan::Range {
                column: "Value".into(),
                start: -5,
                step: 1,
                rows: 0
            }))
        );
        assert!(matches!(
            plan("range x from 1 to 100 step 1 | take 5 | limit 7"),
            Ok(Some(Plan::Range { rows: 5, .. }))
        ));
        assert_eq!(
            plan("range x from 1 to 10 step 0"),
            Err(QueryError::InvalidStep(0))
        );
        assert_eq!(
            plan("range x from 0 to 2000000 step 1"),
            Err(QueryError::TooManyRows(2_000_001))
        );
        assert!(matches!(
            plan("range x from -9223372036854775808 to 9223372036854775807 step 1"),
            Err(QueryError::TooManyRows(_))
        ));
        assert!(matches!(
            plan("range x from 1.5 to 2 step 1"),
            Err(QueryError::Syntax(_))
        ));
        assert!(matches!(
            plan("range x from 1 to 2"),
            Err(QueryError::Syntax(_))
        ));
        assert_eq!(
            plan("SyntheticRows"),
            Ok(Some(Plan::Synthetic { rows: 100 }))
        );
        assert_eq!(
            plan("// comment\nSyntheticRows\n| take 3"),
            Ok(Some(Plan::Synthetic { rows: 3 }))
        );
        assert_eq!(
            plan("SyntheticRows | limit 99999999"),
            Ok(Some(Plan::Synthetic { rows: 1_000_000 }))
        );
        assert!(matches!(
            plan("SyntheticRows | where EventID > 1"),
            Err(QueryError::Syntax(_))
        ));
        assert!(matches!(
            plan("SyntheticRows | take -1"),
            Err(QueryError::Syntax(_))
        ));
    }

    #[test]
    fn unknown_tables_and_non_queries() {
        let unknown = |op: &str, name: &str| {
            Err(QueryError::UnknownTable {
                operator: op.into(),
                name: name.into(),
            })
        };
        assert_eq!(plan("Appquests | take 10"), unknown("take", "Appquests"));
        assert_eq!(
            plan("SecurityIncident\n| where TimeGenerated > ago(1d)"),
            unknown("where", "SecurityIncident")
        );
        assert_eq!(plan("Heartbeat"), unknown("take", "Heartbeat"));
        assert_eq!(
            plan("syntheticrows | take 1"),
            unknown("take", "syntheticrows")
        );
        assert_eq!(plan("let x = 1; x"), Ok(None));
        assert_eq!(plan("Foo bar"), Ok(None));
        assert_eq!(plan("Foo("), Ok(None));
        assert_eq!(plan("| take 1"), Ok(None));
        assert_eq!(plan(""), Ok(None));
    }
}
