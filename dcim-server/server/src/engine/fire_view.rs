//! What the console and the fire authority's view show about fire, as pure data: the stage
//! table (from [`fire_logic::STAGE_TABLE`], so a stage is never called one thing here and
//! another in the firmware), where each rack and battery room is in the site model, and for
//! every rack or battery room in a fire stage: the stage by name, since when, what triggered it,
//! and the actions its stage commands with their feedback.
//!
//! A [`Place`] comes from the site file's floor plans when it has them (`[[plan]]`: building,
//! floor, room, the plan's row, the position in it and the tile), and otherwise from what the
//! site graph says: the site (as the building), the component's `room`, the row it hangs off
//! (its network group of kind `row`) and its position in that row (the order of the racks of
//! the row in the site file, 1-based).
//!
//! Missing information is never good news here: a rack whose stage reading is stale, bad or
//! lost keeps the last stage it reported (flagged `stale`), and racks with no current reading
//! at all are listed apart, never counted as normal.
//!
//! Invariants: a stale, bad or lost stage reading keeps its last reported stage (flagged), and a
//! rack with no usable reading is listed under `no_reading`, never counted normal. `places(site)`
//! comes from the floor plan when the site file has one (building, floor, room, row, position,
//! tile), else from the site, the room and the rack's `row` network group.

use dcim_points::{Quality, Sample, Value};
use dcim_site::{Component, Kind, Plan, Site};
use fire_logic::{Action, STAGE_TABLE, SourceId};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// People's name of an action a stage commands.
pub fn action_name(a: Action) -> &'static str {
    match a {
        Action::ContactorOpen => "Power cut (battery contactor opened)",
        Action::BlanketDrop => "Fire blanket dropped",
        Action::PatchFire => "Extinguishing patch fired",
        Action::AgentRelease => "Extinguishing agent released",
        Action::CoolantOn => "Continuous coolant on",
        Action::GasWarning => "Room gas pre-discharge warning",
        Action::GasRelease => "Room gas released",
    }
}

/// The feedback point that confirms an action, when the product has one.
pub fn action_feedback_role(a: Action) -> Option<&'static str> {
    match a {
        Action::ContactorOpen => Some("fire.contactor_open"),
        Action::BlanketDrop => Some("fire.blanket_down"),
        Action::PatchFire => Some("fire.patch_fired"),
        Action::AgentRelease => Some("fire.agent_pressure"),
        Action::CoolantOn => Some("fire.coolant_flow"),
        Action::GasRelease => Some("fire.gas_released"),
        Action::GasWarning => None,
    }
}

/// People's name of a fire-logic input source (the `source` of a stage's cause).
pub fn source_name(key: &str) -> &'static str {
    match SourceId::from_name(key) {
        Some(SourceId::Bms) => "BMS highest cell temperature",
        Some(SourceId::RackTemp1) => "rack temperature sensor 1",
        Some(SourceId::RackTemp2) => "rack temperature sensor 2",
        Some(SourceId::Camera) => "thermal camera hot spot",
        Some(SourceId::Smoke) => "smoke detector",
        Some(SourceId::OffGas) => "off-gas detector",
        None => match key {
            "governing" => "governing temperature",
            "manual" => "manual release",
            _ => "unknown source",
        },
    }
}

/// The stage table as served by `GET /api/fire/stages`: every stage in code order with its
/// key, name, entry condition, default threshold (°C), the actions it adds and all actions a
/// rack at that stage has had commanded; and every action with its name and feedback role.
pub fn stage_table() -> StageTable {
    let mut all: Vec<Action> = Vec::new();
    let stages = STAGE_TABLE
        .iter()
        .map(|row| {
            all.extend(row.actions.iter().copied());
            StageView {
                code: row.code,
                key: row.key,
                name: row.name,
                condition: row.condition,
                default_threshold_c: row.default_threshold.map(|t| f64::from(t) / 10.0),
                actions: row.actions.iter().map(|a| a.name()).collect(),
                all_actions: all.iter().map(|a| a.name()).collect(),
            }
        })
        .collect();
    let actions = Action::ALL
        .iter()
        .map(|a| ActionView {
            key: a.name(),
            name: action_name(*a),
            feedback_role: action_feedback_role(*a),
        })
        .collect();
    StageTable { stages, actions }
}

/// `GET /api/fire/stages`: the stages in code order and every action.
#[derive(Debug, Clone, Serialize)]
pub struct StageTable {
    pub stages: Vec<StageView>,
    pub actions: Vec<ActionView>,
}

