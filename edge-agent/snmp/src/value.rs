//! SNMP values as the pure core sees them (independent of the client library's types).

use dcim_profiles::Raw;

#[derive(Debug, Clone, PartialEq)]
pub enum SnmpValue {
    /// INTEGER (enumerations such as `ifOperStatus` too).
    Integer(i64),
    /// Counter32, Gauge32, Unsigned32, TimeTicks, Counter64.
    Unsigned(u64),
    /// OCTET STRING (decoded as UTF-8, invalid bytes replaced), IpAddress, OBJECT IDENTIFIER
    /// (as text).
    Text(String),
    /// noSuchObject, noSuchInstance, endOfMibView, NULL or a type the product does not read:
    /// the device answered without a value.
    Missing,
}

impl SnmpValue {
    /// The profile's raw value; `None` when there is no value.
    pub fn raw(&self) -> Option<Raw> {
        match self {
            SnmpValue::Integer(i) => Some(Raw::Signed(*i)),
            SnmpValue::Unsigned(u) => Some(Raw::Unsigned(*u)),
            SnmpValue::Text(t) => Some(Raw::Text(t.clone())),
            SnmpValue::Missing => None,
        }
    }

    /// As an integer (trap varbinds such as `ifIndex`).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            SnmpValue::Integer(i) => u64::try_from(*i).ok(),
            SnmpValue::Unsigned(u) => Some(*u),
            _ => None,
        }
    }
}

impl std::fmt::Display for SnmpValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnmpValue::Integer(i) => write!(f, "{i}"),
            SnmpValue::Unsigned(u) => write!(f, "{u}"),
            SnmpValue::Text(t) => f.write_str(t),
            SnmpValue::Missing => f.write_str("(none)"),
        }
    }
}
