//! The alarm engine: rules applied to inputs, debouncing, ISA-18.2 transitions, operator
//! actions, shelving expiry, suppression, chattering and flood detection, grade escalation.
//! Every change is an output [`Record`] for the journal and audit.
//!
//! Per-rack redundancy alarms `redundancy:{subsystem}/{rack}` are grouped under
//! `redundancy:{subsystem}` (`Engine::group_parent`): while the parent is active at the same or a
//! worse grade, a rack alarm is suppressed by design before it activates, so a feed loss
//! annunciates one alarm per subsystem (`GET /api/alarms?grouped=true` lists the rack alarms); a
//! rack that degrades on its own is announced.

use crate::alarm::{Alarm, AlarmState};
use crate::rules::{Condition, Rule};
use dcim_points::{Quality, Sample};
use dcim_site::Redundancy;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Tuning of the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// An alarm that activates `chatter_count` times within `chatter_window_ms` is shelved
    /// automatically for `chatter_shelve_ms`.
    pub chatter_count: usize,
    pub chatter_window_ms: i64,
    pub chatter_shelve_ms: i64,
    /// More than `flood_count` annunciations within `flood_window_ms` is a flood: one summary
    /// record starts it, one ends it when the rate is back under the limit.
    pub flood_count: usize,
    pub flood_window_ms: i64,
    /// Longest shelving an operator may ask for.
    pub max_shelve_ms: i64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            chatter_count: 5,
            chatter_window_ms: 60_000,
            chatter_shelve_ms: 15 * 60_000,
            flood_count: 10,
            flood_window_ms: 10 * 60_000,
            max_shelve_ms: 8 * 3_600_000,
        }
    }
}

/// What happened, in an output record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Activated,
    Cleared,
    Acknowledged,
    Shelved {
        until_ms: i64,
        /// Why the operator shelved it (required).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        reason: String,
    },
    Unshelved,
    ShelfExpired,
    ChatterShelved {
        activations: usize,
    },
    SuppressedByDesign {
        cause: String,
    },
    Unsuppressed,
    MaintenanceOn,
    MaintenanceOff,
    OutOfService,
    ReturnedToService,
    Comment {
        text: String,
    },
    /// The grade was raised because recovery takes longer than expected (or the condition
    /// worsened, for redundancy).
    GradeRaised {
        from: u8,
        to: u8,
    },
    /// The condition changed while an overlay hid it (kept for the journal).
    ConditionWhileHidden {
        active: bool,
    },
    FloodStarted {
        count: usize,
    },
    FloodEnded {
        count: usize,
    },
}

/// One output record: a transition or an event of one alarm (or a flood summary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Increasing per engine.
    pub seq: u64,
    pub ts_ms: i64,
    /// Alarm id; `flood` for flood summaries.
    pub alarm: String,
    pub event: Event,
    pub from: AlarmState,
    pub to: AlarmState,
    pub grade: u8,
    /// The operator for operator actions; `system:...` for automatic ones.
    pub user: Option<String>,
    pub message: String,
    /// Component of the site model the alarm is about, when known.
    pub component: Option<String>,
    /// Annunciated during a flood: notify the flood summary instead.
    pub in_flood: bool,
}

impl Record {
    /// Whether the record changes the visible state.
    pub fn is_transition(&self) -> bool {
        self.from != self.to
    }
}

/// The persistent state of an [`Engine`].
///
/// Every field after `seq` is optional in the serialised form (snapshots written before they
/// existed still load; the counters then start afresh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub alarms: Vec<Alarm>,
    pub maintenance: Vec<String>,
    pub seq: u64,
    /// Recent activation times per alarm id (chattering detection), non-empty ones only.
    #[serde(default)]
    pub chatter: BTreeMap<String, Vec<i64>>,
    /// Annunciation times inside the flood window.
    #[serde(default)]
    pub annunciations: Vec<i64>,
    /// Annunciations counted in the flood under way, if one is.
    #[serde(default)]
    pub flooding: Option<usize>,
}

impl Snapshot {
    /// The snapshot without its alarms ([`Engine::snapshot_meta`]) completed with them.
    pub fn with_alarms(mut self, alarms: Vec<Alarm>) -> Snapshot {
        self.alarms = alarms;
        self
    }
}

/// An operator action on one alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Ack,
    /// Shelve until `until_ms`, for a `reason` (required). Refused for alarms whose rule is
    /// not shelvable ([`Rule::shelvable`]: fire-stage and battery-temperature alarms).
    Shelve {
        until_ms: i64,
        #[serde(default)]
        reason: String,
    },
    Unshelve,
    Comment {
        text: String,
    },
    OutOfService,
    ReturnToService,
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("unknown alarm `{0}`")]
    UnknownAlarm(String),
    #[error("alarm `{alarm}` is {state}: {action} is not possible in that state")]
    NotAllowed {
        alarm: String,
        state: &'static str,
        action: &'static str,
    },
    #[error("shelving must end in the future and within the maximum shelving time")]
    BadShelveTime,
    #[error("an operator action needs a user")]
    NoUser,
    #[error("alarm `{alarm}` cannot be shelved: {why}")]
    NotShelvable { alarm: String, why: String },
    #[error("{action} needs a reason")]
    ReasonRequired { action: &'static str },
}

/// Decides whether an alarm is suppressed by design, e.g. because the upstream feed of its
/// component is lost. Return the cause to suppress.
pub trait Suppression {
    fn suppressed_by(&self, alarm: &Alarm) -> Option<String>;
}

/// No suppression by design.
pub struct NoSuppression;
impl Suppression for NoSuppression {
    fn suppressed_by(&self, _: &Alarm) -> Option<String> {
        None
    }
}

