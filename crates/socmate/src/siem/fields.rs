//! A provider body's fields, taken one by one by the core and by the provider type, with every
//! problem collected so that one 422 names each wrong field at once.

use serde_json::{Map, Value};

use crate::http::FieldError;

/// The fields of a create, test or update body that nobody has taken yet, and the problems found.
#[derive(Debug, Default)]
pub struct Fields {
    remaining: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    pub fn new(body: Map<String, Value>) -> Self {
        Self {
            remaining: body,
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// Whether the body sent `field` (with any value, `null` included) and nobody took it yet.
    pub fn has(&self, field: &str) -> bool {
        self.remaining.contains_key(field)
    }

    /// Whether `field` was found wrong.
    pub fn has_error(&self, field: &str) -> bool {
        self.errors.iter().any(|e| e.field == field)
    }

    /// The names of the fields not taken yet.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.remaining.keys().map(String::as_str)
    }

    /// Takes a field as it was sent; `None` when absent.
    pub fn take(&mut self, field: &str) -> Option<Value> {
        self.remaining.shift_remove(field)
    }

    /// Takes a string field; absent and `null` are `None`, any other type is an error.
    pub fn take_string(&mut self, field: &str) -> Option<String> {
        match self.take(field)? {
            Value::Null => None,
            Value::String(s) => Some(s),
            _ => {
                // Never echo the value: it may be a secret typed into the wrong field.
                self.error(field, format!("{field} must be a string"));
                None
            }
        }
    }

    pub fn take_bool(&mut self, field: &str) -> Option<bool> {
        match self.take(field)? {
            Value::Null => None,
            Value::Bool(b) => Some(b),
            _ => {
                self.error(field, format!("{field} must be true or false"));
                None
            }
        }
    }

    /// A field that must be present: `check` turns the text into its value or says what is wrong
    /// (its message for `""` doubles as the "where to find it" rule of a missing field).
    pub fn required<T>(
        &mut self,
        field: &str,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let problems = self.errors.len();
        let text = self.take_string(field);
        if text.is_none() && self.errors.len() == problems {
            let rule = check("").err().unwrap_or_default();
            self.error(field, format!("{field} is required; {rule}"));
        }
        self.checked(field, text, check)
    }

    /// A field that may be absent (or `null`).
    pub fn optional<T>(
        &mut self,
        field: &str,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.take_string(field);
        self.checked(field, text, check)
    }

    fn checked<T>(
        &mut self,
        field: &str,
        text: Option<String>,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        match check(&text?) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(field, message);
                None
            }
        }
    }

    /// Ends validation: whatever nobody took is not a field of this body. `known` describes what
    /// is accepted (for the message), e.g. "a <type> provider".
    pub fn finish<T>(
        mut self,
        known: &str,
        value: impl FnOnce() -> T,
    ) -> Result<T, Vec<FieldError>> {
        let unknown: Vec<String> = self.remaining.keys().cloned().collect();
        for field in unknown {
            self.error(
                &field,
                format!(
                    "{field} is not a field of {known} (server-managed fields such as id, status \
                     and is_default cannot be set)"
                ),
            );
        }
        if self.errors.is_empty() {
            Ok(value())
        } else {
            Err(self.errors)
        }
    }

    /// The problems found so far (for callers that stop early).
    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A canonical 8-4-4-4-12 GUID (either case).
pub fn is_guid(value: &str) -> bool {
    value.len() == 36
        && value.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(body: Value) -> Fields {
        match body {
            Value::Object(map) => Fields::new(map),
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut f = fields(json!({"a": 1, "b": "x", "c": "bad", "extra": true}));
        let guid = |s: &str| {
            (s == "ok")
                .then_some(s.to_owned())
                .ok_or_else(|| "must be ok".to_owned())
        };
        assert_eq!(f.optional("a", guid), None);
        assert_eq!(f.required("b", guid), None);
        assert_eq!(f.required("missing", guid), None);
        assert_eq!(f.optional("absent", guid), None);
        let _ = f.take_string("c");
        let errors = f.finish("a test body", || ()).unwrap_err();
        let named: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, ["a", "b", "missing", "extra"]);
        assert_eq!(errors[0].message, "a must be a string");
        assert_eq!(errors[2].message, "missing is required; must be ok");
        assert!(errors[3].message.contains("not a field of a test body"));
    }

    #[test]
    fn guids() {
        assert!(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(is_guid("72F988BF-86F1-41AF-91AB-2D7CD011DB47"));
        for bad in [
            "",
            "72f988bf86f141af91ab2d7cd011db47",
            "{72f988bf-86f1-41af-91ab-2d7cd011db47}",
            "72f988bf-86f1-41af-91ab-2d7cd011db4g",
            "your-log-analytics-workspace-id",
        ] {
            assert!(!is_guid(bad), "{bad}");
        }
    }

    #[test]
    fn null_is_absent_and_a_clean_body_finishes() {
        let mut f = fields(json!({"a": null, "b": "ok"}));
        assert_eq!(f.take_string("a"), None);
        assert_eq!(f.take_string("b").as_deref(), Some("ok"));
        assert!(f.finish("x", || 7).is_ok_and(|v| v == 7));
    }
}
