//! Canonical bytes of a value, for fingerprints that are stored in snapshots and compared
//! after replay, so they must mean the same in every build.
//!
//! `#[derive(Hash)]` is no such thing: how it feeds a hasher (discriminant widths, string
//! terminators, length prefixes) is Rust's to change. These bytes follow serde's data
//! model instead, whose shape `#[derive(Serialize)]` fixes by declaration order, and are
//! written by the rules below, which only this file sets:
//!
//! - integers little endian at their own width; `bool` one byte; floats by their bits;
//!   `char` as a `u32`;
//! - strings, byte strings and sequences: the count as a `u64`, then the items;
//! - `None` a zero byte, `Some` a one byte and the value;
//! - struct and tuple fields in declaration order, without names;
//! - an enum variant's index as a `u32`, then its fields.
//!
//! Maps are refused: their iteration order need not be canonical.

use serde::ser::{self, Serialize};

/// Where canonical bytes go: a hasher, or a buffer (to pin the layout in tests).
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for super::ids::Fnv64 {
    fn put(&mut self, bytes: &[u8]) {
        std::hash::Hasher::write(self, bytes);
    }
}

/// Writes the canonical bytes of `value` into `sink`; fails only on a map or a sequence
/// of unknown length, which no fingerprinted type holds.
pub(crate) fn write<T: Serialize + ?Sized>(value: &T, sink: &mut impl Sink) -> Result<(), Error> {
    value.serialize(&mut Writer { sink })
}

/// Why a value has no canonical bytes.
#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(message: T) -> Self {
        Error(message.to_string())
    }
}

struct Writer<'a, S: Sink> {
    sink: &'a mut S,
}

impl<S: Sink> Writer<'_, S> {
    fn count(&mut self, count: usize) {
        self.sink.put(&(count as u64).to_le_bytes());
    }

    fn variant(&mut self, index: u32) {
        self.sink.put(&index.to_le_bytes());
    }
}

macro_rules! little_endian {
    ($($method:ident: $type:ty),*) => {
        $(fn $method(self, value: $type) -> Result<(), Error> {
            self.sink.put(&value.to_le_bytes());
            Ok(())
        })*
    };
}

impl<S: Sink> ser::Serializer for &mut Writer<'_, S> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    little_endian!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128
    );

    fn serialize_bool(self, value: bool) -> Result<(), Error> {
        self.serialize_u8(u8::from(value))
    }

    fn serialize_f32(self, value: f32) -> Result<(), Error> {
        self.serialize_u32(value.to_bits())
    }

    fn serialize_f64(self, value: f64) -> Result<(), Error> {
        self.serialize_u64(value.to_bits())
    }

    fn serialize_char(self, value: char) -> Result<(), Error> {
        self.serialize_u32(u32::from(value))
    }

    fn serialize_str(self, value: &str) -> Result<(), Error> {
        self.serialize_bytes(value.as_bytes())
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<(), Error> {
        self.count(value.len());
        self.sink.put(value);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_u8(0)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.serialize_u8(1)?;
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        self.variant(index);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant(index);
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Error> {
        let len = len.ok_or_else(|| Error("a sequence of unknown length".into()))?;
        self.count(len);
        Ok(self)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.variant(index);
        Ok(self)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(Error("a map, whose order need not be canonical".into()))
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.variant(index);
        Ok(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Items, elements and fields are written one after another, with nothing between.
macro_rules! in_sequence {
    ($($trait:ident :: $method:ident ($($name:ident: $type:ty),*)),*) => {
        $(impl<S: Sink> ser::$trait for &mut Writer<'_, S> {
            type Ok = ();
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(&mut self, $($name: $type,)* value: &T) -> Result<(), Error> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        })*
    };
}

in_sequence!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(_key: &'static str),
    SerializeStructVariant::serialize_field(_key: &'static str)
);

#[cfg(test)]
mod tests {
    use super::write;
    use crate::{Command, LineRequest};

    fn bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut buffer = Vec::new();
        write(value, &mut buffer).expect("canonical");
        buffer
    }

    /// The layout the module documents, byte by byte, for one command.
    #[test]
    fn a_reserve_command_has_the_documented_bytes() {
        let command = Command::Reserve {
            lines: vec![LineRequest { sku: "SKU-1".into(), location: "LDN".into(), quantity: 2 }],
            ttl_ms: Some(60_000),
        };
        let mut expected = Vec::new();
        expected.extend_from_slice(&7u32.to_le_bytes()); // `Reserve` is the eighth variant
        expected.extend_from_slice(&1u64.to_le_bytes()); // one line
        expected.extend_from_slice(&5u64.to_le_bytes());
        expected.extend_from_slice(b"SKU-1");
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(b"LDN");
        expected.extend_from_slice(&2u32.to_le_bytes());
        expected.push(1); // Some
        expected.extend_from_slice(&60_000u64.to_le_bytes());
        assert_eq!(bytes(&command), expected);
    }

    #[test]
    fn options_tuples_and_unit_variants_are_told_apart() {
        assert_eq!(bytes(&None::<u8>), [0]);
        assert_eq!(bytes(&Some(0u8)), [1, 0]);
        assert_eq!(bytes(&(1u16, true)), [1, 0, 1]);
        assert_ne!(bytes(&("ab", "c")), bytes(&("a", "bc")));
    }

    #[test]
    fn maps_are_refused() {
        let map: std::collections::BTreeMap<u8, u8> = [(1, 2)].into();
        assert!(write(&map, &mut Vec::new()).is_err());
    }
}