impl<F: Fn(&Alarm) -> Option<String>> Suppression for F {
    fn suppressed_by(&self, alarm: &Alarm) -> Option<String> {
        self(alarm)
    }
}

/// Between the subsystem and the rack in a per-rack redundancy subject (`power/rack-a01`).
pub const RACK_SEP: char = '/';

/// Start of the suppression cause of an alarm hidden under its group's alarm.
pub const GROUPED_UNDER: &str = "grouped under ";

/// The alarm engine. Pure: every method takes `now_ms` and returns the records it produced.
#[derive(Debug, Clone)]
pub struct Engine {
    rules: Vec<Rule>,
    /// Role -> the rules on it, in rule order: a sample is matched against its role's rules
    /// only (one lookup instead of a comparison with every rule, per sample).
    rules_by_role: std::collections::HashMap<String, std::sync::Arc<[usize]>>,
    pub config: EngineConfig,
    alarms: BTreeMap<String, Alarm>,
    seq: u64,
    annunciations: VecDeque<i64>,
    flooding: Option<usize>,
    /// Maintenance applies to alarms whose subject or component is in this set.
    maintenance: std::collections::BTreeSet<String>,
    /// Device -> component, for suppression and grouping (from the site model).
    device_component: BTreeMap<String, String>,
    /// Device -> where it is (from the site model), for fire alarm texts.
    places: BTreeMap<String, String>,
    /// Latest good fire temperatures per device (`FIRE_TEMPERATURE_ROLES`): role -> °C.
    fire_temps: BTreeMap<String, Vec<(&'static str, f64)>>,
    /// Alarm ids of rules on `fire.stage`, per device, whose texts follow the temperature.
    fire_alarms: BTreeMap<String, Vec<String>>,
}

impl Engine {
    /// A new engine; rules are validated.
    pub fn new(rules: Vec<Rule>, config: EngineConfig) -> Result<Engine, String> {
        for r in &rules {
            r.validate()?;
        }
        let mut by_role: std::collections::HashMap<String, Vec<usize>> = Default::default();
        for (i, r) in rules.iter().enumerate() {
            if let Some(role) = r.role() {
                by_role.entry(role.to_owned()).or_default().push(i);
            }
        }
        Ok(Engine {
            rules_by_role: by_role.into_iter().map(|(k, v)| (k, v.into())).collect(),
            rules,
            config,
            alarms: BTreeMap::new(),
            seq: 0,
            annunciations: VecDeque::new(),
            flooding: None,
            maintenance: Default::default(),
            device_component: BTreeMap::new(),
            places: BTreeMap::new(),
            fire_temps: BTreeMap::new(),
            fire_alarms: BTreeMap::new(),
        })
    }

    /// Tells the engine where each device is (e.g. `crate::fire_text::device_places`), for
    /// the texts of fire alarms.
    pub fn set_places(&mut self, places: BTreeMap<String, String>) {
        self.places = places;
        let fire: Vec<(String, String)> = self
            .fire_alarms
            .iter()
            .flat_map(|(d, ids)| ids.iter().map(move |id| (d.clone(), id.clone())))
            .collect();
        for (device, id) in fire {
            self.refresh_fire_text(&id, &device);
        }
    }

    fn is_fire_rule(r: &Rule) -> bool {
        r.role() == Some("fire.stage")
    }

    /// Rebuilds the text of a fire alarm from its stage value, the device's hottest fire
    /// temperature and its place.
    fn refresh_fire_text(&mut self, id: &str, device: &str) {
        let Some(a) = self.alarms.get(id) else { return };
        let Some(rule) = self.rules.iter().find(|r| r.id == a.rule) else {
            return;
        };
        let stage = a
            .value
            .and_then(|x| dcim_site::fire::stage_of(&dcim_points::Value::Number(x)));
        let hottest = self
            .fire_temps
            .get(device)
            .and_then(|v| v.iter().copied().max_by(|x, y| x.1.total_cmp(&y.1)));
        let text = crate::fire_text::fire_message(
            &rule.name,
            &a.subject,
            stage,
            self.places.get(device).map(String::as_str),
            hottest,
        );
        if let Some(a) = self.alarms.get_mut(id) {
            a.message = text;
        }
    }

    /// Keeps the latest fire temperature of a device and refreshes its fire alarms' texts.
    fn note_fire_temperature(&mut self, s: &Sample) {
        let Some(role) = crate::fire_text::FIRE_TEMPERATURE_ROLES
            .iter()
            .find(|r| **r == s.role.as_str())
        else {
            return;
        };
        let Some(x) = s.value.as_ref().and_then(dcim_points::Value::as_f64) else {
            return;
        };
        let temps = match self.fire_temps.get_mut(&s.device) {
            Some(t) => t,
            None => self.fire_temps.entry(s.device.clone()).or_default(),
        };
        match temps.iter_mut().find(|(r, _)| r == role) {
            Some(e) => e.1 = x,
            None => temps.push((role, x)),
        }
        let Some(ids) = self.fire_alarms.get(&s.device) else {
            return;
        };
        let live: Vec<String> = ids
            .iter()
            .filter(|id| {
                self.alarms
                    .get(id.as_str())
                    .is_some_and(|a| a.state() != AlarmState::Normal || a.active)
            })
            .cloned()
            .collect();
        let device = s.device.clone();
        for id in live {
            self.refresh_fire_text(&id, &device);
        }
    }

