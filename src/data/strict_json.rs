//! JSON as docre reads its inputs: UTF-8 (an invalid byte is named by its offset), a leading
//! byte-order mark skipped, and an object with the same key twice refused (serde_json would keep
//! the last one silently, so one document could carry two sets of labels and train on either).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The text of an input file's bytes: UTF-8 without a leading byte-order mark.
pub fn text(bytes: &[u8]) -> Result<&str, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        format!("not UTF-8 text: invalid byte 0x{:02x} at byte offset {at} (line {line})", bytes[at])
    })
}

/// Parses one JSON value, refusing duplicate keys; the error carries serde_json's line and
/// column.
pub fn parse(text: &str) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element_seed(Strict)? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if m.contains_key(&k) {
                return Err(de::Error::custom(format!("duplicate key `{k}`")));
            }
            let v = map.next_value_seed(Strict)?;
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_boms_and_bad_bytes() {
        assert_eq!(parse(r#"{"a": [1, {"b": null}], "c": "x"}"#).unwrap(), serde_json::json!({"a": [1, {"b": null}], "c": "x"}));
        let e = parse("{\"a\": 1,\n \"a\": 2}").unwrap_err().to_string();
        assert!(e.contains("duplicate key `a`") && e.contains("line 2"), "{e}");
        assert!(parse(r#"[{"x": {"y": 1, "y": 1}}]"#).is_err(), "nested duplicates too");
        assert_eq!(text(b"\xEF\xBB\xBF[1]").unwrap(), "[1]");
        let e = text(b"[\"ok\",\n\"\xFF\"]").unwrap_err();
        assert!(e.contains("byte offset 8") && e.contains("line 2") && e.contains("0xff"), "{e}");
    }
}
