//! Statements whose shape depends on the input — a page's rows in one multi-row insert, a list
//! with only the filters asked for — assembled at run time. The text only ever holds fragments
//! written in the code and numbered placeholders; every value is bound, never spliced.

use chrono::{DateTime, Utc};

/// A value bound to a placeholder.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Time(DateTime<Utc>),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Self::Text(v)
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

impl From<DateTime<Utc>> for Arg<'_> {
    fn from(v: DateTime<Utc>) -> Self {
        Self::Time(v)
    }
}

/// SQL text and the values of its placeholders, in order.
#[derive(Debug, Default)]
pub struct DynSql<'a> {
    text: String,
    args: Vec<Arg<'a>>,
}

impl<'a> DynSql<'a> {
    pub fn new(fragment: &'static str) -> Self {
        Self {
            text: fragment.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends SQL written in the code (the `'static` bound keeps input out of the text).
    pub fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn arg(&mut self, value: impl Into<Arg<'a>>) -> &mut Self {
        self.args.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    /// Appends `v, v, …`: the placeholders of a list.
    pub fn list(&mut self, values: impl IntoIterator<Item = Arg<'a>>) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.arg(value);
        }
        self
    }

    /// Appends `(v, …), (v, …)`: the rows of a multi-row `VALUES`.
    pub fn rows<const N: usize>(&mut self, rows: impl IntoIterator<Item = [Arg<'a>; N]>) {
        for (i, row) in rows.into_iter().enumerate() {
            self.text.push_str(if i > 0 { ", (" } else { "(" });
            self.list(row);
            self.text.push(')');
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn args(&self) -> &[Arg<'a>] {
        &self.args
    }
}

/// `sqlx::query`/`query_as`/`query_scalar` (`$make`) of a [`DynSql`], with its values bound.
macro_rules! dyn_query {
    ($make:path, $sql:expr) => {{
        let sql = &$sql;
        // Not kept prepared: the texts vary with the row count, and would churn the statement
        // cache for no gain (one run each).
        let mut query = $make(sqlx::AssertSqlSafe(sql.text())).persistent(false);
        for arg in sql.args() {
            query = match *arg {
                $crate::store::Arg::Text(v) => query.bind(v),
                $crate::store::Arg::Int(v) => query.bind(v),
                $crate::store::Arg::Time(v) => query.bind(v),
            };
        }
        query
    }};
}
pub(crate) use dyn_query;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order_and_values_are_never_in_the_text() {
        let mut sql = DynSql::new("INSERT INTO t (a, b) VALUES ");
        sql.rows([
            [Arg::from("x'); DROP TABLE t; --"), Arg::from(1)],
            [Arg::from(None::<&str>), Arg::from(2)],
        ]);
        sql.push(" WHERE c IN (")
            .list([Arg::from(3), Arg::from(4)])
            .push(")");
        assert_eq!(
            sql.text(),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) WHERE c IN ($5, $6)"
        );
        assert_eq!(sql.args().len(), 6);
    }
}
