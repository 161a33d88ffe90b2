//! BACnet data types shared by the codec, the client and the device server.

use std::fmt;

/// A BACnet object type (10 bits on the wire). Unknown and proprietary types are kept as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectType(pub u16);

impl ObjectType {
    pub const ANALOG_INPUT: ObjectType = ObjectType(0);
    pub const ANALOG_OUTPUT: ObjectType = ObjectType(1);
    pub const ANALOG_VALUE: ObjectType = ObjectType(2);
    pub const BINARY_INPUT: ObjectType = ObjectType(3);
    pub const BINARY_OUTPUT: ObjectType = ObjectType(4);
    pub const BINARY_VALUE: ObjectType = ObjectType(5);
    pub const DEVICE: ObjectType = ObjectType(8);
    pub const MULTI_STATE_INPUT: ObjectType = ObjectType(13);
    pub const MULTI_STATE_OUTPUT: ObjectType = ObjectType(14);
    pub const MULTI_STATE_VALUE: ObjectType = ObjectType(19);

    /// The name used by the standard (and by bacpypes3), e.g. `analog-input`.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "analog-input",
            1 => "analog-output",
            2 => "analog-value",
            3 => "binary-input",
            4 => "binary-output",
            5 => "binary-value",
            8 => "device",
            13 => "multi-state-input",
            14 => "multi-state-output",
            19 => "multi-state-value",
            _ => return None,
        })
    }

    pub fn from_name(name: &str) -> Option<ObjectType> {
        [0u16, 1, 2, 3, 4, 5, 8, 13, 14, 19]
            .into_iter()
            .map(ObjectType)
            .find(|t| t.name() == Some(name))
    }

    pub fn is_analog(self) -> bool {
        matches!(self.0, 0..=2)
    }

    pub fn is_binary(self) -> bool {
        matches!(self.0, 3..=5)
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "object-type-{}", self.0),
        }
    }
}

/// Object identifier: type and instance number (22 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub object_type: ObjectType,
    pub instance: u32,
}

impl ObjectId {
    /// The largest instance number; also the "wildcard" device instance.
    pub const MAX_INSTANCE: u32 = 0x3F_FFFF;

    pub fn new(object_type: ObjectType, instance: u32) -> Self {
        ObjectId {
            object_type,
            instance: instance & Self::MAX_INSTANCE,
        }
    }

    pub fn device(instance: u32) -> Self {
        Self::new(ObjectType::DEVICE, instance)
    }

    pub fn from_u32(v: u32) -> Self {
        ObjectId {
            object_type: ObjectType((v >> 22) as u16),
            instance: v & Self::MAX_INSTANCE,
        }
    }

    pub fn to_u32(self) -> u32 {
        (u32::from(self.object_type.0 & 0x3FF) << 22) | (self.instance & Self::MAX_INSTANCE)
    }
}

/// Parses `analog-input,5`, `analog-input:5` or a numeric type `0,5`.
impl std::str::FromStr for ObjectId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (t, i) = s
            .split_once([',', ':'])
            .ok_or_else(|| format!("object identifier {s:?}: expected TYPE,INSTANCE"))?;
        let t = t.trim();
        let object_type = match ObjectType::from_name(t) {
            Some(ot) => ot,
            None => ObjectType(t.parse::<u16>().ok().filter(|n| *n < 1024).ok_or_else(|| {
                format!("object identifier {s:?}: unknown object type {t:?} (expected e.g. analog-input, binary-value, device or a number below 1024)")
            })?),
        };
        let instance = i
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= ObjectId::MAX_INSTANCE)
            .ok_or_else(|| {
                format!("object identifier {s:?}: instance must be a number from 0 to 4194303")
            })?;
        Ok(ObjectId {
            object_type,
            instance,
        })
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.object_type, self.instance)
    }
}

/// A property identifier. Unknown and proprietary properties are kept as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PropertyId(pub u32);

