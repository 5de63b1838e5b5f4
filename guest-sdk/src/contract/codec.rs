//! How transaction arguments and results travel, as Fabric's contract APIs encode them: a string
//! as its plain text, anything else (numbers, booleans, structs, lists) as JSON.

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserializer, Serialize};

/// Decodes one argument: plain text for a string, JSON for any other type.
///
/// # Errors
/// Text that is not UTF-8, or does not decode as the argument's type; the error names `name`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], name: &str) -> Result<T, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| format!("parameter {name} is not UTF-8 text"))?;
    T::deserialize(ArgumentText(text))
        .map_err(|e| format!("parameter {name} is not valid for its type: {e}"))
}

/// Encodes a result: a string as its text, nothing (`()`, `None`) as an empty payload, anything
/// else as JSON.
///
/// # Errors
/// A value serde cannot serialise (a map with non-string keys, say).
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Ok(text.into_bytes()),
        Ok(serde_json::Value::Null) => Ok(Vec::new()),
        Ok(other) => serde_json::to_vec(&other).map_err(|e| e.to_string()),
        Err(e) => Err(format!("the result cannot be encoded: {e}")),
    }
}

/// One argument's text: strings are taken as they are, everything else is read as JSON.
struct ArgumentText<'de>(&'de str);

impl<'de> ArgumentText<'de> {
    fn json(&self) -> serde_json::Deserializer<serde_json::de::StrRead<'de>> {
        serde_json::Deserializer::from_str(self.0)
    }
}

/// Reads the whole text as JSON with `method`, refusing trailing characters.
macro_rules! as_json {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            let mut json = serde_json::Deserializer::from_str(self.0);
            let value = json.$method(visitor)?;
            json.end()?;
            Ok(value)
        }
    )*};
}

impl<'de> Deserializer<'de> for ArgumentText<'de> {
    type Error = serde_json::Error;

    as_json! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_seq deserialize_map
        deserialize_ignored_any
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_borrowed_str(self.0)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_borrowed_str(self.0)
    }

    /// An optional argument is always given: its text is the value's.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let mut json = self.json();
        let value = json.deserialize_unit_struct(name, visitor)?;
        json.end()?;
        Ok(value)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let mut json = self.json();
        let value = json.deserialize_tuple(len, visitor)?;
        json.end()?;
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let mut json = self.json();
        let value = json.deserialize_tuple_struct(name, len, visitor)?;
        json.end()?;
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let mut json = self.json();
        let value = json.deserialize_struct(name, fields, visitor)?;
        json.end()?;
        Ok(value)
    }

    /// A unit variant is its plain name (`Red`, or `"Red"` as JSON); other variants are JSON
    /// (`{"Sized":3}`). Text that is not JSON is a variant's name, or refused as none.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let is_json = self.0.trim_start().starts_with(['{', '"']);
        if variants.contains(&self.0) || !is_json {
            return visitor.visit_enum(de::value::BorrowedStrDeserializer::new(self.0));
        }
        let mut json = self.json();
        let value = json.deserialize_enum(name, variants, visitor)?;
        json.end()?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Asset {
        id: String,
        size: u32,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum Colour {
        Red,
        Blue,
    }

    #[test]
    fn a_string_argument_is_its_plain_text_and_others_are_json() -> Result<(), String> {
        assert_eq!(decode::<String>(b"blue", "colour")?, "blue");
        assert_eq!(decode::<String>(b"\"quoted\"", "s")?, "\"quoted\"");
        assert_eq!(decode::<u32>(b"42", "size")?, 42);
        assert!(decode::<bool>(b"true", "flag")?);
        assert_eq!(decode::<Option<String>>(b"x", "o")?, Some("x".to_owned()));
        assert_eq!(decode::<Vec<u8>>(b"[1,2]", "list")?, vec![1, 2]);
        assert_eq!(decode::<Colour>(b"Blue", "c")?, Colour::Blue);
        assert_eq!(decode::<Colour>(b"\"Red\"", "c")?, Colour::Red);
        assert_eq!(
            decode::<Asset>(br#"{"id":"a1","size":5}"#, "asset")?,
            Asset {
                id: "a1".to_owned(),
                size: 5
            }
        );
        Ok(())
    }

    #[test]
    fn an_argument_that_does_not_fit_its_type_is_refused_with_its_name() {
        let refused = decode::<u32>(b"five", "size").expect_err("not a number");
        assert!(
            refused.starts_with("parameter size is not valid for its type"),
            "{refused}"
        );
        let refused = decode::<u32>(b"5 6", "size").expect_err("trailing text");
        assert!(refused.contains("trailing characters"), "{refused}");
        let refused = decode::<String>(&[0xff], "name").expect_err("not UTF-8");
        assert_eq!(refused, "parameter name is not UTF-8 text");
    }

    #[test]
    fn a_result_is_plain_text_for_a_string_empty_for_nothing_and_json_otherwise()
    -> Result<(), String> {
        assert_eq!(encode(&"old owner")?, b"old owner");
        assert_eq!(encode(&())?, b"");
        assert_eq!(encode(&true)?, b"true");
        assert_eq!(encode(&7_u64)?, b"7");
        let asset = Asset {
            id: "a1".to_owned(),
            size: 5,
        };
        assert_eq!(encode(&asset)?, br#"{"id":"a1","size":5}"#);
        let mut map = BTreeMap::new();
        map.insert((1, 2), "tuple keys");
        assert!(encode(&map).is_err(), "JSON objects need string keys");
        Ok(())
    }
}
