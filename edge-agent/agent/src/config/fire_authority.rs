//! The fire authority link: `[dc09]` (the DC-09 transmitter), `[[controller]]` (racks with
//! their own controller whose fire events are forwarded) and `[test_mode]` (drills).

use super::device::{Connection, DeviceConfig};
use super::spool::SpoolSettings;
use super::{ConfigError, Ctx};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawController {
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
pub(super) struct RawTestMode {
    #[serde(default = "d_test_max")]
    max_minutes: Spanned<u64>,
    state_file: Option<String>,
}

fn d_test_max() -> Spanned<u64> {
    Spanned::new(0..0, 120)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDc09 {
    link_config: String,
    outbox_dir: Option<String>,
}

/// The `[dc09]` section (outbox default: next to the spool).
pub(super) fn dc09(
    ctx: &Ctx,
    raw: &Option<RawDc09>,
    spool: &SpoolSettings,
) -> Option<Dc09Settings> {
    raw.as_ref().map(|d| Dc09Settings {
        link_config: ctx.path(&d.link_config),
        outbox_dir: match &d.outbox_dir {
            Some(p) => ctx.path(p),
            None => spool.dir.join("..").join("dc09-outbox"),
        },
    })
}

/// Every `[[controller]]`: a Modbus TCP or RTU-over-TCP device of this file, listed once;
/// controllers need the `[dc09]` section.
pub(super) fn controllers(
    ctx: &Ctx,
    raw: &[Spanned<RawController>],
    devices: &[DeviceConfig],
    dc09: Option<&Dc09Settings>,
    spool: &SpoolSettings,
) -> Result<Vec<ControllerConfig>, ConfigError> {
    let mut controllers: Vec<ControllerConfig> = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let controller = controller(ctx, i, c, &controllers, devices, spool)?;
        controllers.push(controller);
    }
    if !controllers.is_empty() && dc09.is_none() {
        let span = raw[0].span();
        return Err(ctx.err(
            span,
            "controller",
            "[[controller]] forwards fire events over DC-09: a [dc09] section is required",
        ));
    }
    Ok(controllers)
}

fn controller(
    ctx: &Ctx,
    i: usize,
    c: &Spanned<RawController>,
    controllers: &[ControllerConfig],
    devices: &[DeviceConfig],
    spool: &SpoolSettings,
) -> Result<ControllerConfig, ConfigError> {
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
    let (number, zone, poll) = numbers(ctx, &f, span, c)?;
    Ok(ControllerConfig {
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
    })
}

/// DC-09 unit and area, and the poll period, within bounds.
fn numbers(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    span: Range<usize>,
    c: &RawController,
) -> Result<(u32, u32, u64), ConfigError> {
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
    Ok((number, zone, poll))
}

/// The `[test_mode]` section (default: drills end after 120 minutes).
pub(super) fn test_mode(
    ctx: &Ctx,
    raw: &Option<Spanned<RawTestMode>>,
    spool: &SpoolSettings,
) -> Result<TestModeSettings, ConfigError> {
    Ok(match raw {
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
    })
}
