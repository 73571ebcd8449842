//! The Microsoft Sentinel tables of a workspace, `SecurityIncident` and `SecurityAlert`, with
//! their documented columns and types (MicrosoftDocs/azure-reference-other
//! `azure-monitor-ref/tables/securityincident.md` and `securityalert.md`), and just enough KQL to
//! answer the queries a client reads them with:
//!
//! `Table | where <predicate> | summarize arg_max(Col, *) by Key | order by A asc, B desc |
//! take N | count`, in any order and number, where a predicate compares columns with string,
//! number, `datetime(...)` or `ago(...)` literals (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in (…)`),
//! joined by `and`, `or` and parentheses.
//!
//! Like the real tables they hold **one row per change** of an incident ("Every time you create
//! or update an incident, a new log entry will be added to the table", azure-docs
//! `sentinel/manage-soc-with-incident-metrics.md`, whose example reads the latest with
//! `summarize arg_max(LastModifiedTime, *) by IncidentNumber`). `dynamic` columns are answered as
//! JSON text, as Log Analytics sends them.

use std::cmp::Ordering;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

/// `(column, Log Analytics type)` of `SecurityIncident`, in the table's order.
pub const SECURITY_INCIDENT: &[(&str, &str)] = &[
    ("TenantId", "string"),
    ("TimeGenerated", "datetime"),
    ("IncidentName", "string"),
    ("Title", "string"),
    ("Description", "string"),
    ("Severity", "string"),
    ("Status", "string"),
    ("Classification", "string"),
    ("ClassificationComment", "string"),
    ("ClassificationReason", "string"),
    ("Owner", "dynamic"),
    ("ProviderName", "string"),
    ("ProviderIncidentId", "string"),
    ("FirstActivityTime", "datetime"),
    ("LastActivityTime", "datetime"),
    ("FirstModifiedTime", "datetime"),
    ("LastModifiedTime", "datetime"),
    ("CreatedTime", "datetime"),
    ("ClosedTime", "datetime"),
    ("IncidentNumber", "int"),
    ("RelatedAnalyticRuleIds", "dynamic"),
    ("AlertIds", "dynamic"),
    ("BookmarkIds", "dynamic"),
    ("Comments", "dynamic"),
    ("Tasks", "dynamic"),
    ("Labels", "dynamic"),
    ("IncidentUrl", "string"),
    ("AdditionalData", "dynamic"),
    ("ModifiedBy", "string"),
    ("SourceSystem", "string"),
    ("Type", "string"),
];

/// `(column, Log Analytics type)` of `SecurityAlert`, in the table's order.
pub const SECURITY_ALERT: &[(&str, &str)] = &[
    ("TenantId", "string"),
    ("TimeGenerated", "datetime"),
    ("DisplayName", "string"),
    ("AlertName", "string"),
    ("AlertSeverity", "string"),
    ("Description", "string"),
    ("ProviderName", "string"),
    ("VendorName", "string"),
    ("VendorOriginalId", "string"),
    ("SystemAlertId", "string"),
    ("ResourceId", "string"),
    ("SourceComputerId", "string"),
    ("AlertType", "string"),
    ("ConfidenceLevel", "string"),
    ("ConfidenceScore", "real"),
    ("IsIncident", "bool"),
    ("StartTime", "datetime"),
    ("EndTime", "datetime"),
    ("ProcessingEndTime", "datetime"),
    ("RemediationSteps", "string"),
    ("ExtendedProperties", "string"),
    ("Entities", "string"),
    ("SourceSystem", "string"),
    ("WorkspaceSubscriptionId", "string"),
    ("WorkspaceResourceGroup", "string"),
    ("ExtendedLinks", "string"),
    ("ProductName", "string"),
    ("ProductComponentName", "string"),
    ("AlertLink", "string"),
    ("Status", "string"),
    ("CompromisedEntity", "string"),
    ("Tactics", "string"),
    ("Techniques", "string"),
    ("SubTechniques", "string"),
    ("Type", "string"),
];

/// Why a table query could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TableError {
    Syntax {
        pos: usize,
        token: String,
        detail: String,
    },
    /// A column the table does not have.
    UnknownColumn { operator: String, name: String },
}

/// The schema of a Sentinel table, if `name` is one.
pub(crate) fn schema(name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    match name {
        "SecurityIncident" => Some(SECURITY_INCIDENT),
        "SecurityAlert" => Some(SECURITY_ALERT),
        _ => None,
    }
}

