//! CSV export of the alarm and event lists, as pure data: the filters the console offers
//! (grade, subsystem, state, room, text), applied the same way the console applies them, and
//! RFC 4180 CSV with local times that carry their UTC offset. `api_export` gathers the inputs
//! and serves the files.
//!
//! The files are data for other tools: the header row has stable machine names, states and
//! subsystems are their machine keys, times are ISO 8601 with the offset (and the epoch
//! milliseconds beside them). UTF-8 with a byte order mark, so spreadsheet programs read Korean
//! names right. A text cell that a spreadsheet would run as a formula (starting with `=`, `+`,
//! `-`, `@`, a tab or a carriage return) is prefixed with `'`.
//!
//! Files are UTF-8 with a byte order mark (`BOM`), times in ISO 8601 with
//! their offset, and spreadsheet formulas defused (`GET /api/export/alarms.csv`,
//! `/api/export/events.csv`). The global search is `crate::engine::search` (`GET /api/search`: every word
//! required, exact ids first).

use crate::engine::energy::{DAY_MS, MINUTE_MS, civil_from_days};
use crate::engine::fire_view::Place;
use dcim_alarms::{Alarm, AlarmState, Condition, Rule};
use dcim_site::{Kind, Site};
use std::collections::BTreeMap;

/// The byte order mark that starts every file.
pub const BOM: &str = "\u{feff}";

/// One CSV line (with `\r\n`) of text cells.
pub fn csv_line<S: AsRef<str>>(cells: &[S]) -> String {
    let mut out = String::new();
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_cell(c.as_ref()));
    }
    out.push_str("\r\n");
    out
}

/// A text cell, quoted when needed and defused when a spreadsheet would read it as a formula.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `2026-05-01T14:03:07+09:00` for `ms` at `offset_min` east of UTC.
pub fn iso_local(ms: i64, offset_min: i32) -> String {
    let local = ms + i64::from(offset_min) * MINUTE_MS;
    let (y, m, d) = civil_from_days(local.div_euclid(DAY_MS));
    let t = local.rem_euclid(DAY_MS) / 1000;
    let sign = if offset_min < 0 { '-' } else { '+' };
    let o = offset_min.unsigned_abs();
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60,
        o / 60,
        o % 60
    )
}

/// Checks an `offset_min` query value: minutes east of UTC, −12:00 to +14:00.
pub fn check_offset(o: i32) -> Result<i32, String> {
    if (-720..=840).contains(&o) {
        Ok(o)
    } else {
        Err(format!(
            "offset_min: {o}: expected minutes east of UTC, -720 to 840"
        ))
    }
}

/// The state an alarm shows: the strongest overlay, else its base state.
pub fn shown_state(a: &Alarm) -> AlarmState {
    a.overlays.visible().unwrap_or(a.base)
}

/// Whether the alarm is a fire alarm (the stage and pre-alarm rules: never shelved).
pub fn is_fire(a: &Alarm, rule: Option<&Rule>) -> bool {
    rule.is_some_and(|r| {
        matches!(r.condition, Condition::FireStage)
            || r.role().is_some_and(|x| x.starts_with("fire."))
    }) || a.rule.starts_with("fire-")
        || a.rule.starts_with("fire_")
        || a.rule.starts_with("fire.")
}

fn kind_subsystem(k: Kind) -> &'static str {
    match k {
        Kind::BatteryRoom => "fire",
        Kind::UtilityFeed
        | Kind::Generator
        | Kind::Switchgear
        | Kind::Ats
        | Kind::Transformer
        | Kind::Ups
        | Kind::Pdu => "power",
        Kind::Chiller | Kind::ChilledWaterLoop | Kind::BufferTank | Kind::Crah | Kind::Room => {
            "cooling"
        }
        Kind::Carrier | Kind::Mmr | Kind::Core | Kind::Row => "network",
        Kind::Rack => "other",
    }
}

