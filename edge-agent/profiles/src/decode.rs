//! Pure decoders: wire registers -> [`Raw`] value -> scaled [`dcim_points::Value`] with a quality.

use crate::model::{Order, Point, WireType};
use dcim_points::{Quality, RoleKind, Value};

/// A value as it came off the wire, before scaling.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Raw {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Raw::Unsigned(u) => Some(*u as f64),
            Raw::Signed(i) => Some(*i as f64),
            Raw::Float(f) => Some(*f),
            Raw::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Raw::Text(_) => None,
        }
    }
    fn as_i64(&self) -> Option<i64> {
        match self {
            Raw::Unsigned(u) => i64::try_from(*u).ok(),
            Raw::Signed(i) => Some(*i),
            Raw::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            Raw::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{wire:?} needs {needed} registers, got {got}")]
    TooFewRegisters {
        wire: WireType,
        needed: usize,
        got: usize,
    },
}

/// Puts the registers of one value into most-significant-first byte order.
fn normalised_bytes(regs: &[u16], order: Order) -> Vec<u8> {
    let mut out = Vec::with_capacity(regs.len() * 2);
    let mut push = |r: u16| {
        let r = if order.byte_swap { r.swap_bytes() } else { r };
        out.extend_from_slice(&r.to_be_bytes());
    };
    if order.word_swap {
        regs.iter().rev().for_each(|r| push(*r));
    } else {
        regs.iter().for_each(|r| push(*r));
    }
    out
}

/// Decodes the registers of one value (exactly the value's registers first; extra ones are
/// ignored). Strings are never word-swapped: their characters run in register order.
pub fn decode_registers(regs: &[u16], wire: WireType, order: Order) -> Result<Raw, DecodeError> {
    let needed = wire.registers() as usize;
    if regs.len() < needed {
        return Err(DecodeError::TooFewRegisters {
            wire,
            needed,
            got: regs.len(),
        });
    }
    let regs = &regs[..needed];
    if let WireType::String(chars) = wire {
        let order = Order {
            word_swap: false,
            ..order
        };
        let bytes = normalised_bytes(regs, order);
        let text: String = bytes[..chars as usize]
            .iter()
            .take_while(|b| **b != 0)
            .map(|b| if b.is_ascii() { *b as char } else { '?' })
            .collect();
        return Ok(Raw::Text(text.trim_end().to_owned()));
    }
    let b = normalised_bytes(regs, order);
    Ok(match wire {
        WireType::U16 => Raw::Unsigned(u16::from_be_bytes([b[0], b[1]]) as u64),
        WireType::I16 => Raw::Signed(i16::from_be_bytes([b[0], b[1]]) as i64),
        WireType::U32 => Raw::Unsigned(u32::from_be_bytes(b[..4].try_into().unwrap()) as u64),
        WireType::I32 => Raw::Signed(i32::from_be_bytes(b[..4].try_into().unwrap()) as i64),
        WireType::U64 => Raw::Unsigned(u64::from_be_bytes(b[..8].try_into().unwrap())),
        WireType::I64 => Raw::Signed(i64::from_be_bytes(b[..8].try_into().unwrap())),
        WireType::F32 => Raw::Float(f32::from_be_bytes(b[..4].try_into().unwrap()) as f64),
        WireType::F64 => Raw::Float(f64::from_be_bytes(b[..8].try_into().unwrap())),
        WireType::Bool => Raw::Bool(u16::from_be_bytes([b[0], b[1]]) != 0),
        WireType::Bit(i) => Raw::Bool(u16::from_be_bytes([b[0], b[1]]) >> i & 1 == 1),
        WireType::String(_) => unreachable!("handled above"),
    })
}

/// The inverse of [`decode_registers`] for numbers: the registers a device holding `value` sends.
/// Used by simulators and tests. Integers are rounded and saturated to the type's range.
pub fn encode_registers(value: f64, wire: WireType, order: Order) -> Vec<u16> {
    let be: Vec<u8> = match wire {
        WireType::U16 | WireType::Bool => (value.round().clamp(0.0, 65535.0) as u16)
            .to_be_bytes()
            .to_vec(),
        WireType::I16 => (value.round() as i16).to_be_bytes().to_vec(),
        WireType::U32 => (value.round() as u32).to_be_bytes().to_vec(),
        WireType::I32 => (value.round() as i32).to_be_bytes().to_vec(),
        WireType::U64 => (value.round() as u64).to_be_bytes().to_vec(),
        WireType::I64 => (value.round() as i64).to_be_bytes().to_vec(),
        WireType::F32 => (value as f32).to_be_bytes().to_vec(),
        WireType::F64 => value.to_be_bytes().to_vec(),
        WireType::Bit(i) => (((value != 0.0) as u16) << i).to_be_bytes().to_vec(),
        WireType::String(chars) => vec![0; chars.div_ceil(2) as usize * 2],
    };
    let mut regs: Vec<u16> = be
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    if order.word_swap {
        regs.reverse();
    }
    if order.byte_swap {
        regs.iter_mut().for_each(|r| *r = r.swap_bytes());
    }
    regs
}

/// Registers holding `text` as a string of `chars` characters (NUL padded).
pub fn encode_string(text: &str, chars: u16, order: Order) -> Vec<u16> {
    let mut bytes: Vec<u8> = text.bytes().take(chars as usize).collect();
    bytes.resize(chars.div_ceil(2) as usize * 2, 0);
    bytes
        .chunks(2)
        .map(|c| {
            let r = u16::from_be_bytes([c[0], c[1]]);
            if order.byte_swap { r.swap_bytes() } else { r }
        })
        .collect()
}

/// A decoded, scaled point value and its quality.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub value: Option<Value>,
    pub quality: Quality,
}

