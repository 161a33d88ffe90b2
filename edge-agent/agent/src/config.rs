//! The agent's TOML configuration: parsing and validation with file, line and field in every
//! error. Pure apart from [`load`], which reads the file (and password files).
//!
//! ```toml
//! site = "pangyo"                 # identifiers: ASCII letters, digits, `-`, `_`, `.`
//! agent = "agent-b1"
//! log_level = "info"              # tracing filter; RUST_LOG overrides it
//! log_format = "text"             # or "json" (one object per line); DCIM_LOG_FORMAT overrides it
//! health_interval_s = 30          # progress/health log and retained state refresh
//!
//! [spool]
//! dir = "/var/lib/dcim-edge-agent/spool"   # relative paths are relative to this file
//! max_mb = 256                    # byte budget of all segment files
//! segment_kb = 4096
//! event_fsync = "always"          # always | interval | never
//! telemetry_fsync = "interval"
//! fsync_interval_ms = 1000
//! reserve_kb = 1024               # kept free for events when the disk fills (at most max_mb/16)
//!
//! [batch]
//! max_samples = 500               # a telemetry batch is spooled when it has this many samples
//! max_delay_ms = 1000             # ... or when its oldest sample is this old
//!
//! [[broker]]                      # one or two (different sites); each must acknowledge
//! name = "center-a"
//! url = "mqtts://mqtt-a.example.net:8883"   # mqtt:// (1883) or mqtts:// (8883)
//! ca_file = "/etc/dcim/ca.pem"    # mqtts: CA bundle (PEM); default: the system's roots
//! cert_file = "/etc/dcim/agent.pem"  # optional client certificate (PEM) ...
//! key_file = "/etc/dcim/agent.key"   # ... and its key (PEM, PKCS#8/PKCS#1/SEC1)
//! username = "agent-b1"
//! password_file = "/etc/dcim/mqtt.pass"  # or password = "..."
//! keep_alive_s = 15
//! backoff_initial_ms = 500
//! backoff_max_ms = 30000
//! inflight = 32                   # unacknowledged spool publishes at once
//!
//! [[device]]
//! id = "cam-1"
//! profile = "../device-profiles/thermal-camera-battery-room.toml"
//! mqtt = { url = "mqtt://10.0.0.20:1883", username = "cam", password = "..." }
//!
//! [[device]]
//! id = "ups-z1"
//! profile = "../device-profiles/ups-modular-3ph.toml"
//! modbus = { tcp = "10.0.0.31:502", unit = 1 }
//! # or RS-485: { rtu = "/dev/ttyUSB0", baud = 9600, unit = 3 }
//! # or a serial gateway: { rtu_tcp = "10.0.0.40:4001", unit = 3 }
//! # (devices with the same rtu / rtu_tcp line share one poller, one request at a time)
//!
//! [[device]]
//! id = "chiller-1"
//! profile = "../device-profiles/chiller-water-cooled.toml"
//! bacnet = { address = "10.0.0.50:47808", instance = 1001 }
//! # optional: bind = "0.0.0.0:47808" (local UDP address; default 0.0.0.0:0, an ephemeral port)
//! # optional: discover = true (find the instance by Who-Is sent to `address`, e.g. the subnet's
//! #           broadcast 10.0.0.255:47808, instead of using `address` as the device's address)
//!
//! [dc09]                          # optional: fire events to the fire authority (SIA DC-09)
//! link_config = "/etc/dcim/dc09-link.toml"  # a dc09-link configuration file
//! outbox_dir = "/var/lib/dcim-edge-agent/dc09-outbox"  # default: <spool.dir>/../dc09-outbox
//!
//! [[rack]]                        # a rack WITHOUT a controller: fire logic runs here
//! id = "rack-07"
//! number = 7                      # DC-09 rack number
//! zone = "battery-room-1"         # room / zone name (in event data)
//! dc09_zone = 1                   # DC-09 zone (area) number, 0..=999
//! cycle_ms = 100                  # control cycle (10..1000)
//! latch_file = "fire/rack-07.latch"  # default: <spool.dir>/../fire-<id>.latch
//! bms_max = "bms-r07/max_cell_temp"  # inputs as "device/point"; omitted = not fitted
//! temp1 = "rio-r07/temp1"
//! temp2 = "rio-r07/temp2"
//! camera = "cam-1/rack07_max"
//! smoke = "rio-r07/smoke"
//! offgas = "rio-r07/offgas"
//! relay = "relay-r07"             # a Modbus [[device]]: the relay module
//! coils = { contactor_open = "do1", blanket_drop = "do2", patch_fire = "do3", agent_release = "do4", coolant_on = "do5", gas_release = "do6", gas_warning = "do7" }
//! # Feedback of each action (a fitted feedback that disagrees with the command is a trouble):
//! feedback = { contactor_open = "rio-r07/di1", blanket_drop = "rio-r07/di2", agent_release = "rio-r07/di4" }
//! reset_key = "rio-r07/reset"        # local panel, read from the I/O module (omitted = not wired)
//! hold = "rio-r07/hold"              # hold-to-abort for the room gas
//! manual_release = "rio-r07/manual"     # the rack's agent release
//! room_gas_release = "rio-r07/gas"   # the room's gas release (gas after the pre-discharge warning)
//! manual_only = "rio-r07/occupied"   # room occupied: no automatic agent or gas
//! authority_key = "rio-r07/authority"  # fire-authority key switch: battery power off
//! thresholds = { stage1_c = 60.0, stage2_c = 68.0, stage3_c = 80.0 }  # optional, °C
//! # Inputs sharing an ADC, a supply, a module or a cable: the same group id (1..=15); they
//! # never corroborate each other (omitted: no shared cause declared). Different ids declare
//! # inputs independent. temp1 and temp2, when both fitted, MUST be declared (either way), and
//! # so must any two temperature inputs when one is the only corroboration of the other: the
//! # rack is refused otherwise (hazard #11.4, firmware/HAZARDS.md F6). Undeclared temperature
//! # inputs read from one device are a warning at start and in --check-config.
//! common_cause = { temp1 = 1, temp2 = 1 }
//!
//! [[controller]]                  # a rack WITH its own controller (firmware/board/rack-controller)
//! device = "rc-08"                # its Modbus [[device]] (tcp or rtu_tcp; profile rack-controller)
//! number = 8                      # DC-09 rack number
//! dc09_zone = 1                   # DC-09 zone (area) number, 0..=999
//! poll_ms = 250                   # how often its state and event log are read (50..10000)
//! cursor_file = "fire/ctl-rc-08.json"  # default: <spool.dir>/../ctl-<device>.json
//!
//! [test_mode]                     # drills: `test_mode` commands sent to cmd/{agent}
//! max_minutes = 120               # a drill ends by itself after this long (1..=1440)
//! state_file = "test-mode.json"   # default: <spool.dir>/../test-mode.json
//!
//! # SNMP devices (`snmp = { ... }`, `labels`, `[[device.link]]`) and `[snmp_traps]`: see the
//! `snmp_config` module.
//!
//! [[device]]                      # built-in signal generator for commissioning and drills
//! id = "selftest"
//! synthetic = { points = 10, period_ms = 1000, event_every = 60 }
//! ```

use dcim_spool::FsyncPolicy;
use serde::Deserialize;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A configuration error with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the error is not tied to a place (e.g. the file cannot be read).
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub site: String,
    pub agent: String,
    pub log_level: String,
    /// `text` (default) or `json` (one object per line for log shippers).
    pub log_format: dcim_service::LogFormat,
    pub health_interval: Duration,
    pub spool: SpoolSettings,
    pub batch: BatchSettings,
    pub brokers: Vec<BrokerConfig>,
    pub devices: Vec<DeviceConfig>,
    /// Racks without a controller whose fire logic runs in the agent.
    pub racks: Vec<RackConfig>,
    /// Fire events forwarded to the fire authority over SIA DC-09.
    pub dc09: Option<Dc09Settings>,
    /// Racks with their own controller whose fire events the agent forwards over DC-09.
    pub controllers: Vec<ControllerConfig>,
    /// Drills (test mode) commanded by the center.
    pub test_mode: TestModeSettings,
    /// SNMP traps and informs (`[snmp_traps]`, see `snmp_config`).
    pub snmp_traps: Option<dcim_snmp::ReceiverSettings>,
}

