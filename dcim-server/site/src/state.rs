//! Component state from live values: a pure function of the latest samples and `now_ms`.

pub use crate::live::Live;
use crate::model::{Binding, Component, Kind, Site, Subsystem};
use dcim_points::{Quality, Sample, Value};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// State of a component as the redundancy engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompState {
    Up,
    Down,
    /// Its state points are missing, stale, bad or comm-lost. Unknown components still carry
    /// supply in the engine (an unreachable meter does not cut power); they are counted apart.
    Unknown,
    /// Taken out of service by an operator: carries no supply.
    Maintenance,
}

impl CompState {
    /// Whether the component carries supply downstream.
    pub fn conducts(self) -> bool {
        matches!(self, CompState::Up | CompState::Unknown)
    }
}

/// State and measured loads of one component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentState {
    pub state: CompState,
    /// Measured load per subsystem (index by `Subsystem as usize`), in the subsystem's unit.
    pub load: [Option<f64>; 3],
    /// Why the state is what it is (first deciding point), for operators.
    pub reason: String,
    /// Fresh, good numeric readings of the bound points, by role (e.g. `buffer_tank.temp`).
    pub readings: BTreeMap<String, f64>,
    /// Whether any bound point tells the state. An unmonitored component (nothing bound, or
    /// only measurements such as a transformer's temperature) is assumed Up by the engine and
    /// listed as unmonitored wherever its level is reported.
    pub monitored: bool,
    /// Energised, from measurement where there is one ([`crate::energy`]); `None` unknown or
    /// not a power component.
    pub energised: Option<bool>,
    /// The role that decided `energised`.
    pub energised_by: Option<String>,
    /// Switch position and measurement disagree (a trouble): what they say.
    pub mismatch: Option<String>,
    /// While Unknown: since when (see [`crate::unknown::UnknownTimer`]); for a good sample
    /// that went stale, the time it went stale.
    pub unknown_since_ms: Option<i64>,
}

impl ComponentState {
    pub fn up() -> ComponentState {
        ComponentState {
            state: CompState::Up,
            load: [None; 3],
            reason: String::new(),
            readings: BTreeMap::new(),
            monitored: true,
            energised: None,
            energised_by: None,
            mismatch: None,
            unknown_since_ms: None,
        }
    }
    pub fn load(&self, s: Subsystem) -> Option<f64> {
        self.load[s.idx()]
    }
}

/// What one bound point says about its component.
enum Verdict {
    Up,
    Down(String),
    /// A state point without usable evidence; since when, when the sample says so (a good
    /// sample that went stale).
    NoEvidence(String, Option<i64>),
    /// A point that does not decide the state (e.g. a measurement).
    Neutral,
}

/// Whether a bound role tells the component's state (see [`component_state`]).
pub fn is_state_role(kind: Kind, role: &str) -> bool {
    matches!(
        role,
        "feed.breaker_closed"
            | "pdu.breaker_closed"
            | "feed.voltage"
            | "ups.output_voltage"
            | "ats.source"
            | "chiller.running"
            | "chiller.fault"
            | "crah.running"
            | "crah.fault"
            | "loop.flow"
            | "link.up"
            | "device.online"
            | "battery.contactor_closed"
    ) || (role == "fire.stage" && kind == Kind::BatteryRoom)
}

fn fresh(s: &Sample, now_ms: i64, stale_after_ms: i64) -> bool {
    s.quality == Quality::Good && now_ms - s.ts_ms <= stale_after_ms && s.value.is_some()
}

fn judge(site: &Site, c: &Component, b: &Binding, s: Option<&Sample>, now_ms: i64) -> Verdict {
    let role = b.role.as_str();
    if !is_state_role(c.kind, role) {
        return Verdict::Neutral;
    }
    let what = format!("{} {}", b.device, role);
    let Some(s) = s else {
        return Verdict::NoEvidence(format!("{what}: no sample"), None);
    };
    if !fresh(s, now_ms, site.stale_after_ms) {
        let (q, since) = if s.quality == Quality::Good {
            if s.value.is_none() {
                ("no value", None)
            } else {
                ("stale", Some(s.ts_ms.saturating_add(site.stale_after_ms)))
            }
        } else {
            (s.quality.as_str(), None)
        };
        return Verdict::NoEvidence(format!("{what}: {q}"), since);
    }
    let v = s.value.as_ref().expect("fresh implies a value");
    judge_value(site, c, role, &what, v)
}

/// The boolean state roles that are `true` while the component is up (a breaker closed, a
/// machine running, a link up); `false` is down.
pub(crate) const TRUE_WHEN_UP: [&str; 7] = [
    "feed.breaker_closed",
    "pdu.breaker_closed",
    "chiller.running",
    "crah.running",
    "link.up",
    "device.online",
    "battery.contactor_closed",
];