fn role_subsystem(role: &str) -> &'static str {
    let p = role.split('.').next().unwrap_or("");
    match p {
        "fire" | "battery" | "drain_tank" => "fire",
        "feed" | "ups" | "pdu" | "ats" | "transformer" | "generator" => "power",
        "chiller" | "crah" | "loop" | "buffer_tank" | "room" => "cooling",
        "link" | "device" => "network",
        _ => "other",
    }
}

/// The subsystem an alarm is filed under: `fire`, `power`, `cooling`, `network`,
/// `communication` or `other` (the console's filter uses the same rules).
pub fn alarm_subsystem(a: &Alarm, rule: Option<&Rule>, site: Option<&Site>) -> String {
    if is_fire(a, rule) {
        return "fire".into();
    }
    match rule.map(|r| &r.condition) {
        Some(Condition::Redundancy) => {
            return a.subject.split('/').next().unwrap_or("other").to_owned();
        }
        Some(Condition::CommLost) => return "communication".into(),
        _ => {}
    }
    if let Some(k) = a
        .component
        .as_deref()
        .and_then(|c| site?.get(c))
        .map(|c| c.kind)
        && k != Kind::Rack
    {
        return kind_subsystem(k).into();
    }
    rule.and_then(Rule::role)
        .map_or("other", role_subsystem)
        .into()
}

/// The component an alarm is about: its own, the rack of a per-rack redundancy alarm, or the
/// first component bound to the device it names.
pub fn alarm_component(a: &Alarm, site: Option<&Site>) -> Option<String> {
    if let Some(c) = &a.component {
        return Some(c.clone());
    }
    let site = site?;
    if let Some((_, rack)) = a.subject.split_once('/')
        && site.get(rack).is_some()
    {
        return Some(rack.to_owned());
    }
    let device = a.subject.split('[').next().unwrap_or("");
    site.components_of_device(device)
        .first()
        .map(|&i| site.components[i].id.clone())
}

/// What the console's alarm filters hold.
#[derive(Debug, Clone, Default)]
pub struct AlarmFilter {
    pub grade: Option<u8>,
    pub subsystem: Option<String>,
    /// `needs_ack`, `suppressed` or a state key.
    pub state: Option<String>,
    pub room: Option<String>,
    /// Words that must all appear (case-insensitive) in the message, id, component, subject,
    /// component name or rule name.
    pub q: Option<String>,
}

fn state_matches(st: AlarmState, f: &str) -> bool {
    match f {
        "needs_ack" => matches!(
            st,
            AlarmState::Unacknowledged | AlarmState::RtnUnacknowledged
        ),
        "suppressed" => matches!(
            st,
            AlarmState::SuppressedByDesign | AlarmState::SuppressedByMaintenance
        ),
        other => st.as_str() == other,
    }
}

/// One alarm with what the list shows of it.
pub struct AlarmRow<'a> {
    pub alarm: &'a Alarm,
    pub rule: Option<&'a Rule>,
    pub state: AlarmState,
    pub subsystem: String,
    pub component: Option<String>,
    pub component_name: Option<String>,
    pub room: Option<String>,
}

/// The alarms that pass the filter, with their derived columns, worst grade first, newest
/// first within a grade.
pub fn alarm_rows<'a>(
    alarms: impl IntoIterator<Item = &'a Alarm>,
    rules: &'a BTreeMap<String, Rule>,
    site: Option<&Site>,
    places: &BTreeMap<String, Place>,
    f: &AlarmFilter,
) -> Vec<AlarmRow<'a>> {
    let words = query_words(f.q.as_deref());
    let mut out: Vec<AlarmRow<'a>> = alarms
        .into_iter()
        .map(|a| alarm_row(a, rules, site, places))
        .filter(|row| passes(row, f) && has_words(row, &words))
        .collect();
    out.sort_by(|x, y| {
        x.alarm.grade.cmp(&y.alarm.grade).then(
            y.alarm
                .active_since_ms
                .unwrap_or(y.alarm.last_change_ms)
                .cmp(&x.alarm.active_since_ms.unwrap_or(x.alarm.last_change_ms)),
        )
    });
    out
}