impl Reading {
    pub fn good(value: Value) -> Reading {
        Reading {
            value: Some(value),
            quality: Quality::Good,
        }
    }
    pub fn bad(value: Option<Value>) -> Reading {
        Reading {
            value,
            quality: Quality::Bad,
        }
    }
}

impl Point {
    /// Applies the point's health `invalid` list, enum map, inversion, scale/offset and health
    /// range to a raw value.
    pub fn reading(&self, raw: &Raw) -> Reading {
        if let (Some(h), Some(x)) = (&self.health, raw.as_f64())
            && h.invalid.contains(&x)
        {
            return Reading::bad(None);
        }
        if let Raw::Text(t) = raw {
            return Reading::good(Value::Text(t.clone()));
        }
        let binary_role = self.role.def().map(|d| d.kind) == Some(RoleKind::Binary);
        if let Raw::Bool(b) = raw {
            return if binary_role || self.enum_map.is_none() {
                Reading::good(Value::Bool(*b != self.invert))
            } else {
                self.enum_lookup(*b as i64)
            };
        }
        if self.enum_map.is_some() {
            return match raw.as_i64() {
                Some(i) => self.enum_lookup(i),
                None => Reading::bad(raw.as_f64().map(Value::Number)),
            };
        }
        let Some(x) = raw.as_f64() else {
            return Reading::bad(None);
        };
        if binary_role {
            let on = if self.true_values.is_empty() {
                x != 0.0
            } else {
                raw.as_i64().is_some_and(|i| self.true_values.contains(&i))
            };
            return Reading::good(Value::Bool(on != self.invert));
        }
        let v = x * self.scale + self.offset;
        if !v.is_finite() {
            return Reading::bad(None);
        }
        if let Some(h) = &self.health
            && (h.min.is_some_and(|m| v < m) || h.max.is_some_and(|m| v > m))
        {
            return Reading::bad(Some(Value::Number(v)));
        }
        Reading::good(Value::Number(v))
    }

    fn enum_lookup(&self, i: i64) -> Reading {
        match self.enum_map.as_ref().and_then(|m| m.get(&i)) {
            Some(text) => Reading::good(Value::Text(text.clone())),
            None => Reading::bad(Some(Value::Number(i as f64))),
        }
    }

    /// Decodes this (Modbus) point from the registers starting at its own address.
    pub fn reading_from_registers(&self, regs: &[u16]) -> Reading {
        let Some(a) = self.modbus() else {
            return Reading::bad(None);
        };
        match decode_registers(regs, a.wire, a.order) {
            Ok(raw) => self.reading(&raw),
            Err(_) => Reading::bad(None),
        }
    }