/// The verdict of a fresh, good value `v` of the state role `role` (`what` names it).
fn judge_value(site: &Site, c: &Component, role: &str, what: &str, v: &Value) -> Verdict {
    let down = |why: &str| Verdict::Down(format!("{what}: {why}"));
    match role {
        r if TRUE_WHEN_UP.contains(&r) => match v.as_bool() {
            Some(true) => Verdict::Up,
            Some(false) => down("false"),
            None => Verdict::NoEvidence(format!("{what}: not a boolean"), None),
        },
        "chiller.fault" | "crah.fault" => match v.as_bool() {
            Some(false) => Verdict::Up,
            Some(true) => down("fault"),
            None => Verdict::NoEvidence(format!("{what}: not a boolean"), None),
        },
        "feed.voltage" | "ups.output_voltage" => match v.as_f64() {
            None => Verdict::NoEvidence(format!("{what}: not a number"), None),
            Some(x) => match c.nominal_v {
                Some(nom) if nom > 0.0 => {
                    if (x - nom).abs() <= nom * site.voltage_tolerance {
                        Verdict::Up
                    } else {
                        down(&format!(
                            "{x} V outside {nom} V ±{:.0} %",
                            site.voltage_tolerance * 100.0
                        ))
                    }
                }
                _ if x > 0.0 => Verdict::Up,
                _ => down("no voltage"),
            },
        },
        "ats.source" => match v {
            Value::Text(t) if t.eq_ignore_ascii_case("none") || t.is_empty() => {
                down("on no source")
            }
            Value::Text(_) => Verdict::Up,
            Value::Number(n) if *n == 0.0 => down("on no source"),
            Value::Number(_) => Verdict::Up,
            Value::Bool(b) => {
                if *b {
                    Verdict::Up
                } else {
                    down("on no source")
                }
            }
        },
        "loop.flow" => match v.as_f64() {
            Some(x) if x > 0.0 => Verdict::Up,
            Some(_) => down("no flow"),
            None => Verdict::NoEvidence(format!("{what}: not a number"), None),
        },
        // Through the fire logic's stage table: stage 1 and later open the battery contactor.
        "fire.stage" => match crate::fire::stage_of(v) {
            Some(st) if crate::fire::cuts_power(st) => down(&format!(
                "fire stage {}: battery power cut",
                crate::fire::label(st)
            )),
            Some(_) => Verdict::Up,
            None => Verdict::NoEvidence(format!("{what}: not a fire stage ({v:?})"), None),
        },
        _ => Verdict::Neutral,
    }
}

/// Roles that carry a measured load, and the subsystems they load.
fn load_roles(kind: Kind, role: &str) -> &'static [Subsystem] {
    match role {
        "feed.power_kw" | "ups.output_kw" | "pdu.power_kw" => &[Subsystem::Power],
        // A rack's IT power is both its electrical load and its heat load.
        "it.power_kw" if kind == Kind::Rack => &[Subsystem::Power, Subsystem::Cooling],
        "it.power_kw" => &[Subsystem::Power],
        "chiller.load_kw" | "crah.cooling_kw" => &[Subsystem::Cooling],
        "link.throughput_gbps" => &[Subsystem::Network],
        _ => &[],
    }
}

