//! The validated profile model. Every value here has passed the loader's checks, so drivers can
//! rely on it (register ranges fit, wire types fit their table, roles exist, ...).

use dcim_points::Role;
use std::collections::BTreeMap;
use std::fmt;

/// A device model's profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub vendor: String,
    pub model: String,
    pub description: String,
    pub protocol: Protocol,
    pub comm: Comm,
    pub poll: PollPeriods,
    /// Present exactly when `protocol` is Modbus.
    pub modbus: Option<ModbusSettings>,
    /// Present exactly when `protocol` is SNMP.
    pub snmp: Option<SnmpSettings>,
    pub points: Vec<Point>,
    /// Where the profile was loaded from (file name), for messages.
    pub source: String,
}

impl Profile {
    pub fn point(&self, id: &str) -> Option<&Point> {
        self.points.iter().find(|p| p.id == id)
    }

    /// `Ok` when the profile is for `wanted`; otherwise the message of [`Profile::not_for`] (a
    /// driver handed another protocol's profile).
    pub fn require_protocol(&self, wanted: Protocol) -> Result<(), String> {
        if self.protocol == wanted {
            Ok(())
        } else {
            Err(self.not_for(wanted))
        }
    }

    /// "profile `NAME` is for PROTOCOL, not WANTED".
    pub fn not_for(&self, wanted: Protocol) -> String {
        format!(
            "profile `{}` is for {}, not {}",
            self.name,
            self.protocol.as_str(),
            wanted.as_str()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Modbus,
    Bacnet,
    Mqtt,
    Snmp,
}

impl Protocol {
    pub const NAMES: &'static str = "modbus, bacnet, mqtt, snmp";
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "modbus" => Some(Protocol::Modbus),
            "bacnet" => Some(Protocol::Bacnet),
            "mqtt" => Some(Protocol::Mqtt),
            "snmp" => Some(Protocol::Snmp),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Modbus => "modbus",
            Protocol::Bacnet => "bacnet",
            Protocol::Mqtt => "mqtt",
            Protocol::Snmp => "snmp",
        }
    }
}

/// Device-wide SNMP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnmpSettings {
    /// At most this many OIDs in one GET request.
    pub max_oids_per_request: u16,
    /// GETBULK max-repetitions when a table column is walked.
    pub max_repetitions: u32,
}

impl Default for SnmpSettings {
    fn default() -> Self {
        SnmpSettings {
            max_oids_per_request: 20,
            max_repetitions: 25,
        }
    }
}

/// Placeholders an SNMP OID or index may contain; each is filled from the device's configured
/// links, so a point with one is read once per link (see `device-profiles/README.md`).
pub const SNMP_PLACEHOLDERS: [&str; 2] = ["{if_index}", "{lldp_port}"];

/// Where an SNMP point lives: a numeric OID (an object instance, read with GET), or a table
/// column walked with GETBULK whose row is chosen by `index`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnmpAddress {
    /// Dotted numeric OID, possibly with placeholders (`1.3.6.1.2.1.2.2.1.8.{if_index}`).
    pub oid: String,
    /// For a walked column: the pattern of the row index after the column OID, components
    /// separated by dots, `*` matching any one component (`*.{lldp_port}.*`).
    pub index: Option<String>,
}

impl SnmpAddress {
    /// Whether the point is read once per configured link.
    pub fn per_link(&self) -> bool {
        SNMP_PLACEHOLDERS
            .iter()
            .any(|p| self.oid.contains(p) || self.index.as_deref().is_some_and(|i| i.contains(p)))
    }
}

/// Per-device communication settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comm {
    pub timeout_ms: u64,
    pub retries: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub comm_lost_after_ms: u64,
    /// A point the device refused (Modbus exception) is tried alone again this often.
    pub refused_retry_ms: u64,
}

impl Default for Comm {
    fn default() -> Self {
        Comm {
            timeout_ms: 1000,
            retries: 2,
            backoff_initial_ms: 1000,
            backoff_max_ms: 60_000,
            comm_lost_after_ms: 15_000,
            refused_retry_ms: 300_000,
        }
    }
}

