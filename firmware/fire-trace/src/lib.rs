//! Fire-logic trace format (CSV in, JSON lines out), `no_std` and allocation-free so that the
//! emulated controller image can replay the same traces byte for byte.
//!
//! # Public API
//!
//! ```text
//! replay<W: fmt::Write>(trace: &str, config: &Config, out: &mut W) -> Result<Summary, ReplayError>
//! Header::parse(line: &str, line_no: usize) -> Result<Header, TraceError>
//! Header::fitted(&self, base: Fitted) -> Fitted
//! Header::parse_row(&self, line: &str, line_no: usize) -> Result<Row, TraceError>
//! write_transition<W: fmt::Write>(out, t_ms, &Outputs, events: impl Iterator<Item = Event>) -> fmt::Result
//! write_summary<W: fmt::Write>(out, &Summary) -> fmt::Result
//! ```
//!
//! # Trace format
//! CSV, comma separated, no quoting. Blank lines and lines starting with `#` are ignored.
//! The first other line is the header; its first column must be `t_ms`; the other columns
//! are any subset, in any order, of [`Column`] names. A missing column means "not fitted".
//! Each row gives `t_ms` (milliseconds, non-decreasing) and one cell per column: an empty cell
//! means "no new sample", `fault` means the sensor or line reports a fault; temperatures and
//! off-gas are decimal numbers (rounded to 0.1); detectors, switches and feedbacks are `0` or
//! `1`; the `command` column holds one network command (`ack`, `test_on`, `test_off`,
//! `time:<unix_ms>`, `inhibit:<sensor>:<ms>`); `restart` = `1` restarts the controller before
//! the row's cycle (only the latch record survives, through its bytes).
//!
//! Lines starting with `#!` before the header are directives. The only one is
//! `#! common_cause: <column> <column> ...`: those sensors share a common cause (an ADC, a
//! supply, a module, a cable) and never corroborate each other; one line per group. When a
//! trace has such lines they replace the configuration's groups, like the header replaces its
//! fitted sensors (both describe the wiring the trace was recorded on).
//!
//! # Output
//! One JSON object per line for every cycle in which anything was logged:
//! `{"t_ms":..,"stage":"..","actions":[..],"troubles":[..],"supervisory":[..],"reason":".."}`,
//! then one summary line `{"summary":true,...}`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    missing_docs
)]

use core::fmt::{self, Write};

use fire_logic::{
    Analog, Config, ConfigError, Digital, Event, Fitted, Inputs, LatchError, LatchRecord,
    MAX_COMMON_CAUSE_GROUP, NetworkCommand, Outputs, RackLogic, SourceId, Stage,
};

/// One trace column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `t_ms`: time in milliseconds.
    TMs,
    /// `bms_max_c`.
    Bms,
    /// `rack_temp1_c`.
    RackTemp1,
    /// `rack_temp2_c`.
    RackTemp2,
    /// `camera_max_c`.
    Camera,
    /// `smoke` (0/1).
    Smoke,
    /// `offgas_lfl_pct`.
    OffGas,
    /// `reset` key (0/1).
    Reset,
    /// `hold` switch (0/1).
    Hold,
    /// `manual_release` (0/1): the rack's agent release.
    ManualRelease,
    /// `room_gas_release` (0/1): the room's gas release.
    RoomGasRelease,
    /// `manual_only` mode (0/1).
    ManualOnly,
    /// `authority` key (0/1).
    Authority,
    /// Feedback `contactor_open_fb`, `blanket_down_fb`, `patch_fired_fb`, `agent_pressure_fb`,
    /// `coolant_flow_fb`, `gas_released_fb` (index into `Inputs::feedback`).
    Feedback(u8),
    /// `command`: a network command applied before the cycle.
    Command,
    /// `restart` (0/1): the controller restarts before the cycle.
    Restart,
}

