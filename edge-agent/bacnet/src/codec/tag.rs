//! BACnet tag encoding (ASHRAE 135 clause 20.2): application and context tags, opening and
//! closing tags, and the primitive value encodings.
//!
//! The [`Reader`] never panics and never reads past its slice; every length taken from the wire
//! is checked against the bytes that remain, so the work done is linear in the input.

use super::DecodeError;
use super::types::{BitString, Date, ObjectId, Time, Value};

/// Application tag numbers (clause 20.2.1.4).
pub mod app {
    pub const NULL: u8 = 0;
    pub const BOOLEAN: u8 = 1;
    pub const UNSIGNED: u8 = 2;
    pub const SIGNED: u8 = 3;
    pub const REAL: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const OCTET_STRING: u8 = 6;
    pub const CHARACTER_STRING: u8 = 7;
    pub const BIT_STRING: u8 = 8;
    pub const ENUMERATED: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const OBJECT_ID: u8 = 12;
}

/// Deepest nesting of opening/closing tags accepted when skipping or capturing constructed data.
pub const MAX_NESTING: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagClass {
    Application,
    Context,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// A primitive tag followed by `len` content octets (for an application boolean, `len` is
    /// the value itself and no content follows).
    Primitive(u32),
    Opening,
    Closing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub number: u8,
    pub class: TagClass,
    pub kind: TagKind,
}

impl Tag {
    pub fn is_context(&self, number: u8) -> bool {
        self.class == TagClass::Context && self.number == number
    }
    pub fn is_opening(&self, number: u8) -> bool {
        self.is_context(number) && self.kind == TagKind::Opening
    }
    pub fn is_closing(&self, number: u8) -> bool {
        self.is_context(number) && self.kind == TagKind::Closing
    }
}

/// A bounds-checked cursor over encoded BACnet data.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// Reads a tag header without consuming it.
    pub fn peek_tag(&self) -> Result<Tag, DecodeError> {
        self.clone().tag()
    }

    /// Reads a tag header (initial octet plus extended tag number and length).
    pub fn tag(&mut self) -> Result<Tag, DecodeError> {
        let first = self.u8()?;
        let mut number = first >> 4;
        if number == 0x0F {
            number = self.u8()?;
            if number == 0xFF {
                return Err(DecodeError::Invalid("reserved tag number 255"));
            }
        }
        let class = if first & 0x08 != 0 {
            TagClass::Context
        } else {
            TagClass::Application
        };
        let lvt = first & 0x07;
        let kind = match (class, lvt) {
            (TagClass::Context, 6) => TagKind::Opening,
            (TagClass::Context, 7) => TagKind::Closing,
            (TagClass::Application, 6 | 7) => {
                return Err(DecodeError::Invalid(
                    "application tag with opening/closing LVT",
                ));
            }
            (_, 5) => {
                let ext = self.u8()?;
                let len = match ext {
                    254 => u32::from(self.u16()?),
                    255 => {
                        let b = self.bytes(4)?;
                        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
                    }
                    n => u32::from(n),
                };
                TagKind::Primitive(len)
            }
            (_, n) => TagKind::Primitive(u32::from(n)),
        };
        let tag = Tag {
            number,
            class,
            kind,
        };
        // The content of a primitive tag must be present (application booleans carry none).
        if let TagKind::Primitive(len) = kind
            && !(class == TagClass::Application && number == app::BOOLEAN)
            && (len as usize) > self.buf.len().saturating_sub(self.pos)
        {
            return Err(DecodeError::Truncated);
        }
        Ok(tag)
    }

    /// Consumes a primitive context tag `number` and returns its content.
    pub fn context(&mut self, number: u8) -> Result<&'a [u8], DecodeError> {
        let tag = self.tag()?;
        match tag {
            Tag {
                class: TagClass::Context,
                kind: TagKind::Primitive(len),
                number: n,
            } if n == number => self.bytes(len as usize),
            _ => Err(DecodeError::UnexpectedTag {
                expected: number,
                found: tag.number,
            }),
        }
    }

    /// Like [`Reader::context`] but returns `None` (consuming nothing) if the next tag is not
    /// the primitive context tag `number`.
    pub fn optional_context(&mut self, number: u8) -> Result<Option<&'a [u8]>, DecodeError> {
        if self.is_empty() {
            return Ok(None);
        }
        let tag = self.peek_tag()?;
        if tag.is_context(number) && matches!(tag.kind, TagKind::Primitive(_)) {
            self.context(number).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn context_unsigned(&mut self, number: u8) -> Result<u64, DecodeError> {
        decode_unsigned(self.context(number)?)
    }

    pub fn context_enumerated(&mut self, number: u8) -> Result<u32, DecodeError> {
        decode_u32(self.context(number)?)
    }

    pub fn context_object_id(&mut self, number: u8) -> Result<ObjectId, DecodeError> {
        decode_object_id(self.context(number)?)
    }

    pub fn opening(&mut self, number: u8) -> Result<(), DecodeError> {
        let tag = self.tag()?;
        if tag.is_opening(number) {
            Ok(())
        } else {
            Err(DecodeError::UnexpectedTag {
                expected: number,
                found: tag.number,
            })
        }
    }

    pub fn closing(&mut self, number: u8) -> Result<(), DecodeError> {
        let tag = self.tag()?;
        if tag.is_closing(number) {
            Ok(())
        } else {
            Err(DecodeError::UnexpectedTag {
                expected: number,
                found: tag.number,
            })
        }
    }

    pub fn next_is_opening(&self, number: u8) -> bool {
        self.peek_tag().is_ok_and(|t| t.is_opening(number))
    }

    pub fn next_is_closing(&self, number: u8) -> bool {
        self.peek_tag().is_ok_and(|t| t.is_closing(number))
    }

    /// Returns the raw bytes between an already consumed opening tag `number` and its matching
    /// closing tag, and consumes the closing tag.
    pub fn enclosed(&mut self, number: u8) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let mut depth = 0usize;
        loop {
            let before = self.pos;
            let tag = self.tag()?;
            match tag.kind {
                TagKind::Opening => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Err(DecodeError::Invalid("constructed data nested too deeply"));
                    }
                }
                TagKind::Closing => {
                    if depth == 0 {
                        if tag.number != number {
                            return Err(DecodeError::UnexpectedTag {
                                expected: number,
                                found: tag.number,
                            });
                        }
                        return Ok(&self.buf[start..before]);
                    }
                    depth -= 1;
                }
                TagKind::Primitive(len) => {
                    if !(tag.class == TagClass::Application && tag.number == app::BOOLEAN) {
                        self.bytes(len as usize)?;
                    }
                }
            }
        }
    }

    /// Reads one application-tagged primitive value.
    pub fn app_value(&mut self) -> Result<Value, DecodeError> {
        let tag = self.tag()?;
        let TagKind::Primitive(len) = tag.kind else {
            return Err(DecodeError::Invalid("expected an application tag"));
        };
        if tag.class != TagClass::Application {
            return Err(DecodeError::Invalid("expected an application tag"));
        }
        if tag.number == app::BOOLEAN {
            return match len {
                0 => Ok(Value::Boolean(false)),
                1 => Ok(Value::Boolean(true)),
                _ => Err(DecodeError::Invalid("application boolean value not 0 or 1")),
            };
        }
        let c = self.bytes(len as usize)?;
        decode_primitive(tag.number, c)
    }
}

