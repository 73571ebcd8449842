//! Just enough KQL to answer table-free probes: a single `print` statement with literal
//! values, e.g. `print ok=1` or `print a=1, b="x", c=true, d=1.5, t=datetime(2024-01-01)`.
//! Everything else is answered from canned queries or rejected as a syntax error, so tests never
//! depend on a real Kusto engine.

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

struct Parser {
    chars: Vec<char>,
    i: usize,
    offset: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
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

fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
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
}
