//! JSON bodies parsed under limits (INPUT-03).
//!
//! Two passes over untrusted bytes: a byte scan that bounds nesting depth,
//! string length and number size before any allocation, then a serde parse
//! whose visitor refuses duplicate object keys (the way two parsers behind
//! the gateway could read the same body differently) and reports where.
//!
//! Numbers must fit a double (no overflow, no underflow to zero, at most 100
//! characters). A body is forwarded byte for byte unless something was
//! stripped; a re-serialised body carries each number as the double it
//! parses to, so a backend reading doubles (as JSON parsers do by default)
//! reads exactly the same values, while integers beyond 2^53 or decimals
//! with more than 15-17 significant digits may change their text.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::fmt;

/// Bounds applied to every JSON body before it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
    /// Longest string (and object key), in bytes as sent.
    pub max_string_bytes: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_string_bytes: 64 * 1024,
        }
    }
}

/// Why a body is not acceptable JSON; the text never contains body content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    Syntax,
    TooDeep {
        limit: usize,
    },
    StringTooLong {
        limit: usize,
    },
    NumberTooLarge,
    /// The JSON pointer of the object holding the repeated key.
    DuplicateKey {
        pointer: String,
    },
}

impl JsonError {
    /// The pointer into the body, where one is known.
    pub fn pointer(&self) -> &str {
        match self {
            JsonError::DuplicateKey { pointer } => pointer,
            _ => "",
        }
    }

    /// What to fix, without echoing anything from the body.
    pub fn reason(&self) -> String {
        match self {
            JsonError::Syntax => "the body is not valid JSON".into(),
            JsonError::TooDeep { limit } => {
                format!("arrays and objects are nested deeper than {limit} levels")
            }
            JsonError::StringTooLong { limit } => {
                format!("a string or key is longer than {limit} bytes")
            }
            JsonError::NumberTooLarge => "a number is out of range: numbers must fit a double (magnitude up to 1.7e308, not so small that they round to zero) and be at most 100 characters; send such values as strings".into(),
            JsonError::DuplicateKey { .. } => "an object repeats a key".into(),
        }
    }
}

/// Parses `bytes` as one JSON value under `limits`.
pub fn parse(bytes: &[u8], limits: &JsonLimits) -> Result<Value, JsonError> {
    scan(bytes, limits)?;
    let path = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = ValueSeed { path: &path }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match value {
        Ok(v) => Ok(v),
        Err(e) if e.to_string().starts_with(DUPLICATE) => {
            let mut segments = path.into_inner();
            segments.reverse();
            Err(JsonError::DuplicateKey {
                pointer: pointer(&segments),
            })
        }
        Err(_) => Err(JsonError::Syntax),
    }
}

/// Builds an RFC 6901 pointer from path segments.
pub fn pointer(segments: &[String]) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.push_str(&s.replace('~', "~0").replace('/', "~1"));
    }
    out
}

