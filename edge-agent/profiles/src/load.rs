//! The loader: TOML text -> validated [`Profile`], or errors naming file, line, field and what
//! was expected.

use crate::model::*;
use dcim_points::{Role, RoleDef};
use dcim_source_lines::LineIndex;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// One problem in a profile file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// The field (key) at fault, e.g. `point[3].type`, or empty if unknown.
    pub field: String,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(
                f,
                "{}:{}: field `{}`: {}",
                self.file, self.line, self.field, self.message
            )
        }
    }
}

/// All the problems found in one file (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileErrors(pub Vec<ProfileError>);

impl fmt::Display for ProfileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProfileErrors {}

// ---- The file as written ----------------------------------------------------------------------

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    profile: S<RawHeader>,
    comm: Option<S<RawComm>>,
    poll: Option<S<RawPoll>>,
    modbus: Option<S<RawModbus>>,
    snmp: Option<S<RawSnmp>>,
    #[serde(default)]
    point: Vec<S<RawPoint>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    name: S<String>,
    protocol: S<String>,
    vendor: Option<String>,
    model: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComm {
    timeout_ms: Option<S<i64>>,
    retries: Option<S<i64>>,
    backoff_initial_ms: Option<S<i64>>,
    backoff_max_ms: Option<S<i64>>,
    comm_lost_after_ms: Option<S<i64>>,
    refused_retry_ms: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoll {
    fast_ms: Option<S<i64>>,
    normal_ms: Option<S<i64>>,
    slow_ms: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModbus {
    address_base: Option<S<i64>>,
    order: Option<S<String>>,
    max_gap: Option<S<i64>>,
    max_registers_per_read: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSnmp {
    max_oids_per_request: Option<S<i64>>,
    max_repetitions: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    min: Option<f64>,
    max: Option<f64>,
    #[serde(default)]
    invalid: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoint {
    id: S<String>,
    role: S<String>,
    labels: Option<S<BTreeMap<String, String>>>,
    unit: Option<S<String>>,
    scale: Option<S<f64>>,
    offset: Option<S<f64>>,
    invert: Option<bool>,
    true_values: Option<S<Vec<i64>>>,
    #[serde(rename = "enum")]
    enum_map: Option<S<BTreeMap<String, String>>>,
    poll: Option<S<String>>,
    deadband: Option<S<f64>>,
    report_every_ms: Option<S<i64>>,
    health: Option<S<RawHealth>>,
    alarm: Option<S<AlarmHint>>,
    // Modbus
    table: Option<S<String>>,
    register: Option<S<i64>>,
    #[serde(rename = "type")]
    wire_type: Option<S<String>>,
    order: Option<S<String>>,
    bit: Option<S<i64>>,
    length: Option<S<i64>>,
    // BACnet
    object: Option<S<String>>,
    instance: Option<S<i64>>,
    property: Option<S<String>>,
    cov: Option<S<bool>>,
    // MQTT
    topic: Option<S<String>>,
    pointer: Option<S<String>>,
    // SNMP
    oid: Option<S<String>>,
    index: Option<S<String>>,
}

// ---- Error collection --------------------------------------------------------------------------

struct Ctx<'a> {
    file: &'a str,
    lines: LineIndex,
    errors: Vec<ProfileError>,
}

impl Ctx<'_> {
    fn err(&mut self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) {
        let line = self.lines.line(span.start);
        self.errors.push(ProfileError {
            file: self.file.to_owned(),
            line,
            field: field.into(),
            message: message.into(),
        });
    }

    /// An integer field within `lo..=hi`, or the default.
    fn int(&mut self, v: &Option<S<i64>>, field: &str, lo: i64, hi: i64, default: i64) -> i64 {
        match v {
            None => default,
            Some(s) if (lo..=hi).contains(s.get_ref()) => *s.get_ref(),
            Some(s) => {
                self.err(
                    s.span(),
                    field,
                    format!(
                        "{} is out of range; expected an integer from {lo} to {hi}",
                        s.get_ref()
                    ),
                );
                default
            }
        }
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The key written at the start of the line holding `offset`, to name the field of a serde error.
fn key_at(text: &str, offset: usize) -> String {
    let bytes = text.as_bytes();
    let offset = offset.min(bytes.len());
    let start = bytes[..offset]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    // `start` follows a newline (or is 0), so it is a character boundary.
    let line = text
        .get(start..)
        .and_then(|t| t.lines().next())
        .unwrap_or("");
    match line.split_once('=') {
        Some((k, _)) if !k.trim_start().starts_with('[') => k.trim().trim_matches('"').to_owned(),
        _ => String::new(),
    }
}

// ---- Loading -----------------------------------------------------------------------------------

/// Loads a profile from TOML text; `file` names it in errors.
pub fn load_str(file: &str, text: &str) -> Result<Profile, ProfileErrors> {
    let lines = LineIndex::new(text);
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let line = lines.line(span.start);
            let mut message = e.message().trim().to_owned();
            if message.starts_with("missing field") {
                message.push_str(" (required here)");
            }
            let field = if message.starts_with("unknown field") || message.starts_with("missing") {
                String::new()
            } else {
                key_at(text, span.start)
            };
            return Err(ProfileErrors(vec![ProfileError {
                file: file.to_owned(),
                line,
                field,
                message,
            }]));
        }
    };
    let mut cx = Ctx {
        file,
        lines,
        errors: Vec::new(),
    };
    let profile = validate(&mut cx, raw);
    if cx.errors.is_empty() {
        Ok(profile)
    } else {
        Err(ProfileErrors(cx.errors))
    }
}

/// Loads one profile file.
pub fn load_file(path: &Path) -> Result<Profile, ProfileErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&file, &text),
        Err(e) => Err(ProfileErrors(vec![ProfileError {
            file,
            line: 0,
            field: String::new(),
            message: format!("cannot read the file: {e}"),
        }])),
    }
}