/// State of one component from the live values. Rules (the same for every kind; which roles a
/// component binds decides which rules apply):
///
/// - in `maintenance` -> `Maintenance`;
/// - any bound state point with a good, fresh value saying "down" -> `Down`: a breaker
///   (`feed.breaker_closed`, `pdu.breaker_closed`) open; `feed.voltage`/`ups.output_voltage`
///   outside `nominal_v` ± tolerance (or <= 0 without a nominal); `ats.source` = none/0;
///   `chiller.running`/`crah.running`/`link.up`/`device.online`/`battery.contactor_closed`
///   false; `chiller.fault`/`crah.fault` true; `loop.flow` <= 0; for a battery room,
///   `fire.stage` at stage 1 or later (code >= 2 or the key, read through
///   `fire_logic::STAGE_TABLE`: the battery contactor is open);
/// - otherwise any bound state point without usable evidence (missing, older than
///   `stale_after_ms`, or quality stale/bad/comm_lost) -> `Unknown`;
/// - otherwise `Up`; when no state point is bound at all the component is *unmonitored*:
///   assumed up, with `monitored = false` and the reason saying so (the engine lists it), as
///   long as at least one of its points is fresh; unmonitored equipment none of whose points
///   is fresh is `Unknown` (racks and places excepted: they carry no supply of their own).
///
/// Unknown does not last for ever: [`crate::unknown::UnknownTimer`] turns a component Unknown
/// for longer than `down_after_ms` into Down. Energisation (`energised`, `mismatch`) comes
/// from [`crate::energy::energy`].
///
/// Loads: `feed.power_kw`, `ups.output_kw`, `pdu.power_kw`, `it.power_kw` (power; a rack's
/// also counts as its heat load), `chiller.load_kw`, `crah.cooling_kw` (cooling),
/// `link.throughput_gbps` (network); summed over bindings, fresh good values only.
pub fn component_state(
    site: &Site,
    c: &Component,
    live: &Live,
    maintenance: bool,
    now_ms: i64,
) -> ComponentState {
    let mut load: [Option<f64>; 3] = [None; 3];
    let mut readings = BTreeMap::new();
    let mut down = None;
    let mut unknown = None;
    let mut unknown_since: Option<i64> = None;
    let mut monitored = false;
    let mut any_fresh = false;
    for b in &c.bindings {
        monitored |= is_state_role(c.kind, b.role.as_str());
        let s = live.get(b);
        any_fresh |= s.is_some_and(|s| fresh(s, now_ms, site.stale_after_ms));
        if let Some(s) = s
            && fresh(s, now_ms, site.stale_after_ms)
            && let Some(x) = s.value.as_ref().and_then(Value::as_f64)
        {
            for sub in load_roles(c.kind, b.role.as_str()) {
                *load[sub.idx()].get_or_insert(0.0) += x;
            }
            readings.entry(b.role.as_str().to_owned()).or_insert(x);
        }
        match judge(site, c, b, s, now_ms) {
            Verdict::Down(r) => {
                down.get_or_insert(r);
            }
            Verdict::NoEvidence(r, since) => {
                unknown.get_or_insert(r);
                if let Some(t) = since {
                    unknown_since = Some(unknown_since.map_or(t, |u: i64| u.min(t)));
                }
            }
            Verdict::Up | Verdict::Neutral => {}
        }
    }
    let (state, reason) = decide(c, maintenance, down, unknown, monitored, any_fresh);
    let energy = crate::energy::energy(site, c, live, now_ms);
    ComponentState {
        unknown_since_ms: (state == CompState::Unknown)
            .then_some(unknown_since)
            .flatten(),
        state,
        load,
        reason,
        readings,
        monitored,
        energised: energy.energised,
        energised_by: energy.by,
        mismatch: energy.mismatch,
    }
}

/// The state and its reason from the verdicts of a component's points (the first Down and the
/// first missing evidence), in the order of the rules of [`component_state`].
fn decide(
    c: &Component,
    maintenance: bool,
    down: Option<String>,
    unknown: Option<String>,
    monitored: bool,
    any_fresh: bool,
) -> (CompState, String) {
    if maintenance {
        (CompState::Maintenance, "in maintenance".to_owned())
    } else if let Some(r) = down {
        (CompState::Down, r)
    } else if let Some(r) = unknown {
        (CompState::Unknown, r)
    } else if !monitored
        && !any_fresh
        && !c.bindings.is_empty()
        && c.kind != Kind::Rack
        && !c.kind.is_passive()
    {
        // Equipment watched only by measurements, none of them fresh: whatever watched it is
        // gone, so it is not assumed up any more.
        (
            CompState::Unknown,
            "unmonitored and no fresh reading from any of its points".to_owned(),
        )
    } else if !monitored {
        (
            CompState::Up,
            "unmonitored: no state point bound, assumed up".to_owned(),
        )
    } else {
        (CompState::Up, String::new())
    }
}