/// One stage of the table.
#[derive(Debug, Clone, Serialize)]
pub struct StageView {
    pub code: u8,
    pub key: &'static str,
    pub name: &'static str,
    pub condition: &'static str,
    /// `null` for the stages entered otherwise than by a temperature.
    pub default_threshold_c: Option<f64>,
    /// The actions this stage adds.
    pub actions: Vec<&'static str>,
    /// Every action a rack at this stage has had commanded.
    pub all_actions: Vec<&'static str>,
}

/// One action a stage commands.
#[derive(Debug, Clone, Serialize)]
pub struct ActionView {
    pub key: &'static str,
    pub name: &'static str,
    /// The role of the point that confirms it (`null`: no feedback).
    pub feedback_role: Option<&'static str>,
}

/// The stage code of a `fire.stage` value (the wire contract's [`dcim_wire::fire_stage_code`]).
pub use dcim_wire::fire_stage_code as stage_code;

/// Where a component is, as far as the site model says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Place {
    /// The building: the plan's `building`, else the site.
    pub building: String,
    /// The plan's floor, when it gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<String>,
    pub room: Option<String>,
    /// The room's name, when the room is a component with one.
    pub room_name: Option<String>,
    /// The row: the plan's row, else the network component of kind `row` the rack hangs off.
    pub row: Option<String>,
    /// 1-based position of the rack in its row (the plan's order, else site-file order).
    pub position: Option<usize>,
    pub zone: Option<String>,
    /// The tile on the room's floor plan, when the site file has one: `[x, y]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tile: Option<[u32; 2]>,
}

/// The place of every rack, battery room, row, room, PDU and CRAH of the site (and of anything
/// else drawn on a floor plan), by component id.
pub fn places(site: &Site) -> BTreeMap<String, Place> {
    let mut out = BTreeMap::new();
    let mut in_row: BTreeMap<&str, usize> = BTreeMap::new();
    let layout = &site.layout;
    for c in &site.components {
        let cell = layout.cell_of(&c.id);
        if cell.is_none()
            && !matches!(
                c.kind,
                Kind::Rack | Kind::BatteryRoom | Kind::Row | Kind::Room | Kind::Pdu | Kind::Crah
            )
        {
            continue;
        }
        let row = (c.kind == Kind::Rack)
            .then(|| group_member(site, c, Kind::Row))
            .flatten();
        // A rack without a room of its own is in the room it is cooled by.
        let room = c.room.clone().or_else(|| match c.kind {
            Kind::Room => Some(c.id.clone()),
            Kind::Rack => group_member(site, c, Kind::Room),
            _ => None,
        });
        let position = row.as_deref().map(|r| {
            let n = in_row
                .entry(site.get(r).map_or("", |x| x.id.as_str()))
                .or_insert(0);
            *n += 1;
            *n
        });
        // A room or battery room with a plan of its own is where that plan is.
        let place = match (cell, layout.plan(&c.id)) {
            (Some((plan, cell)), _) => Place {
                row: cell.row.clone().or(row),
                position: cell.position.map(|p| p as usize).or(position),
                tile: Some([cell.x, cell.y]),
                ..plan_place(site, c, plan, plan.room.clone())
            },
            (None, Some(plan)) => plan_place(site, c, plan, c.id.clone()),
            (None, None) => {
                // In a room with a plan, the building and floor are the plan's.
                let plan = room.as_deref().and_then(|r| layout.plan(r));
                Place {
                    building: plan
                        .and_then(|p| p.building.clone())
                        .unwrap_or_else(|| site.name.clone()),
                    floor: plan.and_then(|p| p.floor.clone()),
                    room_name: room_name(site, &room),
                    room,
                    row,
                    position,
                    zone: c.zone.clone(),
                    tile: None,
                }
            }
        };
        out.insert(c.id.clone(), place);
    }
    out
}

/// The first component of `kind` in one of `c`'s groups (the row a rack hangs off, the room
/// it is cooled by).
fn group_member(site: &Site, c: &Component, kind: Kind) -> Option<String> {
    c.groups
        .iter()
        .flat_map(|g| &g.members)
        .map(|&m| &site.components[m])
        .find(|m| m.kind == kind)
        .map(|m| m.id.clone())
}

fn room_name(site: &Site, room: &Option<String>) -> Option<String> {
    room.as_deref()
        .and_then(|r| site.get(r))
        .and_then(|c| c.name.clone())
}

/// A place in `room` on a floor plan: the plan's building and floor, no row, position or tile.
fn plan_place(site: &Site, c: &Component, plan: &Plan, room: String) -> Place {
    let room = Some(room);
    Place {
        building: plan.building.clone().unwrap_or_else(|| site.name.clone()),
        floor: plan.floor.clone(),
        room_name: room_name(site, &room),
        room,
        row: None,
        position: None,
        zone: c.zone.clone(),
        tile: None,
    }
}