/// Decodes the content octets of an application primitive of type `tag`.
pub fn decode_primitive(tag: u8, c: &[u8]) -> Result<Value, DecodeError> {
    Ok(match tag {
        app::NULL => {
            if !c.is_empty() {
                return Err(DecodeError::Invalid("null with content"));
            }
            Value::Null
        }
        app::BOOLEAN => Value::Boolean(match c {
            [0] => false,
            [1] => true,
            _ => return Err(DecodeError::Invalid("boolean content not 0 or 1")),
        }),
        app::UNSIGNED => Value::Unsigned(decode_unsigned(c)?),
        app::SIGNED => Value::Signed(decode_signed(c)?),
        app::REAL => {
            let b: [u8; 4] = c
                .try_into()
                .map_err(|_| DecodeError::Invalid("real is not 4 octets"))?;
            Value::Real(f32::from_be_bytes(b))
        }
        app::DOUBLE => {
            let b: [u8; 8] = c
                .try_into()
                .map_err(|_| DecodeError::Invalid("double is not 8 octets"))?;
            Value::Double(f64::from_be_bytes(b))
        }
        app::OCTET_STRING => Value::OctetString(c.to_vec()),
        app::CHARACTER_STRING => Value::CharacterString(decode_character_string(c)?),
        app::BIT_STRING => {
            let (&unused, bits) = c
                .split_first()
                .ok_or(DecodeError::Invalid("empty bit string"))?;
            if unused > 7 || (bits.is_empty() && unused != 0) {
                return Err(DecodeError::Invalid("bit string unused-bits count"));
            }
            Value::BitString(BitString {
                unused_bits: unused,
                bytes: bits.to_vec(),
            })
        }
        app::ENUMERATED => Value::Enumerated(decode_u32(c)?),
        app::DATE => {
            let b: [u8; 4] = c
                .try_into()
                .map_err(|_| DecodeError::Invalid("date is not 4 octets"))?;
            Value::Date(Date {
                year_minus_1900: b[0],
                month: b[1],
                day: b[2],
                weekday: b[3],
            })
        }
        app::TIME => {
            let b: [u8; 4] = c
                .try_into()
                .map_err(|_| DecodeError::Invalid("time is not 4 octets"))?;
            Value::Time(Time {
                hour: b[0],
                minute: b[1],
                second: b[2],
                hundredths: b[3],
            })
        }
        app::OBJECT_ID => Value::ObjectId(decode_object_id(c)?),
        _ => return Err(DecodeError::Invalid("reserved application tag")),
    })
}