impl PropertyId {
    pub const ALL: PropertyId = PropertyId(8);
    pub const APDU_TIMEOUT: PropertyId = PropertyId(11);
    pub const APPLICATION_SOFTWARE_VERSION: PropertyId = PropertyId(12);
    pub const COV_INCREMENT: PropertyId = PropertyId(22);
    pub const DESCRIPTION: PropertyId = PropertyId(28);
    pub const DEVICE_ADDRESS_BINDING: PropertyId = PropertyId(30);
    pub const EVENT_STATE: PropertyId = PropertyId(36);
    pub const FIRMWARE_REVISION: PropertyId = PropertyId(44);
    pub const MAX_APDU_LENGTH_ACCEPTED: PropertyId = PropertyId(62);
    pub const MODEL_NAME: PropertyId = PropertyId(70);
    pub const NUMBER_OF_APDU_RETRIES: PropertyId = PropertyId(73);
    pub const OBJECT_IDENTIFIER: PropertyId = PropertyId(75);
    pub const OBJECT_LIST: PropertyId = PropertyId(76);
    pub const OBJECT_NAME: PropertyId = PropertyId(77);
    pub const OBJECT_TYPE: PropertyId = PropertyId(79);
    pub const OPTIONAL: PropertyId = PropertyId(80);
    pub const OUT_OF_SERVICE: PropertyId = PropertyId(81);
    pub const POLARITY: PropertyId = PropertyId(84);
    pub const PRESENT_VALUE: PropertyId = PropertyId(85);
    pub const PROTOCOL_OBJECT_TYPES_SUPPORTED: PropertyId = PropertyId(96);
    pub const PROTOCOL_SERVICES_SUPPORTED: PropertyId = PropertyId(97);
    pub const PROTOCOL_VERSION: PropertyId = PropertyId(98);
    pub const REQUIRED: PropertyId = PropertyId(105);
    pub const SEGMENTATION_SUPPORTED: PropertyId = PropertyId(107);
    pub const STATUS_FLAGS: PropertyId = PropertyId(111);
    pub const SYSTEM_STATUS: PropertyId = PropertyId(112);
    pub const UNITS: PropertyId = PropertyId(117);
    pub const VENDOR_IDENTIFIER: PropertyId = PropertyId(120);
    pub const VENDOR_NAME: PropertyId = PropertyId(121);
    pub const PROTOCOL_REVISION: PropertyId = PropertyId(139);
    pub const DATABASE_REVISION: PropertyId = PropertyId(155);
    pub const PROPERTY_LIST: PropertyId = PropertyId(371);

    /// Looks a property up by its standard name (`present-value`) or number (`85`).
    pub fn from_name(name: &str) -> Option<PropertyId> {
        if let Ok(n) = name.parse::<u32>() {
            return (n <= 0x3F_FFFF).then_some(PropertyId(n));
        }
        (0..=371).map(PropertyId).find(|p| p.name() == Some(name))
    }

    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            8 => "all",
            11 => "apdu-timeout",
            12 => "application-software-version",
            30 => "device-address-binding",
            44 => "firmware-revision",
            62 => "max-apdu-length-accepted",
            70 => "model-name",
            73 => "number-of-apdu-retries",
            80 => "optional",
            84 => "polarity",
            96 => "protocol-object-types-supported",
            97 => "protocol-services-supported",
            98 => "protocol-version",
            105 => "required",
            107 => "segmentation-supported",
            112 => "system-status",
            139 => "protocol-revision",
            155 => "database-revision",
            371 => "property-list",
            22 => "cov-increment",
            28 => "description",
            36 => "event-state",
            75 => "object-identifier",
            76 => "object-list",
            77 => "object-name",
            79 => "object-type",
            81 => "out-of-service",
            85 => "present-value",
            111 => "status-flags",
            117 => "units",
            120 => "vendor-identifier",
            121 => "vendor-name",
            _ => return None,
        })
    }
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "property-{}", self.0),
        }
    }
}

/// A bit string: `unused_bits` low bits of the last octet are padding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BitString {
    pub unused_bits: u8,
    pub bytes: Vec<u8>,
}

impl BitString {
    pub fn from_bits(bits: &[bool]) -> Self {
        let mut bytes = vec![0u8; bits.len().div_ceil(8)];
        for (i, &b) in bits.iter().enumerate() {
            if b {
                bytes[i / 8] |= 0x80 >> (i % 8);
            }
        }
        let unused = (bytes.len() * 8 - bits.len()) as u8;
        BitString {
            unused_bits: unused,
            bytes,
        }
    }

    pub fn len(&self) -> usize {
        (self.bytes.len() * 8).saturating_sub(usize::from(self.unused_bits))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bit(&self, i: usize) -> bool {
        i < self.len() && self.bytes[i / 8] & (0x80 >> (i % 8)) != 0
    }
}

/// BACnet date; 255 in any field means "unspecified".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Date {
    pub year_minus_1900: u8,
    pub month: u8,
    pub day: u8,
    pub weekday: u8,
}

/// BACnet time; 255 in any field means "unspecified".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Time {
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub hundredths: u8,
}