/// The latest samples of the devices of interest, by `(device, role)`; several per key when
/// the device reports a role under several labels (two rack temperature sensors).
pub type Readings<'a> = BTreeMap<(&'a str, &'a str), Vec<&'a Sample>>;

/// A stored `fire.*` event of one device, as the summary needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct FireEvent {
    pub ts_ms: i64,
    pub kind: String,
    pub data: Json,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageRef {
    pub code: u8,
    pub key: &'static str,
    pub name: &'static str,
}

impl StageRef {
    pub fn of(code: u8) -> Option<StageRef> {
        let row = STAGE_TABLE.get(usize::from(code))?;
        Some(StageRef {
            code: row.code,
            key: row.key,
            name: row.name,
        })
    }
}

/// The stage reading behind a rack's entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub device: String,
    pub ts_ms: i64,
    pub quality: Quality,
    /// Older than the site's `stale_after_ms`, or not of good quality: the stage shown is the
    /// last one reported, and may be higher now.
    pub stale: bool,
}

/// What triggered the stage, or the best temperature the server has for the rack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    /// Temperature in °C, when the trigger is one.
    pub value_c: Option<f64>,
    /// Machine name: a fire-logic source (`bms_max`, `camera_max` ...) or a point role.
    pub source: String,
    pub source_name: String,
    /// `logic`: reported by the fire logic with the stage; `reading`: the highest temperature
    /// reading the server has now (the stage came from a controller that does not say why).
    pub basis: &'static str,
    pub ts_ms: Option<i64>,
    /// The cause as the fire logic reported it, when it is not a temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feedback {
    pub device: String,
    pub role: &'static str,
    pub value: Option<Value>,
    pub ts_ms: i64,
    /// Whether the reading confirms the action (`None`: it cannot tell, e.g. a pressure).
    pub confirmed: Option<bool>,
    pub stale: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionState {
    pub key: &'static str,
    pub name: &'static str,
    /// The stage that commands it.
    pub stage_code: u8,
    pub feedback: Option<Feedback>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FireRack {
    pub id: String,
    /// `rack` or `battery_room`.
    pub kind: &'static str,
    pub name: Option<String>,
    pub stage: StageRef,
    pub reading: Reading,
    /// When the rack entered this stage, if known.
    pub since_ms: Option<i64>,
    /// `event`: the stage event of the fire logic or the agent; `history`: the start of the
    /// first history bucket (one minute by default) of the server's recent history at this
    /// stage: the entry was within that bucket, or before the history begins.
    pub since_basis: Option<&'static str>,
    pub trigger: Option<Trigger>,
    /// Every action the stage and the stages before it command, in stage order.
    pub actions: Vec<ActionState>,
    pub place: Place,
}

/// A rack or battery room with no usable stage reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoReading {
    pub id: String,
    pub kind: &'static str,
    /// The last reading, if any (not good, or stale).
    pub last_ts_ms: Option<i64>,
    pub quality: Option<Quality>,
    pub place: Place,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FireSummary {
    pub as_of_ms: i64,
    pub stale_after_ms: i64,
    /// Racks and battery rooms at pre-alarm or above (including stale ones at their last
    /// reported stage), most severe first, then the longest in that stage.
    pub racks: Vec<FireRack>,
    /// Racks and battery rooms whose stage is not known (never reported, or the reading is
    /// stale or bad at stage normal).
    pub no_reading: Vec<NoReading>,
    /// Count per stage code (index) of racks and battery rooms with a current reading, plus the
    /// stale ones at their last stage.
    pub counts: Vec<usize>,
}

/// Temperature roles a rack's trigger may be read from when the fire logic did not say.
const TEMP_ROLES: [&str; 3] = [
    "battery.cell_temp.max",
    "rack.temp",
    "camera.region_max_temp",
];

fn is_stale(s: &Sample, now_ms: i64, stale_after_ms: i64) -> bool {
    s.quality != Quality::Good || now_ms - s.ts_ms > stale_after_ms
}

/// When the stage was entered, from the server's recent history of the `fire.stage` point
/// (`(bucket start, max)` oldest first): the start of the run of buckets at or above `code`
/// that reaches the newest bucket. `None` when the history has nothing at that stage.
pub fn since_from_history(buckets: &[(i64, f64)], code: u8) -> Option<i64> {
    let mut since = None;
    for &(t, max) in buckets.iter().rev() {
        if max >= f64::from(code) {
            since = Some(t);
        } else {
            break;
        }
    }
    since
}

/// Reads a trigger from a stage event's data: a structured `trigger` {source, value_c}, or the
/// fire logic's `cause` text (`Temperature { source: Bms, value: 684, .. }`).
fn trigger_from_event(ev: &FireEvent) -> Option<Trigger> {
    if let Some(t) = ev.data.get("trigger") {
        let source = t.get("source")?.as_str()?.to_owned();
        return Some(Trigger {
            value_c: t.get("value_c").and_then(Json::as_f64),
            source_name: source_name(&source).to_owned(),
            source,
            basis: "logic",
            ts_ms: Some(ev.ts_ms),
            detail: t.get("detail").and_then(Json::as_str).map(str::to_owned),
        });
    }
    let cause = ev.data.get("cause")?.as_str()?;
    let field = |name: &str| {
        let rest = &cause[cause.find(&format!("{name}: "))? + name.len() + 2..];
        Some(
            rest.split([',', ' ', '}'])
                .next()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    if cause.starts_with("Temperature") {
        let debug = field("source")?;
        let source = SourceId::ALL
            .into_iter()
            .find(|s| format!("{s:?}") == debug)
            .map(SourceId::name)?;
        let value = field("value")?.parse::<f64>().ok()? / 10.0;
        Some(Trigger {
            value_c: Some(value),
            source: source.to_owned(),
            source_name: source_name(source).to_owned(),
            basis: "logic",
            ts_ms: Some(ev.ts_ms),
            detail: None,
        })
    } else {
        Some(Trigger {
            value_c: None,
            source: "fire_logic".into(),
            source_name: "fire logic".into(),
            basis: "logic",
            ts_ms: Some(ev.ts_ms),
            detail: Some(cause.to_owned()),
        })
    }
}

/// The stage code an event reports the device entered (`stage_code`, or the `stage` key).
fn event_stage(ev: &FireEvent) -> Option<u8> {
    if ev.kind != "fire.stage" {
        return None;
    }
    if let Some(c) = ev.data.get("stage_code").and_then(Json::as_u64) {
        return u8::try_from(c).ok();
    }
    let key = ev.data.get("entered").or_else(|| ev.data.get("stage"))?;
    key.as_str()
        .and_then(|k| STAGE_TABLE.iter().find(|r| r.key == k))
        .map(|r| r.code)
}

/// Inputs of [`summary`] besides the site.
pub struct SummaryInput<'a> {
    pub readings: &'a Readings<'a>,
    /// Stored `fire.*` events per device, newest first.
    pub events: &'a BTreeMap<String, Vec<FireEvent>>,
    /// `(bucket start, max)` of the recent `fire.stage` history per device, oldest first.
    pub stage_history: &'a BTreeMap<String, Vec<(i64, f64)>>,
    pub now_ms: i64,
}

/// The devices whose readings and events [`summary`] needs: every device bound to a rack or a
/// battery room.
pub fn devices_of_interest(site: &Site) -> Vec<String> {
    let mut d: Vec<String> = site
        .components
        .iter()
        .filter(|c| matches!(c.kind, Kind::Rack | Kind::BatteryRoom))
        .flat_map(|c| c.bindings.iter().map(|b| b.device.clone()))
        .collect();
    d.sort();
    d.dedup();
    d
}

/// The fire state of the site: see [`FireSummary`].
pub fn summary(site: &Site, input: &SummaryInput<'_>) -> FireSummary {
    let places = places(site);
    let stale_after = site.stale_after_ms;
    let now = input.now_ms;
    let mut racks = Vec::new();
    let mut no_reading = Vec::new();
    let mut counts = vec![0usize; STAGE_TABLE.len()];
    for c in &site.components {
        let kind = match c.kind {
            Kind::Rack => "rack",
            Kind::BatteryRoom => "battery_room",
            _ => continue,
        };
        let place = places.get(&c.id).cloned().unwrap_or_default();
        // The stage: the binding of role fire.stage (the first device that has a value).
        let stage_sample = stage_samples(c, input.readings)
            .filter(|s| s.value.as_ref().and_then(stage_code).is_some())
            .max_by_key(|s| s.ts_ms);
        let Some(s) = stage_sample else {
            let last = stage_samples(c, input.readings).max_by_key(|s| s.ts_ms);
            no_reading.push(NoReading {
                id: c.id.clone(),
                kind,
                last_ts_ms: last.map(|s| s.ts_ms),
                quality: last.map(|s| s.quality),
                place,
            });
            continue;
        };
        let code = s.value.as_ref().and_then(stage_code).unwrap_or(0);
        let stale = is_stale(s, now, stale_after);
        if code == 0 {
            if stale {
                no_reading.push(NoReading {
                    id: c.id.clone(),
                    kind,
                    last_ts_ms: Some(s.ts_ms),
                    quality: Some(s.quality),
                    place,
                });
            } else {
                counts[0] += 1;
            }
            continue;
        }
        counts[usize::from(code)] += 1;
        racks.push(fire_rack(c, kind, place, s, code, input, stale_after));
    }
    racks.sort_by(|a, b| {
        b.stage
            .code
            .cmp(&a.stage.code)
            .then(
                a.since_ms
                    .unwrap_or(i64::MAX)
                    .cmp(&b.since_ms.unwrap_or(i64::MAX)),
            )
            .then(a.id.cmp(&b.id))
    });
    FireSummary {
        as_of_ms: now,
        stale_after_ms: stale_after,
        racks,
        no_reading,
        counts,
    }
}

/// The latest `fire.stage` samples of a component's `fire.stage` bindings.
fn stage_samples<'a>(
    c: &'a Component,
    readings: &'a Readings<'a>,
) -> impl Iterator<Item = &'a &'a Sample> + 'a {
    c.bindings
        .iter()
        .filter(|b| b.role.as_str() == "fire.stage")
        .filter_map(move |b| readings.get(&(b.device.as_str(), "fire.stage")))
        .flatten()
}

