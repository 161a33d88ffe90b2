//! `[[rack]]`: racks without a controller whose staged fire logic runs in the agent: inputs
//! (`device/point`), relay coils, panel, thresholds and common-cause groups, checked as the
//! logic will run.

use super::device::{Connection, DeviceConfig};
use super::spool::SpoolSettings;
use super::{Config, ConfigError, Ctx, identifier};
use serde::Deserialize;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRack {
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

/// Every `[[rack]]`, ids unique and distinct from device ids.
pub(super) fn racks(
    ctx: &Ctx,
    raw: &[Spanned<RawRack>],
    devices: &[DeviceConfig],
    spool: &SpoolSettings,
) -> Result<Vec<RackConfig>, ConfigError> {
    let mut racks: Vec<RackConfig> = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let rack = rack(ctx, i, r, &racks, devices, spool)?;
        racks.push(rack);
    }
    Ok(racks)
}

fn rack(
    ctx: &Ctx,
    i: usize,
    r: &Spanned<RawRack>,
    racks: &[RackConfig],
    devices: &[DeviceConfig],
    spool: &SpoolSettings,
) -> Result<RackConfig, ConfigError> {
    let span = r.span();
    let r = r.get_ref();
    let f = |name: &str| format!("rack[{i}].{name}");
    let id = identifier(ctx, &f("id"), &r.id)?;
    if racks.iter().any(|x| x.id == id) || devices.iter().any(|d| d.id == id) {
        return Err(ctx.err(
            r.id.span(),
            &f("id"),
            "rack ids must be unique and differ from device ids",
        ));
    }
    let point = |name: &str, v: &Option<Spanned<String>>| rack_point(ctx, &f, devices, name, v);
    let relay = relay(ctx, &f, r, devices)?;
    check_outputs(ctx, &f, span.clone(), r, relay.is_some())?;
    let feedback = feedback(ctx, &f, r, &point)?;
    let panel = PanelInputs {
        reset_key: point("reset_key", &r.reset_key)?,
        hold: point("hold", &r.hold)?,
        manual_release: point("manual_release", &r.manual_release)?,
        room_gas_release: point("room_gas_release", &r.room_gas_release)?,
        manual_only: point("manual_only", &r.manual_only)?,
        authority_key: point("authority_key", &r.authority_key)?,
    };
    let logic = thresholds(ctx, &f, r)?;
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
    check_logic(ctx, &f, span, r, &rack)?;
    Ok(rack)
}

/// A rack input: `(device, point)`, or `None` when not fitted.
type Input = Option<(String, String)>;

/// How a `device/point` field of a rack is read ([`rack_point`] with the rack's devices).
type PointRef<'a> = dyn Fn(&str, &Option<Spanned<String>>) -> Result<Input, ConfigError> + 'a;

/// A `device/point` reference to a declared device.
fn rack_point(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    devices: &[DeviceConfig],
    name: &str,
    v: &Option<Spanned<String>>,
) -> Result<Option<(String, String)>, ConfigError> {
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
}

/// The relay module: a Modbus device of this file.
fn relay(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    r: &RawRack,
    devices: &[DeviceConfig],
) -> Result<Option<String>, ConfigError> {
    Ok(match &r.relay {
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
    })
}

/// Coil names, a relay for coils, DC-09 numbers and the cycle within bounds.
fn check_outputs(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    span: Range<usize>,
    r: &RawRack,
    has_relay: bool,
) -> Result<(), ConfigError> {
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
    if !r.coils.is_empty() && !has_relay {
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
    Ok(())
}

/// The feedback input of each action that has one.
fn feedback(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    r: &RawRack,
    point: &PointRef<'_>,
) -> Result<[Option<(String, String)>; 6], ConfigError> {
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
    Ok(feedback)
}

/// The fire logic's thresholds and common-cause groups as configured (defaults otherwise).
fn thresholds(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    r: &RawRack,
) -> Result<fire_logic::Config, ConfigError> {
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
    common_cause(ctx, f, r, &mut logic)?;
    Ok(logic)
}

/// `common_cause`: which inputs share an ADC, a supply, a module or a cable.
fn common_cause(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    r: &RawRack,
    logic: &mut fire_logic::Config,
) -> Result<(), ConfigError> {
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
    Ok(())
}

/// The logic as it will run (fitted = the configured inputs), checked now rather than when
/// the rack's task starts: a rack whose logic cannot run is a configuration error.
fn check_logic(
    ctx: &Ctx,
    f: &dyn Fn(&str) -> String,
    span: Range<usize>,
    r: &RawRack,
    rack: &RackConfig,
) -> Result<(), ConfigError> {
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
    let logic = rack_logic(rack);
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
    Ok(())
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