/// A `[[controller]]`: a rack controller polled for its stage, troubles and event log, whose
/// changes are forwarded over DC-09.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// The `[[device]]` id of the controller.
    pub device: String,
    /// Its Modbus TCP address (Modbus TCP, or RTU frames over TCP when `rtu_over_tcp`).
    pub addr: std::net::SocketAddr,
    pub rtu_over_tcp: bool,
    pub unit: u8,
    /// DC-09 rack number (`number`, 0..=9999).
    pub number: u16,
    /// DC-09 zone / room number (`dc09_zone`, 0..=999).
    pub dc09_zone: u16,
    pub poll: Duration,
    /// Where the forwarding cursor (event-log position and reported state) is kept.
    pub cursor_file: PathBuf,
}

/// The `[test_mode]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestModeSettings {
    /// A drill ends by itself after this long.
    pub max: Duration,
    /// Marks a drill in progress, so that a restart can close it (a drill never resumes).
    pub state_file: PathBuf,
}

/// The `[dc09]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dc09Settings {
    /// A `dc09-link` configuration file (`dc09_link::LinkConfig::from_file`).
    pub link_config: PathBuf,
    /// The transmitter's outbox directory.
    pub outbox_dir: PathBuf,
}

/// A `[[rack]]`: local fire logic fed from device points, driving a relay module's coils.
#[derive(Debug, Clone, PartialEq)]
pub struct RackConfig {
    pub id: String,
    /// Rack number (DC-09 `rack`), from `number`.
    pub number: u32,
    /// Room / zone (DC-09 zone), from `zone`.
    pub zone: String,
    /// DC-09 zone / room number (`dc09_zone`, 0..=999).
    pub dc09_zone: u16,
    /// `(device, point)` of each input; `None` = not fitted.
    pub bms: Option<(String, String)>,
    pub temp1: Option<(String, String)>,
    pub temp2: Option<(String, String)>,
    pub camera: Option<(String, String)>,
    pub smoke: Option<(String, String)>,
    pub offgas: Option<(String, String)>,
    /// Relay module device (a Modbus device of this configuration).
    pub relay: Option<String>,
    /// Action name (`contactor_open`, `blanket_drop`, `patch_fire`, `agent_release`,
    /// `coolant_on`, `gas_release`, `gas_warning`) -> coil point of the relay device.
    pub coils: std::collections::BTreeMap<String, String>,
    /// Feedback input of each action that has one, indexed like `fire_logic::Action::FEEDBACK`
    /// (contactor open, blanket down, patch fired, agent pressure, coolant flow, gas released).
    pub feedback: [Option<(String, String)>; 6],
    /// The rack's local panel, wired to an I/O module the agent polls.
    pub panel: PanelInputs,
    pub cycle: Duration,
    pub latch_file: PathBuf,
    /// Thresholds and timings: the fire logic's defaults.
    pub logic: fire_logic::Config,
}