const NAMES: [(&str, Column); 21] = [
    ("t_ms", Column::TMs),
    ("bms_max_c", Column::Bms),
    ("rack_temp1_c", Column::RackTemp1),
    ("rack_temp2_c", Column::RackTemp2),
    ("camera_max_c", Column::Camera),
    ("smoke", Column::Smoke),
    ("offgas_lfl_pct", Column::OffGas),
    ("reset", Column::Reset),
    ("hold", Column::Hold),
    ("manual_release", Column::ManualRelease),
    ("room_gas_release", Column::RoomGasRelease),
    ("manual_only", Column::ManualOnly),
    ("authority", Column::Authority),
    ("contactor_open_fb", Column::Feedback(0)),
    ("blanket_down_fb", Column::Feedback(1)),
    ("patch_fired_fb", Column::Feedback(2)),
    ("agent_pressure_fb", Column::Feedback(3)),
    ("coolant_flow_fb", Column::Feedback(4)),
    ("gas_released_fb", Column::Feedback(5)),
    ("command", Column::Command),
    ("restart", Column::Restart),
];

impl Column {
    /// The header name.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, c)| *c == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    fn from_name(name: &str) -> Option<Column> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
    }

    fn expected(self) -> &'static str {
        match self {
            Column::TMs => "a time in milliseconds (unsigned integer)",
            Column::Bms
            | Column::RackTemp1
            | Column::RackTemp2
            | Column::Camera
            | Column::OffGas => "a number like 61.5, `fault`, or an empty cell",
            Column::Command => {
                "`ack`, `test_on`, `test_off`, `time:<unix_ms>`, `inhibit:<sensor>:<ms>` or empty"
            }
            Column::Restart => "`0`, `1`, or an empty cell",
            _ => "`0`, `1`, `fault`, or an empty cell",
        }
    }
}

/// The largest number of columns in a header (each column at most once).
pub const MAX_COLUMNS: usize = NAMES.len();

/// What is wrong with a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceErrorKind {
    /// No header line.
    Empty,
    /// The first header column is not `t_ms`.
    FirstColumnNotTime,
    /// Unknown column name.
    UnknownColumn,
    /// A column appears twice.
    DuplicateColumn,
    /// A row has a different number of cells than the header.
    WrongCellCount {
        /// Cells in the header.
        expected: usize,
        /// Cells in the row.
        found: usize,
    },
    /// A cell could not be parsed.
    BadCell {
        /// What the column accepts.
        expected: &'static str,
    },
    /// `t_ms` decreased.
    TimeWentBack {
        /// The previous row's time.
        previous: u64,
    },
    /// A `#!` directive that is not `common_cause:`, comes after the header, or names a
    /// column that is not a sensor (or one already in a group).
    BadDirective {
        /// What is wrong.
        why: &'static str,
    },
}

/// A trace error, naming the line (1-based) and the column (1-based; 0 for the whole line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// Line number, 1-based.
    pub line: usize,
    /// Column number, 1-based (0 when the error concerns the whole line).
    pub column: usize,
    /// The column name, when known.
    pub column_name: &'static str,
    /// The offending text (truncated to 32 bytes).
    pub found: heapless::String<32>,
    /// What went wrong.
    pub kind: TraceErrorKind,
}

