//! Request bodies as JSON that keeps object keys in the order the client wrote them: virthttp acts on the
//! *first* key of an action object, which a sorted map would lose.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A non-negative integer.
    UInt(u64),
    /// A negative integer.
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// The body of a request: an empty one is `null`; `None` for one that is not JSON. virthttp's parser
    /// leaves a null document behind a syntax error and goes on, so a DELETE with a garbled body would
    /// still delete; here a body that cannot be read stops the request.
    pub fn parse(bytes: &[u8]) -> Option<Json> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Some(Json::Null);
        }
        serde_json::from_slice(bytes).ok()
    }

    /// A member of an object; the first one when the key is repeated.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The first member of an object, the one an action object is about.
    pub fn first(&self) -> Option<(&str, &Json)> {
        match self {
            Json::Obj(members) => members.first().map(|(k, v)| (k.as_str(), v)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::UInt(n) => Some(*n),
            _ => None,
        }
    }

    /// Any integer that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Json::UInt(n) => i64::try_from(*n).ok(),
            Json::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::UInt(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(u64::try_from(v).map_or(Json::Int(v), Json::UInt))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            members.push((k, v));
        }
        Ok(Json::Obj(members))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_keep_their_order() {
        let j = Json::parse(br#"{"power_mgt":"start","depends":0}"#).expect("JSON");

        assert_eq!(j.first().map(|(k, _)| k), Some("power_mgt"));
    }

    #[test]
    fn depends_first_is_the_action_key() {
        let j = Json::parse(br#"{"depends":0,"power_mgt":"start"}"#).expect("JSON");

        assert_eq!(j.first().map(|(k, _)| k), Some("depends"));
    }

    #[test]
    fn an_empty_body_is_null_and_what_is_not_json_is_refused() {
        assert_eq!(Json::parse(b""), Some(Json::Null));
        assert_eq!(Json::parse(b" \r\n"), Some(Json::Null));
        for bad in [&b"{nope"[..], b"nul", b"{} {}", b"\"\xff\"", b"<a/>"] {
            assert_eq!(Json::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn integers_are_signed_only_when_negative() {
        assert_eq!(Json::parse(b"[1,-1,1.5]"), Some(Json::Arr(vec![Json::UInt(1), Json::Int(-1), Json::Float(1.5)])));
    }
}