pub fn decode_unsigned(c: &[u8]) -> Result<u64, DecodeError> {
    if c.is_empty() || c.len() > 8 {
        return Err(DecodeError::Invalid("unsigned length not 1..=8"));
    }
    Ok(c.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

pub fn decode_u32(c: &[u8]) -> Result<u32, DecodeError> {
    let v = decode_unsigned(c)?;
    u32::try_from(v).map_err(|_| DecodeError::Invalid("value does not fit in 32 bits"))
}

pub fn decode_signed(c: &[u8]) -> Result<i64, DecodeError> {
    if c.is_empty() || c.len() > 8 {
        return Err(DecodeError::Invalid("signed length not 1..=8"));
    }
    let init: i64 = if c[0] & 0x80 != 0 { -1 } else { 0 };
    Ok(c.iter().fold(init, |acc, &b| (acc << 8) | i64::from(b)))
}

pub fn decode_object_id(c: &[u8]) -> Result<ObjectId, DecodeError> {
    let b: [u8; 4] = c
        .try_into()
        .map_err(|_| DecodeError::Invalid("object identifier is not 4 octets"))?;
    Ok(ObjectId::from_u32(u32::from_be_bytes(b)))
}

fn decode_character_string(c: &[u8]) -> Result<String, DecodeError> {
    let (&charset, s) = c
        .split_first()
        .ok_or(DecodeError::Invalid("empty character string"))?;
    match charset {
        // ANSI X3.4 / UTF-8
        0 => String::from_utf8(s.to_vec()).map_err(|_| DecodeError::Invalid("invalid UTF-8")),
        // ISO 8859-1: every octet is the code point of the same value.
        5 => Ok(s.iter().map(|&b| char::from(b)).collect()),
        // UCS-2 big endian
        4 => {
            if s.len() % 2 != 0 {
                return Err(DecodeError::Invalid("UCS-2 string of odd length"));
            }
            let units: Vec<u16> = s
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| DecodeError::Invalid("invalid UCS-2"))
        }
        _ => Err(DecodeError::Unsupported("character set")),
    }
}

/// Appends tag headers and primitive encodings to a byte vector.
pub struct Writer<'a> {
    pub buf: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        Writer { buf }
    }

    pub fn tag(&mut self, number: u8, context: bool, lvt_len: u32) {
        let class = if context { 0x08 } else { 0x00 };
        let (num_bits, ext_num) = if number <= 14 {
            (number << 4, None)
        } else {
            (0xF0, Some(number))
        };
        if lvt_len <= 4 {
            self.buf.push(num_bits | class | lvt_len as u8);
            self.buf.extend(ext_num);
        } else {
            self.buf.push(num_bits | class | 5);
            self.buf.extend(ext_num);
            if lvt_len <= 253 {
                self.buf.push(lvt_len as u8);
            } else if lvt_len <= 0xFFFF {
                self.buf.push(254);
                self.buf.extend_from_slice(&(lvt_len as u16).to_be_bytes());
            } else {
                self.buf.push(255);
                self.buf.extend_from_slice(&lvt_len.to_be_bytes());
            }
        }
    }

    pub fn opening(&mut self, number: u8) {
        self.paired(number, 6);
    }

    pub fn closing(&mut self, number: u8) {
        self.paired(number, 7);
    }

    fn paired(&mut self, number: u8, lvt: u8) {
        if number <= 14 {
            self.buf.push((number << 4) | 0x08 | lvt);
        } else {
            self.buf.push(0xF8 | lvt);
            self.buf.push(number);
        }
    }

    fn primitive(&mut self, number: u8, context: bool, content: &[u8]) {
        self.tag(number, context, content.len() as u32);
        self.buf.extend_from_slice(content);
    }

    pub fn context_unsigned(&mut self, number: u8, v: u64) {
        self.primitive(number, true, &unsigned_bytes(v));
    }

    pub fn context_enumerated(&mut self, number: u8, v: u32) {
        self.primitive(number, true, &unsigned_bytes(u64::from(v)));
    }

    pub fn context_bool(&mut self, number: u8, v: bool) {
        self.primitive(number, true, &[u8::from(v)]);
    }

    pub fn context_object_id(&mut self, number: u8, id: ObjectId) {
        self.primitive(number, true, &id.to_u32().to_be_bytes());
    }

    pub fn app_unsigned(&mut self, v: u64) {
        self.primitive(app::UNSIGNED, false, &unsigned_bytes(v));
    }

    pub fn app_enumerated(&mut self, v: u32) {
        self.primitive(app::ENUMERATED, false, &unsigned_bytes(u64::from(v)));
    }

    pub fn app_object_id(&mut self, id: ObjectId) {
        self.primitive(app::OBJECT_ID, false, &id.to_u32().to_be_bytes());
    }

    /// Encodes an application-tagged value. Lists are written element by element and
    /// `Constructed` raw data verbatim.
    pub fn app_value(&mut self, v: &Value) {
        match v {
            Value::Null => self.tag(app::NULL, false, 0),
            Value::Boolean(b) => self.tag(app::BOOLEAN, false, u32::from(*b)),
            Value::Unsigned(u) => self.app_unsigned(*u),
            Value::Signed(i) => self.primitive(app::SIGNED, false, &signed_bytes(*i)),
            Value::Real(r) => self.primitive(app::REAL, false, &r.to_be_bytes()),
            Value::Double(d) => self.primitive(app::DOUBLE, false, &d.to_be_bytes()),
            Value::OctetString(o) => self.primitive(app::OCTET_STRING, false, o),
            Value::CharacterString(s) => {
                let mut c = Vec::with_capacity(s.len() + 1);
                c.push(0);
                c.extend_from_slice(s.as_bytes());
                self.primitive(app::CHARACTER_STRING, false, &c);
            }
            Value::BitString(b) => {
                let mut c = Vec::with_capacity(b.bytes.len() + 1);
                c.push(b.unused_bits);
                c.extend_from_slice(&b.bytes);
                self.primitive(app::BIT_STRING, false, &c);
            }
            Value::Enumerated(e) => self.app_enumerated(*e),
            Value::Date(d) => self.primitive(
                app::DATE,
                false,
                &[d.year_minus_1900, d.month, d.day, d.weekday],
            ),
            Value::Time(t) => self.primitive(
                app::TIME,
                false,
                &[t.hour, t.minute, t.second, t.hundredths],
            ),
            Value::ObjectId(id) => self.app_object_id(*id),
            Value::List(items) => {
                for i in items {
                    self.app_value(i);
                }
            }
            Value::Constructed(raw) => self.buf.extend_from_slice(raw),
        }
    }
}