/// States of every component, in the order of [`Site::components`].
pub fn component_states(
    site: &Site,
    live: &Live,
    maintenance: &BTreeSet<String>,
    now_ms: i64,
) -> Vec<ComponentState> {
    site.components
        .iter()
        .map(|c| component_state(site, c, live, maintenance.contains(&c.id), now_ms))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::sample;

    const T: i64 = 1_800_000_000_000;

    fn site() -> Site {
        crate::fixture::test_site(
            r#"stale_after_ms = 10000

[[component]]
id = "ats"
kind = "ats"
device = "ats-1"
points = ["ats.source"]

[[component]]
id = "loop"
kind = "chilled_water_loop"
device = "loop-a"
points = ["loop.flow"]

[[component]]
id = "ch"
kind = "chiller"
device = "chiller-1"
points = ["chiller.running", "chiller.fault", "chiller.load_kw"]

[[component]]
id = "ups"
kind = "ups"
nominal_v = 400
device = "ups-z1"
points = ["ups.output_voltage", "ups.output_kw"]
"#,
        )
    }

    fn state_of(site: &Site, live: &Live, id: &str, now: i64) -> ComponentState {
        let c = site.get(id).unwrap();
        component_state(site, c, live, false, now)
    }

    #[test]
    fn ats_on_no_source_is_down() {
        let s = site();
        let mut live = Live::new();
        live.update(sample("ats-1", "ats.source", Value::Text("B".into()), T));
        assert_eq!(state_of(&s, &live, "ats", T).state, CompState::Up);
        live.update(sample(
            "ats-1",
            "ats.source",
            Value::Text("none".into()),
            T + 1,
        ));
        let st = state_of(&s, &live, "ats", T + 1);
        assert_eq!(st.state, CompState::Down);
        assert!(st.reason.contains("ats-1 ats.source"));
    }

    #[test]
    fn loop_without_flow_is_down_and_stale_flow_is_unknown() {
        let s = site();
        let mut live = Live::new();
        live.update(sample("loop-a", "loop.flow", Value::Number(0.0), T));
        assert_eq!(state_of(&s, &live, "loop", T).state, CompState::Down);
        live.update(sample("loop-a", "loop.flow", Value::Number(120.0), T + 1));
        assert_eq!(state_of(&s, &live, "loop", T + 1).state, CompState::Up);
        assert_eq!(
            state_of(&s, &live, "loop", T + 10_002).state,
            CompState::Unknown
        );
        // An older sample never replaces a newer one.
        live.update(sample("loop-a", "loop.flow", Value::Number(0.0), T - 5));
        assert_eq!(state_of(&s, &live, "loop", T + 2).state, CompState::Up);
    }

    #[test]
    fn chiller_is_up_when_running_and_not_in_fault_and_reports_its_load() {
        let s = site();
        let mut live = Live::new();
        live.update(sample("chiller-1", "chiller.running", Value::Bool(true), T));
        let st = state_of(&s, &live, "ch", T);
        assert_eq!(st.state, CompState::Unknown, "fault point missing");
        live.update(sample("chiller-1", "chiller.fault", Value::Bool(false), T));
        live.update(sample(
            "chiller-1",
            "chiller.load_kw",
            Value::Number(700.0),
            T,
        ));
        let st = state_of(&s, &live, "ch", T);
        assert_eq!(st.state, CompState::Up);
        assert_eq!(st.load(Subsystem::Cooling), Some(700.0));
        live.update(sample(
            "chiller-1",
            "chiller.fault",
            Value::Bool(true),
            T + 1,
        ));
        assert_eq!(state_of(&s, &live, "ch", T + 1).state, CompState::Down);
    }

    #[test]
    fn ups_output_voltage_within_tolerance() {
        let s = site();
        let mut live = Live::new();
        live.update(sample(
            "ups-z1",
            "ups.output_voltage",
            Value::Number(365.0),
            T,
        ));
        assert_eq!(state_of(&s, &live, "ups", T).state, CompState::Up);
        live.update(sample(
            "ups-z1",
            "ups.output_voltage",
            Value::Number(355.0),
            T + 1,
        ));
        assert_eq!(state_of(&s, &live, "ups", T + 1).state, CompState::Down);
        let c = s.get("ups").unwrap();
        assert_eq!(
            component_state(&s, c, &live, true, T + 1).state,
            CompState::Maintenance
        );
    }

    #[test]
    fn live_lookups_do_not_grow_with_the_number_of_points_of_a_role() {
        // Hazard: one agent publishing thousands of points under one device and role made
        // every update a linear search (quadratic overall), stalling every other agent.
        let mut live = Live::new();
        let n = 20_000;
        for i in 0..n {
            let mut s = sample("ups-z1", "custom.x", Value::Number(i as f64), T);
            s.point = format!("p{i}");
            live.update(s);
        }
        // Re-updating every point stays in place (no duplicates) and keeps the newest.
        for i in 0..n {
            let mut s = sample("ups-z1", "custom.x", Value::Number(-1.0), T - 1);
            s.point = format!("p{i}");
            live.update(s);
        }
        assert_eq!(live.len(), n);
        assert!(
            live.device_samples("ups-z1")
                .all(|s| s.value != Some(Value::Number(-1.0)))
        );
        assert_eq!(live.device_samples("nope").count(), 0);
        // A point that changes its role is found under the new one only.
        let mut moved = sample("ups-z1", "ups.output_voltage", Value::Number(400.0), T + 1);
        moved.point = "p7".into();
        live.update(moved);
        let s = site();
        assert_eq!(state_of(&s, &live, "ups", T + 1).state, CompState::Up);
        assert_eq!(live.len(), n);
    }
}
