//! A JSON member read whatever its type: the servers' documents (token
//! responses, DID documents) put numbers where strings belong and objects
//! where a reader expects text, and one odd member must not fail the
//! whole document.

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A member as found.
pub enum Member {
    /// `null`, or missing.
    Absent,
    /// A string.
    Text(String),
    /// A number.
    Number(f64),
    /// Another type (a boolean, an array, an object), read and skipped.
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MemberVisitor)
    }
}

struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Member;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Member, E> {
        Ok(Member::Text(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Member, E> {
        Ok(Member::Text(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Member, E> {
        Ok(Member::Number(v as f64))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Member, E> {
        Ok(Member::Number(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Member, E> {
        Ok(Member::Number(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Member, E> {
        Ok(Member::Absent)
    }
    fn visit_none<E: de::Error>(self) -> Result<Member, E> {
        Ok(Member::Absent)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Member, D::Error> {
        Member::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Member::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Member::Other)
    }
}

/// A string member; any other type reads as absent.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Member::deserialize(d)? {
        Member::Text(text) => Some(text),
        _ => None,
    })
}
