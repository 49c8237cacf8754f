//! Reads a JavaScript value (a parsed JSON body, a stored record, a
//! message from another tab) into a Rust type through its derived
//! `Deserialize`.
//!
//! latchkey's own reader rather than a general one, for two reasons:
//! - No message is built when a value has the wrong shape. Every caller
//!   replaces it anyway (it could quote a token), and formatting serde's
//!   messages links float printing and the rest of `core::fmt`'s machinery
//!   for nothing: about 27 kB of the wasm when it was measured.
//! - A struct reads only the members it declares (`Reflect.get` by name), so
//!   a large document with unknown members costs nothing extra.
//!
//! The mapping: `undefined` and `null` are "none" (a missing optional
//! member); a number that is a safe integer is an integer (`u64` when not
//! negative, `i64` otherwise), any other number an `f64`; a string is a
//! string, or a unit enum variant by name; an array is a sequence; any
//! other object a map, or a struct by member names.

use std::fmt;

use js_sys::{Array, Number, Object, Reflect};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, Expected, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};
use serde::forward_to_deserialize_any;
use wasm_bindgen::{JsCast, JsValue};

/// A value of the wrong shape. Deliberately without details (see above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongShape;

impl fmt::Display for WrongShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value of an unexpected shape")
    }
}

impl std::error::Error for WrongShape {}

/// Every constructor is overridden: serde's defaults would format their
/// arguments before `custom` could drop them.
impl de::Error for WrongShape {
    fn custom<T: fmt::Display>(_: T) -> Self {
        WrongShape
    }
    fn invalid_type(_: Unexpected<'_>, _: &dyn Expected) -> Self {
        WrongShape
    }
    fn invalid_value(_: Unexpected<'_>, _: &dyn Expected) -> Self {
        WrongShape
    }
    fn invalid_length(_: usize, _: &dyn Expected) -> Self {
        WrongShape
    }
    fn unknown_variant(_: &str, _: &'static [&'static str]) -> Self {
        WrongShape
    }
    fn unknown_field(_: &str, _: &'static [&'static str]) -> Self {
        WrongShape
    }
    fn missing_field(_: &'static str) -> Self {
        WrongShape
    }
    fn duplicate_field(_: &'static str) -> Self {
        WrongShape
    }
}

/// Reads `value` as a `T`.
pub fn from_js<T: DeserializeOwned>(value: JsValue) -> Result<T, WrongShape> {
    T::deserialize(Reader(value))
}

/// The largest integer a JS number holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// One JavaScript value being read.
struct Reader(JsValue);

impl Reader {
    fn is_none(&self) -> bool {
        self.0.is_undefined() || self.0.is_null()
    }

    /// The value as an object (arrays included: callers check for those
    /// first); `None` for a primitive.
    fn object(&self) -> Option<&Object> {
        self.0.dyn_ref::<Object>()
    }
}

impl<'de> de::Deserializer<'de> for Reader {
    type Error = WrongShape;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WrongShape> {
        if self.is_none() {
            return visitor.visit_none();
        }
        if let Some(b) = self.0.as_bool() {
            return visitor.visit_bool(b);
        }
        if let Some(n) = self.0.as_f64() {
            let integer = Number::is_integer(&self.0) && n.abs() <= MAX_SAFE;
            return match (integer, n >= 0.0) {
                (true, true) => visitor.visit_u64(n as u64),
                (true, false) => visitor.visit_i64(n as i64),
                (false, _) => visitor.visit_f64(n),
            };
        }
        if let Some(s) = self.0.as_string() {
            return visitor.visit_string(s);
        }
        if Array::is_array(&self.0) {
            return visitor.visit_seq(Elements::of(self.0.unchecked_into()));
        }
        match self.object() {
            Some(object) => visitor.visit_map(Members::all(object)),
            None => Err(WrongShape),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WrongShape> {
        match self.is_none() {
            true => visitor.visit_none(),
            false => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WrongShape> {
        if Array::is_array(&self.0) {
            return Err(WrongShape);
        }
        match self.object() {
            Some(object) => visitor.visit_map(Members::named(object, fields)),
            None => Err(WrongShape),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WrongShape> {
        // Only unit variants, written as their names.
        match self.0.as_string() {
            Some(name) => visitor.visit_enum(UnitVariant(name)),
            None => Err(WrongShape),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, WrongShape> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WrongShape> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

/// An array's elements, in order.
struct Elements {
    array: Array,
    next: u32,
}

impl Elements {
    fn of(array: Array) -> Self {
        Elements { array, next: 0 }
    }
}

impl<'de> SeqAccess<'de> for Elements {
    type Error = WrongShape;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, WrongShape> {
        if self.next >= self.array.length() {
            return Ok(None);
        }
        let element = self.array.get(self.next);
        self.next += 1;
        seed.deserialize(Reader(element)).map(Some)
    }
}

/// An object's members: every own enumerable one (a map), or the declared
/// fields that are present (a struct; absent and `undefined` ones are
/// skipped, so serde applies the field's default or reports it missing).
struct Members {
    entries: Vec<(String, JsValue)>,
    next: usize,
}

impl Members {
    fn all(object: &Object) -> Self {
        let entries = Object::entries(object)
            .iter()
            .map(|pair| {
                let pair: Array = pair.unchecked_into();
                (pair.get(0).as_string().unwrap_or_default(), pair.get(1))
            })
            .collect();
        Members { entries, next: 0 }
    }

    fn named(object: &Object, fields: &'static [&'static str]) -> Self {
        let entries = fields
            .iter()
            .filter_map(|name| {
                let value = Reflect::get(object, &JsValue::from_str(name)).ok()?;
                (!value.is_undefined()).then(|| ((*name).to_owned(), value))
            })
            .collect();
        Members { entries, next: 0 }
    }
}

impl<'de> MapAccess<'de> for Members {
    type Error = WrongShape;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WrongShape> {
        match self.entries.get(self.next) {
            Some((name, _)) => seed
                .deserialize(name.as_str().into_deserializer())
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, WrongShape> {
        let value = match self.entries.get_mut(self.next) {
            Some((_, value)) => std::mem::replace(value, JsValue::UNDEFINED),
            None => return Err(WrongShape),
        };
        self.next += 1;
        seed.deserialize(Reader(value))
    }
}

/// A unit enum variant, named.
struct UnitVariant(String);

impl<'de> EnumAccess<'de> for UnitVariant {
    type Error = WrongShape;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), WrongShape> {
        let variant = seed.deserialize(self.0.as_str().into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for UnitVariant {
    type Error = WrongShape;

    fn unit_variant(self) -> Result<(), WrongShape> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _: T) -> Result<T::Value, WrongShape> {
        Err(WrongShape)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, WrongShape> {
        Err(WrongShape)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, WrongShape> {
        Err(WrongShape)
    }
}