/// A rack or battery room in a fire stage (`code` > 0) read from `s`: since when, what
/// triggered it, the actions its stage commands with their feedback.
fn fire_rack(
    c: &Component,
    kind: &'static str,
    place: Place,
    s: &Sample,
    code: u8,
    input: &SummaryInput<'_>,
    stale_after: i64,
) -> FireRack {
    let devices: Vec<&str> = {
        let mut d: Vec<&str> = c.bindings.iter().map(|b| b.device.as_str()).collect();
        d.dedup();
        d
    };
    let events: Vec<&FireEvent> = devices
        .iter()
        .filter_map(|d| input.events.get(*d))
        .flatten()
        .collect();
    // The newest event entering this stage.
    let entry = events
        .iter()
        .filter(|e| event_stage(e) == Some(code))
        .max_by_key(|e| e.ts_ms);
    let (since_ms, since_basis) = match entry {
        Some(e) => (Some(e.ts_ms), Some("event")),
        None => match input
            .stage_history
            .get(&s.device)
            .and_then(|h| since_from_history(h, code))
        {
            Some(t) => (Some(t), Some("history")),
            None => (None, None),
        },
    };
    // What triggered it: the event that entered the first fire stage of this episode
    // carries the cause; a later stage's event carries its own.
    let trigger = entry
        .and_then(|e| trigger_from_event(e))
        .or_else(|| hottest_reading(&devices, input.readings));
    FireRack {
        id: c.id.clone(),
        kind,
        name: c.name.clone(),
        stage: StageRef::of(code).expect("stage_code is in the table"),
        reading: Reading {
            device: s.device.clone(),
            ts_ms: s.ts_ms,
            quality: s.quality,
            stale: is_stale(s, input.now_ms, stale_after),
        },
        since_ms,
        since_basis,
        trigger,
        actions: stage_actions(code, &devices, input, stale_after),
        place,
    }
}