/// Loads every `*.toml` file of a directory (sorted by name). Profile names must be unique.
/// Returns the profiles, or every error of every file.
pub fn load_dir(dir: &Path) -> Result<Vec<Profile>, ProfileErrors> {
    let mut paths: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => {
            return Err(ProfileErrors(vec![ProfileError {
                file: dir.display().to_string(),
                line: 0,
                field: String::new(),
                message: format!("cannot read the directory: {e}"),
            }]));
        }
    };
    paths.sort();
    let mut profiles: Vec<Profile> = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match load_file(&p) {
            Ok(profile) => {
                if let Some(other) = profiles.iter().find(|o| o.name == profile.name) {
                    errors.push(ProfileError {
                        file: profile.source.clone(),
                        line: 1,
                        field: "profile.name".into(),
                        message: format!(
                            "profile name `{}` is already used by {}; expected a unique name",
                            profile.name, other.source
                        ),
                    });
                } else {
                    profiles.push(profile);
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() {
        Ok(profiles)
    } else {
        Err(ProfileErrors(errors))
    }
}

fn validate(cx: &mut Ctx<'_>, raw: RawFile) -> Profile {
    let header_span = raw.profile.span();
    let h = raw.profile.into_inner();
    let protocol = protocol(cx, &h);
    let comm = comm(cx, &raw.comm);
    let poll = poll(cx, &raw.poll);
    let modbus = modbus_settings(cx, &raw.modbus, protocol, &header_span);
    let snmp = snmp_settings(cx, &raw.snmp, protocol);
    let points = points(cx, raw.point, protocol, modbus.as_ref(), header_span);

    Profile {
        name: h.name.into_inner(),
        vendor: h.vendor.unwrap_or_default(),
        model: h.model.unwrap_or_default(),
        description: h.description.unwrap_or_default(),
        protocol,
        comm,
        poll,
        modbus,
        snmp,
        points,
        source: cx.file.to_owned(),
    }
}

/// The `[profile]` header: a valid name and a known protocol (modbus when it is not, so that
/// the rest of the file is still checked).
fn protocol(cx: &mut Ctx<'_>, h: &RawHeader) -> Protocol {
    if !is_identifier(h.name.get_ref()) {
        cx.err(
            h.name.span(),
            "profile.name",
            "expected an identifier of letters, digits, `-`, `_` or `.`",
        );
    }
    Protocol::parse(h.protocol.get_ref()).unwrap_or_else(|| {
        cx.err(
            h.protocol.span(),
            "profile.protocol",
            format!(
                "unknown protocol `{}`; expected one of {}",
                h.protocol.get_ref(),
                Protocol::NAMES
            ),
        );
        Protocol::Modbus
    })
}

/// The `[comm]` section, defaults for what it leaves out.
fn comm(cx: &mut Ctx<'_>, raw: &Option<S<RawComm>>) -> Comm {
    let d = Comm::default();
    match raw {
        None => d,
        Some(c) => {
            let c = c.get_ref();
            let comm = Comm {
                timeout_ms: cx.int(
                    &c.timeout_ms,
                    "comm.timeout_ms",
                    100,
                    60_000,
                    d.timeout_ms as i64,
                ) as u64,
                retries: cx.int(&c.retries, "comm.retries", 0, 10, d.retries as i64) as u32,
                backoff_initial_ms: cx.int(
                    &c.backoff_initial_ms,
                    "comm.backoff_initial_ms",
                    100,
                    3_600_000,
                    d.backoff_initial_ms as i64,
                ) as u64,
                backoff_max_ms: cx.int(
                    &c.backoff_max_ms,
                    "comm.backoff_max_ms",
                    100,
                    3_600_000,
                    d.backoff_max_ms as i64,
                ) as u64,
                comm_lost_after_ms: cx.int(
                    &c.comm_lost_after_ms,
                    "comm.comm_lost_after_ms",
                    500,
                    3_600_000,
                    d.comm_lost_after_ms as i64,
                ) as u64,
                refused_retry_ms: cx.int(
                    &c.refused_retry_ms,
                    "comm.refused_retry_ms",
                    1000,
                    86_400_000,
                    d.refused_retry_ms as i64,
                ) as u64,
            };
            if comm.backoff_max_ms < comm.backoff_initial_ms
                && let Some(s) = &c.backoff_max_ms
            {
                cx.err(
                    s.span(),
                    "comm.backoff_max_ms",
                    format!(
                        "expected at least backoff_initial_ms ({})",
                        comm.backoff_initial_ms
                    ),
                );
            }
            comm
        }
    }
}

/// The `[poll]` section: the period of each poll class.
fn poll(cx: &mut Ctx<'_>, raw: &Option<S<RawPoll>>) -> PollPeriods {
    let dp = PollPeriods::default();
    match raw {
        None => dp,
        Some(p) => {
            let p = p.get_ref();
            PollPeriods {
                fast_ms: cx.int(
                    &p.fast_ms,
                    "poll.fast_ms",
                    100,
                    3_600_000,
                    dp.fast_ms as i64,
                ) as u64,
                normal_ms: cx.int(
                    &p.normal_ms,
                    "poll.normal_ms",
                    100,
                    3_600_000,
                    dp.normal_ms as i64,
                ) as u64,
                slow_ms: cx.int(
                    &p.slow_ms,
                    "poll.slow_ms",
                    100,
                    3_600_000,
                    dp.slow_ms as i64,
                ) as u64,
            }
        }
    }
}

/// The `[modbus]` section: required by a modbus profile, refused by any other.
fn modbus_settings(
    cx: &mut Ctx<'_>,
    raw: &Option<S<RawModbus>>,
    protocol: Protocol,
    header_span: &Range<usize>,
) -> Option<ModbusSettings> {
    match (raw, protocol) {
        (None, Protocol::Modbus) => {
            cx.err(
                header_span.clone(),
                "modbus",
                "a modbus profile needs a [modbus] section with `address_base = 0` or `address_base = 1`",
            );
            None
        }
        (Some(m), Protocol::Modbus) => {
            let span = m.span();
            let m = m.get_ref();
            let address_base = match &m.address_base {
                None => {
                    cx.err(
                        span,
                        "modbus.address_base",
                        "missing; expected `address_base = 0` (registers as on the wire) or `address_base = 1` (1-based numbers as in most manuals)",
                    );
                    0
                }
                Some(b) if matches!(b.get_ref(), 0 | 1) => *b.get_ref() as u8,
                Some(b) => {
                    cx.err(
                        b.span(),
                        "modbus.address_base",
                        format!("{} is not allowed; expected 0 or 1", b.get_ref()),
                    );
                    0
                }
            };
            let order = parse_order(cx, &m.order, "modbus.order").unwrap_or_default();
            Some(ModbusSettings {
                address_base,
                order,
                max_gap: cx.int(&m.max_gap, "modbus.max_gap", 0, 124, 8) as u16,
                max_registers_per_read: cx.int(
                    &m.max_registers_per_read,
                    "modbus.max_registers_per_read",
                    1,
                    125,
                    125,
                ) as u16,
            })
        }
        (Some(m), _) => {
            cx.err(
                m.span(),
                "modbus",
                format!(
                    "a [modbus] section only belongs in a modbus profile; this one is `{}`",
                    protocol.as_str()
                ),
            );
            None
        }
        (None, _) => None,
    }
}

/// The `[snmp]` section: defaults in an snmp profile, refused by any other.
fn snmp_settings(
    cx: &mut Ctx<'_>,
    raw: &Option<S<RawSnmp>>,
    protocol: Protocol,
) -> Option<SnmpSettings> {
    match (raw, protocol) {
        (Some(sn), Protocol::Snmp) => {
            let sn = sn.get_ref();
            let d = SnmpSettings::default();
            Some(SnmpSettings {
                max_oids_per_request: cx.int(
                    &sn.max_oids_per_request,
                    "snmp.max_oids_per_request",
                    1,
                    100,
                    i64::from(d.max_oids_per_request),
                ) as u16,
                max_repetitions: cx.int(
                    &sn.max_repetitions,
                    "snmp.max_repetitions",
                    1,
                    200,
                    i64::from(d.max_repetitions),
                ) as u32,
            })
        }
        (None, Protocol::Snmp) => Some(SnmpSettings::default()),
        (Some(sn), _) => {
            cx.err(
                sn.span(),
                "snmp",
                format!(
                    "an [snmp] section only belongs in an snmp profile; this one is `{}`",
                    protocol.as_str()
                ),
            );
            None
        }
        (None, _) => None,
    }
}

/// Every `[[point]]`, ids unique; the points that are valid.
fn points(
    cx: &mut Ctx<'_>,
    raw: Vec<S<RawPoint>>,
    protocol: Protocol,
    modbus: Option<&ModbusSettings>,
    header_span: Range<usize>,
) -> Vec<Point> {
    if raw.is_empty() {
        cx.err(
            header_span,
            "point",
            "the profile has no points; expected at least one [[point]] table",
        );
    }
    let mut seen = HashSet::new();
    let mut points = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let span = p.span();
        let p = p.into_inner();
        if !seen.insert(p.id.get_ref().clone()) {
            cx.err(
                p.id.span(),
                format!("point[{i}].id"),
                format!(
                    "`{}` is used by an earlier point; expected a unique id",
                    p.id.get_ref()
                ),
            );
        }
        if let Some(point) = validate_point(cx, i, span, p, protocol, modbus) {
            points.push(point);
        }
    }
    points
}

fn parse_order(cx: &mut Ctx<'_>, v: &Option<S<String>>, field: &str) -> Option<Order> {
    let s = v.as_ref()?;
    match Order::parse(s.get_ref()) {
        Some(o) => Some(o),
        None => {
            cx.err(
                s.span(),
                field,
                format!(
                    "unknown byte/word order `{}`; expected one of {}",
                    s.get_ref(),
                    Order::NAMES
                ),
            );
            None
        }
    }
}

fn validate_point(
    cx: &mut Ctx<'_>,
    i: usize,
    span: Range<usize>,
    p: RawPoint,
    protocol: Protocol,
    modbus: Option<&ModbusSettings>,
) -> Option<Point> {
    let errors_before = cx.errors.len();
    let (role, labels, def) = point_role(cx, i, &p);
    let value = point_value(cx, i, &p, def);
    let report = point_reporting(cx, i, &p);
    foreign_fields(cx, i, &p, protocol);
    let address = match protocol {
        Protocol::Modbus => modbus_address(cx, i, &span, &p, modbus).map(Address::Modbus),
        Protocol::Bacnet => bacnet_address(cx, i, &span, &p).map(Address::Bacnet),
        Protocol::Mqtt => mqtt_address(cx, i, &span, &p).map(Address::Mqtt),
        Protocol::Snmp => snmp_address(cx, i, &span, &p).map(Address::Snmp),
    };

    if cx.errors.len() > errors_before {
        return None;
    }
    Some(Point {
        id: p.id.into_inner(),
        role: role?,
        labels,
        unit: value.unit,
        address: address?,
        scale: value.scale,
        offset: value.offset,
        invert: p.invert.unwrap_or(false),
        true_values: value.true_values,
        enum_map: value.enum_map,
        poll: report.poll,
        deadband: report.deadband,
        report_every_ms: report.report_every_ms,
        health: report.health,
        alarm: report.alarm,
    })
}

/// The value conversion fields of a point ([`point_value`]).
struct ValueMap {
    unit: String,
    scale: f64,
    offset: f64,
    enum_map: Option<BTreeMap<i64, String>>,
    true_values: Vec<i64>,
}

/// The reporting fields of a point ([`point_reporting`]).
struct Reporting {
    poll: PollClass,
    deadband: Option<f64>,
    report_every_ms: u64,
    health: Option<Health>,
    alarm: Option<AlarmHint>,
}

/// The point's id, role and labels (the labels its role needs, well-formed ones).
fn point_role(
    cx: &mut Ctx<'_>,
    i: usize,
    p: &RawPoint,
) -> (
    Option<Role>,
    BTreeMap<String, String>,
    Option<&'static RoleDef>,
) {
    let f = |name: &str| format!("point[{i}].{name}");
    if !is_identifier(p.id.get_ref()) {
        cx.err(
            p.id.span(),
            f("id"),
            "expected an identifier of letters, digits, `-`, `_` or `.`",
        );
    }
    let role = match Role::new(p.role.get_ref()) {
        Ok(r) => Some(r),
        Err(e) => {
            cx.err(p.role.span(), f("role"), e.to_string());
            None
        }
    };
    let labels = p
        .labels
        .as_ref()
        .map(|l| l.get_ref().clone())
        .unwrap_or_default();
    let def = role.as_ref().and_then(|r| r.def());
    if let Some(def) = def {
        for needed in def.labels {
            if !labels.contains_key(*needed) {
                let at = p.labels.as_ref().map_or(p.role.span(), |l| l.span());
                cx.err(
                    at,
                    f("labels"),
                    format!(
                        "role `{}` needs the label `{needed}`, e.g. labels = {{ {needed} = \"A\" }}",
                        def.name
                    ),
                );
            }
        }
    }
    if let Some(l) = &p.labels {
        for (k, v) in l.get_ref() {
            if !is_identifier(k) || v.is_empty() {
                cx.err(
                    l.span(),
                    f("labels"),
                    format!(
                        "label `{k}` = `{v}`: expected an identifier key and a non-empty value"
                    ),
                );
            }
        }
    }
    (role, labels, def)
}

/// How a raw value becomes the role's value: unit, scale, offset, enum names, true values.
fn point_value(
    cx: &mut Ctx<'_>,
    i: usize,
    p: &RawPoint,
    def: Option<&'static RoleDef>,
) -> ValueMap {
    let f = |name: &str| format!("point[{i}].{name}");
    let role_unit = def.map(|d| d.unit).unwrap_or("");
    let unit = match &p.unit {
        None => role_unit.to_owned(),
        Some(u) => {
            if def.is_some() && u.get_ref() != role_unit {
                cx.err(
                    u.span(),
                    f("unit"),
                    format!(
                        "unit `{}` does not match role `{}`; expected `{role_unit}` (convert with scale/offset)",
                        u.get_ref(),
                        p.role.get_ref()
                    ),
                );
            }
            u.get_ref().clone()
        }
    };
    let scale = p.scale.as_ref().map_or(1.0, |s| *s.get_ref());
    if let Some(s) = &p.scale
        && (!s.get_ref().is_finite() || *s.get_ref() == 0.0)
    {
        cx.err(s.span(), f("scale"), "expected a finite, non-zero number");
    }
    let offset = p.offset.as_ref().map_or(0.0, |s| *s.get_ref());
    if let Some(s) = &p.offset
        && !s.get_ref().is_finite()
    {
        cx.err(s.span(), f("offset"), "expected a finite number");
    }
    let enum_map = p.enum_map.as_ref().map(|m| {
        let mut out = BTreeMap::new();
        for (k, v) in m.get_ref() {
            match k.trim().parse::<i64>() {
                Ok(n) => {
                    out.insert(n, v.clone());
                }
                Err(_) => cx.err(
                    m.span(),
                    f("enum"),
                    format!("key `{k}` is not an integer; expected e.g. enum = {{ 0 = \"off\", 1 = \"on\" }}"),
                ),
            }
        }
        out
    });
    let true_values = match &p.true_values {
        None => Vec::new(),
        Some(t) => {
            if def.map(|d| d.kind) != Some(dcim_points::RoleKind::Binary) {
                cx.err(
                    t.span(),
                    f("true_values"),
                    "`true_values` only goes with a true/false role",
                );
            } else if t.get_ref().is_empty() {
                cx.err(
                    t.span(),
                    f("true_values"),
                    "expected at least one raw value meaning true, e.g. true_values = [1]",
                );
            }
            t.get_ref().clone()
        }
    };
    ValueMap {
        unit,
        scale,
        offset,
        enum_map,
        true_values,
    }
}

/// When and how the point is reported: poll class, deadband, heartbeat, health, alarm hint.
fn point_reporting(cx: &mut Ctx<'_>, i: usize, p: &RawPoint) -> Reporting {
    let f = |name: &str| format!("point[{i}].{name}");
    let poll = match &p.poll {
        None => PollClass::Normal,
        Some(s) => PollClass::parse(s.get_ref()).unwrap_or_else(|| {
            cx.err(
                s.span(),
                f("poll"),
                format!(
                    "unknown poll class `{}`; expected fast, normal or slow",
                    s.get_ref()
                ),
            );
            PollClass::Normal
        }),
    };
    let deadband = p.deadband.as_ref().map(|d| {
        if !(d.get_ref().is_finite() && *d.get_ref() >= 0.0) {
            cx.err(d.span(), f("deadband"), "expected a number >= 0");
        }
        *d.get_ref()
    });
    let report_every_ms = cx.int(
        &p.report_every_ms,
        &f("report_every_ms"),
        100,
        86_400_000,
        // A third of the server's default staleness window (30 s), so a steady value that is
        // polled often enough never looks stale at the center.
        10_000,
    ) as u64;
    let health = p.health.as_ref().map(|h| {
        let hv = h.get_ref();
        if let (Some(lo), Some(hi)) = (hv.min, hv.max)
            && lo > hi
        {
            cx.err(
                h.span(),
                f("health"),
                format!("min {lo} is above max {hi}; expected min <= max"),
            );
        }
        Health {
            min: hv.min,
            max: hv.max,
            invalid: hv.invalid.clone(),
        }
    });
    let alarm = p.alarm.as_ref().map(|a| {
        if let Some(pr) = a.get_ref().priority
            && !(1..=3).contains(&pr)
        {
            cx.err(
                a.span(),
                f("alarm"),
                format!("priority {pr}: expected 1, 2 or 3"),
            );
        }
        a.get_ref().clone()
    });
    Reporting {
        poll,
        deadband,
        report_every_ms,
        health,
        alarm,
    }
}

/// Fields that belong to another protocol than the profile's are refused.
fn foreign_fields(cx: &mut Ctx<'_>, i: usize, p: &RawPoint, protocol: Protocol) {
    let f = |name: &str| format!("point[{i}].{name}");
    let foreign: [(&str, Option<Range<usize>>, Protocol); 12] = [
        ("oid", p.oid.as_ref().map(|s| s.span()), Protocol::Snmp),
        ("index", p.index.as_ref().map(|s| s.span()), Protocol::Snmp),
        ("table", span_of(&p.table), Protocol::Modbus),
        ("register", span_of(&p.register), Protocol::Modbus),
        ("type", span_of(&p.wire_type), Protocol::Modbus),
        ("order", span_of(&p.order), Protocol::Modbus),
        ("bit", p.bit.as_ref().map(|s| s.span()), Protocol::Modbus),
        ("length", span_of(&p.length), Protocol::Modbus),
        ("object", span_of(&p.object), Protocol::Bacnet),
        ("instance", span_of(&p.instance), Protocol::Bacnet),
        ("topic", p.topic.as_ref().map(|s| s.span()), Protocol::Mqtt),
        ("pointer", span_of(&p.pointer), Protocol::Mqtt),
    ];
    for (name, sp, owner) in foreign {
        if let Some(sp) = sp
            && owner != protocol
        {
            cx.err(
                sp,
                f(name),
                format!(
                    "`{name}` is a {} field; this is a {} profile",
                    owner.as_str(),
                    protocol.as_str()
                ),
            );
        }
    }
    for (name, sp) in [("property", span_of(&p.property)), ("cov", span_of(&p.cov))] {
        if let Some(sp) = sp
            && protocol != Protocol::Bacnet
        {
            cx.err(
                sp,
                f(name),
                format!(
                    "`{name}` is a bacnet field; this is a {} profile",
                    protocol.as_str()
                ),
            );
        }
    }
}

/// The span of an optional field, when it is present.
fn span_of<T>(field: &Option<Spanned<T>>) -> Option<Range<usize>> {
    field.as_ref().map(|s| s.span())
}

/// A BACnet point's object, instance and property.
fn bacnet_address(
    cx: &mut Ctx<'_>,
    i: usize,
    span: &Range<usize>,
    p: &RawPoint,
) -> Option<BacnetAddress> {
    let f = |name: &str| format!("point[{i}].{name}");
    let object = match &p.object {
        None => {
            cx.err(
                span.clone(),
                f("object"),
                format!(
                    "missing; expected a BACnet object type: {}",
                    ObjectType::NAMES
                ),
            );
            None
        }
        Some(o) => ObjectType::parse(o.get_ref()).or_else(|| {
            cx.err(
                o.span(),
                f("object"),
                format!(
                    "unknown object type `{}`; expected one of {}",
                    o.get_ref(),
                    ObjectType::NAMES
                ),
            );
            None
        }),
    };
    let instance = match &p.instance {
        None => {
            cx.err(
                span.clone(),
                f("instance"),
                "missing; expected the object instance number (0 to 4194302)",
            );
            None
        }
        Some(n) if (0..=4_194_302).contains(n.get_ref()) => Some(*n.get_ref() as u32),
        Some(n) => {
            cx.err(
                n.span(),
                f("instance"),
                format!("{} is out of range; expected 0 to 4194302", n.get_ref()),
            );
            None
        }
    };
    let property = p
        .property
        .as_ref()
        .map_or("present-value".to_owned(), |s| s.get_ref().clone());
    if let Some(s) = &p.property
        && !(is_identifier(s.get_ref())
            && s.get_ref()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-'))
    {
        cx.err(
            s.span(),
            f("property"),
            "expected a BACnet property name in lower-case with dashes, e.g. present-value",
        );
    }
    match (object, instance) {
        (Some(object), Some(instance)) => Some(BacnetAddress {
            object,
            instance,
            property,
            cov: p.cov.as_ref().is_some_and(|c| *c.get_ref()),
        }),
        _ => None,
    }
}

/// An MQTT point's topic (no wildcards) and JSON pointer.
fn mqtt_address(
    cx: &mut Ctx<'_>,
    i: usize,
    span: &Range<usize>,
    p: &RawPoint,
) -> Option<MqttAddress> {
    let f = |name: &str| format!("point[{i}].{name}");
    let topic = match &p.topic {
        None => {
            cx.err(
                span.clone(),
                f("topic"),
                "missing; expected the MQTT topic the value is published on",
            );
            None
        }
        Some(t) if t.get_ref().is_empty() || t.get_ref().contains(['+', '#']) => {
            cx.err(
                t.span(),
                f("topic"),
                "expected a non-empty topic without the wildcards + and #",
            );
            None
        }
        Some(t) => Some(t.get_ref().clone()),
    };
    let pointer = match &p.pointer {
        None => {
            cx.err(
                span.clone(),
                f("pointer"),
                "missing; expected a JSON pointer such as \"/max_c\" (\"\" for the whole message)",
            );
            None
        }
        Some(t) if !(t.get_ref().is_empty() || t.get_ref().starts_with('/')) => {
            cx.err(
                t.span(),
                f("pointer"),
                format!(
                    "`{}` is not a JSON pointer; expected it to start with `/`, e.g. \"/max_c\"",
                    t.get_ref()
                ),
            );
            None
        }
        Some(t) => Some(t.get_ref().clone()),
    };
    match (topic, pointer) {
        (Some(topic), Some(pointer)) => Some(MqttAddress { topic, pointer }),
        _ => None,
    }
}

/// Checks one component list of an SNMP OID or index pattern: numbers, placeholders and (in an
/// index) `*`.
fn snmp_components(text: &str, index: bool) -> Result<(), String> {
    if text.is_empty() {
        return Err("is empty".into());
    }
    for c in text.split('.') {
        let ok = c.parse::<u32>().is_ok() || SNMP_PLACEHOLDERS.contains(&c) || (index && c == "*");
        if !ok {
            return Err(format!(
                "`{c}` is not {}",
                if index {
                    "a number, `*`, {if_index} or {lldp_port}"
                } else {
                    "a number, {if_index} or {lldp_port}"
                }
            ));
        }
    }
    Ok(())
}

fn snmp_address(
    cx: &mut Ctx<'_>,
    i: usize,
    span: &Range<usize>,
    p: &RawPoint,
) -> Option<SnmpAddress> {
    let f = |name: &str| format!("point[{i}].{name}");
    let Some(oid) = &p.oid else {
        cx.err(
            span.clone(),
            f("oid"),
            "missing; expected a numeric OID such as \"1.3.6.1.2.1.33.1.2.4.0\" (no MIB names)",
        );
        return None;
    };
    let text = oid.get_ref().trim_start_matches('.');
    if let Err(why) = snmp_components(text, false) {
        cx.err(
            oid.span(),
            f("oid"),
            format!(
                "OID `{}` {why}; expected dotted numbers such as 1.3.6.1.2.1.2.2.1.8.{{if_index}}",
                oid.get_ref()
            ),
        );
        return None;
    }
    if text.split('.').count() < 2 || text.split('.').next().is_some_and(|c| c.starts_with('{')) {
        cx.err(
            oid.span(),
            f("oid"),
            "expected at least two numeric components, starting with a number",
        );
        return None;
    }
    let index = match &p.index {
        None => None,
        Some(ix) => {
            if let Err(why) = snmp_components(ix.get_ref(), true) {
                cx.err(
                    ix.span(),
                    f("index"),
                    format!(
                        "index `{}` {why}; expected e.g. \"*.{{lldp_port}}.*\"",
                        ix.get_ref()
                    ),
                );
                return None;
            }
            Some(ix.get_ref().clone())
        }
    };
    Some(SnmpAddress {
        oid: text.to_owned(),
        index,
    })
}

/// A Modbus point's table, register, wire type and word order (the profile's when not set).
fn modbus_address(
    cx: &mut Ctx<'_>,
    i: usize,
    span: &Range<usize>,
    p: &RawPoint,
    modbus: Option<&ModbusSettings>,
) -> Option<ModbusAddress> {
    let f = |name: &str| format!("point[{i}].{name}");
    let settings = modbus?;
    let table = modbus_table(cx, i, span, p)?;
    let wire = match &p.wire_type {
        None => {
            if table.is_bits() {
                WireType::Bool
            } else {
                WireType::U16
            }
        }
        Some(t) => wire_type(cx, i, p, table, t)?,
    };
    if !matches!(wire, WireType::Bit(_))
        && let Some(b) = &p.bit
    {
        cx.err(b.span(), f("bit"), "`bit` only goes with `type = \"bit\"`");
    }
    if !matches!(wire, WireType::String(_))
        && let Some(l) = &p.length
    {
        cx.err(
            l.span(),
            f("length"),
            "`length` only goes with `type = \"string\"`",
        );
    }
    let order = parse_order(cx, &p.order, &f("order")).unwrap_or(settings.order);
    let address = modbus_register(cx, i, span, p, settings, table, wire)?;
    Some(ModbusAddress {
        table,
        address,
        wire,
        order,
    })
}

/// A Modbus point's `table`.
fn modbus_table(cx: &mut Ctx<'_>, i: usize, span: &Range<usize>, p: &RawPoint) -> Option<Table> {
    let f = |name: &str| format!("point[{i}].{name}");
    match &p.table {
        None => {
            cx.err(
                span.clone(),
                f("table"),
                format!("missing; expected one of {}", Table::NAMES),
            );
            None
        }
        Some(t) => match Table::parse(t.get_ref()) {
            Some(t) => Some(t),
            None => {
                cx.err(
                    t.span(),
                    f("table"),
                    format!(
                        "unknown table `{}`; expected one of {}",
                        t.get_ref(),
                        Table::NAMES
                    ),
                );
                None
            }
        },
    }
}

/// A Modbus point's `register` as printed in the manual, turned into the address on the wire:
/// the whole value within the table, and readable in one request unless it is text.
fn modbus_register(
    cx: &mut Ctx<'_>,
    i: usize,
    span: &Range<usize>,
    p: &RawPoint,
    settings: &ModbusSettings,
    table: Table,
    wire: WireType,
) -> Option<u16> {
    let f = |name: &str| format!("point[{i}].{name}");
    let register = match &p.register {
        None => {
            cx.err(
                span.clone(),
                f("register"),
                "missing; expected the register number as printed in the manual",
            );
            return None;
        }
        Some(r) => r,
    };
    let base = settings.address_base as i64;
    let wire_addr = register.get_ref() - base;
    let count = if table.is_bits() {
        1
    } else {
        wire.registers() as i64
    };
    if wire_addr < 0 || wire_addr + count > 65536 {
        let hint = if *register.get_ref() >= 30001 && *register.get_ref() <= 49999 && base == 1 {
            " (write 40101 as register = 101 with table = \"holding\")"
        } else {
            ""
        };
        cx.err(
            register.span(),
            f("register"),
            format!(
                "{} is out of range with address_base = {base}; expected {base} to {}{hint}",
                register.get_ref(),
                65536 - count + base
            ),
        );
        return None;
    }
    let per_read = table.max_per_read().min(settings.max_registers_per_read);
    // Text is read in parts when it is longer than one read may be; a number never is.
    if wire.registers() > per_read && !matches!(wire, WireType::String(_)) {
        cx.err(
            register.span(),
            f("type"),
            format!(
                "this value takes {} registers but [modbus] max_registers_per_read = {per_read}: \
                 a number is read whole in one request (read in two it could mix two different \
                 readings), so raise max_registers_per_read to at least {}; text points are read \
                 in parts. A device that refuses reads across unimplemented registers does not \
                 need a lower limit: the agent splits a refused read by itself",
                wire.registers(),
                wire.registers()
            ),
        );
        return None;
    }
    Some(wire_addr as u16)
}

/// A Modbus point's `type` (with `bit` or `length` where the type needs one), readable from
/// its table.
fn wire_type(
    cx: &mut Ctx<'_>,
    i: usize,
    p: &RawPoint,
    table: Table,
    t: &S<String>,
) -> Option<WireType> {
    let f = |name: &str| format!("point[{i}].{name}");
    let w = match t.get_ref().as_str() {
        "u16" => WireType::U16,
        "i16" => WireType::I16,
        "u32" => WireType::U32,
        "i32" => WireType::I32,
        "u64" => WireType::U64,
        "i64" => WireType::I64,
        "f32" => WireType::F32,
        "f64" => WireType::F64,
        "bool" => WireType::Bool,
        "bit" => bit_type(cx, i, p, t)?,
        "string" => string_type(cx, i, p, t)?,
        other => {
            cx.err(
                t.span(),
                f("type"),
                format!(
                    "unknown wire type `{other}`; expected one of {}",
                    WireType::NAMES
                ),
            );
            return None;
        }
    };
    if table.is_bits() && w != WireType::Bool {
        cx.err(
            t.span(),
            f("type"),
            format!(
                "`{}` cannot be read from a {} table; expected bool (or leave `type` out)",
                t.get_ref(),
                if table == Table::Coil {
                    "coil"
                } else {
                    "discrete"
                }
            ),
        );
        return None;
    }
    Some(w)
}

/// `type = "bit"`: which bit of the register (`bit`, 0 = least significant).
fn bit_type(cx: &mut Ctx<'_>, i: usize, p: &RawPoint, t: &S<String>) -> Option<WireType> {
    let f = |name: &str| format!("point[{i}].{name}");
    Some(match &p.bit {
        None => {
            cx.err(
                t.span(),
                f("bit"),
                "missing; `type = \"bit\"` needs `bit = 0..15` (0 = least significant)",
            );
            return None;
        }
        Some(b) if (0..=15).contains(b.get_ref()) => WireType::Bit(*b.get_ref() as u8),
        Some(b) => {
            cx.err(
                b.span(),
                f("bit"),
                format!("{} is out of range; expected 0 to 15", b.get_ref()),
            );
            return None;
        }
    })
}

/// `type = "string"`: its `length` in characters.
fn string_type(cx: &mut Ctx<'_>, i: usize, p: &RawPoint, t: &S<String>) -> Option<WireType> {
    let f = |name: &str| format!("point[{i}].{name}");
    Some(match &p.length {
        None => {
            cx.err(
                t.span(),
                f("length"),
                "missing; `type = \"string\"` needs `length` = number of characters (1 to 250)",
            );
            return None;
        }
        Some(l) if (1..=250).contains(l.get_ref()) => WireType::String(*l.get_ref() as u16),
        Some(l) => {
            cx.err(
                l.span(),
                f("length"),
                format!(
                    "{} is out of range; expected 1 to 250 characters",
                    l.get_ref()
                ),
            );
            return None;
        }
    })
}