    /// Decodes this (Modbus coil/discrete) point from one bit.
    pub fn reading_from_bit(&self, bit: bool) -> Reading {
        self.reading(&Raw::Bool(bit))
    }

    /// Decodes an MQTT point from a JSON message (using the point's JSON pointer).
    pub fn reading_from_json(&self, message: &serde_json::Value) -> Reading {
        let pointer = match &self.address {
            crate::model::Address::Mqtt(m) => m.pointer.as_str(),
            _ => "",
        };
        match message.pointer(pointer) {
            Some(v) => self.reading(&raw_from_json(v)),
            None => Reading::bad(None),
        }
    }
}

/// A JSON value as a raw value (numbers, booleans, strings; anything else is a text).
pub fn raw_from_json(v: &serde_json::Value) -> Raw {
    match v {
        serde_json::Value::Bool(b) => Raw::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Raw::Unsigned(u)
            } else if let Some(i) = n.as_i64() {
                Raw::Signed(i)
            } else {
                Raw::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Raw::Text(s.clone()),
        other => Raw::Text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(regs: &[u16], wire: WireType, order: &str) -> Raw {
        decode_registers(regs, wire, Order::parse(order).unwrap()).unwrap()
    }

    #[test]
    fn sixteen_bit_types() {
        assert_eq!(d(&[0xFFFE], WireType::U16, "ABCD"), Raw::Unsigned(65534));
        assert_eq!(d(&[0xFFFE], WireType::I16, "ABCD"), Raw::Signed(-2));
        assert_eq!(d(&[0x8000], WireType::I16, "ABCD"), Raw::Signed(-32768));
        // Byte-swapped 16-bit: 0x3412 on the wire is 0x1234.
        assert_eq!(d(&[0x3412], WireType::U16, "BA"), Raw::Unsigned(0x1234));
        assert_eq!(d(&[0x3412], WireType::U16, "DCBA"), Raw::Unsigned(0x1234));
        assert_eq!(d(&[0x3412], WireType::U16, "CDAB"), Raw::Unsigned(0x3412));
    }

    #[test]
    fn thirty_two_bit_integers_in_every_order() {
        // 0x12345678 = 305419896
        let v = Raw::Unsigned(0x1234_5678);
        assert_eq!(d(&[0x1234, 0x5678], WireType::U32, "ABCD"), v);
        assert_eq!(d(&[0x5678, 0x1234], WireType::U32, "CDAB"), v);
        assert_eq!(d(&[0x3412, 0x7856], WireType::U32, "BADC"), v);
        assert_eq!(d(&[0x7856, 0x3412], WireType::U32, "DCBA"), v);
        // -2 as i32
        assert_eq!(d(&[0xFFFF, 0xFFFE], WireType::I32, "ABCD"), Raw::Signed(-2));
        assert_eq!(d(&[0xFFFE, 0xFFFF], WireType::I32, "CDAB"), Raw::Signed(-2));
    }

    #[test]
    fn floats_in_every_order_including_word_swapped() {
        // 230.5f32 = 0x43668000 (the README's worked example).
        let v = Raw::Float(230.5);
        assert_eq!(d(&[0x4366, 0x8000], WireType::F32, "ABCD"), v);
        assert_eq!(d(&[0x8000, 0x4366], WireType::F32, "CDAB"), v);
        assert_eq!(d(&[0x6643, 0x0080], WireType::F32, "BADC"), v);
        assert_eq!(d(&[0x0080, 0x6643], WireType::F32, "DCBA"), v);
        // -1.5f32 = 0xBFC00000
        assert_eq!(
            d(&[0x0000, 0xBFC0], WireType::F32, "CDAB"),
            Raw::Float(-1.5)
        );
    }

    #[test]
    fn sixty_four_bit_values_in_every_order() {
        // 1.0f64 = 0x3FF0_0000_0000_0000; 0x0102030405060708 as u64.
        let f = Raw::Float(1.0);
        assert_eq!(d(&[0x3FF0, 0, 0, 0], WireType::F64, "ABCDEFGH"), f);
        assert_eq!(d(&[0, 0, 0, 0x3FF0], WireType::F64, "CDAB"), f);
        assert_eq!(d(&[0, 0, 0, 0x3FF0], WireType::F64, "GHEFCDAB"), f);
        assert_eq!(d(&[0xF03F, 0, 0, 0], WireType::F64, "BADCFEHG"), f);
        assert_eq!(d(&[0, 0, 0, 0xF03F], WireType::F64, "HGFEDCBA"), f);
        let u = Raw::Unsigned(0x0102_0304_0506_0708);
        assert_eq!(
            d(&[0x0102, 0x0304, 0x0506, 0x0708], WireType::U64, "ABCD"),
            u
        );
        assert_eq!(
            d(&[0x0708, 0x0506, 0x0304, 0x0102], WireType::U64, "CDAB"),
            u
        );
        assert_eq!(
            d(&[0x0201, 0x0403, 0x0605, 0x0807], WireType::U64, "BADC"),
            u
        );
        assert_eq!(
            d(&[0x0807, 0x0605, 0x0403, 0x0201], WireType::U64, "DCBA"),
            u
        );
        assert_eq!(
            d(&[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFD], WireType::I64, "ABCD"),
            Raw::Signed(-3)
        );
    }

    #[test]
    fn bools_bits_and_strings() {
        assert_eq!(d(&[0], WireType::Bool, "ABCD"), Raw::Bool(false));
        assert_eq!(d(&[0x0100], WireType::Bool, "ABCD"), Raw::Bool(true));
        assert_eq!(d(&[0b1000], WireType::Bit(3), "ABCD"), Raw::Bool(true));
        assert_eq!(d(&[0b1000], WireType::Bit(2), "ABCD"), Raw::Bool(false));
        assert_eq!(d(&[0x8000], WireType::Bit(15), "ABCD"), Raw::Bool(true));
        // Byte-swapped register: bit 15 arrives as bit 7.
        assert_eq!(d(&[0x0080], WireType::Bit(15), "BADC"), Raw::Bool(true));
        assert_eq!(
            d(&[0x5550, 0x5331, 0x0000], WireType::String(6), "ABCD"),
            Raw::Text("UPS1".into())
        );
        assert_eq!(
            d(&[0x5055, 0x3153], WireType::String(4), "BADC"),
            Raw::Text("UPS1".into())
        );
        // Strings are never word-swapped.
        assert_eq!(
            d(&[0x5550, 0x5331], WireType::String(4), "CDAB"),
            Raw::Text("UPS1".into())
        );
        // Odd length: the last byte of the last register is ignored.
        assert_eq!(
            d(&[0x4142, 0x4358], WireType::String(3), "ABCD"),
            Raw::Text("ABC".into())
        );
    }

    #[test]
    fn too_few_registers_is_an_error() {
        assert!(decode_registers(&[1], WireType::F32, Order::ABCD).is_err());
        assert!(decode_registers(&[1, 2, 3], WireType::F64, Order::ABCD).is_err());
    }

    #[test]
    fn encode_is_the_inverse_of_decode() {
        for order in [Order::ABCD, Order::CDAB, Order::BADC, Order::DCBA] {
            for (wire, v) in [
                (WireType::U16, 5000.0),
                (WireType::I16, -123.0),
                (WireType::U32, 4_000_000_000.0),
                (WireType::I32, -70000.0),
                (WireType::U64, 9_007_199_254_740_000.0),
                (WireType::I64, -5_000_000_000.0),
                (WireType::F32, 230.5),
                (WireType::F64, -0.125),
            ] {
                let regs = encode_registers(v, wire, order);
                assert_eq!(regs.len(), wire.registers() as usize);
                let raw = decode_registers(&regs, wire, order).unwrap();
                let back = match raw {
                    Raw::Unsigned(u) => u as f64,
                    Raw::Signed(i) => i as f64,
                    Raw::Float(f) => f,
                    _ => panic!(),
                };
                assert_eq!(back, v, "{wire:?} {order}");
            }
            let s = encode_string("UPS-Z1", 8, order);
            assert_eq!(
                decode_registers(&s, WireType::String(8), order).unwrap(),
                Raw::Text("UPS-Z1".into())
            );
        }
        assert_eq!(
            encode_registers(230.5, WireType::F32, Order::CDAB),
            vec![0x8000, 0x4366]
        );
    }
}
