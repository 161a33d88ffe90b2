//! Service parameters of Who-Is, I-Am, ReadProperty, ReadPropertyMultiple, SubscribeCOV and
//! the COV notifications (ASHRAE 135 clauses 13, 15, 16 and 21).

use super::DecodeError;
use super::tag::{Reader, Writer, decode_property_value};
use super::types::{BacnetError, ObjectId, ObjectType, PropertyId, Segmentation, Value};

/// Limit on list lengths accepted from the wire (objects per RPM, properties per object,
/// values per COV notification); bounds the work done per datagram.
pub const MAX_LIST: usize = 512;

fn array_index(r: &mut Reader<'_>, number: u8) -> Result<Option<u32>, DecodeError> {
    r.optional_context(number)?
        .map(super::tag::decode_u32)
        .transpose()
}

fn expect_end(r: &Reader<'_>) -> Result<(), DecodeError> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::Invalid(
            "trailing data after service parameters",
        ))
    }
}

// ---------------------------------------------------------------- Who-Is / I-Am

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WhoIs {
    /// Inclusive device instance range; `None` asks every device.
    pub range: Option<(u32, u32)>,
}

impl WhoIs {
    pub fn matches(&self, instance: u32) -> bool {
        self.range
            .is_none_or(|(lo, hi)| lo <= instance && instance <= hi)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Some((lo, hi)) = self.range {
            let mut w = Writer::new(out);
            w.context_unsigned(0, u64::from(lo));
            w.context_unsigned(1, u64::from(hi));
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        if r.is_empty() {
            return Ok(WhoIs { range: None });
        }
        let lo = r.context_unsigned(0)?;
        let hi = r.context_unsigned(1)?;
        expect_end(&r)?;
        let max = u64::from(ObjectId::MAX_INSTANCE);
        if lo > max || hi > max {
            return Err(DecodeError::Invalid("Who-Is limit above 4194303"));
        }
        Ok(WhoIs {
            range: Some((lo as u32, hi as u32)),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IAm {
    pub device: ObjectId,
    pub max_apdu: u32,
    pub segmentation: Segmentation,
    pub vendor_id: u16,
}

impl IAm {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.app_object_id(self.device);
        w.app_unsigned(u64::from(self.max_apdu));
        w.app_enumerated(self.segmentation as u32);
        w.app_unsigned(u64::from(self.vendor_id));
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let Value::ObjectId(device) = r.app_value()? else {
            return Err(DecodeError::Invalid(
                "I-Am: expected device object identifier",
            ));
        };
        if device.object_type != ObjectType::DEVICE {
            return Err(DecodeError::Invalid(
                "I-Am: object identifier is not a device",
            ));
        }
        let Value::Unsigned(max_apdu) = r.app_value()? else {
            return Err(DecodeError::Invalid("I-Am: expected max-APDU unsigned"));
        };
        let Value::Enumerated(seg) = r.app_value()? else {
            return Err(DecodeError::Invalid(
                "I-Am: expected segmentation enumerated",
            ));
        };
        let Value::Unsigned(vendor) = r.app_value()? else {
            return Err(DecodeError::Invalid("I-Am: expected vendor id unsigned"));
        };
        expect_end(&r)?;
        Ok(IAm {
            device,
            max_apdu: u32::try_from(max_apdu)
                .map_err(|_| DecodeError::Invalid("I-Am: max-APDU too large"))?,
            segmentation: Segmentation::from_u32(seg)
                .ok_or(DecodeError::Invalid("I-Am: unknown segmentation value"))?,
            vendor_id: u16::try_from(vendor)
                .map_err(|_| DecodeError::Invalid("I-Am: vendor id too large"))?,
        })
    }
}

// ---------------------------------------------------------------- ReadProperty

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadPropertyRequest {
    pub object: ObjectId,
    pub property: PropertyId,
    pub array_index: Option<u32>,
}

impl ReadPropertyRequest {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.context_object_id(0, self.object);
        w.context_enumerated(1, self.property.0);
        if let Some(i) = self.array_index {
            w.context_unsigned(2, u64::from(i));
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let object = r.context_object_id(0)?;
        let property = PropertyId(r.context_enumerated(1)?);
        let array_index = array_index(&mut r, 2)?;
        expect_end(&r)?;
        Ok(ReadPropertyRequest {
            object,
            property,
            array_index,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReadPropertyAck {
    pub object: ObjectId,
    pub property: PropertyId,
    pub array_index: Option<u32>,
    pub value: Value,
}

impl ReadPropertyAck {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.context_object_id(0, self.object);
        w.context_enumerated(1, self.property.0);
        if let Some(i) = self.array_index {
            w.context_unsigned(2, u64::from(i));
        }
        w.opening(3);
        w.app_value(&self.value);
        w.closing(3);
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let object = r.context_object_id(0)?;
        let property = PropertyId(r.context_enumerated(1)?);
        let array_index = array_index(&mut r, 2)?;
        r.opening(3)?;
        let value = decode_property_value(r.enclosed(3)?)?;
        expect_end(&r)?;
        Ok(ReadPropertyAck {
            object,
            property,
            array_index,
            value,
        })
    }
}

// ---------------------------------------------------------------- ReadPropertyMultiple

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PropertyReference {
    pub property: PropertyId,
    pub array_index: Option<u32>,
}

impl PropertyReference {
    pub fn new(property: PropertyId) -> Self {
        PropertyReference {
            property,
            array_index: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAccessSpec {
    pub object: ObjectId,
    pub properties: Vec<PropertyReference>,
}

/// ReadPropertyMultiple-Request: a list of read access specifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPropertyMultipleRequest {
    pub specs: Vec<ReadAccessSpec>,
}

impl ReadPropertyMultipleRequest {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        for spec in &self.specs {
            w.context_object_id(0, spec.object);
            w.opening(1);
            for p in &spec.properties {
                w.context_enumerated(0, p.property.0);
                if let Some(i) = p.array_index {
                    w.context_unsigned(1, u64::from(i));
                }
            }
            w.closing(1);
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let mut specs = Vec::new();
        while !r.is_empty() {
            if specs.len() >= MAX_LIST {
                return Err(DecodeError::Invalid("too many read access specifications"));
            }
            let object = r.context_object_id(0)?;
            r.opening(1)?;
            let mut properties = Vec::new();
            while !r.next_is_closing(1) {
                if properties.len() >= MAX_LIST {
                    return Err(DecodeError::Invalid("too many property references"));
                }
                let property = PropertyId(r.context_enumerated(0)?);
                let array_index = array_index(&mut r, 1)?;
                properties.push(PropertyReference {
                    property,
                    array_index,
                });
            }
            r.closing(1)?;
            if properties.is_empty() {
                return Err(DecodeError::Invalid("empty list of property references"));
            }
            specs.push(ReadAccessSpec { object, properties });
        }
        if specs.is_empty() {
            return Err(DecodeError::Invalid("empty ReadPropertyMultiple request"));
        }
        Ok(ReadPropertyMultipleRequest { specs })
    }
}

/// One property of a ReadPropertyMultiple-ACK: its value or the error reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadResultItem {
    pub property: PropertyId,
    pub array_index: Option<u32>,
    pub result: Result<Value, BacnetError>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReadAccessResult {
    pub object: ObjectId,
    pub results: Vec<ReadResultItem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReadPropertyMultipleAck {
    pub results: Vec<ReadAccessResult>,
}

impl ReadPropertyMultipleAck {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        for res in &self.results {
            w.context_object_id(0, res.object);
            w.opening(1);
            for item in &res.results {
                w.context_enumerated(2, item.property.0);
                if let Some(i) = item.array_index {
                    w.context_unsigned(3, u64::from(i));
                }
                match &item.result {
                    Ok(v) => {
                        w.opening(4);
                        w.app_value(v);
                        w.closing(4);
                    }
                    Err(e) => {
                        w.opening(5);
                        w.app_enumerated(e.class);
                        w.app_enumerated(e.code);
                        w.closing(5);
                    }
                }
            }
            w.closing(1);
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let mut results = Vec::new();
        while !r.is_empty() {
            if results.len() >= MAX_LIST {
                return Err(DecodeError::Invalid("too many read access results"));
            }
            let object = r.context_object_id(0)?;
            r.opening(1)?;
            let mut items = Vec::new();
            while !r.next_is_closing(1) {
                if items.len() >= MAX_LIST {
                    return Err(DecodeError::Invalid("too many read results"));
                }
                let property = PropertyId(r.context_enumerated(2)?);
                let array_index = array_index(&mut r, 3)?;
                let result = if r.next_is_opening(4) {
                    r.opening(4)?;
                    Ok(decode_property_value(r.enclosed(4)?)?)
                } else {
                    r.opening(5)?;
                    let class = app_enum(&mut r)?;
                    let code = app_enum(&mut r)?;
                    r.closing(5)?;
                    Err(BacnetError { class, code })
                };
                items.push(ReadResultItem {
                    property,
                    array_index,
                    result,
                });
            }
            r.closing(1)?;
            results.push(ReadAccessResult {
                object,
                results: items,
            });
        }
        Ok(ReadPropertyMultipleAck { results })
    }
}

fn app_enum(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    match r.app_value()? {
        Value::Enumerated(e) => Ok(e),
        _ => Err(DecodeError::Invalid("expected an enumerated value")),
    }
}

// ---------------------------------------------------------------- SubscribeCOV

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeCovRequest {
    pub process_id: u32,
    pub object: ObjectId,
    /// `None` together with `lifetime: None` cancels the subscription.
    pub confirmed: Option<bool>,
    /// Seconds; `Some(0)` or `None` on a subscription means "indefinite".
    pub lifetime: Option<u32>,
}

impl SubscribeCovRequest {
    pub fn is_cancellation(&self) -> bool {
        self.confirmed.is_none() && self.lifetime.is_none()
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.context_unsigned(0, u64::from(self.process_id));
        w.context_object_id(1, self.object);
        if let Some(c) = self.confirmed {
            w.context_bool(2, c);
        }
        if let Some(l) = self.lifetime {
            w.context_unsigned(3, u64::from(l));
        }
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let process_id = u32::try_from(r.context_unsigned(0)?)
            .map_err(|_| DecodeError::Invalid("subscriber process id too large"))?;
        let object = r.context_object_id(1)?;
        let confirmed = match r.optional_context(2)? {
            None => None,
            Some([0]) => Some(false),
            Some([1]) => Some(true),
            Some(_) => return Err(DecodeError::Invalid("context boolean not 0 or 1")),
        };
        let lifetime = r
            .optional_context(3)?
            .map(super::tag::decode_u32)
            .transpose()?;
        expect_end(&r)?;
        Ok(SubscribeCovRequest {
            process_id,
            object,
            confirmed,
            lifetime,
        })
    }
}

// ---------------------------------------------------------------- COV notifications

#[derive(Debug, Clone, PartialEq)]
pub struct PropertyValue {
    pub property: PropertyId,
    pub array_index: Option<u32>,
    pub value: Value,
    pub priority: Option<u8>,
}

/// Parameters shared by ConfirmedCOVNotification and UnconfirmedCOVNotification.
#[derive(Debug, Clone, PartialEq)]
pub struct CovNotification {
    pub process_id: u32,
    pub device: ObjectId,
    pub object: ObjectId,
    /// Seconds left on the subscription (0 for an indefinite one).
    pub time_remaining: u32,
    pub values: Vec<PropertyValue>,
}

impl CovNotification {
    pub fn value_of(&self, property: PropertyId) -> Option<&Value> {
        self.values
            .iter()
            .find(|v| v.property == property)
            .map(|v| &v.value)
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.context_unsigned(0, u64::from(self.process_id));
        w.context_object_id(1, self.device);
        w.context_object_id(2, self.object);
        w.context_unsigned(3, u64::from(self.time_remaining));
        w.opening(4);
        for pv in &self.values {
            w.context_enumerated(0, pv.property.0);
            if let Some(i) = pv.array_index {
                w.context_unsigned(1, u64::from(i));
            }
            w.opening(2);
            w.app_value(&pv.value);
            w.closing(2);
            if let Some(p) = pv.priority {
                w.context_unsigned(3, u64::from(p));
            }
        }
        w.closing(4);
    }

    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf);
        let process_id = u32::try_from(r.context_unsigned(0)?)
            .map_err(|_| DecodeError::Invalid("subscriber process id too large"))?;
        let device = r.context_object_id(1)?;
        let object = r.context_object_id(2)?;
        let time_remaining = u32::try_from(r.context_unsigned(3)?)
            .map_err(|_| DecodeError::Invalid("time remaining too large"))?;
        r.opening(4)?;
        let mut values = Vec::new();
        while !r.next_is_closing(4) {
            if values.len() >= MAX_LIST {
                return Err(DecodeError::Invalid("too many values in COV notification"));
            }
            let property = PropertyId(r.context_enumerated(0)?);
            let array_index = array_index(&mut r, 1)?;
            r.opening(2)?;
            let value = decode_property_value(r.enclosed(2)?)?;
            let priority = r
                .optional_context(3)?
                .map(|c| super::tag::decode_u32(c).map(|p| p.min(255) as u8))
                .transpose()?;
            values.push(PropertyValue {
                property,
                array_index,
                value,
                priority,
            });
        }
        r.closing(4)?;
        expect_end(&r)?;
        Ok(CovNotification {
            process_id,
            device,
            object,
            time_remaining,
            values,
        })
    }
}