/// A property value as it travels in ReadProperty, ReadPropertyMultiple and COV notifications.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Unsigned(u64),
    Signed(i64),
    Real(f32),
    Double(f64),
    OctetString(Vec<u8>),
    CharacterString(String),
    BitString(BitString),
    Enumerated(u32),
    Date(Date),
    Time(Time),
    ObjectId(ObjectId),
    /// Several application-tagged values (an array or list property, e.g. `object-list`).
    /// A list of exactly one element decodes as that element.
    List(Vec<Value>),
    /// Constructed data with context tags (e.g. `device-address-binding`), kept encoded.
    Constructed(Vec<u8>),
}

impl Value {
    /// A numeric view: reals, doubles, integers, enumerations and booleans (1.0/0.0).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Real(r) => Some(f64::from(r)),
            Value::Double(d) => Some(d),
            Value::Unsigned(u) => Some(u as f64),
            Value::Signed(i) => Some(i as f64),
            Value::Enumerated(e) => Some(f64::from(e)),
            Value::Boolean(b) => Some(if b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    /// A boolean view: booleans, and enumerations 0/1 (binary present-value: inactive/active).
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Boolean(b) => Some(b),
            Value::Enumerated(0) | Value::Unsigned(0) => Some(false),
            Value::Enumerated(1) | Value::Unsigned(1) => Some(true),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::CharacterString(s) => Some(s),
            _ => None,
        }
    }

    /// The point-model value: booleans stay booleans, numbers and enumerations become
    /// numbers, character strings text; other types have no point value. (A binary object's
    /// present-value is an enumeration 0/1; the profile decides whether it is a boolean.)
    pub fn to_point_value(&self) -> Option<dcim_points::Value> {
        match self {
            Value::Boolean(b) => Some(dcim_points::Value::Bool(*b)),
            Value::CharacterString(s) => Some(dcim_points::Value::Text(s.clone())),
            v => v.as_f64().map(dcim_points::Value::Number),
        }
    }
}

/// Segmentation-supported enumeration (clause 21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segmentation {
    Both = 0,
    Transmit = 1,
    Receive = 2,
    None = 3,
}

impl Segmentation {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => Segmentation::Both,
            1 => Segmentation::Transmit,
            2 => Segmentation::Receive,
            3 => Segmentation::None,
            _ => return None,
        })
    }
}

/// Error class and code of an Error PDU or of a per-property ReadPropertyMultiple error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BacnetError {
    pub class: u32,
    pub code: u32,
}

impl BacnetError {
    pub const CLASS_DEVICE: u32 = 0;
    pub const CLASS_OBJECT: u32 = 1;
    pub const CLASS_PROPERTY: u32 = 2;
    pub const CLASS_RESOURCES: u32 = 3;
    pub const CLASS_SERVICES: u32 = 5;

    pub const CODE_OTHER: u32 = 0;
    pub const CODE_UNKNOWN_OBJECT: u32 = 31;
    pub const CODE_UNKNOWN_PROPERTY: u32 = 32;
    pub const CODE_PROPERTY_IS_NOT_AN_ARRAY: u32 = 50;
    pub const CODE_INVALID_ARRAY_INDEX: u32 = 42;
    pub const CODE_OPTIONAL_FUNCTIONALITY_NOT_SUPPORTED: u32 = 45;
    pub const CODE_COV_SUBSCRIPTION_FAILED: u32 = 43;
    pub const CODE_NO_SPACE_TO_ADD_LIST_ELEMENT: u32 = 19;

    pub fn unknown_object() -> Self {
        BacnetError {
            class: Self::CLASS_OBJECT,
            code: Self::CODE_UNKNOWN_OBJECT,
        }
    }

    pub fn unknown_property() -> Self {
        BacnetError {
            class: Self::CLASS_PROPERTY,
            code: Self::CODE_UNKNOWN_PROPERTY,
        }
    }
}

impl fmt::Display for BacnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.class {
            0 => "device",
            1 => "object",
            2 => "property",
            3 => "resources",
            4 => "security",
            5 => "services",
            7 => "communication",
            _ => "class",
        };
        let code = match self.code {
            0 => "other",
            31 => "unknown-object",
            32 => "unknown-property",
            42 => "invalid-array-index",
            43 => "cov-subscription-failed",
            45 => "optional-functionality-not-supported",
            50 => "property-is-not-an-array",
            _ => "",
        };
        write!(f, "{class}({}):{code}({})", self.class, self.code)
    }
}

/// Engineering units used by the chiller plant model and tests (clause 21, BACnetEngineeringUnits).
pub mod units {
    pub const PERCENT: u32 = 98;
    pub const DEGREES_CELSIUS: u32 = 62;
    pub const KILOWATTS: u32 = 48;
    pub const LITERS_PER_SECOND: u32 = 87;
    pub const CUBIC_METERS_PER_HOUR: u32 = 135;
    pub const NO_UNITS: u32 = 95;
}
