//! Writes a value as JSON text through its derived `Serialize`: the stored
//! records (sealed as text) and the messages between tabs.
//!
//! latchkey's own writer, for size: a general one links float printing
//! (Grisu/Dragon and their tables), and a JS-value serializer a binding per
//! value kind. Nothing latchkey stores or sends holds a float, so a float
//! is refused ([`Unwritable`]) rather than printed; integers, strings,
//! booleans, options, sequences, maps with string keys, structs and unit
//! enum variants are written exactly as `serde_json` writes them (the
//! tests compare the two).

use std::fmt;

use serde::ser::{self, Serialize};

/// A value this writer does not write (a float, bytes, a non-unit enum
/// variant, a map key that is not a string). Deliberately without details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unwritable;

impl fmt::Display for Unwritable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value latchkey does not write as JSON")
    }
}

impl std::error::Error for Unwritable {}

impl ser::Error for Unwritable {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unwritable
    }
}

/// `value` as JSON text.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, Unwritable> {
    let mut out = String::new();
    value.serialize(Writer { out: &mut out })?;
    Ok(out)
}

/// Appends `text` as a JSON string: quotes, backslashes and control
/// characters escaped as `serde_json` escapes them.
fn push_string(out: &mut String, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let n = c as usize;
                out.push_str("\\u00");
                out.push(HEX[n >> 4] as char);
                out.push(HEX[n & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends the decimal digits of `n`.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(d as char);
    }
}

fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Writes one value into `out`.
struct Writer<'a> {
    out: &'a mut String,
}

/// Writes the members of an array or object, commas between them.
struct Compound<'a> {
    out: &'a mut String,
    first: bool,
    close: char,
}

