//! What PostgreSQL's `jsonb` will refuse, decided before the event reaches
//! the database: a `COPY` that meets one such value fails as a whole, so
//! every event of the batch would be lost with it.
//!
//! The input is JSON text already known to be well formed. `jsonb` stores
//! numbers as `numeric` (at most 16,383 digits after the point and 131,072
//! before it, exponents below 2³⁰), refuses `\u0000` and unpaired UTF-16
//! surrogates in strings and keys, and its parser recurses once per level.

use crate::ModelError;

/// Deepest nesting of objects and arrays accepted in `properties`.
pub const MAX_DEPTH: usize = 64;

/// `numeric`'s limits (PostgreSQL's `NUMERIC_DSCALE_MAX` and the largest
/// decimal weight a 16-bit base-10000 weight can hold).
const MAX_SCALE: i64 = 0x3FFF;
const MAX_DECIMAL_WEIGHT: i64 = 32_767 * 4 + 3;
/// `numeric_in` refuses exponents at or beyond `INT_MAX / 2` outright.
const MAX_EXPONENT: i64 = i32::MAX as i64 / 2;

/// Checks `json` (well-formed JSON text) for values `jsonb` refuses.
pub fn check(json: &str, field: &'static str) -> Result<(), ModelError> {
    let bytes = json.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ModelError::TooDeep {
                        field,
                        max: MAX_DEPTH,
                    });
                }
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'"' => i = string(bytes, i + 1, field)?,
            b'-' | b'0'..=b'9' => {
                let end = bytes[i..]
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .map_or(bytes.len(), |n| i + n);
                number(&json[i..end], field)?;
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Scans a string body starting after its opening quote; returns the index
/// after the closing quote.
fn string(bytes: &[u8], mut i: usize, field: &'static str) -> Result<usize, ModelError> {
    // A high surrogate waiting for its low half.
    let mut pending_high = false;
    while i < bytes.len() {
        match bytes[i] {
            b'"' if !pending_high => return Ok(i + 1),
            b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                let unit = bytes
                    .get(i + 2..i + 6)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ModelError::EventShape(format!("{field}: bad \\u escape")))?;
                match unit {
                    0 => return Err(ModelError::ContainsNul { field }),
                    0xD800..=0xDBFF if !pending_high => pending_high = true,
                    0xDC00..=0xDFFF if pending_high => pending_high = false,
                    0xD800..=0xDFFF => return Err(ModelError::BadSurrogate { field }),
                    _ if pending_high => return Err(ModelError::BadSurrogate { field }),
                    _ => {}
                }
                i += 6;
            }
            _ if pending_high => return Err(ModelError::BadSurrogate { field }),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Ok(i)
}

/// A JSON number literal as `numeric_in` will read it.
fn number(lit: &str, field: &'static str) -> Result<(), ModelError> {
    let overflow = || ModelError::NumberOutOfRange {
        field,
        value: crate::error::truncate_for_message(lit),
    };
    let unsigned = lit.strip_prefix('-').unwrap_or(lit);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(p) => (&unsigned[..p], &unsigned[p + 1..]),
        None => (unsigned, "0"),
    };
    // Longer than any in-range exponent: out of range whatever its digits.
    let digits = exponent
        .trim_start_matches(['+', '-'])
        .trim_start_matches('0');
    if digits.len() > 10 {
        return Err(overflow());
    }
    let exponent: i64 = exponent.parse().map_err(|_| overflow())?;
    if exponent.abs() >= MAX_EXPONENT {
        return Err(overflow());
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let scale = (frac.len() as i64 - exponent).max(0);
    if scale > MAX_SCALE {
        return Err(overflow());
    }
    // Decimal weight of the first significant digit (zero has none).
    let all = int.bytes().chain(frac.bytes());
    if let Some(first) = all.clone().position(|b| b != b'0') {
        let weight = int.len() as i64 - 1 - first as i64 + exponent;
        if weight > MAX_DECIMAL_WEIGHT {
            return Err(overflow());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        check(s, "properties").is_ok()
    }

    #[test]
    fn numbers_at_numerics_edges() {
        for good in [
            "0",
            "-1.5",
            "1e400",
            "1e-16383",
            "0e100000",
            "1e131071",
            "9.99e131071",
        ] {
            assert!(ok(&format!(r#"{{"x": {good}}}"#)), "{good}");
        }
        for bad in [
            "1e-20000",
            "1e-16384",
            "0e-16384",
            "1e131072",
            "1e1073741823",
            "0e1073741823",
            "1e99999999999999999999",
        ] {
            assert!(
                matches!(
                    check(&format!(r#"{{"x": [{bad}]}}"#), "properties"),
                    Err(ModelError::NumberOutOfRange { .. })
                ),
                "{bad}"
            );
        }
        let long_fraction = format!(r#"{{"x": 0.{}1}}"#, "0".repeat(16_383));
        assert!(!ok(&long_fraction));
    }

    #[test]
    fn strings_nesting_and_numbers_inside_strings() {
        assert!(ok(r#"{"1e-99999": "1e-99999", "a\"b": "\ud83d\ude00"}"#));
        assert!(!ok(r#"{"a": "\u0000"}"#));
        assert!(!ok(r#"{"\u0000": 1}"#));
        assert!(!ok(r#"{"a": "\ud800"}"#));
        assert!(!ok(r#"{"a": "\udc00"}"#));
        assert!(!ok(r#"{"a": "\ud800x"}"#));
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(ok(&format!(r#"{{"a": {}}}"#, nested(MAX_DEPTH - 1))));
        assert!(matches!(
            check(&format!(r#"{{"a": {}}}"#, nested(MAX_DEPTH)), "properties"),
            Err(ModelError::TooDeep { .. })
        ));
    }
}