impl TraceError {
    fn new(
        line: usize,
        column: usize,
        column_name: &'static str,
        found: &str,
        kind: TraceErrorKind,
    ) -> TraceError {
        let mut f = heapless::String::new();
        for ch in found.chars() {
            if f.push(ch).is_err() {
                break;
            }
        }
        TraceError {
            line,
            column,
            column_name,
            found: f,
            kind,
        }
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if self.column > 0 {
            write!(f, ", column {}", self.column)?;
            if !self.column_name.is_empty() {
                write!(f, " ({})", self.column_name)?;
            }
        }
        f.write_str(": ")?;
        match &self.kind {
            TraceErrorKind::Empty => f.write_str("no header line (expected `t_ms,...`)"),
            TraceErrorKind::FirstColumnNotTime => {
                write!(f, "the first column must be `t_ms`, found `{}`", self.found)
            }
            TraceErrorKind::UnknownColumn => {
                write!(f, "unknown column `{}`; known columns: ", self.found)?;
                for (i, (n, _)) in NAMES.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(n)?;
                }
                Ok(())
            }
            TraceErrorKind::DuplicateColumn => write!(f, "column `{}` appears twice", self.found),
            TraceErrorKind::WrongCellCount { expected, found } => {
                write!(
                    f,
                    "expected {expected} cells like the header, found {found}"
                )
            }
            TraceErrorKind::BadCell { expected } => {
                write!(f, "expected {expected}, found `{}`", self.found)
            }
            TraceErrorKind::TimeWentBack { previous } => write!(
                f,
                "t_ms {} is before the previous row's {previous}",
                self.found
            ),
            TraceErrorKind::BadDirective { why } => {
                write!(f, "directive `{}`: {why}", self.found)
            }
        }
    }
}

/// A parsed header.
#[derive(Debug, Clone)]
pub struct Header {
    cols: [Column; MAX_COLUMNS],
    len: usize,
}

/// One parsed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Time of the row.
    pub t_ms: u64,
    /// The inputs of the cycle.
    pub inputs: Inputs,
    /// A network command to apply before the cycle, if any.
    pub command: Option<NetworkCommand>,
    /// The controller restarts before the cycle.
    pub restart: bool,
}

impl Header {
    /// Parses the header line.
    pub fn parse(line: &str, line_no: usize) -> Result<Header, TraceError> {
        let mut h = Header {
            cols: [Column::TMs; MAX_COLUMNS],
            len: 0,
        };
        for (i, raw) in line.split(',').enumerate() {
            let col_no = i.saturating_add(1);
            let name = raw.trim();
            let col = Column::from_name(name).ok_or_else(|| {
                let kind = if i == 0 {
                    TraceErrorKind::FirstColumnNotTime
                } else {
                    TraceErrorKind::UnknownColumn
                };
                TraceError::new(line_no, col_no, "", name, kind)
            })?;
            if (i == 0) != (col == Column::TMs) {
                let kind = if i == 0 {
                    TraceErrorKind::FirstColumnNotTime
                } else {
                    TraceErrorKind::DuplicateColumn
                };
                return Err(TraceError::new(line_no, col_no, "", name, kind));
            }
            if h.columns().any(|c| c == col) {
                return Err(TraceError::new(
                    line_no,
                    col_no,
                    "",
                    name,
                    TraceErrorKind::DuplicateColumn,
                ));
            }
            // Cannot overflow: every column is distinct and there are MAX_COLUMNS names.
            if let Some(slot) = h.cols.get_mut(h.len) {
                *slot = col;
                h.len = h.len.saturating_add(1);
            }
        }
        Ok(h)
    }