    /// Tells the engine which component each device belongs to (e.g. from
    /// `dcim_site::Site::components_of_device`).
    pub fn set_device_components(&mut self, map: BTreeMap<String, String>) {
        self.device_component = map;
        for a in self.alarms.values_mut() {
            a.component = self.device_component.get(device_of(&a.subject)).cloned();
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, id: &str) -> Option<&Alarm> {
        self.alarms.get(id)
    }

    /// Every alarm instance, in id order.
    pub fn alarms(&self) -> impl Iterator<Item = &Alarm> {
        self.alarms.values()
    }

    /// The active list: every alarm not in the normal state (including shelved, suppressed
    /// and out-of-service ones, which a console shows in their own tabs), but not quiet alarms
    /// hidden only by maintenance or suppression by design ([`Alarm::is_listed`]).
    pub fn active(&self) -> impl Iterator<Item = &Alarm> {
        self.alarms.values().filter(|a| a.is_listed())
    }

    pub fn is_flooding(&self) -> bool {
        self.flooding.is_some()
    }

    /// Everything needed to resume after a restart: alarm instances (with their debounce
    /// timers, shelving expiry and grade raises), maintenance set, record sequence, chattering
    /// counters and the flood window. Store it with the records it follows.
    pub fn snapshot(&self) -> Snapshot {
        // The chattering counters travel in `chatter` only (as they are serialised).
        let alarms = self
            .alarms
            .values()
            .map(|a| Alarm {
                recent_activations: Vec::new(),
                ..a.clone()
            })
            .collect();
        self.snapshot_meta().with_alarms(alarms)
    }

    /// [`Engine::snapshot`] without the alarm instances, for stores that keep each alarm in
    /// its own row and write only the alarms a step touched (cheap: no alarm is cloned).
    pub fn snapshot_meta(&self) -> Snapshot {
        Snapshot {
            alarms: Vec::new(),
            maintenance: self.maintenance.iter().cloned().collect(),
            seq: self.seq,
            chatter: self
                .alarms
                .values()
                .filter(|a| !a.recent_activations.is_empty())
                .map(|a| (a.id.clone(), a.recent_activations.clone()))
                .collect(),
            annunciations: self.annunciations.iter().copied().collect(),
            flooding: self.flooding,
        }
    }

    /// Resumes from a snapshot (alarms of rules that no longer exist are dropped): the next
    /// records continue the sequence, pending on/off delays and shelf expiries fire on the next
    /// tick due, chattering counts and a flood under way carry on.
    pub fn restore(&mut self, snap: Snapshot) {
        self.seq = self.seq.max(snap.seq);
        self.maintenance = snap.maintenance.into_iter().collect();
        let mut chatter = snap.chatter;
        self.alarms = snap
            .alarms
            .into_iter()
            .filter(|a| self.rules.iter().any(|r| r.id == a.rule))
            .map(|mut a| {
                a.recent_activations = chatter.remove(&a.id).unwrap_or_default();
                (a.id.clone(), a)
            })
            .collect();
        self.annunciations = snap.annunciations.into_iter().collect();
        self.flooding = snap.flooding;
        self.fire_alarms.clear();
        let fire: Vec<(String, String)> = self
            .alarms
            .values()
            .filter(|a| {
                self.rules
                    .iter()
                    .any(|r| r.id == a.rule && Self::is_fire_rule(r))
            })
            .map(|a| (device_of(&a.subject).to_owned(), a.id.clone()))
            .collect();
        for (d, id) in fire {
            self.fire_alarms.entry(d).or_default().push(id);
        }
    }

    fn record(
        &mut self,
        out: &mut Vec<Record>,
        id: &str,
        event: Event,
        from: AlarmState,
        user: Option<&str>,
        now_ms: i64,
    ) {
        let a = self
            .alarms
            .get(id)
            .expect("records are about existing alarms");
        self.seq += 1;
        out.push(Record {
            seq: self.seq,
            ts_ms: now_ms,
            alarm: id.to_owned(),
            event,
            from,
            to: a.state(),
            grade: a.grade,
            user: user.map(str::to_owned),
            message: a.message.clone(),
            component: a.component.clone(),
            in_flood: self.flooding.is_some(),
        });
    }

    fn instance(
        &mut self,
        rule: usize,
        subject: &str,
        now_ms: i64,
        out: &mut Vec<Record>,
    ) -> String {
        let r = &self.rules[rule];
        let id = format!("{}:{}", r.id, subject);
        if !self.alarms.contains_key(&id) {
            let mut a = Alarm::new(
                id.clone(),
                r.id.clone(),
                subject.to_owned(),
                r.grade,
                now_ms,
            );
            a.component = self.device_component.get(device_of(subject)).cloned();
            a.message = format!("{}: {}", r.name, subject);
            if Self::is_fire_rule(r) {
                self.fire_alarms
                    .entry(device_of(subject).to_owned())
                    .or_default()
                    .push(id.clone());
            }
            let maintenance = self.in_maintenance(&a);
            self.alarms.insert(id.clone(), a);
            if maintenance {
                // A new alarm of equipment in maintenance starts suppressed, on the record.
                self.alarms
                    .get_mut(&id)
                    .expect("just inserted")
                    .overlays
                    .maintenance = true;
                self.record(
                    out,
                    &id,
                    Event::MaintenanceOn,
                    AlarmState::Normal,
                    Some("system:maintenance"),
                    now_ms,
                );
            }
        }
        id
    }

    fn in_maintenance(&self, a: &Alarm) -> bool {
        self.maintenance.contains(device_of(&a.subject))
            || a.component
                .as_ref()
                .is_some_and(|c| self.maintenance.contains(c))
    }

    /// Feeds one sample through the rules that match its role and device.
    pub fn on_sample(&mut self, s: &Sample, now_ms: i64) -> Vec<Record> {
        let mut out = Vec::new();
        // Values that cannot be trusted do not move the condition (comm loss has its own
        // alarm).
        if s.quality != Quality::Good {
            return out;
        }
        let Some(v) = s.value.as_ref() else {
            return out;
        };
        self.note_fire_temperature(s);
        let code = stage_as_code(s, v);
        let v = code.as_ref().unwrap_or(v);
        let Some(candidates) = self.rules_by_role.get(s.role.as_str()).cloned() else {
            return out;
        };
        // The alarm id `rule:subject`, built in one buffer reused across the rules (the
        // steady case allocates nothing else).
        let mut id = String::new();
        for &ri in candidates.iter() {
            let r = &self.rules[ri];
            if !rule_matches(r, s) {
                continue;
            }
            id.clear();
            id.push_str(&r.id);
            id.push(':');
            push_subject(&mut id, s);
            let subject_at = r.id.len() + 1;
            let existing = self.alarms.get_mut(id.as_str());
            let was_raw = existing.as_ref().is_some_and(|a| a.raw);
            let raw = raw_condition(&r.condition, v, was_raw);
            let fire = Self::is_fire_rule(r);
            if let (Some(a), Some(raw)) = (existing, raw) {
                let changed = a.value != v.as_f64();
                a.value = v.as_f64();
                if fire && changed {
                    // The text shows the present stage, not the one at activation.
                    let id = id.clone();
                    self.refresh_fire_text(&id, &s.device);
                }
                let a = self.alarms.get(id.as_str()).expect("exists");
                if raw == a.raw && a.raw == a.active {
                    // Steady: nothing pending, nothing to record (the fast path).
                    continue;
                }
            } else if !self.alarms.contains_key(id.as_str()) {
                // A new instance (even when the value cannot drive the condition, so that the
                // subject is known).
                let subject = id[subject_at..].to_owned();
                self.instance(ri, &subject, now_ms, &mut out);
            }
            let Some(raw) = raw else { continue };
            let r = &self.rules[ri];
            let a = self.alarms.get_mut(id.as_str()).expect("exists");
            a.value = v.as_f64();
            if raw == a.raw && a.raw == a.active {
                continue;
            }
            if fire {
                let id = id.clone();
                self.refresh_fire_text(&id, &s.device);
            } else if raw != a.raw {
                a.message = format!("{}: {} = {}", r.name, &id[subject_at..], fmt_value(v));
            }
            self.set_raw(&id, raw, now_ms, &mut out);
        }
        out
    }

    /// A device's communication state (from the status engine or the agent).
    pub fn on_comm(&mut self, device: &str, comm_lost: bool, now_ms: i64) -> Vec<Record> {
        let mut out = Vec::new();
        for ri in 0..self.rules.len() {
            let r = &self.rules[ri];
            if r.condition != Condition::CommLost || !device.starts_with(&r.device_prefix) {
                continue;
            }
            if !comm_lost && !self.alarms.contains_key(&format!("{}:{device}", r.id)) {
                continue;
            }
            let id = self.instance(ri, device, now_ms, &mut out);
            self.set_raw(&id, comm_lost, now_ms, &mut out);
        }
        out
    }

    /// A trouble the server detects itself (rules with `Condition::Trouble { kind }`): active or
    /// not for `subject` (an agent, a component, `database`), with the text to show. `component`
    /// is the site component it is about, when there is one (for suppression and grouping).
    pub fn on_trouble(
        &mut self,
        kind: &str,
        subject: &str,
        component: Option<&str>,
        active: bool,
        message: &str,
        now_ms: i64,
    ) -> Vec<Record> {
        let mut out = Vec::new();
        for ri in 0..self.rules.len() {
            let r = &self.rules[ri];
            if !matches!(&r.condition, Condition::Trouble { kind: k } if k == kind)
                || !subject.starts_with(&r.device_prefix)
            {
                continue;
            }
            if !active && !self.alarms.contains_key(&format!("{}:{subject}", r.id)) {
                continue;
            }
            let name = r.name.clone();
            let id = self.instance(ri, subject, now_ms, &mut out);
            let a = self.alarms.get_mut(&id).expect("just made");
            if let Some(c) = component {
                a.component = Some(c.to_owned());
            }
            if active && !message.is_empty() {
                a.message = format!("{name}: {message}");
            }
            self.set_raw(&id, active, now_ms, &mut out);
        }
        out
    }

    /// Whether a subsystem's level is verified (rules with `Condition::RedundancyUnverified`):
    /// active while Unknown components keep the proven level below what they would give.
    /// `detail` says what is proven and what is unknown.
    pub fn on_unverified(
        &mut self,
        subsystem: &str,
        unverified: bool,
        detail: &str,
        now_ms: i64,
    ) -> Vec<Record> {
        let mut out = Vec::new();
        for ri in 0..self.rules.len() {
            if self.rules[ri].condition != Condition::RedundancyUnverified {
                continue;
            }
            if !unverified
                && !self
                    .alarms
                    .contains_key(&format!("{}:{subsystem}", self.rules[ri].id))
            {
                continue;
            }
            let name = self.rules[ri].name.clone();
            let id = self.instance(ri, subsystem, now_ms, &mut out);
            if unverified {
                self.alarms.get_mut(&id).expect("just made").message =
                    format!("{name}: {subsystem} {detail}");
            }
            self.set_raw(&id, unverified, now_ms, &mut out);
        }
        out
    }

    /// A subsystem's (or a rack's) redundancy. Active when `current < designed`; grade 1 when
    /// below N, the rule's grade otherwise (losing 2N is grade 2 with the default rules). A
    /// drop to below N while active raises the grade with a record.
    pub fn on_redundancy(
        &mut self,
        subject: &str,
        designed: Redundancy,
        current: Redundancy,
        detail: &str,
        now_ms: i64,
    ) -> Vec<Record> {
        self.redundancy(subject, None, designed, current, detail, now_ms)
    }

    /// One rack's redundancy in one subsystem: the alarm `redundancy:{subsystem}/{rack}`, graded
    /// like [`Engine::on_redundancy`], about the rack's component. It is grouped under the
    /// subsystem's alarm `redundancy:{subsystem}`: while that one is active at the same or a
    /// higher grade, the rack's alarm is suppressed by design (journaled, not annunciated), so
    /// that a feed loss dropping 400 racks from 2N to N shows one alarm per subsystem. Call it
    /// after `on_redundancy` for the subsystem in the same step.
    pub fn on_rack_redundancy(
        &mut self,
        subsystem: &str,
        rack: &str,
        designed: Redundancy,
        current: Redundancy,
        detail: &str,
        now_ms: i64,
    ) -> Vec<Record> {
        let subject = format!("{subsystem}{RACK_SEP}{rack}");
        self.redundancy(&subject, Some(rack), designed, current, detail, now_ms)
    }

    fn redundancy(
        &mut self,
        subject: &str,
        rack: Option<&str>,
        designed: Redundancy,
        current: Redundancy,
        detail: &str,
        now_ms: i64,
    ) -> Vec<Record> {
        let mut out = Vec::new();
        for ri in 0..self.rules.len() {
            if self.rules[ri].condition != Condition::Redundancy {
                continue;
            }
            let raw = current < designed;
            if !raw
                && !self
                    .alarms
                    .contains_key(&format!("{}:{subject}", self.rules[ri].id))
            {
                continue;
            }
            let id = self.instance(ri, subject, now_ms, &mut out);
            let rule_grade = self.rules[ri].grade;
            let name = self.rules[ri].name.clone();
            let a = self.alarms.get_mut(&id).expect("just made");
            if let Some(rack) = rack
                && a.component.as_deref() != Some(rack)
            {
                a.component = Some(rack.to_owned());
            }
            a.message = format!("{name}: {subject} designed {designed}, now {current}. {detail}");
            let want = if current == Redundancy::BelowN {
                1
            } else {
                rule_grade
            };
            if raw && want < a.base_grade {
                a.base_grade = want;
                if want < a.grade {
                    let from = a.grade;
                    a.grade = want;
                    let st = a.state();
                    self.record(
                        &mut out,
                        &id,
                        Event::GradeRaised { from, to: want },
                        st,
                        Some("system:redundancy"),
                        now_ms,
                    );
                }
            }
            // A member of a group whose alarm is active is hidden before it activates, so it
            // is never annunciated (and never counts towards a flood).
            let a = &self.alarms[&id];
            if raw
                && !a.active
                && a.overlays.suppressed_by.is_none()
                && let Some(cause) = self.group_cause(a)
            {
                let a = self.alarms.get_mut(&id).expect("exists");
                let from = a.state();
                a.overlays.suppressed_by = Some(cause.clone());
                self.record(
                    &mut out,
                    &id,
                    Event::SuppressedByDesign { cause },
                    from,
                    Some("system:design"),
                    now_ms,
                );
            }
            self.set_raw(&id, raw, now_ms, &mut out);
        }
        out
    }

    /// The id of the alarm a per-rack redundancy alarm is grouped under (`redundancy:power`
    /// for `redundancy:power/rack-a01`); `None` for every other alarm.
    pub fn group_parent(&self, a: &Alarm) -> Option<String> {
        let rule = self.rules.iter().find(|r| r.id == a.rule)?;
        if rule.condition != Condition::Redundancy {
            return None;
        }
        let (subsystem, _) = a.subject.split_once(RACK_SEP)?;
        Some(format!("{}:{subsystem}", rule.id))
    }

    /// Why a grouped alarm is suppressed now: its group's alarm is active at the same or a
    /// higher grade.
    fn group_cause(&self, a: &Alarm) -> Option<String> {
        let parent = self.group_parent(a)?;
        let p = self.alarms.get(&parent)?;
        (p.active && p.grade <= a.grade).then(|| format!("{GROUPED_UNDER}{parent}"))
    }

    /// Whether the alarm is hidden under its group's alarm (the API lists those only on
    /// request).
    pub fn is_grouped_out(&self, a: &Alarm) -> bool {
        a.overlays
            .suppressed_by
            .as_deref()
            .is_some_and(|c| c.starts_with(GROUPED_UNDER))
    }

    fn set_raw(&mut self, id: &str, raw: bool, now_ms: i64, out: &mut Vec<Record>) {
        let a = self.alarms.get_mut(id).expect("exists");
        if a.raw != raw {
            a.raw = raw;
            a.raw_since_ms = now_ms;
        }
        self.settle(id, now_ms, out);
    }

    /// Applies the on/off delays: moves the debounced condition when the raw one has held long
    /// enough.
    fn settle(&mut self, id: &str, now_ms: i64, out: &mut Vec<Record>) {
        let a = &self.alarms[id];
        let rule = self
            .rules
            .iter()
            .find(|r| r.id == a.rule)
            .expect("alarm of a rule");
        let delay = if a.raw {
            rule.on_delay_ms
        } else {
            rule.off_delay_ms
        };
        if a.raw != a.active && now_ms - a.raw_since_ms >= delay {
            let active = a.raw;
            self.set_condition(id, active, now_ms, out);
        }
    }

    fn set_condition(&mut self, id: &str, active: bool, now_ms: i64, out: &mut Vec<Record>) {
        let cfg = self.config.clone();
        let a = self.alarms.get_mut(id).expect("exists");
        a.active = active;
        a.last_change_ms = now_ms;
        let from = a.state();
        if active {
            a.active_since_ms = Some(now_ms);
            a.recent_activations.push(now_ms);
            a.recent_activations
                .retain(|&t| now_ms - t < cfg.chatter_window_ms);
        } else {
            a.active_since_ms = None;
            // Recovery: the grade returns to the rule's grade for the next occurrence.
            a.grade = a.base_grade;
            a.grade_raised = false;
        }
        if a.overlays.visible().is_some() {
            self.record(
                out,
                id,
                Event::ConditionWhileHidden { active },
                from,
                None,
                now_ms,
            );
            return;
        }
        let new_base = Alarm::base_on_condition(a.base, active);
        a.base = new_base;
        // Safety alarms are never shelved, not even automatically for chattering.
        let shelvable = self
            .rules
            .iter()
            .find(|r| r.id == a.rule)
            .is_none_or(Rule::shelvable);
        let chatter = active && shelvable && a.recent_activations.len() >= cfg.chatter_count;
        let ev = if active {
            Event::Activated
        } else {
            Event::Cleared
        };
        let annunciated =
            from != AlarmState::Unacknowledged && new_base == AlarmState::Unacknowledged;
        if annunciated {
            self.note_annunciation(now_ms, out);
        }
        self.record(out, id, ev, from, None, now_ms);
        if chatter {
            let a = self.alarms.get_mut(id).expect("exists");
            let n = a.recent_activations.len();
            a.recent_activations.clear();
            let from = a.state();
            a.overlays.shelved_until = Some(now_ms + cfg.chatter_shelve_ms);
            a.overlays.shelved_by = Some("system:chatter".into());
            self.record(
                out,
                id,
                Event::ChatterShelved { activations: n },
                from,
                Some("system:chatter"),
                now_ms,
            );
        }
    }

    fn note_annunciation(&mut self, now_ms: i64, out: &mut Vec<Record>) {
        self.annunciations.push_back(now_ms);
        self.prune_flood(now_ms);
        let n = self.annunciations.len();
        if self.flooding.is_none() && n > self.config.flood_count {
            self.flooding = Some(n);
            self.seq += 1;
            out.push(Record {
                seq: self.seq,
                ts_ms: now_ms,
                alarm: "flood".into(),
                event: Event::FloodStarted { count: n },
                from: AlarmState::Normal,
                to: AlarmState::Normal,
                grade: 2,
                user: Some("system:flood".into()),
                message: format!(
                    "Alarm flood: {n} alarms in {} s",
                    self.config.flood_window_ms / 1000
                ),
                component: None,
                in_flood: false,
            });
        } else if let Some(total) = &mut self.flooding {
            *total += 1;
        }
    }

    fn prune_flood(&mut self, now_ms: i64) {
        while self
            .annunciations
            .front()
            .is_some_and(|&t| now_ms - t >= self.config.flood_window_ms)
        {
            self.annunciations.pop_front();
        }
    }

    /// Time passes: on/off delays, shelving expiry, suppression by design, recovery-time grade
    /// raises, flood end.
    pub fn tick(&mut self, now_ms: i64, suppression: &dyn Suppression) -> Vec<Record> {
        let mut out = Vec::new();
        for (id, cause) in self.due(now_ms, suppression) {
            let id = &id;
            self.settle(id, now_ms, &mut out);
            self.expire_shelf(id, now_ms, &mut out);
            self.suppress_by_design(id, cause, now_ms, &mut out);
            self.raise_late_grade(id, now_ms, &mut out);
        }
        self.prune_flood(now_ms);
        self.end_flood(now_ms, &mut out);
        out
    }

    /// One cheap pass to find the alarms that need work now, each with its present cause of
    /// suppression by design.
    fn due(&self, now_ms: i64, suppression: &dyn Suppression) -> Vec<(String, Option<String>)> {
        let mut todo: Vec<(String, Option<String>)> = Vec::new();
        for (id, a) in &self.alarms {
            let cause = self.group_cause(a).or_else(|| suppression.suppressed_by(a));
            let rule = self.rules.iter().find(|r| r.id == a.rule).expect("rule");
            let due = a.raw != a.active
                || a.overlays.shelved_until.is_some_and(|t| now_ms >= t)
                || cause != a.overlays.suppressed_by
                || recovery_overdue(a, rule, now_ms);
            if due {
                todo.push((id.clone(), cause));
            }
        }
        todo
    }

    /// Shelving expiry.
    fn expire_shelf(&mut self, id: &str, now_ms: i64, out: &mut Vec<Record>) {
        let a = &self.alarms[id];
        if a.overlays.shelved_until.is_some_and(|t| now_ms >= t) {
            self.remove_overlay(
                id,
                now_ms,
                out,
                |o| {
                    o.shelved_until = None;
                    o.shelved_by = None;
                },
                Event::ShelfExpired,
                Some("system:shelf"),
            );
        }
    }

    /// Suppression by design: the alarm's cause (`None`: not suppressed) as `due` found it.
    fn suppress_by_design(
        &mut self,
        id: &str,
        cause: Option<String>,
        now_ms: i64,
        out: &mut Vec<Record>,
    ) {
        let cur = self.alarms[id].overlays.suppressed_by.clone();
        match (cur, cause) {
            (None, Some(c)) => {
                let a = self.alarms.get_mut(id).expect("exists");
                let from = a.state();
                a.overlays.suppressed_by = Some(c.clone());
                self.record(
                    out,
                    id,
                    Event::SuppressedByDesign { cause: c },
                    from,
                    Some("system:design"),
                    now_ms,
                );
            }
            (Some(_), None) => {
                self.remove_overlay(
                    id,
                    now_ms,
                    out,
                    |o| o.suppressed_by = None,
                    Event::Unsuppressed,
                    Some("system:design"),
                );
            }
            (Some(a), Some(b)) if a != b => {
                self.alarms
                    .get_mut(id)
                    .expect("exists")
                    .overlays
                    .suppressed_by = Some(b);
            }
            _ => {}
        }
    }

    /// Recovery later than expected: raise the grade once.
    fn raise_late_grade(&mut self, id: &str, now_ms: i64, out: &mut Vec<Record>) {
        let a = &self.alarms[id];
        let rule = self.rules.iter().find(|r| r.id == a.rule).expect("rule");
        if recovery_overdue(a, rule, now_ms) {
            let a = self.alarms.get_mut(id).expect("exists");
            let from = a.grade;
            a.grade -= 1;
            a.grade_raised = true;
            let st = a.state();
            self.record(
                out,
                id,
                Event::GradeRaised { from, to: from - 1 },
                st,
                Some("system:recovery"),
                now_ms,
            );
        }
    }

    /// The flood ends once the annunciations in the window fall to half the flood count.
    fn end_flood(&mut self, now_ms: i64, out: &mut Vec<Record>) {
        if let Some(total) = self.flooding
            && self.annunciations.len() <= self.config.flood_count / 2
        {
            self.flooding = None;
            self.seq += 1;
            out.push(Record {
                seq: self.seq,
                ts_ms: now_ms,
                alarm: "flood".into(),
                event: Event::FloodEnded { count: total },
                from: AlarmState::Normal,
                to: AlarmState::Normal,
                grade: 2,
                user: Some("system:flood".into()),
                message: format!("Alarm flood over: {total} alarms"),
                component: None,
                in_flood: false,
            });
        }
    }

    fn remove_overlay(
        &mut self,
        id: &str,
        now_ms: i64,
        out: &mut Vec<Record>,
        clear: impl FnOnce(&mut crate::alarm::Overlays),
        event: Event,
        user: Option<&str>,
    ) {
        let a = self.alarms.get_mut(id).expect("exists");
        let from = a.state();
        clear(&mut a.overlays);
        if a.overlays.visible().is_none() {
            let before = a.base;
            a.base = Alarm::base_after_overlay(a.base, a.active);
            let annunciated =
                before != AlarmState::Unacknowledged && a.base == AlarmState::Unacknowledged;
            if annunciated {
                self.note_annunciation(now_ms, out);
            }
        }
        self.record(out, id, event, from, user, now_ms);
    }

    /// Puts a device or component in maintenance (or takes it out): its alarms are suppressed
    /// by maintenance meanwhile.
    pub fn set_maintenance(
        &mut self,
        subject: &str,
        on: bool,
        user: &str,
        now_ms: i64,
    ) -> Vec<Record> {
        let mut out = Vec::new();
        if on {
            self.maintenance.insert(subject.to_owned());
        } else {
            self.maintenance.remove(subject);
        }
        let ids: Vec<String> = self.alarms.keys().cloned().collect();
        for id in ids {
            let want = self.in_maintenance(&self.alarms[&id]);
            let a = self.alarms.get_mut(&id).expect("exists");
            if a.overlays.maintenance == want {
                continue;
            }
            if want {
                let from = a.state();
                a.overlays.maintenance = true;
                self.record(
                    &mut out,
                    &id,
                    Event::MaintenanceOn,
                    from,
                    Some(user),
                    now_ms,
                );
            } else {
                self.remove_overlay(
                    &id,
                    now_ms,
                    &mut out,
                    |o| o.maintenance = false,
                    Event::MaintenanceOff,
                    Some(user),
                );
            }
        }
        out
    }

    /// An operator action. Refused (with nothing changed) when the state does not allow it:
    /// every check ([`Engine::check_action`]) runs before the first change
    /// ([`Engine::apply_action`]).
    pub fn act(
        &mut self,
        alarm: &str,
        action: Action,
        user: &str,
        now_ms: i64,
    ) -> Result<Vec<Record>, ActionError> {
        if user.is_empty() {
            return Err(ActionError::NoUser);
        }
        let Some(a) = self.alarms.get(alarm) else {
            return Err(ActionError::UnknownAlarm(alarm.to_owned()));
        };
        let state = a.state();
        self.check_action(alarm, a, &action, now_ms)?;
        Ok(self.apply_action(alarm, action, state, user, now_ms))
    }

    /// Whether the alarm's state allows the action; the first failing check is the error.
    fn check_action(
        &self,
        alarm: &str,
        a: &Alarm,
        action: &Action,
        now_ms: i64,
    ) -> Result<(), ActionError> {
        let refuse = |action: &'static str| ActionError::NotAllowed {
            alarm: alarm.to_owned(),
            state: a.state().as_str(),
            action,
        };
        match action {
            Action::Ack => {
                if a.overlays.visible().is_some() {
                    return Err(refuse("acknowledge"));
                }
                if Alarm::base_on_ack(a.base).is_none() {
                    return Err(refuse("acknowledge"));
                }
            }
            Action::Shelve { until_ms, reason } => {
                let until_ms = *until_ms;
                let rule = self.rules.iter().find(|r| r.id == a.rule);
                if rule.is_some_and(|r| !r.shelvable()) {
                    return Err(ActionError::NotShelvable {
                        alarm: alarm.to_owned(),
                        why: "fire-stage and battery-temperature alarms are never shelved \
                              (ISA-18.2 safety alarms); acknowledge it instead"
                            .into(),
                    });
                }
                if reason.trim().is_empty() {
                    return Err(ActionError::ReasonRequired { action: "shelving" });
                }
                if until_ms <= now_ms || until_ms - now_ms > self.config.max_shelve_ms {
                    return Err(ActionError::BadShelveTime);
                }
                if a.overlays.shelved_until.is_some() || a.overlays.out_of_service_by.is_some() {
                    return Err(refuse("shelve"));
                }
            }
            Action::Unshelve => {
                if a.overlays.shelved_until.is_none() {
                    return Err(refuse("unshelve"));
                }
            }
            Action::Comment { .. } => {}
            Action::OutOfService => {
                if a.overlays.out_of_service_by.is_some() {
                    return Err(refuse("take out of service"));
                }
            }
            Action::ReturnToService => {
                if a.overlays.out_of_service_by.is_none() {
                    return Err(refuse("return to service"));
                }
            }
        }
        Ok(())
    }