/// The table a query reads, if it starts with a Sentinel table's name.
pub(crate) fn table_of(query: &str) -> Option<&'static str> {
    let first: String = query
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    ["SecurityIncident", "SecurityAlert"]
        .into_iter()
        .find(|t| *t == first)
}

/// Answers `query` over `rows` (each a JSON object of the table's columns) with a
/// `PrimaryResult` table in Log Analytics' response shape; `now` anchors `ago()`.
pub(crate) fn evaluate(
    query: &str,
    rows: &[Value],
    now: DateTime<Utc>,
) -> Result<Value, TableError> {
    let tokens = tokenize(query)?;
    let mut p = Parser { tokens, i: 0, now };
    let table = p.ident("a table name")?;
    let columns = schema(&table).ok_or_else(|| p.error("a Sentinel table"))?;
    let mut current: Vec<&Map<String, Value>> = rows.iter().filter_map(Value::as_object).collect();
    let mut counted = None;
    while p.eat("|") {
        let operator = p.ident("an operator")?;
        match operator.as_str() {
            "where" => {
                let predicate = p.predicate()?;
                predicate.check(columns, "where")?;
                current.retain(|row| predicate.holds(row, columns));
            }
            "summarize" => {
                p.expect_word("arg_max")?;
                p.expect("(")?;
                let by_max = p.ident("a column")?;
                p.expect(",")?;
                p.expect("*")?;
                p.expect(")")?;
                p.expect_word("by")?;
                let key = p.ident("a column")?;
                for column in [&by_max, &key] {
                    known(columns, column, "summarize")?;
                }
                current = arg_max(current, &by_max, &key, columns);
            }
            "order" | "sort" => {
                p.expect_word("by")?;
                let mut keys = Vec::new();
                loop {
                    let column = p.ident("a column")?;
                    known(columns, &column, &operator)?;
                    let desc = match p.peek_word() {
                        Some("asc") => {
                            p.i += 1;
                            false
                        }
                        Some("desc") => {
                            p.i += 1;
                            true
                        }
                        // KQL sorts descending unless told otherwise.
                        _ => true,
                    };
                    keys.push((column, desc));
                    if !p.eat(",") {
                        break;
                    }
                }
                current.sort_by(|a, b| {
                    for (column, desc) in &keys {
                        let ord = compare(a.get(column), b.get(column), kind(columns, column));
                        let ord = if *desc { ord.reverse() } else { ord };
                        if ord != Ordering::Equal {
                            return ord;
                        }
                    }
                    Ordering::Equal
                });
            }
            "take" | "limit" => {
                let n = p.number()?;
                current.truncate(usize::try_from(n.max(0.0) as u64).unwrap_or(usize::MAX));
            }
            "count" => counted = Some(current.len()),
            _ => return Err(p.error_at(p.i - 1, "a supported operator")),
        }
    }
    if p.i < p.tokens.len() {
        return Err(p.error("'|' or the end of the query"));
    }
    if let Some(count) = counted {
        return Ok(json!({
            "name": "PrimaryResult",
            "columns": [{"name": "Count", "type": "long"}],
            "rows": [[count]],
        }));
    }
    Ok(json!({
        "name": "PrimaryResult",
        "columns": columns.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
        "rows": current.iter().map(|row| render(row, columns)).collect::<Vec<_>>(),
    }))
}

fn known(columns: &[(&str, &str)], name: &str, operator: &str) -> Result<(), TableError> {
    if columns.iter().any(|(c, _)| *c == name) {
        Ok(())
    } else {
        Err(TableError::UnknownColumn {
            operator: operator.to_owned(),
            name: name.to_owned(),
        })
    }
}

fn kind<'a>(columns: &[(&str, &'a str)], name: &str) -> &'a str {
    columns
        .iter()
        .find(|(c, _)| *c == name)
        .map_or("string", |(_, t)| t)
}

