//! Breakdowns: `group_by=property:<key>` splits a stat by the value of one
//! top-level property of the events.

use crate::ModelError;

/// The longest property key a breakdown names.
pub const MAX_PROPERTY_KEY_BYTES: usize = 256;

/// A top-level property key: 1-256 bytes, no NUL (a project's declared
/// properties, ADR-043, and the key a breakdown names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PropertyKey(String);

impl PropertyKey {
    pub fn parse(raw: &str) -> Result<Self, ModelError> {
        if raw.is_empty() || raw.len() > MAX_PROPERTY_KEY_BYTES || raw.contains('\0') {
            return Err(ModelError::BadPropertyKey(
                crate::error::truncate_for_message(raw),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a stat is split by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// The value of one top-level property, as text.
    Property(String),
}

impl GroupBy {
    /// Parses `property:<key>` (the key 1-256 bytes, no NUL; any other
    /// character, `:` included, is part of it).
    pub fn parse(raw: &str) -> Result<Self, ModelError> {
        let bad = || ModelError::BadGroupBy(crate::error::truncate_for_message(raw));
        let key = raw.strip_prefix("property:").ok_or_else(bad)?;
        let key = PropertyKey::parse(key).map_err(|_| bad())?;
        Ok(Self::Property(key.0))
    }

    /// The property key.
    pub fn key(&self) -> &str {
        match self {
            Self::Property(k) => k,
        }
    }

    /// As requested: `property:<key>`.
    pub fn as_param(&self) -> String {
        format!("property:{}", self.key())
    }
}

/// A property's value as a breakdown groups it, from the value's JSON text
/// (`None`: the key is missing). Strings are their text; `null` and a
/// missing key are one group (`None`); numbers, booleans, objects and
/// arrays are their compact JSON, numbers as the nearest double and object
/// keys sorted, so that the same value reads the same from either tier
/// however each engine printed it.
pub fn property_text(json: Option<&str>) -> Option<String> {
    let raw = json?;
    let Ok(value) = serde_json::from_str::<serde_json::Value>(raw) else {
        // A number beyond a double's range: its text as given.
        return Some(raw.to_owned());
    };
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(number_text(&n)),
        other => Some(compact(&other)),
    }
}

fn number_text(n: &serde_json::Number) -> String {
    // Integers print as such; anything else as the nearest double, so
    // `1.50` and `1.5` are one value.
    if n.is_i64() || n.is_u64() {
        n.to_string()
    } else {
        serde_json::Number::from_f64(n.as_f64().unwrap_or(f64::NAN))
            .map_or_else(|| n.to_string(), |f| f.to_string())
    }
}

fn compact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => number_text(n),
        serde_json::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(compact).collect();
            format!("[{}]", inner.join(","))
        }
        serde_json::Value::Object(map) => {
            // serde_json's map is ordered by key.
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::Value::from(k.as_str()), compact(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_by_names_a_property() {
        assert_eq!(
            GroupBy::parse("property:plan"),
            Ok(GroupBy::Property("plan".into()))
        );
        assert_eq!(GroupBy::parse("property:a:b").unwrap().key(), "a:b");
        for bad in [
            "plan",
            "property:",
            "event_type",
            &format!("property:{}", "k".repeat(257)),
        ] {
            let e = GroupBy::parse(bad).unwrap_err().to_string();
            assert!(e.contains("property:<key>"), "{bad}: {e}");
        }
    }

    #[test]
    fn values_read_the_same_however_an_engine_printed_them() {
        let t = |s: &str| property_text(Some(s));
        assert_eq!(t(r#""pro""#), Some("pro".into()));
        assert_eq!(t("null"), None);
        assert_eq!(property_text(None), None);
        assert_eq!(t("true"), Some("true".into()));
        assert_eq!(t("10"), Some("10".into()));
        assert_eq!(t("1.50"), t("1.5"));
        assert_eq!(t("1.5"), Some("1.5".into()));
        assert_eq!(t("1e3"), t("1000.0"));
        assert_eq!(t(r#"{"b": 1, "a": [1, 2.0]}"#), t(r#"{"a":[1,2.0],"b":1}"#));
        assert_eq!(
            t(r#"{"b": 1, "a": "x"}"#),
            Some(r#"{"a":"x","b":1}"#.into())
        );
        // A string that looks like a number is still a string.
        assert_eq!(t(r#""10""#), Some("10".into()));
    }
}
