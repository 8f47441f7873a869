//! Turning PostgreSQL's text output into exact, typed JSON.
//!
//! The executor asks PostgreSQL for every column as text (under fixed `DateStyle = ISO`,
//! `TimeZone = UTC`, `bytea_output = hex`, `extra_float_digits = 3`), so every type, including
//! ones this code has never heard of, has one faithful rendering; this module then maps the text to
//! JSON by column type. The rules, as documented in the API:
//!
//! - NULL → `null`; booleans → `true`/`false`; integers → numbers;
//! - `numeric` → a JSON **string** (exact: `"2328.60"`, never a rounded float);
//! - `real`/`double precision` → numbers, or the strings `"NaN"`, `"Infinity"`, `"-Infinity"`;
//! - `date` → `"2009-01-01"`; `timestamp` → `"2009-01-01T00:00:00"`; `timestamptz` → RFC 3339 in UTC
//!   (`"2013-01-01T10:00:00Z"`);
//! - `json`/`jsonb` → the JSON value itself; `bytea` → base64 (standard alphabet, padded);
//! - everything else (text, uuid, intervals, arrays, ...) → PostgreSQL's text form as a string.

use base64::Engine as _;
use serde_json::Value;
use tokio_postgres::types::Type;

/// The JSON for one value of type `ty` given as PostgreSQL text (`None` for NULL).
pub fn to_json(ty: &Type, text: Option<String>) -> Value {
    let Some(text) = text else { return Value::Null };
    match *ty {
        // `bool::text` renders `true`/`false`; the output function alone would give `t`/`f`.
        Type::BOOL => Value::Bool(text == "true" || text == "t"),
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
            text.parse::<i64>().map_or(Value::String(text), Value::from)
        }
        Type::FLOAT4 | Type::FLOAT8 => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => {
                serde_json::Number::from_f64(f).map_or(Value::String(text), Value::Number)
            }
            _ => Value::String(text),
        },
        Type::JSON | Type::JSONB => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        Type::BYTEA => match decode_hex_bytea(&text) {
            Some(bytes) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            None => Value::String(text),
        },
        Type::TIMESTAMP => Value::String(text.replacen(' ', "T", 1)),
        Type::TIMESTAMPTZ => Value::String(rfc3339(&text)),
        _ => Value::String(text),
    }
}

/// `\x0a0b` → bytes.
fn decode_hex_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?;
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `2013-01-01 10:00:00+00` → `2013-01-01T10:00:00Z`; `+05:30` stays, a bare `+05` becomes `+05:00`.
fn rfc3339(text: &str) -> String {
    let t = text.replacen(' ', "T", 1);
    if let Some(stripped) = t.strip_suffix("+00") {
        return format!("{stripped}Z");
    }
    // An offset of whole hours is printed as ±HH; RFC 3339 wants ±HH:MM.
    let bytes = t.as_bytes();
    if bytes.len() > 3 {
        let sign = bytes[bytes.len() - 3];
        if (sign == b'+' || sign == b'-') && bytes[bytes.len() - 2..].iter().all(u8::is_ascii_digit)
        {
            return format!("{t}:00");
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_exact_and_typed() {
        assert_eq!(to_json(&Type::INT4, None), Value::Null);
        assert_eq!(to_json(&Type::BOOL, Some("true".into())), json!(true));
        assert_eq!(to_json(&Type::BOOL, Some("false".into())), json!(false));
        assert_eq!(
            to_json(&Type::INT8, Some("-9007199254740993".into())),
            json!(-9_007_199_254_740_993_i64)
        );
        assert_eq!(
            to_json(&Type::NUMERIC, Some("2328.60".into())),
            json!("2328.60")
        );
        assert_eq!(to_json(&Type::FLOAT8, Some("0.1".into())), json!(0.1));
        assert_eq!(to_json(&Type::FLOAT8, Some("NaN".into())), json!("NaN"));
        assert_eq!(
            to_json(&Type::FLOAT4, Some("-Infinity".into())),
            json!("-Infinity")
        );
        assert_eq!(
            to_json(&Type::JSONB, Some("{\"a\": [1, 2]}".into())),
            json!({"a": [1, 2]})
        );
        assert_eq!(
            to_json(&Type::BYTEA, Some("\\x00ff10".into())),
            json!("AP8Q")
        );
        assert_eq!(
            to_json(&Type::DATE, Some("2009-01-01".into())),
            json!("2009-01-01")
        );
        assert_eq!(
            to_json(&Type::TIMESTAMP, Some("2009-01-01 00:00:00".into())),
            json!("2009-01-01T00:00:00")
        );
        assert_eq!(
            to_json(&Type::TIMESTAMPTZ, Some("2013-01-01 10:00:00+00".into())),
            json!("2013-01-01T10:00:00Z")
        );
        assert_eq!(
            to_json(
                &Type::TIMESTAMPTZ,
                Some("2013-01-01 10:00:00.5+05:30".into())
            ),
            json!("2013-01-01T10:00:00.5+05:30")
        );
        assert_eq!(
            to_json(&Type::TIMESTAMPTZ, Some("2013-01-01 10:00:00-05".into())),
            json!("2013-01-01T10:00:00-05:00")
        );
        assert_eq!(to_json(&Type::TEXT, Some("héllo".into())), json!("héllo"));
        assert_eq!(
            to_json(&Type::INT4_ARRAY, Some("{1,2}".into())),
            json!("{1,2}")
        );
    }
}