/// The row with the largest `by_max` per `key`, in first-seen key order.
fn arg_max<'a>(
    rows: Vec<&'a Map<String, Value>>,
    by_max: &str,
    key: &str,
    columns: &[(&str, &str)],
) -> Vec<&'a Map<String, Value>> {
    let mut order: Vec<String> = Vec::new();
    let mut best: std::collections::HashMap<String, &Map<String, Value>> =
        std::collections::HashMap::new();
    let kind = kind(columns, by_max);
    for row in rows {
        let k = row.get(key).map(text).unwrap_or_default();
        match best.get(&k) {
            Some(current)
                if compare(row.get(by_max), current.get(by_max), kind) != Ordering::Greater => {}
            Some(_) => {
                best.insert(k, row);
            }
            None => {
                order.push(k.clone());
                best.insert(k, row);
            }
        }
    }
    order.into_iter().filter_map(|k| best.remove(&k)).collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn instant(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn compare(a: Option<&Value>, b: Option<&Value>, kind: &str) -> Ordering {
    match kind {
        "datetime" => instant(a).cmp(&instant(b)),
        "int" | "long" | "real" => {
            let n = |v: Option<&Value>| v.and_then(Value::as_f64);
            n(a).partial_cmp(&n(b)).unwrap_or(Ordering::Equal)
        }
        _ => a.map(text).cmp(&b.map(text)),
    }
}

/// A row in column order; `dynamic` values as the JSON text Log Analytics sends.
fn render(row: &Map<String, Value>, columns: &[(&str, &str)]) -> Value {
    Value::Array(
        columns
            .iter()
            .map(|(name, kind)| match (row.get(*name), *kind) {
                (None, _) | (Some(Value::Null), _) => Value::Null,
                (Some(v), "dynamic") => Value::String(v.to_string()),
                (Some(v), _) => v.clone(),
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Predicates

#[derive(Debug, Clone)]
enum Literal {
    Text(String),
    Number(f64),
    Instant(DateTime<Utc>),
}

#[derive(Debug, Clone)]
enum Predicate {
    Compare {
        column: String,
        op: String,
        value: Literal,
    },
    In {
        column: String,
        values: Vec<Literal>,
    },
    And(Box<Predicate>, Box<Predicate>),
    Or(Box<Predicate>, Box<Predicate>),
}

impl Predicate {
    fn check(&self, columns: &[(&str, &str)], operator: &str) -> Result<(), TableError> {
        match self {
            Predicate::Compare { column, .. } | Predicate::In { column, .. } => {
                known(columns, column, operator)
            }
            Predicate::And(a, b) | Predicate::Or(a, b) => {
                a.check(columns, operator)?;
                b.check(columns, operator)
            }
        }
    }

    fn holds(&self, row: &Map<String, Value>, columns: &[(&str, &str)]) -> bool {
        match self {
            Predicate::Compare { column, op, value } => {
                let ord = literal_cmp(row.get(column), value, kind(columns, column));
                match (op.as_str(), ord) {
                    (_, None) => op == "!=",
                    ("==", Some(o)) => o == Ordering::Equal,
                    ("!=", Some(o)) => o != Ordering::Equal,
                    ("<", Some(o)) => o == Ordering::Less,
                    ("<=", Some(o)) => o != Ordering::Greater,
                    (">", Some(o)) => o == Ordering::Greater,
                    (">=", Some(o)) => o != Ordering::Less,
                    _ => false,
                }
            }
            Predicate::In { column, values } => values.iter().any(|v| {
                literal_cmp(row.get(column), v, kind(columns, column)) == Some(Ordering::Equal)
            }),
            Predicate::And(a, b) => a.holds(row, columns) && b.holds(row, columns),
            Predicate::Or(a, b) => a.holds(row, columns) || b.holds(row, columns),
        }
    }
}

/// How a row's value compares with a literal; `None` when it is missing or of another kind.
fn literal_cmp(value: Option<&Value>, literal: &Literal, kind: &str) -> Option<Ordering> {
    match literal {
        Literal::Instant(at) if kind == "datetime" => instant(value).map(|v| v.cmp(at)),
        Literal::Number(n) => value.and_then(Value::as_f64).and_then(|v| v.partial_cmp(n)),
        Literal::Text(t) => value.map(|v| text(v).as_str().cmp(t.as_str())),
        Literal::Instant(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens and parsing

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    Punct(String),
    /// The raw text inside `datetime(...)` or `ago(...)`.
    Call {
        name: String,
        argument: String,
    },
}

struct Tok {
    token: Token,
    pos: usize,
    raw: String,
}

fn tokenize(query: &str) -> Result<Vec<Tok>, TableError> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let token = if c == '"' || c == '\'' {
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(TableError::Syntax {
                            pos: start,
                            token: chars[start..].iter().collect(),
                            detail: "unterminated string literal".into(),
                        });
                    }
                    Some(&'\\') => {
                        if let Some(&next) = chars.get(i + 1) {
                            s.push(next);
                        }
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            Token::Text(s)
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            Token::Number(text.parse().unwrap_or(0.0))
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if (word == "datetime" || word == "ago") && chars.get(i) == Some(&'(') {
                let close = chars[i..]
                    .iter()
                    .position(|&ch| ch == ')')
                    .map(|p| i + p)
                    .ok_or_else(|| TableError::Syntax {
                        pos: start,
                        token: word.clone(),
                        detail: "missing ')'".into(),
                    })?;
                let argument: String = chars[i + 1..close].iter().collect();
                i = close + 1;
                Token::Call {
                    name: word,
                    argument: argument.trim().to_owned(),
                }
            } else {
                Token::Word(word)
            }
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["==", "!=", ">=", "<="].contains(&two.as_str()) {
                i += 2;
                Token::Punct(two)
            } else if "|(),*<>".contains(c) {
                i += 1;
                Token::Punct(c.to_string())
            } else {
                return Err(TableError::Syntax {
                    pos: start,
                    token: c.to_string(),
                    detail: "unexpected character".into(),
                });
            }
        };
        out.push(Tok {
            token,
            pos: start,
            raw: chars[start..i].iter().collect(),
        });
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    i: usize,
    now: DateTime<Utc>,
}

impl Parser {
    fn error(&self, expected: &str) -> TableError {
        self.error_at(self.i, expected)
    }

    fn error_at(&self, i: usize, expected: &str) -> TableError {
        match self.tokens.get(i) {
            Some(t) => TableError::Syntax {
                pos: t.pos,
                token: t.raw.clone(),
                detail: format!("expected {expected}"),
            },
            None => TableError::Syntax {
                pos: self.tokens.last().map_or(0, |t| t.pos + t.raw.len()),
                token: String::new(),
                detail: format!("expected {expected} at the end of the query"),
            },
        }
    }

    fn peek_word(&self) -> Option<&str> {
        match self.tokens.get(self.i).map(|t| &t.token) {
            Some(Token::Word(w)) => Some(w.as_str()),
            _ => None,
        }
    }

    fn eat(&mut self, punct: &str) -> bool {
        if matches!(self.tokens.get(self.i).map(|t| &t.token), Some(Token::Punct(p)) if p == punct)
        {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, punct: &str) -> Result<(), TableError> {
        if self.eat(punct) {
            Ok(())
        } else {
            Err(self.error(&format!("'{punct}'")))
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<(), TableError> {
        if self.peek_word() == Some(word) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.error(&format!("'{word}'")))
        }
    }

    fn ident(&mut self, what: &str) -> Result<String, TableError> {
        match self.peek_word() {
            Some(w) => {
                let w = w.to_owned();
                self.i += 1;
                Ok(w)
            }
            None => Err(self.error(what)),
        }
    }

    fn number(&mut self) -> Result<f64, TableError> {
        match self.tokens.get(self.i).map(|t| &t.token) {
            Some(Token::Number(n)) => {
                let n = *n;
                self.i += 1;
                Ok(n)
            }
            _ => Err(self.error("a number")),
        }
    }

    fn predicate(&mut self) -> Result<Predicate, TableError> {
        let mut left = self.conjunction()?;
        while self.peek_word() == Some("or") {
            self.i += 1;
            let right = self.conjunction()?;
            left = Predicate::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn conjunction(&mut self) -> Result<Predicate, TableError> {
        let mut left = self.comparison()?;
        while self.peek_word() == Some("and") {
            self.i += 1;
            let right = self.comparison()?;
            left = Predicate::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Predicate, TableError> {
        if self.eat("(") {
            let inner = self.predicate()?;
            self.expect(")")?;
            return Ok(inner);
        }
        let column = self.ident("a column")?;
        if self.peek_word() == Some("in") {
            self.i += 1;
            self.expect("(")?;
            let mut values = vec![self.literal()?];
            while self.eat(",") {
                values.push(self.literal()?);
            }
            self.expect(")")?;
            return Ok(Predicate::In { column, values });
        }
        let op = match self.tokens.get(self.i).map(|t| &t.token) {
            Some(Token::Punct(p)) if ["==", "!=", "<", "<=", ">", ">="].contains(&p.as_str()) => {
                p.clone()
            }
            _ => return Err(self.error("a comparison operator")),
        };
        self.i += 1;
        let value = self.literal()?;
        Ok(Predicate::Compare { column, op, value })
    }

    fn literal(&mut self) -> Result<Literal, TableError> {
        let token = self.tokens.get(self.i).map(|t| t.token.clone());
        let literal = match token {
            Some(Token::Text(s)) => Literal::Text(s),
            Some(Token::Number(n)) => Literal::Number(n),
            Some(Token::Call { name, argument }) if name == "datetime" => {
                Literal::Instant(crate::kql::parse_datetime(&argument).ok_or_else(|| {
                    self.error("a datetime such as datetime(2026-01-01T00:00:00Z)")
                })?)
            }
            Some(Token::Call { argument, .. }) => Literal::Instant(
                self.now
                    - timespan(&argument).ok_or_else(|| self.error("a timespan such as 30d"))?,
            ),
            _ => return Err(self.error("a value")),
        };
        self.i += 1;
        Ok(literal)
    }
}

/// A KQL timespan literal such as `30d`, `12h`, `15m`, `30s`.
fn timespan(text: &str) -> Option<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_alphabetic())?);
    let n: i64 = number.trim().parse().ok()?;
    match unit {
        "d" => Some(Duration::days(n)),
        "h" => Some(Duration::hours(n)),
        "m" => Some(Duration::minutes(n)),
        "s" => Some(Duration::seconds(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Value> {
        vec![
            json!({"IncidentName": "a", "LastModifiedTime": "2026-01-01T00:00:00Z", "Status": "New", "ProviderName": "Azure Sentinel", "IncidentNumber": 1, "AlertIds": ["x"]}),
            json!({"IncidentName": "a", "LastModifiedTime": "2026-01-02T00:00:00Z", "Status": "Active", "ProviderName": "Azure Sentinel", "IncidentNumber": 1, "AlertIds": ["x"]}),
            json!({"IncidentName": "b", "LastModifiedTime": "2026-01-01T12:00:00Z", "Status": "New", "ProviderName": "Microsoft XDR", "IncidentNumber": 2}),
        ]
    }

    fn now() -> DateTime<Utc> {
        "2026-01-03T00:00:00Z"
            .parse()
            .unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn the_latest_row_per_incident_in_order() {
        let table = evaluate(
            "SecurityIncident | where LastModifiedTime >= datetime(2026-01-01T06:00:00Z) | summarize arg_max(LastModifiedTime, *) by IncidentName | order by LastModifiedTime asc, IncidentName asc | take 10",
            &rows(),
            now(),
        )
        .unwrap();
        let names: Vec<_> = table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[2].clone())
            .collect();
        assert_eq!(names, [json!("b"), json!("a")]);
        // Dynamic values are JSON text.
        assert_eq!(table["rows"][1][21], json!("[\"x\"]"));
    }

    #[test]
    fn keyset_predicates_counts_and_errors() {
        let count = evaluate(
            "SecurityIncident | where LastModifiedTime >= ago(30d) | summarize arg_max(LastModifiedTime, *) by IncidentName | where ProviderName == \"Azure Sentinel\" | count",
            &rows(),
            now(),
        )
        .unwrap();
        assert_eq!(count["rows"], json!([[1]]));
        let after = evaluate(
            "SecurityIncident | where LastModifiedTime > datetime(2026-01-01T12:00:00Z) or (LastModifiedTime == datetime(2026-01-01T12:00:00Z) and IncidentName > 'a') | count",
            &rows(),
            now(),
        )
        .unwrap();
        assert_eq!(after["rows"], json!([[2]]));
        assert!(matches!(
            evaluate("SecurityIncident | where Nope == 1", &rows(), now()),
            Err(TableError::UnknownColumn { .. })
        ));
        assert!(matches!(
            evaluate("SecurityIncident | frobnicate", &rows(), now()),
            Err(TableError::Syntax { .. })
        ));
        let some = evaluate(
            "SecurityAlert | where SystemAlertId in (\"x\", \"y\") | count",
            &[json!({"SystemAlertId": "x"}), json!({"SystemAlertId": "z"})],
            now(),
        )
        .unwrap();
        assert_eq!(some["rows"], json!([[1]]));
    }
}