/// Minimal big-endian encoding of an unsigned integer (at least one octet).
pub fn unsigned_bytes(v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8).min(7) as usize;
    b[skip..].to_vec()
}

/// Minimal two's-complement big-endian encoding of a signed integer.
pub fn signed_bytes(v: i64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let cur = b[start];
        let next_sign = b[start + 1] & 0x80;
        if (cur == 0x00 && next_sign == 0) || (cur == 0xFF && next_sign != 0) {
            start += 1;
        } else {
            break;
        }
    }
    b[start..].to_vec()
}

/// Decodes the content of a property value (the bytes between opening and closing tag 3 or 4).
/// One application primitive gives that value; several primitives give a [`Value::List`];
/// anything with context tags or nesting is kept verbatim as [`Value::Constructed`].
pub fn decode_property_value(raw: &[u8]) -> Result<Value, DecodeError> {
    let mut r = Reader::new(raw);
    let mut items = Vec::new();
    while !r.is_empty() {
        let tag = r.peek_tag()?;
        if tag.class != TagClass::Application {
            // Validate the structure so that garbage is still rejected, then keep it raw.
            validate_structure(raw)?;
            return Ok(Value::Constructed(raw.to_vec()));
        }
        items.push(r.app_value()?);
    }
    Ok(match items.len() {
        1 => items.pop().unwrap_or(Value::Null),
        _ => Value::List(items),
    })
}

/// Checks that `raw` is a well-formed sequence of tags with balanced opening/closing tags.
pub fn validate_structure(raw: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(raw);
    let mut stack: Vec<u8> = Vec::new();
    while !r.is_empty() {
        let tag = r.tag()?;
        match tag.kind {
            TagKind::Opening => {
                if stack.len() >= MAX_NESTING {
                    return Err(DecodeError::Invalid("constructed data nested too deeply"));
                }
                stack.push(tag.number);
            }
            TagKind::Closing => {
                if stack.pop() != Some(tag.number) {
                    return Err(DecodeError::Invalid("unbalanced closing tag"));
                }
            }
            TagKind::Primitive(len) => {
                if !(tag.class == TagClass::Application && tag.number == app::BOOLEAN) {
                    r.bytes(len as usize)?;
                }
            }
        }
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Invalid("unclosed opening tag"))
    }
}