/// One alarm's row: its rule, shown state, subsystem, component (with its name) and room.
fn alarm_row<'a>(
    a: &'a Alarm,
    rules: &'a BTreeMap<String, Rule>,
    site: Option<&Site>,
    places: &BTreeMap<String, Place>,
) -> AlarmRow<'a> {
    let rule = rules.get(&a.rule);
    let state = shown_state(a);
    let subsystem = alarm_subsystem(a, rule, site);
    let component = alarm_component(a, site);
    let component_name = component
        .as_deref()
        .and_then(|c| site?.get(c)?.name.clone());
    let room = room_of(component.as_deref(), places);
    AlarmRow {
        alarm: a,
        rule,
        state,
        subsystem,
        component,
        component_name,
        room,
    }
}

/// Whether a row passes the filter's grade, subsystem, state and room (an empty one passes).
fn passes(row: &AlarmRow<'_>, f: &AlarmFilter) -> bool {
    !(f.grade.is_some_and(|g| g != row.alarm.grade)
        || f.subsystem
            .as_deref()
            .is_some_and(|s| !s.is_empty() && s != row.subsystem)
        || f.state
            .as_deref()
            .is_some_and(|s| !s.is_empty() && !state_matches(row.state, s))
        || f.room
            .as_deref()
            .is_some_and(|r| !r.is_empty() && row.room.as_deref() != Some(r)))
}

/// The words of a search query, in lower case (none: everything matches).
fn query_words(q: Option<&str>) -> Vec<String> {
    q.unwrap_or("")
        .to_lowercase()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The room of a component, as far as the places say.
fn room_of(component: Option<&str>, places: &BTreeMap<String, Place>) -> Option<String> {
    component
        .and_then(|c| places.get(c))
        .and_then(|p| p.room.clone())
}

/// Whether every search word (lower case) is in the row's message, ids, subject, component
/// name or rule name.
fn has_words(row: &AlarmRow<'_>, words: &[String]) -> bool {
    if words.is_empty() {
        return true;
    }
    let a = row.alarm;
    let hay = [
        Some(a.message.as_str()),
        Some(a.id.as_str()),
        a.component.as_deref(),
        Some(a.subject.as_str()),
        row.component_name.as_deref(),
        row.rule.map(|r| r.name.as_str()),
    ]
    .iter()
    .flatten()
    .copied()
    .collect::<Vec<&str>>()
    .join(" ")
    .to_lowercase();
    words.iter().all(|w| hay.contains(w.as_str()))
}

pub const ALARM_COLUMNS: [&str; 17] = [
    "id",
    "grade",
    "state",
    "subsystem",
    "rule",
    "rule_name",
    "subject",
    "component",
    "component_name",
    "room",
    "message",
    "value",
    "since",
    "since_ms",
    "last_change",
    "acked_by",
    "shelved_until",
];

/// The alarm list as CSV.
pub fn alarms_csv(rows: &[AlarmRow<'_>], offset_min: i32) -> String {
    let mut out = String::from(BOM);
    out.push_str(&csv_line(&ALARM_COLUMNS));
    for r in rows {
        let a = r.alarm;
        let since = a.active_since_ms.unwrap_or(a.last_change_ms);
        out.push_str(&csv_line(&[
            a.id.clone(),
            a.grade.to_string(),
            r.state.as_str().to_owned(),
            r.subsystem.clone(),
            a.rule.clone(),
            r.rule.map(|x| x.name.clone()).unwrap_or_default(),
            a.subject.clone(),
            r.component.clone().unwrap_or_default(),
            r.component_name.clone().unwrap_or_default(),
            r.room.clone().unwrap_or_default(),
            a.message.clone(),
            a.value.map(|v| v.to_string()).unwrap_or_default(),
            iso_local(since, offset_min),
            since.to_string(),
            iso_local(a.last_change_ms, offset_min),
            a.acked_by.clone().unwrap_or_default(),
            a.overlays
                .shelved_until
                .map(|t| iso_local(t, offset_min))
                .unwrap_or_default(),
        ]));
    }
    out
}

/// An event as the event list and its export need it.
pub struct EventRow<'a> {
    pub event: &'a crate::storage::store::EventRecord,
    pub component: Option<String>,
    pub room: Option<String>,
}

/// What the console's event filters hold.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// A severity (`info`, `warning`, `alarm`, ...).
    pub severity: Option<String>,
    /// A kind or a kind prefix ending in `.` (`fire.`).
    pub kind: Option<String>,
    pub room: Option<String>,
    pub q: Option<String>,
}

