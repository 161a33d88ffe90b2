//! The agent's TOML configuration: parsing and validation with file, line and field in every
//! error. Pure apart from [`load`], which reads the file (and password files). The bottom layer
//! of the agent: it imports no other module of the crate. One file per section: [`spool`]
//! (`[spool]`, `[batch]`), [`broker`], [`device`], [`rack`], [`fire_authority`] (`[dc09]`,
//! `[[controller]]`, `[test_mode]`) and [`snmp`] (SNMP connections, `[snmp_traps]`).
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

mod broker;
mod device;
mod fire_authority;
mod rack;
pub mod snmp;
mod spool;

pub use broker::{BrokerConfig, Endpoint, Limits, parse_url};
pub use device::{BacnetTarget, Connection, DeviceConfig};
pub use fire_authority::{ControllerConfig, Dc09Settings, TestModeSettings};
pub use rack::{PanelInputs, RackConfig, rack_logic, warnings};
pub use spool::{BatchSettings, SpoolSettings};

use dcim_source_lines::LineIndex;
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
    /// SNMP traps and informs (`[snmp_traps]`, see [`snmp`]).
    pub snmp_traps: Option<dcim_snmp::ReceiverSettings>,
}

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
    spool: Spanned<spool::RawSpool>,
    #[serde(default)]
    batch: Option<spool::RawBatch>,
    #[serde(default)]
    broker: Vec<Spanned<broker::RawBroker>>,
    #[serde(default)]
    device: Vec<Spanned<device::RawDevice>>,
    #[serde(default)]
    rack: Vec<Spanned<rack::RawRack>>,
    dc09: Option<fire_authority::RawDc09>,
    #[serde(default)]
    controller: Vec<Spanned<fire_authority::RawController>>,
    test_mode: Option<Spanned<fire_authority::RawTestMode>>,
    snmp_traps: Option<Spanned<snmp::RawSnmpTraps>>,
}

fn default_log() -> String {
    "info".into()
}
fn default_health() -> u64 {
    30
}

pub(crate) struct Ctx<'a> {
    file: &'a str,
    lines: LineIndex,
    base: &'a Path,
}

impl Ctx<'_> {
    /// The 1-based line of a span; 0 for the empty span of a default value (no place in the
    /// file).
    fn line(&self, span: Range<usize>) -> usize {
        if span.start == 0 && span.end == 0 {
            return 0;
        }
        self.lines.line(span.start)
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

fn identifier(ctx: &Ctx, field: &str, v: &Spanned<String>) -> Result<String, ConfigError> {
    dcim_wire::check_identifier(v.get_ref())
        .map_err(|e| ctx.err(v.span(), field, e.to_string()))?;
    Ok(v.get_ref().clone())
}

/// Parse a configuration file's text. `base` resolves relative paths; password files are read.
pub fn parse(file: &str, text: &str, base: &Path) -> Result<Config, ConfigError> {
    let ctx = Ctx {
        file,
        lines: LineIndex::new(text),
        base,
    };
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
    let spool = spool::spool(&ctx, &raw.spool)?;
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

    let batch = spool::batch(&ctx, raw.batch)?;
    let brokers = broker::brokers(&ctx, &raw.agent, &raw.broker, &spool)?;
    let devices = device::devices(&ctx, &raw.device)?;
    let racks = rack::racks(&ctx, &raw.rack, &devices, &spool)?;
    let dc09 = fire_authority::dc09(&ctx, &raw.dc09, &spool);
    let controllers =
        fire_authority::controllers(&ctx, &raw.controller, &devices, dc09.as_ref(), &spool)?;
    let test_mode = fire_authority::test_mode(&ctx, &raw.test_mode, &spool)?;
    let snmp_traps = match &raw.snmp_traps {
        Some(t) => Some(snmp::traps(&ctx, t, &agent, &spool.dir)?),
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

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_spool::FsyncPolicy;

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
            Connection::Bacnet(crate::config::BacnetTarget {
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