    /// The columns in order.
    pub fn columns(&self) -> impl Iterator<Item = Column> + '_ {
        self.cols.iter().take(self.len).copied()
    }

    /// True if the trace has this column.
    pub fn has(&self, c: Column) -> bool {
        self.columns().any(|x| x == c)
    }

    /// `base` with the sensors and feedbacks set to what the header has: a missing column
    /// means "not fitted".
    pub fn fitted(&self, base: Fitted) -> Fitted {
        let mut f = base;
        f.bms = self.has(Column::Bms);
        f.rack_temp1 = self.has(Column::RackTemp1);
        f.rack_temp2 = self.has(Column::RackTemp2);
        f.camera = self.has(Column::Camera);
        f.smoke = self.has(Column::Smoke);
        f.offgas = self.has(Column::OffGas);
        for (i, fb) in f.feedback.iter_mut().enumerate() {
            *fb = u8::try_from(i).is_ok_and(|i| self.has(Column::Feedback(i)));
        }
        f
    }

    /// Parses one data row.
    pub fn parse_row(&self, line: &str, line_no: usize) -> Result<Row, TraceError> {
        let found = line.split(',').count();
        if found != self.len {
            return Err(TraceError::new(
                line_no,
                0,
                "",
                "",
                TraceErrorKind::WrongCellCount {
                    expected: self.len,
                    found,
                },
            ));
        }
        let mut row = Row {
            t_ms: 0,
            inputs: Inputs::default(),
            command: None,
            restart: false,
        };
        for (i, (cell, col)) in line.split(',').zip(self.columns()).enumerate() {
            let cell = cell.trim();
            let bad = || {
                TraceError::new(
                    line_no,
                    i.saturating_add(1),
                    col.name(),
                    cell,
                    TraceErrorKind::BadCell {
                        expected: col.expected(),
                    },
                )
            };
            let inp = &mut row.inputs;
            match col {
                Column::TMs => row.t_ms = cell.parse::<u64>().map_err(|_| bad())?,
                Column::Bms => inp.bms_max = analog(cell).ok_or_else(bad)?,
                Column::RackTemp1 => inp.rack_temp1 = analog(cell).ok_or_else(bad)?,
                Column::RackTemp2 => inp.rack_temp2 = analog(cell).ok_or_else(bad)?,
                Column::Camera => inp.camera_max = analog(cell).ok_or_else(bad)?,
                Column::OffGas => inp.offgas = analog(cell).ok_or_else(bad)?,
                Column::Smoke => inp.smoke = digital(cell).ok_or_else(bad)?,
                Column::Reset => inp.reset = digital(cell).ok_or_else(bad)?,
                Column::Hold => inp.hold = digital(cell).ok_or_else(bad)?,
                Column::ManualRelease => inp.manual_release = digital(cell).ok_or_else(bad)?,
                Column::RoomGasRelease => inp.room_gas_release = digital(cell).ok_or_else(bad)?,
                Column::ManualOnly => inp.manual_only = digital(cell).ok_or_else(bad)?,
                Column::Authority => inp.authority = digital(cell).ok_or_else(bad)?,
                Column::Feedback(k) => {
                    let d = digital(cell).ok_or_else(bad)?;
                    let slot = inp.feedback.get_mut(usize::from(k)).ok_or_else(bad)?;
                    *slot = d;
                }
                Column::Command => row.command = command(cell).ok_or_else(bad)?,
                Column::Restart => {
                    row.restart = match cell {
                        "" | "0" => false,
                        "1" => true,
                        _ => return Err(bad()),
                    }
                }
            }
        }
        Ok(row)
    }
}

/// The sensor source a column feeds, if it is a sensor column.
fn column_source(c: Column) -> Option<SourceId> {
    match c {
        Column::Bms => Some(SourceId::Bms),
        Column::RackTemp1 => Some(SourceId::RackTemp1),
        Column::RackTemp2 => Some(SourceId::RackTemp2),
        Column::Camera => Some(SourceId::Camera),
        Column::Smoke => Some(SourceId::Smoke),
        Column::OffGas => Some(SourceId::OffGas),
        _ => None,
    }
}

/// Common-cause groups declared by `#! common_cause:` directives (group ids 1, 2, ... in the
/// order of the lines), in [`SourceId`] order like [`Config::common_cause`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Directives {
    /// The groups, if any directive was given.
    pub common_cause: Option<[u8; 6]>,
    groups: u8,
}