impl Comm {
    /// Back-off before the next attempt after `failures` consecutive failed polls (>= 1):
    /// `backoff_initial_ms * 2^(failures-1)`, capped at `backoff_max_ms`.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        let shift = failures.saturating_sub(1).min(30);
        self.backoff_initial_ms
            .saturating_mul(1u64 << shift)
            .min(self.backoff_max_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PollClass {
    Fast,
    Normal,
    Slow,
}

impl PollClass {
    pub const ALL: [PollClass; 3] = [PollClass::Fast, PollClass::Normal, PollClass::Slow];
    pub fn parse(s: &str) -> Option<PollClass> {
        match s {
            "fast" => Some(PollClass::Fast),
            "normal" => Some(PollClass::Normal),
            "slow" => Some(PollClass::Slow),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPeriods {
    pub fast_ms: u64,
    pub normal_ms: u64,
    pub slow_ms: u64,
}

impl Default for PollPeriods {
    fn default() -> Self {
        PollPeriods {
            fast_ms: 1000,
            normal_ms: 5000,
            slow_ms: 60_000,
        }
    }
}

impl PollPeriods {
    pub fn period_ms(&self, class: PollClass) -> u64 {
        match class {
            PollClass::Fast => self.fast_ms,
            PollClass::Normal => self.normal_ms,
            PollClass::Slow => self.slow_ms,
        }
    }
}

/// Device-wide Modbus settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModbusSettings {
    /// 0: registers are written as wire addresses; 1: as 1-based documentation numbers.
    pub address_base: u8,
    /// Default order of multi-byte values.
    pub order: Order,
    /// Largest hole of unused registers the planner reads through to merge two requests.
    pub max_gap: u16,
    /// At most this many registers per read (1..=125).
    pub max_registers_per_read: u16,
}

/// A Modbus table (and so the read function).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Function 1.
    Coil,
    /// Function 2.
    Discrete,
    /// Function 3.
    Holding,
    /// Function 4.
    Input,
}

impl Table {
    pub const NAMES: &'static str = "holding, input, coil, discrete";
    pub fn parse(s: &str) -> Option<Table> {
        match s {
            "holding" => Some(Table::Holding),
            "input" => Some(Table::Input),
            "coil" => Some(Table::Coil),
            "discrete" => Some(Table::Discrete),
            _ => None,
        }
    }
    /// Coils and discrete inputs hold single bits.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }
    /// The protocol maximum of items per read (2000 bits or 125 registers).
    pub fn max_per_read(self) -> u16 {
        if self.is_bits() { 2000 } else { 125 }
    }
}

/// How a value is laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireType {
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    Bool,
    /// One bit of a register, 0 = least significant.
    Bit(u8),
    /// ASCII text of this many characters.
    String(u16),
}

impl WireType {
    pub const NAMES: &'static str = "u16, i16, u32, i32, u64, i64, f32, f64, bool, bit, string";

    /// Registers (or bits, in a bit table) the value occupies.
    pub fn registers(self) -> u16 {
        match self {
            WireType::U16 | WireType::I16 | WireType::Bool | WireType::Bit(_) => 1,
            WireType::U32 | WireType::I32 | WireType::F32 => 2,
            WireType::U64 | WireType::I64 | WireType::F64 => 4,
            WireType::String(chars) => chars.div_ceil(2),
        }
    }
}

/// Byte and word order of a register value, see `device-profiles/README.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Order {
    /// The two bytes of every register are swapped (`BADC`, `DCBA`).
    pub byte_swap: bool,
    /// Registers arrive least significant first (`CDAB`, `DCBA`).
    pub word_swap: bool,
}

impl Order {
    pub const ABCD: Order = Order {
        byte_swap: false,
        word_swap: false,
    };
    pub const CDAB: Order = Order {
        byte_swap: false,
        word_swap: true,
    };
    pub const BADC: Order = Order {
        byte_swap: true,
        word_swap: false,
    };
    pub const DCBA: Order = Order {
        byte_swap: true,
        word_swap: true,
    };
    pub const NAMES: &'static str =
        "ABCD, CDAB, BADC, DCBA (or AB, BA, ABCDEFGH, GHEFCDAB, BADCFEHG, HGFEDCBA)";

    pub fn parse(s: &str) -> Option<Order> {
        match s {
            "ABCD" | "AB" | "ABCDEFGH" => Some(Order::ABCD),
            "CDAB" | "GHEFCDAB" => Some(Order::CDAB),
            "BADC" | "BA" | "BADCFEHG" => Some(Order::BADC),
            "DCBA" | "HGFEDCBA" => Some(Order::DCBA),
            _ => None,
        }
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.byte_swap, self.word_swap) {
            (false, false) => "ABCD",
            (false, true) => "CDAB",
            (true, false) => "BADC",
            (true, true) => "DCBA",
        })
    }
}