impl Compound<'_> {
    fn separate(&mut self) {
        match self.first {
            true => self.first = false,
            false => self.out.push(','),
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unwritable> {
        self.separate();
        value.serialize(Writer { out: self.out })
    }

    fn member<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Unwritable> {
        self.separate();
        push_string(self.out, key);
        self.out.push(':');
        value.serialize(Writer { out: self.out })
    }

    fn end(self) -> Result<(), Unwritable> {
        self.out.push(self.close);
        Ok(())
    }
}

impl<'a> Writer<'a> {
    fn open(self, open: char, close: char) -> Compound<'a> {
        self.out.push(open);
        Compound {
            out: self.out,
            first: true,
            close,
        }
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Unwritable;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = ser::Impossible<(), Unwritable>;
    type SerializeMap = MapWriter<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = ser::Impossible<(), Unwritable>;

    fn serialize_bool(self, v: bool) -> Result<(), Unwritable> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unwritable> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unwritable> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unwritable> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unwritable> {
        push_i64(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unwritable> {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unwritable> {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unwritable> {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unwritable> {
        push_u64(self.out, v);
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Result<(), Unwritable> {
        Err(Unwritable)
    }
    fn serialize_f64(self, _: f64) -> Result<(), Unwritable> {
        Err(Unwritable)
    }
    fn serialize_char(self, v: char) -> Result<(), Unwritable> {
        push_string(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Unwritable> {
        push_string(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Unwritable> {
        Err(Unwritable)
    }
    fn serialize_none(self) -> Result<(), Unwritable> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unwritable> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unwritable> {
        self.out.push_str("null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unwritable> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unwritable> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unwritable> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unwritable> {
        Err(Unwritable)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Unwritable> {
        Ok(self.open('[', ']'))
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a>, Unwritable> {
        Ok(self.open('[', ']'))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Unwritable> {
        Ok(self.open('[', ']'))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapWriter<'a>, Unwritable> {
        Ok(MapWriter {
            members: self.open('{', '}'),
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Unwritable> {
        Ok(self.open('{', '}'))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unwritable> {
        Err(Unwritable)
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Unwritable;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unwritable> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unwritable> {
        Compound::end(self)
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Unwritable;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unwritable> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unwritable> {
        Compound::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Unwritable;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unwritable> {
        self.element(value)
    }
    fn end(self) -> Result<(), Unwritable> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Unwritable;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unwritable> {
        self.member(key, value)
    }
    fn end(self) -> Result<(), Unwritable> {
        Compound::end(self)
    }
}

/// An object whose keys come one call before their values.
struct MapWriter<'a> {
    members: Compound<'a>,
    key: Option<String>,
}

impl ser::SerializeMap for MapWriter<'_> {
    type Ok = ();
    type Error = Unwritable;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unwritable> {
        self.key = Some(key.serialize(KeyWriter)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unwritable> {
        let key = self.key.take().ok_or(Unwritable)?;
        self.members.member(&key, value)
    }
    fn end(self) -> Result<(), Unwritable> {
        self.members.end()
    }
}

/// A map key: strings only.
struct KeyWriter;

impl ser::Serializer for KeyWriter {
    type Ok = String;
    type Error = Unwritable;
    type SerializeSeq = ser::Impossible<String, Unwritable>;
    type SerializeTuple = ser::Impossible<String, Unwritable>;
    type SerializeTupleStruct = ser::Impossible<String, Unwritable>;
    type SerializeTupleVariant = ser::Impossible<String, Unwritable>;
    type SerializeMap = ser::Impossible<String, Unwritable>;
    type SerializeStruct = ser::Impossible<String, Unwritable>;
    type SerializeStructVariant = ser::Impossible<String, Unwritable>;

    fn serialize_str(self, v: &str) -> Result<String, Unwritable> {
        Ok(v.to_owned())
    }
    fn serialize_bool(self, _: bool) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_i8(self, _: i8) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_i16(self, _: i16) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_i32(self, _: i32) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_i64(self, _: i64) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_u8(self, _: u8) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_u16(self, _: u16) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_u32(self, _: u32) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_u64(self, _: u64) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_f32(self, _: f32) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_f64(self, _: f64) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_char(self, _: char) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_none(self) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_unit(self) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, Unwritable> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, Unwritable> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unwritable> {
        Err(Unwritable)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unwritable> {
        Err(Unwritable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::atproto::Account;
    use crate::core::message::{EndReason, SessionMessage};
    use crate::core::{AccessToken, IdToken, RefreshToken, TokenSet};
    use std::collections::BTreeMap;

    fn same_as_serde_json<T: Serialize>(value: &T) {
        let ours = to_json(value).expect("writable");
        let theirs = serde_json::to_string(value).unwrap();
        assert_eq!(ours, theirs);
    }

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: AccessToken::new("at-\"1\"\\\n\u{1}é".into()),
            token_type: "DPoP".into(),
            expires_at_ms: Some(1_700_000_300_000),
            refresh_token: Some(RefreshToken::new("rt-1".into())),
            scope: None,
            id_token: Some(IdToken::new("h.p.s".into())),
            refresh_expires_at_ms: None,
            issued_at_ms: 1_700_000_000_000,
            login_at_ms: u64::MAX,
            rotation: u64::MAX,
            dpop_jkt: Some("jkt".into()),
            atproto: Some(Box::new(Account {
                did: "did:plc:abc".into(),
                handle: None,
                pds: "https://pds.example".into(),
                issuer: "https://auth.example".into(),
                token_endpoint: "https://auth.example/token".into(),
                revocation_endpoint: Some("https://auth.example/revoke".into()),
            })),
        }
    }

    #[test]
    fn a_token_set_is_written_as_serde_json_writes_it() {
        same_as_serde_json(&tokens());
    }

    #[test]
    fn messages_between_tabs_are_written_as_serde_json_writes_them() {
        same_as_serde_json(&SessionMessage::Tokens {
            tokens: tokens(),
            unsaved: true,
        });
        same_as_serde_json(&SessionMessage::Tokens {
            tokens: tokens(),
            unsaved: false,
        });
        same_as_serde_json(&SessionMessage::Ended {
            reason: EndReason::SignedOut,
            login_at_ms: None,
        });
        same_as_serde_json(&SessionMessage::Ended {
            reason: EndReason::Expired,
            login_at_ms: Some(1_700_000_000_000),
        });
    }

    #[test]
    fn every_control_character_is_escaped_as_serde_json_escapes_it() {
        let all: String = (0u8..0x80).map(char::from).collect();
        same_as_serde_json(&all);
        same_as_serde_json(&"\u{2028}\u{10ffff}");
    }

    #[test]
    fn integers_sequences_and_maps() {
        same_as_serde_json(&(i64::MIN, i64::MAX, 0u8, -1i32, u64::MAX, true, ()));
        same_as_serde_json(&vec![Some(1u32), None]);
        let map: BTreeMap<&str, Vec<u16>> = [("a", vec![1, 2]), ("b\"", vec![])].into();
        same_as_serde_json(&map);
    }

    #[test]
    fn floats_and_non_string_keys_are_refused() {
        assert_eq!(to_json(&1.5f64), Err(Unwritable));
        assert_eq!(to_json(&vec![0.0f32]), Err(Unwritable));
        let map: BTreeMap<u8, u8> = [(1, 2)].into();
        assert_eq!(to_json(&map), Err(Unwritable));
    }
}