impl Directives {
    /// Parses one `#!` line (`line` is the whole line, `#!` included).
    pub fn parse(&mut self, line: &str, line_no: usize) -> Result<(), TraceError> {
        let text = line.trim().trim_start_matches("#!").trim();
        let bad = |why| TraceError::new(line_no, 0, "", text, TraceErrorKind::BadDirective { why });
        let Some(list) = text.strip_prefix("common_cause:") else {
            return Err(bad(
                "the only directive is `common_cause: <column> <column> ...`",
            ));
        };
        if self.groups >= MAX_COMMON_CAUSE_GROUP {
            return Err(bad("too many common-cause groups (at most 15)"));
        }
        let id = self.groups.saturating_add(1);
        let mut groups = self.common_cause.unwrap_or([0; 6]);
        let mut members = 0u8;
        for name in list.split([' ', ',']).filter(|n| !n.is_empty()) {
            let source = Column::from_name(name)
                .and_then(column_source)
                .ok_or_else(|| bad("names a column that is not a sensor"))?;
            let slot = groups
                .get_mut(source as usize)
                .ok_or_else(|| bad("names a column that is not a sensor"))?;
            if *slot != 0 {
                return Err(bad("names a sensor already in a group"));
            }
            *slot = id;
            members = members.saturating_add(1);
        }
        if members < 2 {
            return Err(bad("a common-cause group needs at least two sensors"));
        }
        self.groups = id;
        self.common_cause = Some(groups);
        Ok(())
    }
}

fn analog(cell: &str) -> Option<Analog> {
    if cell.is_empty() {
        return Some(Analog::NoSample);
    }
    if cell == "fault" {
        return Some(Analog::Fault);
    }
    parse_tenths(cell).map(Analog::Value)
}

fn digital(cell: &str) -> Option<Digital> {
    match cell {
        "" => Some(Digital::NoSample),
        "0" => Some(Digital::Off),
        "1" => Some(Digital::On),
        "fault" => Some(Digital::Fault),
        _ => None,
    }
}

/// `Some(None)` for an empty cell, `Some(Some(cmd))` for a command, `None` if malformed.
fn command(cell: &str) -> Option<Option<NetworkCommand>> {
    let mut parts = cell.split(':');
    let head = parts.next().unwrap_or("");
    let a = parts.next();
    let b = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let cmd = match (head, a, b) {
        ("", None, None) => return Some(None),
        ("ack", None, None) => NetworkCommand::Acknowledge,
        ("test_on", None, None) => NetworkCommand::TestMode { on: true },
        ("test_off", None, None) => NetworkCommand::TestMode { on: false },
        ("time", Some(t), None) => NetworkCommand::TimeSync {
            unix_ms: t.parse().ok()?,
        },
        ("inhibit", Some(s), Some(ms)) => NetworkCommand::InhibitSensor {
            sensor: SourceId::from_name(s)?,
            duration_ms: ms.parse().ok()?,
        },
        _ => return None,
    };
    Some(Some(cmd))
}

/// Parses a decimal number into tenths, rounding half away from zero (`61.25` -> `613`).
/// Accepts an optional sign, digits, and an optional fraction; at most 6 integer digits.
pub fn parse_tenths(s: &str) -> Option<i32> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if int.len() > 6 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (body.contains('.') && frac.is_empty()) {
        return None;
    }
    let mut v: i32 = 0;
    for b in int.bytes() {
        v = v
            .checked_mul(10)?
            .checked_add(i32::from(b.checked_sub(b'0')?))?;
    }
    let mut fb = frac.bytes();
    let tenth = fb.next().map_or(0, |b| b.saturating_sub(b'0'));
    let round_up = fb.next().is_some_and(|b| b >= b'5');
    v = v
        .checked_mul(10)?
        .checked_add(i32::from(tenth))?
        .checked_add(i32::from(round_up))?;
    if neg { v.checked_neg() } else { Some(v) }
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Data rows replayed.
    pub rows: u32,
    /// Time of the last row.
    pub end_t_ms: u64,
    /// Stage at the end.
    pub final_stage: Stage,
    /// Highest stage reached.
    pub max_stage: Stage,
    /// Outputs at the end.
    pub final_outputs: Outputs,
    /// JSON transition lines written.
    pub transitions: u32,
    /// Events logged.
    pub events: u32,
}

/// Why a replay stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayError {
    /// The configuration (with the trace's fitted inputs) is invalid.
    Config(ConfigError),
    /// The trace is malformed.
    Trace(TraceError),
    /// The output sink failed.
    Output,
    /// The latch record did not survive a `restart` row (never expected: a bug).
    Latch(LatchError),
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Config(e) => {
                write!(f, "{e} (fitted inputs are the trace header's columns)")
            }
            ReplayError::Trace(e) => write!(f, "{e}"),
            ReplayError::Output => f.write_str("could not write the output"),
            ReplayError::Latch(e) => write!(f, "restart: {e}"),
        }
    }
}