/// Byte scan: depth, string length and number tokens, outside and inside strings.
fn scan(bytes: &[u8], limits: &JsonLimits) -> Result<(), JsonError> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i + 1;
                i = start;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if i - start > limits.max_string_bytes {
                    return Err(JsonError::StringTooLong {
                        limit: limits.max_string_bytes,
                    });
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > limits.max_depth {
                    return Err(JsonError::TooDeep {
                        limit: limits.max_depth,
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i + 1 < bytes.len()
                    && matches!(bytes[i + 1], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                number_ok(&bytes[start..=i])?;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Longest number token accepted.
const MAX_NUMBER_CHARS: usize = 100;

fn number_ok(token: &[u8]) -> Result<(), JsonError> {
    if token.len() > MAX_NUMBER_CHARS {
        return Err(JsonError::NumberTooLarge);
    }
    // Within a double: no overflow to infinity, and a non-zero number must
    // not underflow to zero.
    let value: f64 = std::str::from_utf8(token)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(JsonError::NumberTooLarge)?;
    let unsigned = token.strip_prefix(b"-").unwrap_or(token);
    let mantissa = unsigned
        .split(|&b| b == b'e' || b == b'E')
        .next()
        .unwrap_or(unsigned);
    let nonzero = mantissa.iter().any(|&b| (b'1'..=b'9').contains(&b));
    if value.is_finite() && (value != 0.0 || !nonzero) {
        Ok(())
    } else {
        Err(JsonError::NumberTooLarge)
    }
}

const DUPLICATE: &str = "portcullis-duplicate-key";

/// Builds a `Value`, refusing duplicate keys; on error the segments from the
/// failing value up to the root are left in `path` (innermost first).
struct ValueSeed<'p> {
    path: &'p RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        loop {
            match seq.next_element_seed(ValueSeed { path: self.path }) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => return Ok(Value::Array(out)),
                Err(e) => {
                    self.path.borrow_mut().push(out.len().to_string());
                    return Err(e);
                }
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match map.next_value_seed(ValueSeed { path: self.path }) {
                Ok(v) => match out.entry(key) {
                    serde_json::map::Entry::Vacant(slot) => {
                        slot.insert(v);
                    }
                    serde_json::map::Entry::Occupied(_) => {
                        return Err(de::Error::custom(DUPLICATE));
                    }
                },
                Err(e) => {
                    self.path.borrow_mut().push(key);
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Value, JsonError> {
        parse(s.as_bytes(), &JsonLimits::default())
    }

    /// What passes the limits is parsed exactly as serde_json parses it.
    #[test]
    fn every_json_type_comes_back_as_sent() {
        let body = r#"{"t":true,"f":false,"n":null,"i":-42,"u":7,"x":1.5e3,"s":"h\u00e9","a":[1,"b",{"c":[]}]}"#;
        assert_eq!(p(body), Ok(serde_json::from_str::<Value>(body).unwrap()));
        let escaped = format!("\"{}\"", "é".repeat(3));
        assert_eq!(p(&escaped), Ok(Value::String("ééé".into())));
    }

    /// Numbers: any finite double, zero however written, at most 100
    /// characters; overflow to infinity and non-zero values that round to
    /// zero are refused.
    #[test]
    fn numbers_must_fit_a_double_and_100_characters() {
        for ok in [
            "0",
            "-0",
            "1",
            "-0.5e3",
            "0e-400",
            "0.000",
            "1e308",
            "123456789",
        ] {
            assert!(p(ok).is_ok(), "{ok}");
        }
        let hundred = format!("1{}", "0".repeat(99));
        assert!(p(&hundred).is_ok(), "100 characters");
        for bad in ["1e309", "-1e309", "1e-400", &format!("{hundred}0")] {
            assert_eq!(p(bad), Err(JsonError::NumberTooLarge), "{bad}");
        }
    }

    /// Depth is nesting, not count: many siblings are fine, and the depth
    /// comes back down after each closed container.
    #[test]
    fn wide_but_shallow_bodies_pass() {
        let wide = format!("[{}]", vec!["[[]]"; 200].join(","));
        assert!(p(&wide).is_ok());
        let objects = format!("{{\"a\":[{}]}}", vec!["{}"; 200].join(","));
        assert!(p(&objects).is_ok());
    }

    /// A body that ends inside a string is a syntax error, never a panic.
    #[test]
    fn an_unterminated_string_is_a_syntax_error() {
        for body in ["\"abc", "{\"a\":\"b", "[\"\\"] {
            assert_eq!(p(body), Err(JsonError::Syntax), "{body}");
        }
    }

    /// The pointer a duplicate key reports is the one callers get.
    #[test]
    fn the_pointer_of_a_duplicate_key_is_reported() {
        let e = p(r#"{"items":[{"id":1,"id":2}]}"#).unwrap_err();
        assert_eq!(e.pointer(), "/items/0");
        assert_eq!(JsonError::Syntax.pointer(), "");
    }

    #[test]
    fn duplicate_keys_are_refused_with_the_pointer_of_their_object() {
        assert_eq!(
            p(r#"{"a":1,"a":2}"#),
            Err(JsonError::DuplicateKey {
                pointer: String::new()
            })
        );
        assert_eq!(
            p(r#"{"items":[{"sku":"x"},{"sku":"y","sku":"z"}]}"#),
            Err(JsonError::DuplicateKey {
                pointer: "/items/1".into()
            })
        );
        // Escapes are decoded before comparing: no bypass with \u0061.
        assert!(matches!(
            p(r#"{"a":1,"\u0061":2}"#),
            Err(JsonError::DuplicateKey { .. })
        ));
        assert!(p(r#"{"a":{"a":1}}"#).is_ok());
    }

    #[test]
    fn depth_string_and_number_limits_hold() {
        let bomb = "[".repeat(100_000);
        assert_eq!(p(&bomb), Err(JsonError::TooDeep { limit: 32 }));
        let ok = format!("{}1{}", "[".repeat(32), "]".repeat(32));
        assert!(p(&ok).is_ok());
        // Brackets inside strings are not nesting.
        assert!(p(&format!("\"{}\"", "[".repeat(100))).is_ok());
        let limits = JsonLimits {
            max_depth: 4,
            max_string_bytes: 8,
        };
        assert_eq!(
            parse(br#"{"k":"123456789"}"#, &limits),
            Err(JsonError::StringTooLong { limit: 8 })
        );
        assert!(parse(br#"{"k":"12345678"}"#, &limits).is_ok());
        let hundred_digits = format!("1{}", "0".repeat(100));
        for n in ["1e400", "-1e309", "1e-400", hundred_digits.as_str()] {
            assert_eq!(p(n), Err(JsonError::NumberTooLarge), "{n}");
        }
        for n in [
            "9999999999999999999",
            "-123456789012345678",
            "0.5",
            "1.25e10",
            "1.500000000000000000",
            "0.000001",
            "-2.2250738585e-313",
            "123456789012345678901",
            "0.1234567890123456789",
        ] {
            assert!(p(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn syntax_errors_and_trailing_data_are_refused() {
        for s in ["", "{", r#"{"a":}"#, "[1,]", "{} {}", "nul"] {
            assert_eq!(p(s), Err(JsonError::Syntax), "{s:?}");
        }
    }

    #[test]
    fn accepted_numbers_survive_a_round_trip() {
        for n in ["0.1", "123.456", "-1.5e-7", "9007199254740993", "1e300"] {
            let v = p(n).unwrap();
            let back: f64 = v.to_string().parse().unwrap();
            assert_eq!(back.to_bits(), n.parse::<f64>().unwrap().to_bits(), "{n}");
        }
        assert_eq!(
            p("9007199254740993").unwrap().to_string(),
            "9007199254740993"
        );
    }
}