/// The trigger when the fire logic did not say: the highest good temperature reading of the
/// rack's devices.
fn hottest_reading(devices: &[&str], readings: &Readings<'_>) -> Option<Trigger> {
    let best = TEMP_ROLES
        .iter()
        .flat_map(|role| devices.iter().map(move |d| (*d, *role)))
        .filter_map(|k| readings.get(&k))
        .flatten()
        .filter(|s| s.quality == Quality::Good)
        .filter_map(|s| Some((s, s.value.as_ref()?.as_f64()?)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(Trigger {
        value_c: Some(best.1),
        source: best.0.role.as_str().to_owned(),
        source_name: best
            .0
            .role
            .def()
            .map_or(best.0.role.as_str(), |d| d.description)
            .to_owned(),
        basis: "reading",
        ts_ms: Some(best.0.ts_ms),
        detail: None,
    })
}

/// Every action stage `code` and the stages before it command, in stage order, each with
/// the latest reading of its feedback point.
fn stage_actions(
    code: u8,
    devices: &[&str],
    input: &SummaryInput<'_>,
    stale_after: i64,
) -> Vec<ActionState> {
    let mut actions = Vec::new();
    for row in STAGE_TABLE.iter().take(usize::from(code) + 1) {
        for a in row.actions {
            let feedback = action_feedback_role(*a)
                .and_then(|role| feedback(role, devices, input, stale_after));
            actions.push(ActionState {
                key: a.name(),
                name: action_name(*a),
                stage_code: row.code,
                feedback,
            });
        }
    }
    actions
}

/// The latest reading of a feedback point over the rack's devices, and whether it confirms
/// the action.
fn feedback(
    role: &'static str,
    devices: &[&str],
    input: &SummaryInput<'_>,
    stale_after: i64,
) -> Option<Feedback> {
    let f = devices
        .iter()
        .filter_map(|d| input.readings.get(&(*d, role)))
        .flatten()
        .max_by_key(|s| s.ts_ms)?;
    let confirmed = match (role, f.value.as_ref()) {
        (_, None) => None,
        ("fire.agent_pressure", _) => None,
        ("fire.coolant_flow", Some(v)) => v.as_f64().map(|x| x > 0.0),
        (_, Some(v)) => v.as_bool(),
    };
    Some(Feedback {
        device: f.device.clone(),
        role,
        value: f.value.clone(),
        ts_ms: f.ts_ms,
        confirmed,
        stale: is_stale(f, input.now_ms, stale_after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcim_points::Role;
    use serde_json::json;

    #[test]
    fn the_wire_contract_knows_every_stage_of_the_table() {
        // Hazard: a stage added to the fire logic's table that `stage_code` does not accept
        // would show a rack at that stage as having no reading.
        assert_eq!(usize::from(dcim_wire::FIRE_STAGE_CODES), STAGE_TABLE.len());
    }

    const SITE: &str = r#"
[site]
name = "plant-1"
stale_after_ms = 30000

[[component]]
id = "feed-a"
kind = "utility_feed"
device = "meter-a"
points = ["feed.breaker_closed"]

[[component]]
id = "pdu-1"
kind = "pdu"
room = "hall-1"
upstream = ["feed-a"]

[[component]]
id = "core-1"
kind = "core"

[[component]]
id = "row-1"
kind = "row"
room = "hall-1"
upstream = ["core-1"]

[[component]]
id = "hall-1"
kind = "room"
name = "Hall 1, ground floor"

[[component]]
id = "batt-z1"
kind = "battery_room"
zone = "z1"
device = "bms-z1"
points = ["fire.stage"]

[[generate]]
count = 3
start = 1
digits = 2
[generate.template]
id = "r{n}"
kind = "rack"
room = "hall-1"
device = "bms-r{n}"
points = ["fire.stage", "rack.temp"]
upstream = [{ of = ["pdu-1"] }, { of = ["hall-1"] }, { of = ["row-1"] }]
"#;

    fn site() -> Site {
        dcim_site::Site::from_toml_str(SITE, "test.toml").expect("test site loads")
    }

    fn sample(device: &str, role: &str, value: Value, ts_ms: i64) -> Sample {
        Sample {
            device: device.into(),
            point: role.replace('.', "_"),
            role: Role::new(role).unwrap(),
            labels: Default::default(),
            value: Some(value),
            unit: String::new(),
            quality: Quality::Good,
            ts_ms,
        }
    }

    fn readings(samples: &[Sample]) -> Readings<'_> {
        let mut m: Readings<'_> = BTreeMap::new();
        for s in samples {
            m.entry((s.device.as_str(), s.role.as_str()))
                .or_default()
                .push(s);
        }
        m
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn the_stage_table_is_served_by_name_with_cumulative_actions() {
        // Hazard: the console calling the 60 °C power cut "stage 2: alarm" because it numbers
        // codes itself instead of reading the firmware's table.
        let t = serde_json::to_value(stage_table()).unwrap();
        let stages = t["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 7);
        assert_eq!(stages[2]["name"], "Power cut and fire blanket");
        assert_eq!(stages[2]["default_threshold_c"], 60.0);
        assert_eq!(stages[4]["name"], "Extinguishing agent");
        assert_eq!(stages[6]["name"], "Room gas");
        assert_eq!(
            stages[6]["all_actions"],
            json!([
                "contactor_open",
                "blanket_drop",
                "patch_fire",
                "agent_release",
                "coolant_on",
                "gas_warning",
                "gas_release"
            ])
        );
        for (i, s) in stages.iter().enumerate() {
            assert_eq!(s["code"], i);
            assert!(!s["name"].as_str().unwrap().contains("stage"), "{s}");
        }
    }

    #[test]
    fn stage_codes_are_read_from_numbers_and_profile_labels() {
        assert_eq!(stage_code(&Value::Number(3.0)), Some(3));
        assert_eq!(stage_code(&Value::Number(7.0)), None);
        assert_eq!(stage_code(&Value::Number(-1.0)), None);
        assert_eq!(stage_code(&Value::Text("pre_alarm".into())), Some(1));
        assert_eq!(stage_code(&Value::Text("stage1_power_cut".into())), Some(2));
        assert_eq!(stage_code(&Value::Text("stage5".into())), Some(6));
        assert_eq!(stage_code(&Value::Text("on fire".into())), None);
    }

    #[test]
    fn places_name_room_row_and_position() {
        let p = places(&site());
        let r2 = &p["r02"];
        assert_eq!(r2.building, "plant-1");
        assert_eq!(r2.room.as_deref(), Some("hall-1"));
        assert_eq!(r2.room_name.as_deref(), Some("Hall 1, ground floor"));
        assert_eq!(r2.row.as_deref(), Some("row-1"));
        assert_eq!(r2.position, Some(2));
        assert_eq!(p["batt-z1"].zone.as_deref(), Some("z1"));
        assert_eq!(p["batt-z1"].room, None, "the model has no room for it");
    }

    #[test]
    fn places_come_from_the_floor_plan_when_the_site_file_has_one() {
        // Hazard: the fire officer sent to the row and position the graph implies when the
        // plan says the racks stand elsewhere.
        let src = format!(
            "{SITE}\n[[plan]]\nroom = \"hall-1\"\nbuilding = \"B\"\nfloor = \"3F\"\nwidth = 9\ndepth = 3\n\n[[plan.row]]\nname = \"A\"\nx = 8\ny = 2\ndirection = \"west\"\nracks = [\"r03\", \"r02\"]\n"
        );
        let site = dcim_site::Site::from_toml_str(&src, "test.toml").expect("site with a plan");
        let p = places(&site);
        assert_eq!(p["r02"].row.as_deref(), Some("A"));
        assert_eq!(p["r02"].position, Some(2));
        assert_eq!(p["r02"].tile, Some([7, 2]));
        assert_eq!(
            (p["r02"].building.as_str(), p["r02"].floor.as_deref()),
            ("B", Some("3F"))
        );
        // Not on the plan: the graph's row, but the building and floor of the room's plan.
        assert_eq!(p["r01"].row.as_deref(), Some("row-1"));
        assert_eq!((p["r01"].building.as_str(), p["r01"].tile), ("B", None));
        assert_eq!(p["hall-1"].floor.as_deref(), Some("3F"));
    }

    #[test]
    fn a_rack_in_a_stage_shows_name_since_trigger_actions_and_place() {
        let site = site();
        let samples = vec![
            sample("bms-r01", "fire.stage", Value::Number(3.0), NOW - 1000),
            sample("bms-r01", "rack.temp", Value::Number(70.5), NOW - 1000),
            sample(
                "bms-r01",
                "fire.contactor_open",
                Value::Bool(true),
                NOW - 1000,
            ),
            sample(
                "bms-r01",
                "fire.blanket_down",
                Value::Bool(false),
                NOW - 1000,
            ),
            sample("bms-r02", "fire.stage", Value::Number(0.0), NOW - 1000),
            sample("bms-r03", "fire.stage", Value::Number(0.0), NOW - 1000),
            sample("bms-z1", "fire.stage", Value::Number(0.0), NOW - 1000),
        ];
        let r = readings(&samples);
        let mut events = BTreeMap::new();
        events.insert(
            "bms-r01".to_owned(),
            vec![
                FireEvent {
                    ts_ms: NOW - 60_000,
                    kind: "fire.stage".into(),
                    data: json!({"stage": "stage2", "stage_code": 3,
                        "cause": "Temperature { source: Bms, value: 684, corroborated_by: Some(Camera) }"}),
                },
                FireEvent {
                    ts_ms: NOW - 120_000,
                    kind: "fire.stage".into(),
                    data: json!({"stage_code": 2, "trigger": {"source": "rack_temp1", "value_c": 60.2}}),
                },
            ],
        );
        let s = summary(
            &site,
            &SummaryInput {
                readings: &r,
                events: &events,
                stage_history: &BTreeMap::new(),
                now_ms: NOW,
            },
        );
        assert_eq!(s.racks.len(), 1);
        let x = &s.racks[0];
        assert_eq!(x.stage.name, "Extinguishing patch");
        assert_eq!(x.since_ms, Some(NOW - 60_000));
        assert_eq!(x.since_basis, Some("event"));
        let t = x.trigger.as_ref().unwrap();
        assert_eq!((t.source.as_str(), t.value_c), ("bms_max", Some(68.4)));
        assert_eq!(t.source_name, "BMS highest cell temperature");
        let keys: Vec<_> = x.actions.iter().map(|a| a.key).collect();
        assert_eq!(keys, ["contactor_open", "blanket_drop", "patch_fire"]);
        assert_eq!(
            x.actions[0].feedback.as_ref().unwrap().confirmed,
            Some(true)
        );
        assert_eq!(
            x.actions[1].feedback.as_ref().unwrap().confirmed,
            Some(false),
            "a blanket reported still up is shown as not confirmed"
        );
        assert_eq!(x.actions[2].feedback, None);
        assert_eq!(x.place.row.as_deref(), Some("row-1"));
        assert_eq!(x.place.position, Some(1));
        assert_eq!(s.counts[0], 3);
        assert_eq!(s.counts[3], 1);
        assert!(s.no_reading.is_empty());
    }

    #[test]
    fn lost_readings_keep_the_last_stage_and_are_never_counted_normal() {
        // Hazard: a rack whose controller burnt stops reporting and silently drops off the
        // fire list, or a rack never heard from counted among the normal ones.
        let site = site();
        let samples = vec![
            // r01 reported stage 4 two minutes ago, then nothing.
            sample("bms-r01", "fire.stage", Value::Number(4.0), NOW - 120_000),
            // r02 reports normal, but the value is bad.
            Sample {
                quality: Quality::CommLost,
                ..sample("bms-r02", "fire.stage", Value::Number(0.0), NOW - 1000)
            },
            // r03 and batt-z1 never reported.
            sample("bms-r03", "rack.temp", Value::Number(25.0), NOW - 1000),
        ];
        let r = readings(&samples);
        let s = summary(
            &site,
            &SummaryInput {
                readings: &r,
                events: &BTreeMap::new(),
                stage_history: &BTreeMap::new(),
                now_ms: NOW,
            },
        );
        assert_eq!(s.racks.len(), 1);
        assert!(s.racks[0].reading.stale);
        assert_eq!(s.racks[0].stage.name, "Extinguishing agent");
        let ids: Vec<_> = s.no_reading.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["batt-z1", "r02", "r03"]);
        assert_eq!(s.counts[0], 0);
    }

    #[test]
    fn without_an_event_the_entry_comes_from_history_and_the_trigger_from_readings() {
        let site = site();
        let samples = vec![
            sample("bms-r02", "fire.stage", Value::Number(2.0), NOW - 1000),
            sample("bms-r02", "rack.temp", Value::Number(61.0), NOW - 1000),
        ];
        let r = readings(&samples);
        let mut hist = BTreeMap::new();
        hist.insert(
            "bms-r02".to_owned(),
            vec![
                (NOW - 180_000, 0.0),
                (NOW - 120_000, 2.0),
                (NOW - 60_000, 2.0),
            ],
        );
        let s = summary(
            &site,
            &SummaryInput {
                readings: &r,
                events: &BTreeMap::new(),
                stage_history: &hist,
                now_ms: NOW,
            },
        );
        let x = &s.racks[0];
        assert_eq!(
            (x.since_ms, x.since_basis),
            (Some(NOW - 120_000), Some("history"))
        );
        let t = x.trigger.as_ref().unwrap();
        assert_eq!((t.basis, t.value_c), ("reading", Some(61.0)));
        assert_eq!(t.source, "rack.temp");
    }

    #[test]
    fn most_severe_first() {
        let site = site();
        let samples = vec![
            sample("bms-r01", "fire.stage", Value::Number(1.0), NOW),
            sample("bms-r02", "fire.stage", Value::Number(6.0), NOW),
            sample("bms-r03", "fire.stage", Value::Number(2.0), NOW),
            sample("bms-z1", "fire.stage", Value::Number(5.0), NOW),
        ];
        let r = readings(&samples);
        let s = summary(
            &site,
            &SummaryInput {
                readings: &r,
                events: &BTreeMap::new(),
                stage_history: &BTreeMap::new(),
                now_ms: NOW,
            },
        );
        let order: Vec<_> = s.racks.iter().map(|x| x.stage.code).collect();
        assert_eq!(order, [6, 5, 2, 1]);
        assert_eq!(s.racks[0].actions.last().unwrap().key, "gas_release");
    }

    #[test]
    fn history_since_is_the_start_of_the_last_run_at_the_stage() {
        let h = [(0, 0.0), (60, 3.0), (120, 1.0), (180, 3.0), (240, 3.0)];
        assert_eq!(since_from_history(&h, 3), Some(180));
        assert_eq!(since_from_history(&h, 4), None);
        assert_eq!(since_from_history(&[], 3), None);
    }
}