/// Where a Modbus point lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModbusAddress {
    pub table: Table,
    /// Wire (0-based PDU) address, after `address_base` was applied.
    pub address: u16,
    pub wire: WireType,
    pub order: Order,
}

impl ModbusAddress {
    pub fn count(&self) -> u16 {
        if self.table.is_bits() {
            1
        } else {
            self.wire.registers()
        }
    }
}

/// BACnet object types a profile can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    AnalogInput,
    AnalogOutput,
    AnalogValue,
    BinaryInput,
    BinaryOutput,
    BinaryValue,
    MultiStateInput,
    MultiStateOutput,
    MultiStateValue,
}

impl ObjectType {
    pub const NAMES: &'static str = "analog-input, analog-output, analog-value, binary-input, binary-output, binary-value, multi-state-input, multi-state-output, multi-state-value";
    pub fn parse(s: &str) -> Option<ObjectType> {
        Some(match s {
            "analog-input" => ObjectType::AnalogInput,
            "analog-output" => ObjectType::AnalogOutput,
            "analog-value" => ObjectType::AnalogValue,
            "binary-input" => ObjectType::BinaryInput,
            "binary-output" => ObjectType::BinaryOutput,
            "binary-value" => ObjectType::BinaryValue,
            "multi-state-input" => ObjectType::MultiStateInput,
            "multi-state-output" => ObjectType::MultiStateOutput,
            "multi-state-value" => ObjectType::MultiStateValue,
            _ => return None,
        })
    }
    /// The standard BACnet object type number.
    pub fn code(self) -> u16 {
        match self {
            ObjectType::AnalogInput => 0,
            ObjectType::AnalogOutput => 1,
            ObjectType::AnalogValue => 2,
            ObjectType::BinaryInput => 3,
            ObjectType::BinaryOutput => 4,
            ObjectType::BinaryValue => 5,
            ObjectType::MultiStateInput => 13,
            ObjectType::MultiStateOutput => 14,
            ObjectType::MultiStateValue => 19,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::AnalogInput => "analog-input",
            ObjectType::AnalogOutput => "analog-output",
            ObjectType::AnalogValue => "analog-value",
            ObjectType::BinaryInput => "binary-input",
            ObjectType::BinaryOutput => "binary-output",
            ObjectType::BinaryValue => "binary-value",
            ObjectType::MultiStateInput => "multi-state-input",
            ObjectType::MultiStateOutput => "multi-state-output",
            ObjectType::MultiStateValue => "multi-state-value",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BacnetAddress {
    pub object: ObjectType,
    pub instance: u32,
    /// Property name in BACnet's kebab-case spelling (`present-value`).
    pub property: String,
    pub cov: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MqttAddress {
    /// May contain `{device}`, replaced with the device id.
    pub topic: String,
    /// RFC 6901 JSON pointer into the message.
    pub pointer: String,
}

impl MqttAddress {
    pub fn topic_for(&self, device: &str) -> String {
        self.topic.replace("{device}", device)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Modbus(ModbusAddress),
    Bacnet(BacnetAddress),
    Mqtt(MqttAddress),
    Snmp(SnmpAddress),
}

/// Plausibility check of a point.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Health {
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Raw values meaning "no sensor" / "fault" (compared before scaling).
    pub invalid: Vec<f64>,
}

/// Hints for the server's alarm engine; the agent only passes them on.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmHint {
    pub high: Option<f64>,
    pub high_high: Option<f64>,
    pub low: Option<f64>,
    pub low_low: Option<f64>,
    /// For true/false values: the state that is abnormal.
    pub on: Option<bool>,
    /// 1 (most urgent) ..= 3, the operator's incident grades.
    pub priority: Option<u8>,
    pub delay_s: Option<u32>,
}

/// One point of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: String,
    pub role: Role,
    pub labels: BTreeMap<String, String>,
    pub unit: String,
    pub address: Address,
    pub scale: f64,
    pub offset: f64,
    pub invert: bool,
    /// For true/false roles: the raw values meaning true (anything else is false). Empty:
    /// any non-zero value is true. E.g. IF-MIB `ifOperStatus` is up only when 1.
    pub true_values: Vec<i64>,
    pub enum_map: Option<BTreeMap<i64, String>>,
    pub poll: PollClass,
    pub deadband: Option<f64>,
    pub report_every_ms: u64,
    pub health: Option<Health>,
    pub alarm: Option<AlarmHint>,
}

impl Point {
    pub fn modbus(&self) -> Option<&ModbusAddress> {
        match &self.address {
            Address::Modbus(a) => Some(a),
            _ => None,
        }
    }
}