/// The events that pass the filter, newest first (as given).
pub fn event_rows<'a>(
    events: &'a [crate::storage::store::EventRecord],
    site: Option<&Site>,
    places: &BTreeMap<String, Place>,
    f: &EventFilter,
) -> Vec<EventRow<'a>> {
    let words = query_words(f.q.as_deref());
    events
        .iter()
        .filter_map(|e| {
            let component = site.and_then(|s| {
                s.components_of_device(&e.device)
                    .first()
                    .map(|&i| s.components[i].id.clone())
            });
            let room = room_of(component.as_deref(), places);
            let kind_ok = f.kind.as_deref().is_none_or(|k| {
                k.is_empty()
                    || if k.ends_with('.') {
                        e.kind.starts_with(k)
                    } else {
                        e.kind == k
                    }
            });
            if f.since_ms.is_some_and(|t| e.ts_ms < t)
                || f.until_ms.is_some_and(|t| e.ts_ms > t)
                || f.severity
                    .as_deref()
                    .is_some_and(|s| !s.is_empty() && e.severity != s)
                || !kind_ok
                || f.room
                    .as_deref()
                    .is_some_and(|r| !r.is_empty() && room.as_deref() != Some(r))
            {
                return None;
            }
            if !words.is_empty() {
                let hay = format!(
                    "{} {} {} {} {}",
                    e.device,
                    e.kind,
                    e.message,
                    e.agent,
                    component.as_deref().unwrap_or("")
                )
                .to_lowercase();
                if !words.iter().all(|w| hay.contains(w.as_str())) {
                    return None;
                }
            }
            Some(EventRow {
                event: e,
                component,
                room,
            })
        })
        .collect()
}

pub const EVENT_COLUMNS: [&str; 12] = [
    "time",
    "ts_ms",
    "device",
    "component",
    "room",
    "kind",
    "severity",
    "message",
    "agent",
    "id",
    "test",
    "data",
];

/// The event list as CSV.
pub fn events_csv(rows: &[EventRow<'_>], offset_min: i32) -> String {
    let mut out = String::from(BOM);
    out.push_str(&csv_line(&EVENT_COLUMNS));
    for r in rows {
        let e = r.event;
        out.push_str(&csv_line(&[
            iso_local(e.ts_ms, offset_min),
            e.ts_ms.to_string(),
            e.device.clone(),
            r.component.clone().unwrap_or_default(),
            r.room.clone().unwrap_or_default(),
            e.kind.clone(),
            e.severity.clone(),
            e.message.clone(),
            e.agent.clone(),
            e.id.clone(),
            e.test.to_string(),
            if e.data.is_null() {
                String::new()
            } else {
                e.data.to_string()
            },
        ]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        // Hazard: an alarm message like "=HYPERLINK(...)" run by the spreadsheet that opens
        // the export.
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("-5"), "'-5");
        assert_eq!(csv_cell("=A1,B1"), "\"'=A1,B1\"");
        assert_eq!(csv_line(&["x", "배터리실"]), "x,배터리실\r\n");
    }

    #[test]
    fn local_times_carry_their_offset() {
        let ms = 1_777_600_987_000; // 2026-05-01T02:03:07Z
        assert_eq!(iso_local(ms, 0), "2026-05-01T02:03:07+00:00");
        assert_eq!(iso_local(ms, 540), "2026-05-01T11:03:07+09:00");
        assert_eq!(iso_local(ms, -150), "2026-04-30T23:33:07-02:30");
        assert!(check_offset(840).is_ok() && check_offset(841).is_err());
    }
}