impl From<fmt::Error> for ReplayError {
    fn from(_: fmt::Error) -> Self {
        ReplayError::Output
    }
}

/// Writes `s` as a JSON string literal.
fn json_str<W: Write>(out: &mut W, s: &str) -> fmt::Result {
    out.write_char('"')?;
    JsonEscape(out).write_str(s)?;
    out.write_char('"')
}

/// Escapes everything written through it for a JSON string body.
struct JsonEscape<'a, W: Write>(&'a mut W);

impl<W: Write> Write for JsonEscape<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for ch in s.chars() {
            match ch {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                '\n' => self.0.write_str("\\n")?,
                c if u32::from(c) < 0x20 => write!(self.0, "\\u{:04x}", u32::from(c))?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

fn json_list<'n, W: Write>(out: &mut W, names: impl Iterator<Item = &'n str>) -> fmt::Result {
    out.write_char('[')?;
    for (i, n) in names.enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        json_str(out, n)?;
    }
    out.write_char(']')
}

fn write_state<W: Write>(out: &mut W, o: &Outputs) -> fmt::Result {
    out.write_str("\"stage\":")?;
    json_str(out, o.stage.name())?;
    out.write_str(",\"actions\":")?;
    json_list(out, o.actions.iter().map(|a| a.name()))?;
    out.write_str(",\"troubles\":")?;
    json_list(out, o.troubles.iter().map(|t| t.name()))?;
    out.write_str(",\"supervisory\":")?;
    json_list(out, o.supervisory.iter().map(|s| s.name()))
}

/// Writes one transition line: the state after the cycle and the reason (the events logged
/// in it, joined by `; `).
pub fn write_transition<W: Write>(
    out: &mut W,
    t_ms: u64,
    o: &Outputs,
    events: impl Iterator<Item = Event>,
) -> fmt::Result {
    write!(out, "{{\"t_ms\":{t_ms},")?;
    write_state(out, o)?;
    out.write_str(",\"reason\":\"")?;
    for (i, e) in events.enumerate() {
        if i > 0 {
            out.write_str("; ")?;
        }
        write!(JsonEscape(out), "{}", e.kind)?;
    }
    out.write_str("\"}\n")
}

/// Writes the final summary line.
pub fn write_summary<W: Write>(out: &mut W, s: &Summary) -> fmt::Result {
    write!(
        out,
        "{{\"summary\":true,\"rows\":{},\"end_t_ms\":{}",
        s.rows, s.end_t_ms
    )?;
    out.write_str(",\"max_stage\":")?;
    json_str(out, s.max_stage.name())?;
    out.write_char(',')?;
    write_state(out, &s.final_outputs)?;
    writeln!(
        out,
        ",\"transitions\":{},\"events\":{}}}",
        s.transitions, s.events
    )
}

/// The directives and the header line (number, text) of a trace.
fn prelude(trace: &str) -> Result<(Directives, usize, &str), ReplayError> {
    let mut directives = Directives::default();
    for (i, text) in trace.lines().enumerate() {
        let line_no = i.saturating_add(1);
        let t = text.trim_start();
        if t.starts_with("#!") {
            directives
                .parse(text, line_no)
                .map_err(ReplayError::Trace)?;
        } else if !t.trim().is_empty() && !t.starts_with('#') {
            return Ok((directives, line_no, text));
        }
    }
    Err(ReplayError::Trace(TraceError::new(
        1,
        0,
        "",
        "",
        TraceErrorKind::Empty,
    )))
}