/// Local panel inputs of a `[[rack]]` (`device/point` each; `None` = not wired).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PanelInputs {
    pub reset_key: Option<(String, String)>,
    pub hold: Option<(String, String)>,
    pub manual_release: Option<(String, String)>,
    /// The room's manual gas release (separate from the rack's agent release).
    pub room_gas_release: Option<(String, String)>,
    pub manual_only: Option<(String, String)>,
    pub authority_key: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
    pub event_fsync: FsyncPolicy,
    pub telemetry_fsync: FsyncPolicy,
    /// Disk space the spool keeps in its `RESERVE` file for events on a full disk.
    pub reserve_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSettings {
    pub max_samples: usize,
    pub max_delay: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub name: String,
    pub endpoint: Endpoint,
    pub ca_file: Option<PathBuf>,
    pub client_auth: Option<(PathBuf, PathBuf)>,
    pub credentials: Option<(String, String)>,
    pub keep_alive: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub inflight: usize,
    /// Past this lag (unacknowledged bytes, or time without any acknowledgement while records
    /// wait) the broker is detached while the other one flows (`uplink::lag`). Default: half
    /// the spool, 15 minutes.
    pub lag_limits: crate::uplink::lag::Limits,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    pub id: String,
    /// Profile file (absolute, or resolved against the config file's directory).
    pub profile: Option<PathBuf>,
    pub connection: Connection,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Connection {
    Mqtt {
        endpoint: Endpoint,
        credentials: Option<(String, String)>,
        ca_file: Option<PathBuf>,
    },
    ModbusTcp {
        addr: std::net::SocketAddr,
        unit: u8,
    },
    /// RTU frames through a TCP serial gateway (several unit ids share it).
    ModbusRtuOverTcp {
        addr: std::net::SocketAddr,
        unit: u8,
    },
    ModbusRtu {
        port: String,
        baud: u32,
        unit: u8,
    },
    Synthetic {
        points: usize,
        period: Duration,
        event_every: u64,
    },
    /// A BACnet/IP device, keyed by its device instance.
    Bacnet(crate::devices::bacnet::BacnetTarget),
    /// An SNMP device (see `snmp_config`).
    Snmp(crate::snmp_config::SnmpDeviceConfig),
}

// ---- raw, as written in the file ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    site: Spanned<String>,
    agent: Spanned<String>,
    #[serde(default = "default_log")]
    log_level: String,
    #[serde(default)]
    log_format: Option<Spanned<String>>,
    #[serde(default = "default_health")]
    health_interval_s: u64,
    spool: Spanned<RawSpool>,
    #[serde(default)]
    batch: Option<RawBatch>,
    #[serde(default)]
    broker: Vec<Spanned<RawBroker>>,
    #[serde(default)]
    device: Vec<Spanned<RawDevice>>,
    #[serde(default)]
    rack: Vec<Spanned<RawRack>>,
    dc09: Option<RawDc09>,
    #[serde(default)]
    controller: Vec<Spanned<RawController>>,
    test_mode: Option<Spanned<RawTestMode>>,
    snmp_traps: Option<Spanned<crate::snmp_config::RawSnmpTraps>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawController {
    device: Spanned<String>,
    #[serde(default = "d_zero")]
    number: Spanned<u32>,
    #[serde(default = "d_zero")]
    dc09_zone: Spanned<u32>,
    #[serde(default = "d_ctl_poll")]
    poll_ms: Spanned<u64>,
    cursor_file: Option<String>,
}

fn d_zero() -> Spanned<u32> {
    Spanned::new(0..0, 0)
}

fn d_ctl_poll() -> Spanned<u64> {
    Spanned::new(0..0, 250)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestMode {
    #[serde(default = "d_test_max")]
    max_minutes: Spanned<u64>,
    state_file: Option<String>,
}

fn d_test_max() -> Spanned<u64> {
    Spanned::new(0..0, 120)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDc09 {
    link_config: String,
    outbox_dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRack {
    id: Spanned<String>,
    #[serde(default)]
    number: u32,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    dc09_zone: u16,
    #[serde(default = "d_cycle")]
    cycle_ms: u64,
    latch_file: Option<String>,
    bms_max: Option<Spanned<String>>,
    temp1: Option<Spanned<String>>,
    temp2: Option<Spanned<String>>,
    camera: Option<Spanned<String>>,
    smoke: Option<Spanned<String>>,
    offgas: Option<Spanned<String>>,
    relay: Option<Spanned<String>>,
    #[serde(default)]
    coils: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    feedback: std::collections::BTreeMap<String, Spanned<String>>,
    reset_key: Option<Spanned<String>>,
    hold: Option<Spanned<String>>,
    manual_release: Option<Spanned<String>>,
    room_gas_release: Option<Spanned<String>>,
    manual_only: Option<Spanned<String>>,
    authority_key: Option<Spanned<String>>,
    thresholds: Option<Spanned<RawThresholds>>,
    common_cause: Option<Spanned<std::collections::BTreeMap<String, u8>>>,
}

/// Per-rack temperature thresholds in °C (the fire logic's defaults otherwise).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    prealarm_c: Option<f64>,
    stage1_c: Option<f64>,
    stage2_c: Option<f64>,
    stage3_c: Option<f64>,
    reset_max_c: Option<f64>,
}

fn d_cycle() -> u64 {
    100
}

fn default_log() -> String {
    "info".into()
}
fn default_health() -> u64 {
    30
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpool {
    dir: Spanned<String>,
    #[serde(default = "d_max_mb")]
    max_mb: Spanned<u64>,
    #[serde(default = "d_segment_kb")]
    segment_kb: Spanned<u64>,
    #[serde(default = "d_always")]
    event_fsync: Spanned<String>,
    #[serde(default = "d_interval")]
    telemetry_fsync: Spanned<String>,
    #[serde(default = "d_fsync_ms")]
    fsync_interval_ms: u64,
    #[serde(default = "d_reserve_kb")]
    reserve_kb: u64,
}

fn d_reserve_kb() -> u64 {
    1024
}

fn d_max_mb() -> Spanned<u64> {
    Spanned::new(0..0, 256)
}
fn d_segment_kb() -> Spanned<u64> {
    Spanned::new(0..0, 4096)
}
fn d_always() -> Spanned<String> {
    Spanned::new(0..0, "always".into())
}
fn d_interval() -> Spanned<String> {
    Spanned::new(0..0, "interval".into())
}
fn d_fsync_ms() -> u64 {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    #[serde(default = "d_batch_samples")]
    max_samples: Spanned<usize>,
    #[serde(default = "d_batch_ms")]
    max_delay_ms: u64,
}

fn d_batch_samples() -> Spanned<usize> {
    Spanned::new(0..0, 500)
}
fn d_batch_ms() -> u64 {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBroker {
    name: Spanned<String>,
    url: Spanned<String>,
    ca_file: Option<String>,
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<Spanned<String>>,
    #[serde(default = "d_keep_alive")]
    keep_alive_s: Spanned<u64>,
    #[serde(default = "d_backoff_initial")]
    backoff_initial_ms: u64,
    #[serde(default = "d_backoff_max")]
    backoff_max_ms: u64,
    #[serde(default = "d_inflight")]
    inflight: Spanned<usize>,
    max_lag_bytes: Option<Spanned<u64>>,
    max_lag_s: Option<Spanned<u64>>,
}

fn d_keep_alive() -> Spanned<u64> {
    Spanned::new(0..0, 15)
}
fn d_backoff_initial() -> u64 {
    500
}
fn d_backoff_max() -> u64 {
    30_000
}
fn d_inflight() -> Spanned<usize> {
    Spanned::new(0..0, 32)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    id: Spanned<String>,
    profile: Option<Spanned<String>>,
    mqtt: Option<Spanned<RawMqttConn>>,
    modbus: Option<Spanned<RawModbusConn>>,
    synthetic: Option<RawSynthetic>,
    bacnet: Option<Spanned<RawBacnetConn>>,
    snmp: Option<Spanned<crate::snmp_config::RawSnmpConn>>,
    #[serde(default)]
    link: Vec<Spanned<crate::snmp_config::RawLink>>,
    labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBacnetConn {
    address: String,
    instance: u32,
    #[serde(default = "d_bacnet_bind")]
    bind: String,
    #[serde(default)]
    discover: bool,
}

fn d_bacnet_bind() -> String {
    "0.0.0.0:0".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqttConn {
    url: Spanned<String>,
    username: Option<String>,
    password: Option<String>,
    ca_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModbusConn {
    tcp: Option<String>,
    rtu: Option<String>,
    rtu_tcp: Option<String>,
    #[serde(default = "d_baud")]
    baud: u32,
    #[serde(default = "d_unit")]
    unit: u8,
}

fn d_baud() -> u32 {
    9600
}
fn d_unit() -> u8 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSynthetic {
    #[serde(default = "d_points")]
    points: usize,
    #[serde(default = "d_period")]
    period_ms: u64,
    #[serde(default)]
    event_every: u64,
}

fn d_points() -> usize {
    10
}
fn d_period() -> u64 {
    1000
}

pub(crate) struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    base: &'a Path,
}

impl Ctx<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        if span.start == 0 && span.end == 0 {
            return 0;
        }
        self.text[..span.start.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    pub(crate) fn err(
        &self,
        span: Range<usize>,
        field: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: self.line(span),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }
}

/// Parse `mqtt://host[:port]` or `mqtts://host[:port]`.
pub fn parse_url(url: &str) -> Result<Endpoint, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(format!(
            "`{url}` is not a broker URL: expected mqtt://host[:port] or mqtts://host[:port]"
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('@') {
        return Err(format!(
            "`{url}`: a broker URL holds only host and port (put credentials in username/password)"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port: u16 = p
                .parse()
                .map_err(|_| format!("`{url}`: port `{p}` is not a number from 1 to 65535"))?;
            if port == 0 {
                return Err(format!("`{url}`: port 0 is not allowed"));
            }
            (h, port)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{url}`: missing host"));
    }
    Ok(Endpoint {
        host: host.to_owned(),
        port,
        tls,
    })
}

fn fsync(
    ctx: &Ctx,
    field: &str,
    v: &Spanned<String>,
    interval_ms: u64,
) -> Result<FsyncPolicy, ConfigError> {
    match v.get_ref().as_str() {
        "always" => Ok(FsyncPolicy::Always),
        "never" => Ok(FsyncPolicy::Never),
        "interval" if interval_ms > 0 => {
            Ok(FsyncPolicy::Interval(Duration::from_millis(interval_ms)))
        }
        "interval" => Err(ctx.err(
            v.span(),
            "spool.fsync_interval_ms",
            "must be greater than 0 for the `interval` policy",
        )),
        other => Err(ctx.err(
            v.span(),
            field,
            format!("`{other}` is not an fsync policy: expected always, interval or never"),
        )),
    }
}

fn identifier(ctx: &Ctx, field: &str, v: &Spanned<String>) -> Result<String, ConfigError> {
    dcim_wire::check_identifier(v.get_ref())
        .map_err(|e| ctx.err(v.span(), field, e.to_string()))?;
    Ok(v.get_ref().clone())
}

/// Parse a configuration file's text. `base` resolves relative paths; password files are read.
pub fn parse(file: &str, text: &str, base: &Path) -> Result<Config, ConfigError> {
    let ctx = Ctx { file, text, base };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let line = if span == (0..0) { 1 } else { ctx.line(span) };
        // Name the key written on that line, when there is one.
        let field = text
            .lines()
            .nth(line.saturating_sub(1))
            .and_then(|l| l.split_once('='))
            .map(|(k, _)| k.trim().to_owned())
            .filter(|k| !k.is_empty() && !k.starts_with('#') && !k.starts_with('['))
            .unwrap_or_default();
        ConfigError {
            file: file.to_owned(),
            line,
            field,
            message: e.message().trim().to_owned(),
        }
    })?;
    let site = identifier(&ctx, "site", &raw.site)?;
    let agent = identifier(&ctx, "agent", &raw.agent)?;

    let sp = raw.spool.get_ref();
    if sp.dir.get_ref().is_empty() {
        return Err(ctx.err(sp.dir.span(), "spool.dir", "must not be empty"));
    }
    if *sp.max_mb.get_ref() == 0 {
        return Err(ctx.err(sp.max_mb.span(), "spool.max_mb", "must be at least 1"));
    }
    let segment_bytes = sp.segment_kb.get_ref() * 1024;
    let max_bytes = sp.max_mb.get_ref() * 1024 * 1024;
    if *sp.segment_kb.get_ref() < 64 || segment_bytes * 4 > max_bytes {
        return Err(ctx.err(
            sp.segment_kb.span(),
            "spool.segment_kb",
            format!(
                "must be at least 64 and at most a quarter of spool.max_mb ({} KiB)",
                max_bytes / 4096
            ),
        ));
    }
    let spool = SpoolSettings {
        dir: ctx.path(sp.dir.get_ref()),
        max_bytes,
        segment_bytes,
        event_fsync: fsync(
            &ctx,
            "spool.event_fsync",
            &sp.event_fsync,
            sp.fsync_interval_ms,
        )?,
        telemetry_fsync: fsync(
            &ctx,
            "spool.telemetry_fsync",
            &sp.telemetry_fsync,
            sp.fsync_interval_ms,
        )?,
        reserve_bytes: sp.reserve_kb.saturating_mul(1024),
    };

    let log_format = match &raw.log_format {
        None => dcim_service::LogFormat::Text,
        Some(f) => dcim_service::LogFormat::parse(f.get_ref()).ok_or_else(|| {
            ctx.err(
                f.span(),
                "log_format",
                format!("`{}`: expected \"text\" or \"json\"", f.get_ref()),
            )
        })?,
    };

    let batch = match raw.batch {
        None => BatchSettings {
            max_samples: 500,
            max_delay: Duration::from_millis(1000),
        },
        Some(b) => {
            if *b.max_samples.get_ref() == 0 {
                return Err(ctx.err(
                    b.max_samples.span(),
                    "batch.max_samples",
                    "must be at least 1",
                ));
            }
            BatchSettings {
                max_samples: *b.max_samples.get_ref(),
                max_delay: Duration::from_millis(b.max_delay_ms.max(1)),
            }
        }
    };

    if raw.broker.is_empty() {
        return Err(ctx.err(
            raw.agent.span(),
            "broker",
            "at least one [[broker]] is required",
        ));
    }
    if raw.broker.len() > 2 {
        return Err(ctx.err(
            raw.broker[2].span(),
            "broker",
            "at most two brokers are supported",
        ));
    }
    let mut brokers = Vec::new();
    for (i, b) in raw.broker.iter().enumerate() {
        let span = b.span();
        let b = b.get_ref();
        let f = |name: &str| format!("broker[{i}].{name}");
        let name = identifier(&ctx, &f("name"), &b.name)?;
        if brokers.iter().any(|x: &BrokerConfig| x.name == name) {
            return Err(ctx.err(b.name.span(), &f("name"), "broker names must be unique"));
        }
        let endpoint =
            parse_url(b.url.get_ref()).map_err(|m| ctx.err(b.url.span(), &f("url"), m))?;
        let client_auth = match (&b.cert_file, &b.key_file) {
            (Some(c), Some(k)) => Some((ctx.path(c.get_ref()), ctx.path(k.get_ref()))),
            (None, None) => None,
            (Some(c), None) => {
                return Err(ctx.err(c.span(), &f("key_file"), "cert_file needs key_file too"));
            }
            (None, Some(k)) => {
                return Err(ctx.err(k.span(), &f("cert_file"), "key_file needs cert_file too"));
            }
        };
        if !endpoint.tls && (client_auth.is_some() || b.ca_file.is_some()) {
            return Err(ctx.err(
                b.url.span(),
                &f("url"),
                "TLS files are set but the URL is not mqtts://",
            ));
        }
        let password = match (&b.password, &b.password_file) {
            (Some(_), Some(pf)) => {
                return Err(ctx.err(
                    pf.span(),
                    &f("password_file"),
                    "set either password or password_file, not both",
                ));
            }
            (Some(p), None) => Some(p.clone()),
            (None, Some(pf)) => {
                let path = ctx.path(pf.get_ref());
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ctx.err(
                        pf.span(),
                        &f("password_file"),
                        format!("{}: {e}", path.display()),
                    )
                })?;
                Some(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            (None, None) => None,
        };
        let credentials = match (&b.username, password) {
            (Some(u), p) => Some((u.clone(), p.unwrap_or_default())),
            (None, Some(_)) => {
                return Err(ctx.err(span, &f("username"), "a password needs a username"));
            }
            (None, None) => None,
        };
        if *b.keep_alive_s.get_ref() < 5 {
            return Err(ctx.err(
                b.keep_alive_s.span(),
                &f("keep_alive_s"),
                "must be at least 5",
            ));
        }
        if *b.inflight.get_ref() == 0 || *b.inflight.get_ref() > 64 {
            return Err(ctx.err(b.inflight.span(), &f("inflight"), "must be from 1 to 64"));
        }
        let max_lag_bytes = match &b.max_lag_bytes {
            Some(v) if *v.get_ref() < 64 * 1024 || *v.get_ref() > spool.max_bytes => {
                return Err(ctx.err(
                    v.span(),
                    &f("max_lag_bytes"),
                    format!(
                        "must be from 65536 to the spool's size ({} bytes)",
                        spool.max_bytes
                    ),
                ));
            }
            Some(v) => *v.get_ref(),
            None => spool.max_bytes / 2,
        };
        let max_lag_s = match &b.max_lag_s {
            Some(v) if *v.get_ref() < 5 => {
                return Err(ctx.err(v.span(), &f("max_lag_s"), "must be at least 5"));
            }
            Some(v) => *v.get_ref(),
            None => 900,
        };
        brokers.push(BrokerConfig {
            name,
            endpoint,
            ca_file: b.ca_file.as_deref().map(|p| ctx.path(p)),
            client_auth,
            credentials,
            keep_alive: Duration::from_secs(*b.keep_alive_s.get_ref()),
            backoff_initial: Duration::from_millis(b.backoff_initial_ms.max(10)),
            backoff_max: Duration::from_millis(b.backoff_max_ms.max(b.backoff_initial_ms).max(10)),
            inflight: *b.inflight.get_ref(),
            lag_limits: crate::uplink::lag::Limits {
                max_bytes: max_lag_bytes,
                max_stuck_ms: (max_lag_s as i64).saturating_mul(1000),
            },
        });
    }

    let mut devices = Vec::new();
    for (i, d) in raw.device.iter().enumerate() {
        let span = d.span();
        let d = d.get_ref();
        let f = |name: &str| format!("device[{i}].{name}");
        let id = identifier(&ctx, &f("id"), &d.id)?;
        if devices.iter().any(|x: &DeviceConfig| x.id == id) {
            return Err(ctx.err(d.id.span(), &f("id"), "device ids must be unique"));
        }
        let kinds = [
            d.mqtt.is_some(),
            d.modbus.is_some(),
            d.synthetic.is_some(),
            d.bacnet.is_some(),
            d.snmp.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if kinds != 1 {
            return Err(ctx.err(
                span,
                &f("mqtt|modbus|bacnet|snmp|synthetic"),
                "a device needs exactly one connection: mqtt, modbus, bacnet, snmp or synthetic",
            ));
        }
        if d.snmp.is_none() && (!d.link.is_empty() || d.labels.is_some()) {
            return Err(ctx.err(
                span,
                &f("link"),
                "links and labels belong to snmp devices only",
            ));
        }
        let connection = if let Some(sn) = &d.snmp {
            Connection::Snmp(crate::snmp_config::device(
                &ctx, &f, sn, &d.link, &d.labels,
            )?)
        } else if let Some(m) = &d.mqtt {
            let mspan = m.span();
            let m = m.get_ref();
            let endpoint =
                parse_url(m.url.get_ref()).map_err(|e| ctx.err(m.url.span(), &f("mqtt.url"), e))?;
            let credentials = match (&m.username, &m.password) {
                (Some(u), p) => Some((u.clone(), p.clone().unwrap_or_default())),
                (None, Some(_)) => {
                    return Err(ctx.err(mspan, &f("mqtt.username"), "a password needs a username"));
                }
                (None, None) => None,
            };
            Connection::Mqtt {
                endpoint,
                credentials,
                ca_file: m.ca_file.as_deref().map(|p| ctx.path(p)),
            }
        } else if let Some(m) = &d.modbus {
            let mspan = m.span();
            let m = m.get_ref();
            let addr = |a: &str| -> Result<std::net::SocketAddr, ConfigError> {
                a.parse().map_err(|_| {
                    ctx.err(
                        mspan.clone(),
                        &f("modbus"),
                        format!("`{a}` is not an address: expected IP:port, e.g. 10.0.0.31:502"),
                    )
                })
            };
            match (&m.tcp, &m.rtu, &m.rtu_tcp) {
                (Some(a), None, None) => Connection::ModbusTcp {
                    addr: addr(a)?,
                    unit: m.unit,
                },
                (None, None, Some(a)) => Connection::ModbusRtuOverTcp {
                    addr: addr(a)?,
                    unit: m.unit,
                },
                (None, Some(port), None) => Connection::ModbusRtu {
                    port: port.clone(),
                    baud: m.baud,
                    unit: m.unit,
                },
                _ => {
                    return Err(ctx.err(
                        mspan,
                        &f("modbus"),
                        "set exactly one of tcp = \"IP:port\", rtu_tcp = \"IP:port\" (serial gateway) or rtu = \"/dev/tty...\"",
                    ));
                }
            }
        } else if let Some(b) = &d.bacnet {
            let bspan = b.span();
            let b = b.get_ref();
            let addr = |field: &str, a: &str| -> Result<std::net::SocketAddr, ConfigError> {
                a.parse().map_err(|_| {
                    ctx.err(
                        bspan.clone(),
                        &f(field),
                        format!("`{a}` is not an address: expected IP:port, e.g. 10.0.0.50:47808"),
                    )
                })
            };
            if b.instance > 0x3F_FFFE {
                return Err(ctx.err(
                    bspan,
                    &f("bacnet.instance"),
                    "a device instance is from 0 to 4194302",
                ));
            }
            Connection::Bacnet(crate::devices::bacnet::BacnetTarget {
                address: addr("bacnet.address", &b.address)?,
                instance: b.instance,
                bind: addr("bacnet.bind", &b.bind)?,
                discover: b.discover,
            })
        } else if let Some(s) = &d.synthetic {
            if s.points == 0 || s.period_ms == 0 {
                return Err(ctx.err(
                    span,
                    &f("synthetic"),
                    "points and period_ms must be at least 1",
                ));
            }
            Connection::Synthetic {
                points: s.points,
                period: Duration::from_millis(s.period_ms),
                event_every: s.event_every,
            }
        } else {
            unreachable_kind()?
        };
        let needs_profile = !matches!(connection, Connection::Synthetic { .. });
        let profile = match (&d.profile, needs_profile) {
            (Some(p), _) => Some(ctx.path(p.get_ref())),
            (None, true) => {
                return Err(ctx.err(span, &f("profile"), "this device needs a profile file"));
            }
            (None, false) => None,
        };
        devices.push(DeviceConfig {
            id,
            profile,
            connection,
        });
    }

    let mut racks: Vec<RackConfig> = Vec::new();
    for (i, r) in raw.rack.iter().enumerate() {
        let span = r.span();
        let r = r.get_ref();
        let f = |name: &str| format!("rack[{i}].{name}");
        let id = identifier(&ctx, &f("id"), &r.id)?;
        if racks.iter().any(|x| x.id == id) || devices.iter().any(|d| d.id == id) {
            return Err(ctx.err(
                r.id.span(),
                &f("id"),
                "rack ids must be unique and differ from device ids",
            ));
        }
        let point = |name: &str,
                     v: &Option<Spanned<String>>|
         -> Result<Option<(String, String)>, ConfigError> {
            let Some(v) = v else { return Ok(None) };
            let (d, p) = v.get_ref().split_once('/').ok_or_else(|| {
                ctx.err(
                    v.span(),
                    &f(name),
                    format!("`{}` is not `device/point`", v.get_ref()),
                )
            })?;
            if !devices.iter().any(|x| x.id == d) {
                return Err(ctx.err(v.span(), &f(name), format!("no [[device]] `{d}`")));
            }
            Ok(Some((d.to_owned(), p.to_owned())))
        };
        let relay = match &r.relay {
            None => None,
            Some(v) => match devices.iter().find(|x| &x.id == v.get_ref()) {
                Some(d)
                    if matches!(
                        d.connection,
                        Connection::ModbusTcp { .. }
                            | Connection::ModbusRtu { .. }
                            | Connection::ModbusRtuOverTcp { .. }
                    ) =>
                {
                    Some(v.get_ref().clone())
                }
                _ => {
                    return Err(ctx.err(
                        v.span(),
                        &f("relay"),
                        format!("`{}` is not a Modbus [[device]] of this file", v.get_ref()),
                    ));
                }
            },
        };
        const ACTIONS: [&str; 7] = [
            "contactor_open",
            "blanket_drop",
            "patch_fire",
            "agent_release",
            "coolant_on",
            "gas_release",
            "gas_warning",
        ];
        if let Some(k) = r.coils.keys().find(|k| !ACTIONS.contains(&k.as_str())) {
            return Err(ctx.err(
                span,
                &f("coils"),
                format!(
                    "`{k}` is not an output: expected one of {}",
                    ACTIONS.join(", ")
                ),
            ));
        }
        if !r.coils.is_empty() && relay.is_none() {
            return Err(ctx.err(span, &f("relay"), "coils need a relay device"));
        }
        if r.dc09_zone > 999 || r.number > 9999 {
            return Err(ctx.err(
                span,
                &f("dc09_zone|number"),
                "dc09_zone is 0..=999 and number 0..=9999 (DC-09 area and unit)",
            ));
        }
        if r.cycle_ms < 10 || r.cycle_ms > 1000 {
            return Err(ctx.err(span, &f("cycle_ms"), "must be from 10 to 1000"));
        }
        let mut feedback: [Option<(String, String)>; 6] = Default::default();
        for (name, v) in &r.feedback {
            let Some(i) = fire_logic::Action::FEEDBACK
                .iter()
                .position(|a| a.name() == name)
            else {
                let names: Vec<&str> = fire_logic::Action::FEEDBACK
                    .iter()
                    .map(|a| a.name())
                    .collect();
                return Err(ctx.err(
                    v.span(),
                    &f("feedback"),
                    format!(
                        "`{name}` has no feedback input: expected one of {}",
                        names.join(", ")
                    ),
                ));
            };
            if let Some(slot) = feedback.get_mut(i) {
                *slot = point(&format!("feedback.{name}"), &Some(v.clone()))?;
            }
        }
        let panel = PanelInputs {
            reset_key: point("reset_key", &r.reset_key)?,
            hold: point("hold", &r.hold)?,
            manual_release: point("manual_release", &r.manual_release)?,
            room_gas_release: point("room_gas_release", &r.room_gas_release)?,
            manual_only: point("manual_only", &r.manual_only)?,
            authority_key: point("authority_key", &r.authority_key)?,
        };
        let mut logic = fire_logic::Config::default();
        if let Some(t) = &r.thresholds {
            let deci = |field: &str, c: Option<f64>, into: &mut i32| -> Result<(), ConfigError> {
                let Some(c) = c else { return Ok(()) };
                if !c.is_finite() || !(0.0..=200.0).contains(&c) {
                    return Err(ctx.err(
                        t.span(),
                        &f(&format!("thresholds.{field}")),
                        format!("{c} is not a temperature from 0 to 200 °C"),
                    ));
                }
                *into = (c * 10.0).round() as i32;
                Ok(())
            };
            let tv = t.get_ref();
            deci("prealarm_c", tv.prealarm_c, &mut logic.prealarm)?;
            deci("stage1_c", tv.stage1_c, &mut logic.stage1)?;
            deci("stage2_c", tv.stage2_c, &mut logic.stage2)?;
            deci("stage3_c", tv.stage3_c, &mut logic.stage3)?;
            deci("reset_max_c", tv.reset_max_c, &mut logic.reset_max)?;
            if let Err(e) = logic.validate() {
                return Err(ctx.err(
                    t.span(),
                    &f(&format!("thresholds ({})", e.field)),
                    e.reason.to_string(),
                ));
            }
        }
        if let Some(groups) = &r.common_cause {
            // The fire logic's source order.
            const INPUTS: [&str; 6] = ["bms_max", "temp1", "temp2", "camera", "smoke", "offgas"];
            for (name, id) in groups.get_ref() {
                let Some(i) = INPUTS.iter().position(|n| n == name) else {
                    return Err(ctx.err(
                        groups.span(),
                        &f("common_cause"),
                        format!(
                            "`{name}` is not an input: expected one of {}",
                            INPUTS.join(", ")
                        ),
                    ));
                };
                if *id > fire_logic::MAX_COMMON_CAUSE_GROUP {
                    return Err(ctx.err(
                        groups.span(),
                        &f("common_cause"),
                        format!("group {id} of `{name}`: expected 0 (none) to 15"),
                    ));
                }
                if let Some(slot) = logic.common_cause.get_mut(i) {
                    *slot = *id;
                }
            }
        }
        let rack = RackConfig {
            feedback,
            panel,
            bms: point("bms_max", &r.bms_max)?,
            temp1: point("temp1", &r.temp1)?,
            temp2: point("temp2", &r.temp2)?,
            camera: point("camera", &r.camera)?,
            smoke: point("smoke", &r.smoke)?,
            offgas: point("offgas", &r.offgas)?,
            latch_file: match &r.latch_file {
                Some(p) => ctx.path(p),
                None => spool.dir.join("..").join(format!("fire-{id}.latch")),
            },
            id,
            number: r.number,
            zone: r.zone.clone(),
            dc09_zone: r.dc09_zone,
            relay,
            coils: r.coils.clone(),
            cycle: Duration::from_millis(r.cycle_ms),
            logic,
        };
        if [&rack.bms, &rack.temp1, &rack.temp2]
            .iter()
            .all(|x| x.is_none())
        {
            return Err(ctx.err(
                span,
                &f("bms_max|temp1|temp2"),
                "a rack needs at least one temperature input",
            ));
        }
        // The logic as it will run (fitted = the configured inputs), checked now rather than
        // when the rack's task starts: a rack whose logic cannot run is a configuration error.
        let cause_span = r.common_cause.as_ref().map_or(span.clone(), |g| g.span());
        let logic = rack_logic(&rack);
        if let Err(e) = logic.validate() {
            return Err(ctx.err(
                cause_span,
                &f(e.field),
                format!(
                    "{}; the rack's fitted inputs are the ones configured here",
                    e.reason
                ),
            ));
        }
        // Hazard #11.4: two temperature inputs on one ADC, supply, module or cable drift
        // together and, undeclared, corroborate each other into an agent release with no fire.
        // The rack transmitters (temp1, temp2) must be declared; so must any pair that would
        // be the only corroboration one of its inputs has.
        if let Some(p) = logic
            .undeclared_pairs()
            .find(|p| p.only_corroboration || is_partner(p))
        {
            let (a, b) = (input_name(p.a), input_name(p.b));
            return Err(ctx.err(
                cause_span,
                &f("common_cause"),
                format!(
                    "{a} and {b} could corroborate each other{only}, but nothing declares \
                     whether they share an ADC, a supply, a module or a cable (two inputs \
                     drifting together would then release agent with no fire): declare \
                     `common_cause = {{ {a} = 1, {b} = 1 }}` when they share one (stage 2 \
                     and later then need an independent input: smoke, off-gas or another \
                     temperature), or `common_cause = {{ {a} = 1, {b} = 2 }}` when they are \
                     independent",
                    only = if p.only_corroboration {
                        " and for one of them the other is the only possible corroboration"
                    } else {
                        ""
                    },
                ),
            ));
        }
        racks.push(rack);
    }

    let dc09 = raw.dc09.as_ref().map(|d| Dc09Settings {
        link_config: ctx.path(&d.link_config),
        outbox_dir: match &d.outbox_dir {
            Some(p) => ctx.path(p),
            None => spool.dir.join("..").join("dc09-outbox"),
        },
    });

    let mut controllers: Vec<ControllerConfig> = Vec::new();
    for (i, c) in raw.controller.iter().enumerate() {
        let span = c.span();
        let c = c.get_ref();
        let f = |name: &str| format!("controller[{i}].{name}");
        let id = c.device.get_ref();
        let Some(dev) = devices.iter().find(|d| &d.id == id) else {
            return Err(ctx.err(
                c.device.span(),
                &f("device"),
                format!("no [[device]] `{id}`"),
            ));
        };
        let (addr, rtu_over_tcp, unit) = match &dev.connection {
            Connection::ModbusTcp { addr, unit } => (*addr, false, *unit),
            Connection::ModbusRtuOverTcp { addr, unit } => (*addr, true, *unit),
            _ => {
                return Err(ctx.err(
                    c.device.span(),
                    &f("device"),
                    format!(
                        "`{id}` must be a Modbus TCP (`tcp`) or RTU-over-TCP (`rtu_tcp`) device: \
                         the event log is read over a connection of its own"
                    ),
                ));
            }
        };
        if controllers.iter().any(|x| &x.device == id) {
            return Err(ctx.err(
                c.device.span(),
                &f("device"),
                format!("controller `{id}` is listed twice"),
            ));
        }
        let number = *c.number.get_ref();
        if number > 9999 {
            return Err(ctx.err(
                c.number.span(),
                &f("number"),
                "expected 0..=9999 (DC-09 unit)",
            ));
        }
        let zone = *c.dc09_zone.get_ref();
        if zone > 999 {
            return Err(ctx.err(
                c.dc09_zone.span(),
                &f("dc09_zone"),
                "expected 0..=999 (DC-09 area)",
            ));
        }
        let poll = *c.poll_ms.get_ref();
        if !(50..=10_000).contains(&poll) {
            let sp = if c.poll_ms.span() == (0..0) {
                span.clone()
            } else {
                c.poll_ms.span()
            };
            return Err(ctx.err(sp, &f("poll_ms"), "expected 50..=10000 ms"));
        }
        controllers.push(ControllerConfig {
            device: id.clone(),
            addr,
            rtu_over_tcp,
            unit,
            number: number as u16,
            dc09_zone: zone as u16,
            poll: Duration::from_millis(poll),
            cursor_file: match &c.cursor_file {
                Some(p) => ctx.path(p),
                None => spool.dir.join("..").join(format!("ctl-{id}.json")),
            },
        });
    }
    if !controllers.is_empty() && dc09.is_none() {
        let span = raw.controller[0].span();
        return Err(ctx.err(
            span,
            "controller",
            "[[controller]] forwards fire events over DC-09: a [dc09] section is required",
        ));
    }

    let test_mode = match &raw.test_mode {
        None => TestModeSettings {
            max: Duration::from_secs(120 * 60),
            state_file: spool.dir.join("..").join("test-mode.json"),
        },
        Some(t) => {
            let t = t.get_ref();
            let m = *t.max_minutes.get_ref();
            if !(1..=1440).contains(&m) {
                return Err(ctx.err(
                    t.max_minutes.span(),
                    "test_mode.max_minutes",
                    "expected 1..=1440 (a drill must end by itself within a day)",
                ));
            }
            TestModeSettings {
                max: Duration::from_secs(m * 60),
                state_file: match &t.state_file {
                    Some(p) => ctx.path(p),
                    None => spool.dir.join("..").join("test-mode.json"),
                },
            }
        }
    };

    let snmp_traps = match &raw.snmp_traps {
        Some(t) => Some(crate::snmp_config::traps(&ctx, t, &agent, &spool.dir)?),
        None => None,
    };
    Ok(Config {
        snmp_traps,
        dc09,
        racks,
        controllers,
        test_mode,
        site,
        agent,
        log_level: raw.log_level,
        log_format,
        health_interval: Duration::from_secs(raw.health_interval_s.max(1)),
        spool,
        batch,
        brokers,
        devices,
    })
}

fn unreachable_kind() -> Result<Connection, ConfigError> {
    Err(ConfigError {
        file: String::new(),
        line: 0,
        field: String::new(),
        message: "internal: device kind".into(),
    })
}

/// Read and parse a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        field: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&file, &text, base)
}

/// The fire logic configuration of a `[[rack]]` as its task runs it: the rack's thresholds and
/// common-cause groups, fitted inputs = the configured ones.
pub fn rack_logic(r: &RackConfig) -> fire_logic::Config {
    let mut lc = r.logic;
    lc.fitted.bms = r.bms.is_some();
    lc.fitted.rack_temp1 = r.temp1.is_some();
    lc.fitted.rack_temp2 = r.temp2.is_some();
    lc.fitted.camera = r.camera.is_some();
    lc.fitted.smoke = r.smoke.is_some();
    lc.fitted.offgas = r.offgas.is_some();
    lc.fitted.feedback = r.feedback.each_ref().map(Option::is_some);
    lc
}

/// The `[[rack]]` key of a fire-logic source (as in `common_cause`).
fn input_name(id: fire_logic::SourceId) -> &'static str {
    use fire_logic::SourceId as S;
    match id {
        S::Bms => "bms_max",
        S::RackTemp1 => "temp1",
        S::RackTemp2 => "temp2",
        S::Camera => "camera",
        S::Smoke => "smoke",
        S::OffGas => "offgas",
    }
}

fn is_partner(p: &fire_logic::UndeclaredPair) -> bool {
    p.a == fire_logic::SourceId::RackTemp1 && p.b == fire_logic::SourceId::RackTemp2
}

/// Warnings about the configuration that do not stop the agent, to be shown loudly at start
/// and by `--check-config`: temperature inputs of a `[[rack]]` read from the same device (its
/// module, converter, supply and cable) that may corroborate each other with no `common_cause`
/// declaration (the pairs that must be declared are refused by [`parse`] already).
pub fn warnings(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for r in &cfg.racks {
        let point = |id: fire_logic::SourceId| {
            use fire_logic::SourceId as S;
            match id {
                S::Bms => r.bms.as_ref(),
                S::RackTemp1 => r.temp1.as_ref(),
                S::RackTemp2 => r.temp2.as_ref(),
                S::Camera => r.camera.as_ref(),
                S::Smoke => r.smoke.as_ref(),
                S::OffGas => r.offgas.as_ref(),
            }
        };
        for p in rack_logic(r).undeclared_pairs() {
            let (Some(pa), Some(pb)) = (point(p.a), point(p.b)) else {
                continue;
            };
            if pa.0 == pb.0 {
                let (a, b) = (input_name(p.a), input_name(p.b));
                out.push(format!(
                    "rack `{}`: {a} and {b} are both read from device `{}` and may corroborate \
                     each other with no common_cause declaration: if they share its converter, \
                     supply or cable, declare `common_cause = {{ {a} = 1, {b} = 1 }}` (a fault \
                     of the device would otherwise release agent with no fire); if they are \
                     independent, `common_cause = {{ {a} = 1, {b} = 2 }}`",
                    r.id, pa.0
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
site = "pangyo"
agent = "agent-b1"

[spool]
dir = "spool"
max_mb = 64
telemetry_fsync = "never"

[[broker]]
name = "a"
url = "mqtt://127.0.0.1:1883"
username = "u"
password = "p"

[[broker]]
name = "b"
url = "mqtts://center-b.example"
ca_file = "/etc/ca.pem"

[[device]]
id = "cam-1"
profile = "profiles/cam.toml"
mqtt = { url = "mqtt://10.0.0.2" }

[[device]]
id = "ups-1"
profile = "/p/ups.toml"
modbus = { tcp = "10.0.0.3:502", unit = 2 }

[[device]]
id = "gen"
synthetic = { points = 3, period_ms = 50, event_every = 5 }
"#;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse("agent.toml", text, Path::new("/etc/dcim"))
    }

    #[test]
    fn a_full_config_parses_with_defaults() {
        let c = parse_str(GOOD).unwrap();
        assert_eq!(c.site, "pangyo");
        assert_eq!(c.spool.dir, PathBuf::from("/etc/dcim/spool"));
        assert_eq!(c.spool.max_bytes, 64 << 20);
        assert_eq!(c.spool.event_fsync, FsyncPolicy::Always);
        assert_eq!(c.spool.telemetry_fsync, FsyncPolicy::Never);
        assert_eq!(c.brokers.len(), 2);
        assert_eq!(
            c.brokers[0].credentials,
            Some(("u".to_string(), "p".to_string()))
        );
        assert_eq!(
            c.brokers[1].endpoint,
            Endpoint {
                host: "center-b.example".into(),
                port: 8883,
                tls: true
            }
        );
        assert_eq!(
            c.devices[0].profile,
            Some(PathBuf::from("/etc/dcim/profiles/cam.toml"))
        );
        assert_eq!(
            c.devices[1].connection,
            Connection::ModbusTcp {
                addr: "10.0.0.3:502".parse().unwrap(),
                unit: 2
            }
        );
        assert_eq!(c.batch.max_samples, 500);
    }

    fn err_of(text: &str) -> ConfigError {
        parse_str(text).unwrap_err()
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let e = err_of(&GOOD.replace("agent-b1", "agent b1"));
        assert_eq!((e.line, e.field.as_str()), (3, "agent"));
        let e = err_of(&GOOD.replace("mqtt://127.0.0.1:1883", "http://x"));
        assert_eq!((e.line, e.field.as_str()), (12, "broker[0].url"));
        assert!(
            e.to_string()
                .starts_with("agent.toml:12: field `broker[0].url`: "),
            "{e}"
        );
        let e = err_of(&GOOD.replace(
            "telemetry_fsync = \"never\"",
            "telemetry_fsync = \"sometimes\"",
        ));
        assert_eq!((e.line, e.field.as_str()), (8, "spool.telemetry_fsync"));
        let e = err_of(&GOOD.replace("unit = 2 }", "unit = 2, rtu = \"/dev/ttyS0\" }"));
        assert_eq!(e.field, "device[1].modbus");
        assert_eq!(e.line, 29);
    }

    #[test]
    fn unknown_fields_and_type_errors_are_located() {
        let e = err_of(&GOOD.replace("max_mb = 64", "max_mb = 64\nmax_gb = 1"));
        assert_eq!(e.line, 8, "{e}");
        assert!(e.message.contains("max_gb"), "{e}");
        let e = err_of(&GOOD.replace("max_mb = 64", "max_mb = \"lots\""));
        assert_eq!(e.line, 7, "{e}");
        assert_eq!(e.field, "max_mb");
    }

    #[test]
    fn structural_mistakes_are_rejected() {
        let no_broker = GOOD.split("[[broker]]").next().unwrap().to_string();
        assert_eq!(err_of(&no_broker).field, "broker");
        let e = err_of(&GOOD.replace("mqtt = { url = \"mqtt://10.0.0.2\" }", ""));
        assert_eq!(e.field, "device[0].mqtt|modbus|bacnet|snmp|synthetic");
        let e = err_of(&GOOD.replace(
            "synthetic = {",
            "bacnet = { address = \"x\", instance = 1 }\nsynthetic = {",
        ));
        assert_eq!(e.field, "device[2].mqtt|modbus|bacnet|snmp|synthetic");
        let e = err_of(&GOOD.replace(
            "synthetic = { points = 3, period_ms = 50, event_every = 5 }",
            "profile = \"p.toml\"\nbacnet = { address = \"10.0.0.5\", instance = 7 }",
        ));
        assert_eq!(e.field, "device[2].bacnet.address");
        let c = parse_str(&GOOD.replace(
            "synthetic = { points = 3, period_ms = 50, event_every = 5 }",
            "profile = \"p.toml\"\nbacnet = { address = \"10.0.0.5:47808\", instance = 7 }",
        ))
        .unwrap();
        assert_eq!(
            c.devices[2].connection,
            Connection::Bacnet(crate::devices::bacnet::BacnetTarget {
                address: "10.0.0.5:47808".parse().unwrap(),
                instance: 7,
                bind: "0.0.0.0:0".parse().unwrap(),
                discover: false,
            })
        );
        let e = err_of(&GOOD.replace("id = \"ups-1\"", "id = \"cam-1\""));
        assert_eq!(e.field, "device[1].id");
        let e = err_of(&GOOD.replace("ca_file = \"/etc/ca.pem\"", "cert_file = \"/c.pem\""));
        assert_eq!(e.field, "broker[1].key_file");
        let e = err_of(&GOOD.replace(
            "url = \"mqtts://center-b.example\"",
            "url = \"mqtt://center-b.example\"",
        ));
        assert_eq!(e.field, "broker[1].url");
    }

    #[test]
    fn the_example_file_is_valid_and_its_profiles_load() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/agent.example.toml"));
        let c = load(path).unwrap();
        assert_eq!(c.brokers.len(), 2);
        assert_eq!(c.devices.len(), 10);
        assert!(c.snmp_traps.is_some());
        assert_eq!(c.racks.len(), 1);
        assert_eq!(
            c.racks[0].bms,
            Some(("bms-r02".to_string(), "cell_temp_max".to_string()))
        );
        for d in &c.devices {
            let drv = crate::devices::prepare(d);
            assert!(drv.is_ok(), "{}: {:?}", d.id, drv.err());
        }
        let drivers: Vec<_> = c
            .devices
            .iter()
            .map(|d| crate::devices::prepare(d).unwrap())
            .collect();
        // The two BMS on /dev/ttyUSB0 share one poller.
        assert_eq!(crate::devices::group_lines(drivers).len(), 9);
    }

    #[test]
    fn controllers_and_test_mode_are_checked() {
        let c = parse_str(GOOD).unwrap();
        assert!(c.controllers.is_empty());
        assert_eq!(c.test_mode.max, Duration::from_secs(7200));
        assert_eq!(
            c.test_mode.state_file,
            Path::new("/etc/dcim/spool/../test-mode.json")
        );
        let dc09 = "\n[dc09]\nlink_config = \"link.toml\"\n";
        let ctl = "\n[[controller]]\ndevice = \"ups-1\"\nnumber = 8\ndc09_zone = 2\n";
        let c = parse_str(&format!("{GOOD}{dc09}{ctl}")).unwrap();
        let k = &c.controllers[0];
        assert_eq!(
            (k.number, k.dc09_zone, k.unit, k.rtu_over_tcp, k.poll),
            (8, 2, 2, false, Duration::from_millis(250))
        );
        assert_eq!(k.addr, "10.0.0.3:502".parse().unwrap());
        assert_eq!(
            k.cursor_file,
            Path::new("/etc/dcim/spool/../ctl-ups-1.json")
        );
        let e = err_of(&format!("{GOOD}{ctl}"));
        assert!(e.message.contains("[dc09]"), "{e}");
        let e = err_of(&format!("{GOOD}{dc09}{}", ctl.replace("ups-1", "cam-1")));
        assert_eq!(e.field, "controller[0].device");
        assert!(e.message.contains("Modbus TCP"), "{e}");
        let e = err_of(&format!("{GOOD}{dc09}{}", ctl.replace("ups-1", "nope")));
        assert!(e.message.contains("no [[device]]"), "{e}");
        let e = err_of(&format!("{GOOD}{dc09}{ctl}poll_ms = 5\n"));
        assert_eq!(e.field, "controller[0].poll_ms");
        let e = err_of(&format!("{GOOD}{dc09}{}", ctl.replace("= 8", "= 10000")));
        assert_eq!(e.field, "controller[0].number");
        let e = err_of(&format!("{GOOD}{dc09}{ctl}{ctl}"));
        assert!(e.message.contains("twice"), "{e}");
        let c = parse_str(&format!("{GOOD}\n[test_mode]\nmax_minutes = 5\n")).unwrap();
        assert_eq!(c.test_mode.max, Duration::from_secs(300));
        let e = err_of(&format!("{GOOD}\n[test_mode]\nmax_minutes = 0\n"));
        assert_eq!(e.field, "test_mode.max_minutes");
    }

    #[test]
    fn racks_are_checked() {
        let rack = "\n[[rack]]\nid = \"r1\"\nnumber = 1\nzone = \"z\"\ntemp1 = \"ups-1/t\"\nsmoke = \"ups-1/s\"\nrelay = \"ups-1\"\ncoils = { contactor_open = \"c1\" }\n";
        let c = parse_str(&format!("{GOOD}{rack}")).unwrap();
        assert_eq!(c.racks[0].coils["contactor_open"], "c1");
        assert_eq!(c.racks[0].cycle, Duration::from_millis(100));
        let e = err_of(&format!("{GOOD}{}", rack.replace("ups-1/t", "nope/t")));
        assert_eq!(e.field, "rack[0].temp1");
        let e = err_of(&format!(
            "{GOOD}{}",
            rack.replace("relay = \"ups-1\"", "relay = \"cam-1\"")
        ));
        assert_eq!(e.field, "rack[0].relay");
        let e = err_of(&format!(
            "{GOOD}{}",
            rack.replace("contactor_open", "open_sesame")
        ));
        assert_eq!(e.field, "rack[0].coils");
        let e = err_of(&format!(
            "{GOOD}{}",
            rack.replace("temp1 = \"ups-1/t\"", "")
        ));
        assert_eq!(e.field, "rack[0].bms_max|temp1|temp2");
    }

    #[test]
    fn rack_panel_feedback_and_thresholds() {
        let rack = "\n[[rack]]\nid = \"r1\"\ntemp1 = \"ups-1/t\"\nsmoke = \"ups-1/s\"\nfeedback = { contactor_open = \"ups-1/fb\" }\nreset_key = \"ups-1/key\"\nauthority_key = \"ups-1/auth\"\nthresholds = { stage1_c = 55.0, stage2_c = 66.5 }\n";
        let c = parse_str(&format!("{GOOD}{rack}")).unwrap();
        let r = &c.racks[0];
        assert_eq!(r.feedback[0], Some(("ups-1".into(), "fb".into())));
        assert!(r.feedback[1..].iter().all(Option::is_none));
        assert_eq!(r.panel.reset_key, Some(("ups-1".into(), "key".into())));
        assert_eq!(r.panel.authority_key, Some(("ups-1".into(), "auth".into())));
        assert_eq!(r.panel.hold, None);
        assert_eq!((r.logic.stage1, r.logic.stage2), (550, 665));
        assert_eq!(r.logic.stage3, fire_logic::Config::default().stage3);
        // The gas warning has no feedback input.
        let e = err_of(&format!(
            "{GOOD}{}",
            rack.replace("contactor_open = ", "gas_warning = ")
        ));
        assert_eq!(e.field, "rack[0].feedback");
        let e = err_of(&format!("{GOOD}{}", rack.replace("ups-1/key", "nope/key")));
        assert_eq!(e.field, "rack[0].reset_key");
        // Thresholds out of order are refused by the logic's own validation, never clamped.
        let e = err_of(&format!("{GOOD}{}", rack.replace("66.5", "50.0")));
        assert!(e.field.starts_with("rack[0].thresholds"), "{}", e.field);
        let e = err_of(&format!("{GOOD}{}", rack.replace("55.0", "900.0")));
        assert_eq!(e.field, "rack[0].thresholds.stage1_c");
    }

    #[test]
    fn rack_room_gas_release_and_common_cause_groups() {
        // Hazard: two inputs read through one I/O module "corroborating" each other.
        let rack = "\n[[rack]]\nid = \"r1\"\ntemp1 = \"ups-1/t\"\ntemp2 = \"ups-1/t2\"\nsmoke = \"ups-1/s\"\nroom_gas_release = \"ups-1/gas\"\ncommon_cause = { temp1 = 1, temp2 = 1 }\n";
        let c = parse_str(&format!("{GOOD}{rack}")).unwrap();
        let r = &c.racks[0];
        assert_eq!(
            r.panel.room_gas_release,
            Some(("ups-1".into(), "gas".into()))
        );
        assert_eq!(r.logic.common_cause, [0, 1, 1, 0, 0, 0]);
        let e = err_of(&format!("{GOOD}{}", rack.replace("temp2 = 1", "adc = 1")));
        assert_eq!(e.field, "rack[0].common_cause");
        let e = err_of(&format!(
            "{GOOD}{}",
            rack.replace("temp2 = 1", "temp2 = 16")
        ));
        assert_eq!(e.field, "rack[0].common_cause");
    }

    #[test]
    fn undeclared_rack_transmitters_are_refused_and_one_device_pairs_warned() {
        // Hazard #11.4: temp1 and temp2 on one I/O module drift to 87 C together (reference
        // sag) and, with no declaration, corroborate each other: agent with no fire.
        let base = "\n[[rack]]\nid = \"r1\"\ntemp1 = \"ups-1/t\"\ntemp2 = \"ups-1/t2\"\n";
        // Their only corroboration is each other: refused, and the message says what to write.
        let e = err_of(&format!("{GOOD}{base}"));
        assert_eq!(e.field, "rack[0].common_cause");
        assert!(
            e.message.contains("only possible corroboration")
                && e.message
                    .contains("common_cause = { temp1 = 1, temp2 = 1 }")
                && e.message
                    .contains("common_cause = { temp1 = 1, temp2 = 2 }"),
            "{e}"
        );
        // With smoke fitted they could still corroborate each other: still refused.
        let smoke = format!("{base}smoke = \"ups-1/s\"\n");
        let e = err_of(&format!("{GOOD}{smoke}"));
        assert_eq!(e.field, "rack[0].common_cause");
        assert!(!e.message.contains("only possible"), "{e}");
        // Declared shared: accepted (smoke corroborates), and they never corroborate each other.
        let c = parse_str(&format!(
            "{GOOD}{smoke}common_cause = {{ temp1 = 1, temp2 = 1 }}\n"
        ))
        .unwrap();
        assert_eq!(c.racks[0].logic.common_cause, [0, 1, 1, 0, 0, 0]);
        assert!(warnings(&c).is_empty());
        // Declared shared with nothing independent: refused by the logic's own rule, at load
        // (before, the rack's fire logic refused to start only when its task ran).
        let e = err_of(&format!(
            "{GOOD}{base}common_cause = {{ temp1 = 1, temp2 = 1 }}\n"
        ));
        assert_eq!(e.field, "rack[0].corroboration");
        // Declared independent: accepted with no smoke.
        let c = parse_str(&format!(
            "{GOOD}{base}common_cause = {{ temp1 = 1, temp2 = 2 }}\n"
        ))
        .unwrap();
        assert_eq!(c.racks[0].logic.common_cause, [0, 1, 2, 0, 0, 0]);
        // Two other temperature inputs read from one device, undeclared: a warning naming the
        // device and the declaration (another independent input exists, so not refused).
        let one_device = "\n[[rack]]\nid = \"r2\"\nbms_max = \"ups-1/bt\"\ntemp1 = \"ups-1/t\"\nsmoke = \"cam-1/s\"\n";
        let c = parse_str(&format!("{GOOD}{one_device}")).unwrap();
        let w = warnings(&c);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("rack `r2`: bms_max and temp1 are both read from device `ups-1`"),
            "{w:?}"
        );
        // ... and refused when they are each other's only corroboration.
        let e = err_of(&format!(
            "{GOOD}{}",
            one_device.replace("smoke = \"cam-1/s\"\n", "")
        ));
        assert_eq!(e.field, "rack[0].common_cause");
        assert!(e.message.contains("bms_max and temp1"), "{e}");
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://h:1"),
            Ok(Endpoint {
                host: "h".into(),
                port: 1,
                tls: false
            })
        );
        assert_eq!(parse_url("mqtts://[::1]:8884").unwrap().host, "::1");
        assert!(parse_url("mqtt://u:p@h").is_err());
        assert!(parse_url("mqtt://h:0").is_err());
        assert!(parse_url("mqtt://h:x").is_err());
        assert!(parse_url("tcp://h").is_err());
        assert!(parse_url("mqtt://").is_err());
    }
}
