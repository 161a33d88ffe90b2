//! `[[device]]`: the devices the agent reads, each with exactly one connection and (but for
//! the signal generator) a profile.

use super::{ConfigError, Ctx, Endpoint, identifier, parse_url};
use serde::Deserialize;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

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
    Bacnet(BacnetTarget),
    /// An SNMP device (see `config::snmp`).
    Snmp(super::snmp::SnmpDeviceConfig),
}

/// Where and how to reach a BACnet device (from the `bacnet = { ... }` connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacnetTarget {
    /// The device's address; with `discover`, where the Who-Is goes (broadcast or unicast).
    pub address: SocketAddr,
    pub instance: u32,
    /// Local UDP address of the client socket.
    pub bind: SocketAddr,
    /// Find the device by Who-Is/I-Am instead of using `address` as its address.
    pub discover: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevice {
    id: Spanned<String>,
    profile: Option<Spanned<String>>,
    mqtt: Option<Spanned<RawMqttConn>>,
    modbus: Option<Spanned<RawModbusConn>>,
    synthetic: Option<RawSynthetic>,
    bacnet: Option<Spanned<RawBacnetConn>>,
    snmp: Option<Spanned<super::snmp::RawSnmpConn>>,
    #[serde(default)]
    link: Vec<Spanned<super::snmp::RawLink>>,
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

/// Every `[[device]]`, ids unique.
pub(super) fn devices(
    ctx: &Ctx,
    raw: &[Spanned<RawDevice>],
) -> Result<Vec<DeviceConfig>, ConfigError> {
    let mut devices = Vec::new();
    for (i, d) in raw.iter().enumerate() {
        let device = device(ctx, i, d, &devices)?;
        devices.push(device);
    }
    Ok(devices)
}

fn device(
    ctx: &Ctx,
    i: usize,
    d: &Spanned<RawDevice>,
    devices: &[DeviceConfig],
) -> Result<DeviceConfig, ConfigError> {
    let span = d.span();
    let d = d.get_ref();
    let f = |name: &str| format!("device[{i}].{name}");
    let id = identifier(ctx, &f("id"), &d.id)?;
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
    let connection = connection(ctx, &f, span.clone(), d)?;
    let needs_profile = !matches!(connection, Connection::Synthetic { .. });
    let profile = match (&d.profile, needs_profile) {
        (Some(p), _) => Some(ctx.path(p.get_ref())),
        (None, true) => {
            return Err(ctx.err(span, &f("profile"), "this device needs a profile file"));
        }
        (None, false) => None,
    };
    Ok(DeviceConfig {
        id,
        profile,
        connection,
    })
}

/// The device's one connection: mqtt, modbus, bacnet, snmp or synthetic.
fn connection(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    span: Range<usize>,
    d: &RawDevice,
) -> Result<Connection, ConfigError> {
    Ok(if let Some(sn) = &d.snmp {
        Connection::Snmp(super::snmp::device(ctx, f, sn, &d.link, &d.labels)?)
    } else if let Some(m) = &d.mqtt {
        mqtt(ctx, f, m)?
    } else if let Some(m) = &d.modbus {
        modbus(ctx, f, m)?
    } else if let Some(b) = &d.bacnet {
        bacnet(ctx, f, b)?
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
    })
}

fn mqtt(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    m: &Spanned<RawMqttConn>,
) -> Result<Connection, ConfigError> {
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
    Ok(Connection::Mqtt {
        endpoint,
        credentials,
        ca_file: m.ca_file.as_deref().map(|p| ctx.path(p)),
    })
}

fn modbus(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    m: &Spanned<RawModbusConn>,
) -> Result<Connection, ConfigError> {
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
    Ok(match (&m.tcp, &m.rtu, &m.rtu_tcp) {
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
    })
}

fn bacnet(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    b: &Spanned<RawBacnetConn>,
) -> Result<Connection, ConfigError> {
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
    Ok(Connection::Bacnet(BacnetTarget {
        address: addr("bacnet.address", &b.address)?,
        instance: b.instance,
        bind: addr("bacnet.bind", &b.bind)?,
        discover: b.discover,
    }))
}

fn unreachable_kind() -> Result<Connection, ConfigError> {
    Err(ConfigError {
        file: String::new(),
        line: 0,
        field: String::new(),
        message: "internal: device kind".into(),
    })
}
