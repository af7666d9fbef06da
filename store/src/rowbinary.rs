//! A serde serializer for ClickHouse's `RowBinary` input format.
//!
//! One encoder feeds both backends (the server's HTTP insert and chDB's stream insert), so a row
//! type is written the same way everywhere. Supported: bool, integers, floats, strings, bytes,
//! `Option` (Nullable), sequences (Array), tuples and structs (fields in declaration order).

use serde::ser::{self, Serialize};
use std::fmt;

#[derive(Debug)]
pub struct EncodeError(String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RowBinary encoding: {}", self.0)
    }
}
impl std::error::Error for EncodeError {}
impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

/// Appends one value (usually a whole row) to `buf` in RowBinary.
pub fn encode<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
    value.serialize(&mut RowBinarySerializer { buf })
}

fn put_leb128(buf: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

struct RowBinarySerializer<'a> {
    buf: &'a mut Vec<u8>,
}

macro_rules! le {
    ($name:ident, $t:ty) => {
        fn $name(self, v: $t) -> Result<(), EncodeError> {
            self.buf.extend_from_slice(&v.to_le_bytes());
            Ok(())
        }
    };
}

impl<'a, 'b> ser::Serializer for &'a mut RowBinarySerializer<'b> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = ser::Impossible<(), EncodeError>;
    type SerializeMap = ser::Impossible<(), EncodeError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = ser::Impossible<(), EncodeError>;

    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.buf.push(v as u8);
        Ok(())
    }
    le!(serialize_i8, i8);
    le!(serialize_i16, i16);
    le!(serialize_i32, i32);
    le!(serialize_i64, i64);
    le!(serialize_u8, u8);
    le!(serialize_u16, u16);
    le!(serialize_u32, u32);
    le!(serialize_u64, u64);
    le!(serialize_f32, f32);
    le!(serialize_f64, f64);
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        let mut tmp = [0u8; 4];
        self.serialize_str(v.encode_utf8(&mut tmp))
    }
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        self.serialize_bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        put_leb128(self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.buf.push(1);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        self.buf.push(0);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncodeError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), EncodeError> {
        // Enum8 by declaration index.
        self.buf.push(index as u8);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), EncodeError> {
        Err(EncodeError(
            "enum variants with data are not supported".into(),
        ))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, EncodeError> {
        let len = len.ok_or_else(|| EncodeError("sequences need a known length".into()))?;
        put_leb128(self.buf, len as u64);
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, EncodeError> {
        Err(EncodeError(
            "enum variants with data are not supported".into(),
        ))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, EncodeError> {
        Err(EncodeError(
            "maps are not supported (use parallel arrays)".into(),
        ))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, EncodeError> {
        Err(EncodeError(
            "enum variants with data are not supported".into(),
        ))
    }
}

impl<'a, 'b> ser::SerializeSeq for &'a mut RowBinarySerializer<'b> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}
impl<'a, 'b> ser::SerializeTuple for &'a mut RowBinarySerializer<'b> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}
impl<'a, 'b> ser::SerializeTupleStruct for &'a mut RowBinarySerializer<'b> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), EncodeError> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}
impl<'a, 'b> ser::SerializeStruct for &'a mut RowBinarySerializer<'b> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        v: &T,
    ) -> Result<(), EncodeError> {
        v.serialize(&mut **self)
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct R {
        a: u32,
        s: String,
        n: Option<f64>,
        arr: Vec<String>,
    }

    #[test]
    fn encodes_like_clickhouse() {
        let mut buf = Vec::new();
        encode(
            &R {
                a: 1,
                s: "hé".into(),
                n: None,
                arr: vec!["x".into()],
            },
            &mut buf,
        )
        .unwrap();
        assert_eq!(buf, vec![1, 0, 0, 0, 3, b'h', 0xc3, 0xa9, 1, 1, 1, b'x']);
        let mut buf = Vec::new();
        put_leb128(&mut buf, 300);
        assert_eq!(buf, vec![0xac, 0x02]);
    }
}