/// The configuration a trace is replayed with: `config` with the fitted sensors and feedbacks
/// of the trace header and the common-cause groups of its `#! common_cause:` lines (when it
/// has any). Not validated here (the replay does that).
pub fn trace_config(trace: &str, config: &Config) -> Result<Config, ReplayError> {
    let (directives, hline, htext) = prelude(trace)?;
    let header = Header::parse(htext, hline).map_err(ReplayError::Trace)?;
    Ok(apply(config, &header, &directives))
}

fn apply(config: &Config, header: &Header, directives: &Directives) -> Config {
    let mut cfg = *config;
    cfg.fitted = header.fitted(cfg.fitted);
    if let Some(groups) = directives.common_cause {
        cfg.common_cause = groups;
    }
    cfg
}

/// Replays a whole trace through a fresh [`RackLogic`] and writes the JSON lines to `out`.
/// The fitted sensors and feedbacks are taken from the trace header; everything else from
/// `config`. Pure: the same trace and configuration always give the same bytes.
pub fn replay<W: Write>(trace: &str, config: &Config, out: &mut W) -> Result<Summary, ReplayError> {
    let (directives, hline, htext) = prelude(trace)?;
    let mut lines = trace
        .lines()
        .enumerate()
        .map(|(i, l)| (i.saturating_add(1), l))
        .skip(hline)
        .filter(|(_, l)| {
            let t = l.trim_start();
            !t.trim().is_empty() && (!t.starts_with('#') || t.starts_with("#!"))
        });
    let header = Header::parse(htext, hline).map_err(ReplayError::Trace)?;
    let cfg = apply(config, &header, &directives);
    let mut logic = RackLogic::new(cfg).map_err(ReplayError::Config)?;
    let mut summary = Summary {
        rows: 0,
        end_t_ms: 0,
        final_stage: Stage::Normal,
        max_stage: Stage::Normal,
        final_outputs: Outputs::default(),
        transitions: 0,
        events: 0,
    };
    let mut previous: Option<u64> = None;
    for (line_no, text) in lines.by_ref() {
        if text.trim_start().starts_with("#!") {
            return Err(ReplayError::Trace(TraceError::new(
                line_no,
                0,
                "",
                text.trim(),
                TraceErrorKind::BadDirective {
                    why: "directives come before the header",
                },
            )));
        }
        let row = header
            .parse_row(text, line_no)
            .map_err(ReplayError::Trace)?;
        if let Some(p) = previous
            && row.t_ms < p
        {
            let mut buf = heapless::String::<32>::new();
            // A u64 always fits in 32 bytes.
            let _ = write!(buf, "{}", row.t_ms);
            return Err(ReplayError::Trace(TraceError::new(
                line_no,
                1,
                "t_ms",
                &buf,
                TraceErrorKind::TimeWentBack { previous: p },
            )));
        }
        previous = Some(row.t_ms);
        if row.restart {
            // Only the latch record survives, through its bytes, like in the controller.
            let bytes = logic.latch_record().to_bytes();
            let record = LatchRecord::from_bytes(&bytes).map_err(ReplayError::Latch)?;
            logic = RackLogic::restore(cfg, &record, row.t_ms).map_err(ReplayError::Config)?;
        }
        if let Some(c) = row.command {
            // Refusals are logged by the logic and show up in the reason.
            let _ = logic.command(row.t_ms, c);
        }
        let o = logic.step(row.t_ms, &row.inputs);
        summary.rows = summary.rows.saturating_add(1);
        summary.end_t_ms = row.t_ms;
        summary.max_stage = summary.max_stage.max(o.stage);
        summary.final_stage = o.stage;
        summary.final_outputs = o;
        if !logic.events().is_empty() {
            let n = u32::try_from(logic.events().len()).unwrap_or(u32::MAX);
            summary.events = summary.events.saturating_add(n);
            summary.transitions = summary.transitions.saturating_add(1);
            write_transition(
                out,
                row.t_ms,
                &o,
                core::iter::from_fn(|| logic.take_event()),
            )?;
        }
    }
    write_summary(out, &summary)?;
    Ok(summary)
}