    /// Applies an action [`Engine::check_action`] allowed; `state` is the alarm's state before.
    /// An overlay's removal records its own event; every other action changes the alarm and
    /// then records its event.
    fn apply_action(
        &mut self,
        alarm: &str,
        action: Action,
        state: AlarmState,
        user: &str,
        now_ms: i64,
    ) -> Vec<Record> {
        let mut out = Vec::new();
        let a = self.alarms.get_mut(alarm).expect("exists");
        let event = match action {
            Action::Ack => {
                a.base = Alarm::base_on_ack(a.base).expect("checked");
                a.acked_by = Some(user.to_owned());
                Event::Acknowledged
            }
            Action::Shelve { until_ms, reason } => {
                a.overlays.shelved_until = Some(until_ms);
                a.overlays.shelved_by = Some(user.to_owned());
                Event::Shelved {
                    until_ms,
                    reason: reason.trim().to_owned(),
                }
            }
            Action::Comment { text } => Event::Comment { text },
            Action::OutOfService => {
                a.overlays.out_of_service_by = Some(user.to_owned());
                Event::OutOfService
            }
            Action::Unshelve => {
                self.remove_overlay(
                    alarm,
                    now_ms,
                    &mut out,
                    |o| {
                        o.shelved_until = None;
                        o.shelved_by = None;
                    },
                    Event::Unshelved,
                    Some(user),
                );
                return out;
            }
            Action::ReturnToService => {
                self.remove_overlay(
                    alarm,
                    now_ms,
                    &mut out,
                    |o| o.out_of_service_by = None,
                    Event::ReturnedToService,
                    Some(user),
                );
                return out;
            }
        };
        self.record(&mut out, alarm, event, state, Some(user), now_ms);
        out
    }
}

/// An active alarm of grade 2 or 3 whose grade was not raised yet, active for longer than its
/// rule's expected recovery time: its grade goes up one step (once).
fn recovery_overdue(a: &Alarm, rule: &Rule, now_ms: i64) -> bool {
    a.active
        && !a.grade_raised
        && a.grade > 1
        && rule.expected_recovery_ms > 0
        && a.active_since_ms
            .is_some_and(|t| now_ms - t > rule.expected_recovery_ms)
}

/// A stage reported as its key (`stage3`, from an `enum` profile) is its code for every rule,
/// through the stage table; `None` when the value is used as it is.
fn stage_as_code(s: &Sample, v: &dcim_points::Value) -> Option<dcim_points::Value> {
    match v {
        dcim_points::Value::Text(_) if s.role.as_str() == "fire.stage" => {
            dcim_site::fire::stage_of(v).map(|st| dcim_points::Value::Number(f64::from(st.code)))
        }
        _ => None,
    }
}

/// Whether a rule watches this sample: its role, a device under the rule's prefix, and every
/// label the rule names.
fn rule_matches(r: &Rule, s: &Sample) -> bool {
    r.role() == Some(s.role.as_str())
        && s.device.starts_with(&r.device_prefix)
        && r.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
}

/// The raw (undelayed) condition of a value-driven rule for one value, `None` when the value
/// cannot drive it (wrong type, or a condition that samples do not drive). `was_raw` applies
/// the threshold's deadband: an alarm clears only `deadband` inside the limit.
fn raw_condition(c: &Condition, v: &dcim_points::Value, was_raw: bool) -> Option<bool> {
    match c {
        Condition::Threshold {
            high,
            low,
            deadband,
            ..
        } => v.as_f64().map(|x| {
            let hi = high.is_some_and(|h| if was_raw { x > h - deadband } else { x > h });
            let lo = low.is_some_and(|l| if was_raw { x < l + deadband } else { x < l });
            hi || lo
        }),
        Condition::Binary { alarm_when, .. } => v.as_bool().map(|b| b == *alarm_when),
        // Stage 1 or later; a code the table does not know still alarms from 2 up
        // (an implausible stage is never read as normal).
        Condition::FireStage => Some(match dcim_site::fire::stage_of(v) {
            Some(st) => dcim_site::fire::cuts_power(st),
            None => v.as_f64().is_some_and(|x| x >= 2.0),
        }),
        Condition::CommLost
        | Condition::Redundancy
        | Condition::RedundancyUnverified
        | Condition::Trouble { .. } => None,
    }
}

/// Appends the alarm subject of a sample: its device, with its labels when it has any
/// (`meter-a[feed=A]`).
fn push_subject(out: &mut String, s: &Sample) {
    out.push_str(&s.device);
    if !s.labels.is_empty() {
        out.push('[');
        for (i, (k, v)) in s.labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out.push(']');
    }
}

/// The device part of an alarm subject (`meter-a[feed=A]` -> `meter-a`).
fn device_of(subject: &str) -> &str {
    subject.split_once('[').map_or(subject, |(d, _)| d)
}

fn fmt_value(v: &dcim_points::Value) -> String {
    match v {
        dcim_points::Value::Bool(b) => b.to_string(),
        dcim_points::Value::Number(n) => format!("{n}"),
        dcim_points::Value::Text(t) => t.clone(),
    }
}
