//! Thin adapter over the pure engines: the site model and redundancy engine (`dcim-site`) and
//! the alarm engine and incidents (`dcim-alarms`). Synchronous and clock-free (`now_ms` passed
//! in); the shell (`lib.rs`, `mqtt.rs`, `api.rs`) commits what it returns before telling anyone.
//!
//! Kept deliberately small so that changes in the engines' APIs stay cheap to follow.
//!
//! # The tick and the commit
//!
//! A 1 s ticker re-evaluates the site in three steps so that the costly evaluation runs without
//! the facility lock: `tick_inputs` (under the lock), then `dcim_site::evaluate`, then `tick_with`
//! (under the lock). The site and the evaluation are shared (`Arc`), so the API serialises them
//! after releasing the lock; device statuses are computed from the ingest's table
//! (`device_statuses`: each device looked up once, each point read once) with only a copy of the
//! maintenance set taken under the lock. `tick` feeds every subsystem's and then every rack's known
//! redundancy, each subsystem's verification and each component's breaker mismatch to the alarm
//! engine, clears the clock troubles of agents quiet for `CLOCK_AHEAD_CLEAR_MS`, and returns the
//! level changes (proven, if unknown up, verified), which the shell publishes as the `redundancy`
//! live event. `App::commit_changes` writes journal, snapshots and the operator audit in one
//! transaction, then pushes to SSE.
//!
//! The rules are `rules()`: the engine's defaults (with the `trouble` rules: breaker mismatch,
//! agent clock ahead, new spool epoch, disk full) plus the server's own `ingest-loss` (grade 2).
//! After a restore (`Facility::restore`, before ingest starts) a subsystem whose components have
//! not all reported within `RESTORE_WARMUP_MS` (20 s) keeps its restored redundancy alarm.

use dcim_alarms::{
    Action, ActionError, Engine, EngineConfig, IncidentConfig, IncidentEvent, Incidents, Record,
    Rule, SiteSuppression,
};
use dcim_points::Sample;
use dcim_site::{
    ComponentState, Evaluation, Live, Redundancy, Site, StatusPolicy, UnknownComponent,
    UnknownTimer, WhatIf,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// What one step changed: alarm records and incident events, to be committed then pushed;
/// redundancy level changes, to be pushed (the live `redundancy` event).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Changes {
    pub records: Vec<Record>,
    pub incidents: Vec<IncidentEvent>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redundancy: Vec<RedundancyChange>,
}

/// A subsystem's or a rack's current redundancy changed (between two evaluations).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedundancyChange {
    pub subsystem: String,
    /// The rack, for a rack's level; absent for the subsystem's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    pub designed: Redundancy,
    /// Proven level before and now.
    pub before: Redundancy,
    pub current: Redundancy,
    /// The level now if every Unknown component were up, and whether the two agree.
    pub if_unknown_up: Redundancy,
    pub verified: bool,
    pub ts_ms: i64,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.incidents.is_empty()
    }
}

/// After a restart, how long a subsystem whose components have not all reported yet keeps
/// its restored redundancy alarm unchanged: the site engine counts unknown components as
/// available, so without it a restored redundancy alarm would clear before the first samples
/// and be raised again when they arrive. Agents report every point at least every 10 s.
pub const RESTORE_WARMUP_MS: i64 = 20_000;

/// The server itself, as the device of its own alarms.
pub const SERVER_DEVICE: &str = "dcim-server";
/// The component states and evaluation a tick replaced ([`Facility::take_retired`]): only
/// dropped.
pub struct Retired {
    _states: Vec<ComponentState>,
    _evaluation: Option<Arc<Evaluation>>,
}

/// The role of the ingest-loss condition (a server-internal point).
pub const INGEST_LOSS_ROLE: &str = "custom.server.ingest_loss";
/// How long after the last lost range the ingest-loss condition clears (the alarm then waits
/// for an acknowledgement, returned to normal).
pub const INGEST_LOSS_HOLD_MS: i64 = 60_000;

/// The alarm rules: the engine's defaults plus the server's own `ingest-loss` (grade 2): the
/// embedded broker dropped messages before the ingest read them.
pub fn rules() -> Vec<Rule> {
    let mut r = Rule::defaults();
    r.push(Rule {
        id: "ingest-loss".into(),
        name: "Telemetry lost inside the server (broker log skipped unread messages)".into(),
        condition: dcim_alarms::Condition::Binary {
            role: INGEST_LOSS_ROLE.into(),
            alarm_when: true,
        },
        grade: 2,
        device_prefix: SERVER_DEVICE.into(),
        labels: Default::default(),
        on_delay_ms: 0,
        off_delay_ms: 0,
        expected_recovery_ms: 0,
    });
    r
}

/// The roles some alarm rule reads: their samples take the ingest's priority lane.
pub fn alarm_roles() -> Vec<String> {
    let mut v: Vec<String> = rules()
        .iter()
        .filter_map(|r| r.role().map(str::to_owned))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// An agent's `agent-clock-ahead` trouble clears once none of its samples has been refused for
/// this long.
pub const CLOCK_AHEAD_CLEAR_MS: i64 = 60_000;

pub struct Facility {
    /// Shared, so that the expensive part of a tick and the API's JSON run outside the lock.
    pub site: Option<Arc<Site>>,
    live: Live,
    maintenance: BTreeSet<String>,
    states: Vec<ComponentState>,
    evaluation: Option<Arc<Evaluation>>,
    /// The states and evaluation a tick replaced, for the shell to free outside the lock
    /// ([`Facility::take_retired`]): on a 10,000-rack site that is tens of thousands of strings
    /// and vectors, and freeing them took about a tenth of the tick.
    retired: Option<Retired>,
    pub engine: Engine,
    pub incidents: Incidents,
    /// A sample of a site device arrived since the last evaluation.
    dirty: bool,
    /// The devices the site model binds: only their samples are kept in `live` (the ingest
    /// keeps the latest value of every point; this is the site engine's view of its own).
    site_devices: Arc<BTreeSet<String>>,
    pub status_policy: StatusPolicy,
    /// After a restore: until then, a subsystem with components not yet known keeps its
    /// restored redundancy alarm as it is (see [`RESTORE_WARMUP_MS`]).
    warmup_until_ms: Option<i64>,
    /// Current redundancy at the last tick, by subsystem and rack (`""` for the subsystem):
    /// proven level, level if unknown up, verified. (Nested, so that a tick looks levels up
    /// without building keys.)
    levels: HashMap<String, HashMap<String, (Redundancy, Redundancy, bool)>>,
    /// The rack levels (if unknown up, what the rack alarms follow) last given to the alarm
    /// engine, by subsystem and rack: a rack at its designed level that was already given that
    /// level is not given it again (nothing would change), so a healthy site's tick does not
    /// call the engine once per rack.
    fed: HashMap<String, HashMap<String, Redundancy>>,
    /// When the ingest last lost messages (the `ingest-loss` condition holds until
    /// [`INGEST_LOSS_HOLD_MS`] after it).
    ingest_loss_ms: Option<i64>,
    /// Turns components Unknown for longer than `status_policy.down_after_ms` into Down.
    unknown_timer: UnknownTimer,
    /// Components whose breaker-mismatch trouble is active.
    mismatches: BTreeSet<String>,
    /// Agents with refused future samples: when the last one was refused.
    clock_ahead: BTreeMap<String, i64>,
    /// Multi-site follower (`cluster`): samples update the live values and the redundancy
    /// evaluation, but the alarm engine is not run (the leader runs it; its committed state is
    /// restored here instead), so nothing is produced to commit.
    passive: bool,
}

impl Facility {
    pub fn new(site: Option<Site>, incidents: Option<Incidents>) -> Result<Facility, String> {
        let mut engine = Engine::new(rules(), EngineConfig::default())?;
        let mut site_devices = BTreeSet::new();
        if let Some(s) = &site {
            engine.set_device_components(dcim_alarms::device_components(s));
            engine.set_places(dcim_alarms::device_places(s));
            site_devices = s.devices().into_iter().collect();
        }
        Ok(Facility {
            site: site.map(Arc::new),
            live: Live::new(),
            maintenance: BTreeSet::new(),
            states: Vec::new(),
            evaluation: None,
            retired: None,
            engine,
            incidents: incidents.unwrap_or_else(|| Incidents::new(IncidentConfig::default())),
            dirty: true,
            site_devices: Arc::new(site_devices),
            status_policy: StatusPolicy::default(),
            warmup_until_ms: None,
            levels: HashMap::new(),
            fed: HashMap::new(),
            ingest_loss_ms: None,
            unknown_timer: UnknownTimer::new(),
            mismatches: BTreeSet::new(),
            clock_ahead: BTreeMap::new(),
            passive: false,
        })
    }

    /// See the `passive` field: on for a multi-site follower, off for the leader.
    pub fn set_passive(&mut self, passive: bool) {
        self.passive = passive;
    }

    pub fn is_passive(&self) -> bool {
        self.passive
    }

    /// Resumes the alarm engine from a stored snapshot (and the maintenance set the site
    /// evaluation uses), before any input arrives.
    pub fn restore(&mut self, snap: dcim_alarms::Snapshot, now_ms: i64) {
        self.warmup_until_ms = Some(now_ms + RESTORE_WARMUP_MS);
        self.maintenance = snap.maintenance.iter().cloned().collect();
        self.engine.restore(snap);
        if let Some(s) = &self.site {
            // Components follow the current site model, not the stored one.
            self.engine
                .set_device_components(dcim_alarms::device_components(s));
            self.engine.set_places(dcim_alarms::device_places(s));
        }
        self.dirty = true;
    }

    fn finish(&mut self, records: Vec<Record>, now_ms: i64) -> Changes {
        let mut incidents = self.incidents.on_records(&records);
        incidents.extend(self.incidents.tick(now_ms));
        Changes {
            records,
            incidents,
            ..Default::default()
        }
    }

    /// New samples: the live table and the alarm rules on samples.
    pub fn on_samples(&mut self, samples: &[Sample], now_ms: i64) -> Changes {
        let mut records = Vec::new();
        // A device's points arrive one after another: the site model is searched once per run
        // of one device's samples, not once per sample.
        let mut last: Option<(&str, bool)> = None;
        for s in samples {
            let in_site = match last {
                Some((d, known)) if d == s.device => known,
                _ => self.site_devices.contains(&s.device),
            };
            last = Some((&s.device, in_site));
            if in_site {
                self.dirty = true;
                self.live.update(s.clone());
            }
            if !self.passive {
                records.extend(self.engine.on_sample(s, now_ms));
            }
        }
        if records.is_empty() {
            return Changes::default();
        }
        self.finish(records, now_ms)
    }

    /// Multi-site takeover: the alarm rules on every live sample newer than `since_ms` (when
    /// the previous leader last committed), so that what this replica ingested while it was a
    /// follower (and the previous leader may never have seen) is not left unevaluated until
    /// the device reports again. The live table holds the site model's devices; a device
    /// outside the model is evaluated again when it next reports.
    pub fn replay_live_since(&mut self, since_ms: i64, now_ms: i64) -> Changes {
        let samples: Vec<Sample> = self
            .live
            .devices()
            .into_iter()
            .flat_map(|d| self.live.device_samples(d))
            .filter(|s| s.ts_ms > since_ms)
            .cloned()
            .collect();
        let mut records = Vec::new();
        for s in &samples {
            records.extend(self.engine.on_sample(s, now_ms));
        }
        if records.is_empty() {
            return Changes::default();
        }
        self.finish(records, now_ms)
    }

    fn ingest_loss_sample(lost: bool, now_ms: i64) -> Sample {
        Sample {
            device: SERVER_DEVICE.into(),
            point: "ingest_loss".into(),
            role: dcim_points::Role::new(INGEST_LOSS_ROLE).expect("custom role"),
            labels: Default::default(),
            value: Some(dcim_points::Value::Bool(lost)),
            unit: String::new(),
            quality: dcim_points::Quality::Good,
            ts_ms: now_ms,
        }
    }

    /// The ingest lost messages (rumqttd skipped them unread; the caller counts them):
    /// raises `ingest-loss`, which holds until [`INGEST_LOSS_HOLD_MS`] without a new loss.
    pub fn on_ingest_loss(&mut self, now_ms: i64) -> Changes {
        if self.passive {
            // A follower's own loss: counted in its metrics; the leader's engine alarms
            // its own (a follower's alarm would be dropped by the commit anyway).
            return Changes::default();
        }
        self.ingest_loss_ms = Some(now_ms);
        let records = self
            .engine
            .on_sample(&Self::ingest_loss_sample(true, now_ms), now_ms);
        self.finish(records, now_ms)
    }

    /// An edge event: communication loss and return feed the comm-lost rule.
    pub fn on_event(&mut self, kind: &str, device: &str, now_ms: i64) -> Changes {
        if self.passive {
            return Changes::default();
        }
        let records = match kind {
            "device.comm_lost" => self.engine.on_comm(device, true, now_ms),
            "device.comm_restored" | "device.comm_ok" => self.engine.on_comm(device, false, now_ms),
            _ => return Changes::default(),
        };
        self.finish(records, now_ms)
    }

    /// A trouble the server detects itself (see `dcim_alarms::Condition::Trouble`): disk full,
    /// an agent's clock ahead, an agent's new spool epoch.
    pub fn trouble(
        &mut self,
        kind: &str,
        subject: &str,
        active: bool,
        message: &str,
        now_ms: i64,
    ) -> Changes {
        if self.passive {
            // The leader runs the engine; a follower's own disk shows in its /health.
            return Changes::default();
        }
        let records = self
            .engine
            .on_trouble(kind, subject, None, active, message, now_ms);
        self.finish(records, now_ms)
    }

    /// Samples of `agent` stamped too far in the future were refused: its `agent-clock-ahead`
    /// trouble (cleared by [`Facility::tick`] after [`CLOCK_AHEAD_CLEAR_MS`] without refusals).
    pub fn future_samples(
        &mut self,
        agent: &str,
        refused: u64,
        latest_ts_ms: i64,
        now_ms: i64,
    ) -> Changes {
        if self.passive {
            // The leader ingests the same stream and raises it.
            return Changes::default();
        }
        self.clock_ahead.insert(agent.to_owned(), now_ms);
        let ahead_s = (latest_ts_ms - now_ms) / 1000;
        let text = format!(
            "{agent}: {refused} sample(s) stamped up to {ahead_s} s ahead of the server's clock \
             (ts_ms {latest_ts_ms}) refused; check the agent's time synchronisation"
        );
        let records = self
            .engine
            .on_trouble("clock_ahead", agent, None, true, &text, now_ms);
        self.finish(records, now_ms)
    }

    fn evaluate(&mut self, now_ms: i64) {
        if let Some((site, states)) = self.tick_inputs(now_ms) {
            let ev = dcim_site::evaluate(&site, &states);
            self.states = states;
            self.evaluation = Some(Arc::new(ev));
        }
    }

    /// Time passes: re-evaluate the site (states go stale with time, so always), feed the
    /// redundancy levels to the alarm engine, run its timers and the incidents' timers.
    /// The shell runs it in three steps so that the evaluation, the costly part, runs
    /// without the lock: [`Facility::tick_inputs`], `dcim_site::evaluate`,
    /// [`Facility::tick_with`].
    pub fn tick(&mut self, now_ms: i64) -> Changes {
        let evaluated = self.tick_inputs(now_ms).map(|(site, states)| {
            let ev = dcim_site::evaluate(&site, &states);
            (states, ev)
        });
        self.tick_with(now_ms, evaluated)
    }

    /// The first step of a tick (under the lock): the component states from the live values
    /// (one lookup per bound point, then the seed rule: Unknown for longer than
    /// `status_policy.down_after_ms` is Down) and the site to evaluate them on; None without a
    /// site.
    pub fn tick_inputs(&mut self, now_ms: i64) -> Option<(Arc<Site>, Vec<ComponentState>)> {
        let site = self.site.clone()?;
        let mut states = dcim_site::component_states(&site, &self.live, &self.maintenance, now_ms);
        self.unknown_timer
            .apply(&site, &mut states, now_ms, self.status_policy.down_after_ms);
        // Samples that arrive from here on mark it dirty again.
        self.dirty = false;
        Some((site, states))
    }

    /// The last step of a tick (under the lock again): takes the evaluation made outside it
    /// and feeds the alarm engine.
    pub fn tick_with(
        &mut self,
        now_ms: i64,
        evaluated: Option<(Vec<ComponentState>, Evaluation)>,
    ) -> Changes {
        if let Some((states, ev)) = evaluated {
            self.retired = Some(Retired {
                _states: std::mem::replace(&mut self.states, states),
                _evaluation: self.evaluation.replace(Arc::new(ev)),
            });
        }
        if self.passive {
            return self.follower_tick(now_ms);
        }
        let mut records = Vec::new();
        self.clear_timed_troubles(now_ms, &mut records);
        let mut redundancy = Vec::new();
        if let (Some(site), Some(ev)) = (&self.site, &self.evaluation) {
            level_changes(site, ev, &mut self.levels, &mut redundancy, now_ms);
            let warming = warming_subsystems(ev, self.warmup_until_ms, now_ms);
            judge_subsystems(&mut self.engine, ev, &warming, &mut records, now_ms);
            judge_breakers(
                &mut self.engine,
                &mut self.mismatches,
                ev,
                &mut records,
                now_ms,
            );
            // Every rack, after the subsystems (the rack alarms are grouped under theirs).
            judge_racks(
                &mut self.engine,
                &mut self.fed,
                site,
                ev,
                &warming,
                &mut records,
                now_ms,
            );
            let suppression = SiteSuppression::new(site, ev);
            records.extend(self.engine.tick(now_ms, &suppression));
        } else {
            records.extend(self.engine.tick(now_ms, &dcim_alarms::NoSuppression));
        }
        let mut changes = self.finish(records, now_ms);
        changes.redundancy = redundancy;
        changes
    }

    /// What the last tick replaced, to be dropped where it does not hold anything up (the
    /// ticker drops it on a blocking thread after releasing the lock). Left here, it is
    /// dropped by the next tick.
    pub fn take_retired(&mut self) -> Option<Retired> {
        self.retired.take()
    }

    /// A follower's tick: the redundancy levels for its console; the leader runs the engine.
    fn follower_tick(&mut self, now_ms: i64) -> Changes {
        let mut redundancy = Vec::new();
        if let (Some(site), Some(ev)) = (&self.site, &self.evaluation) {
            level_changes(site, ev, &mut self.levels, &mut redundancy, now_ms);
        }
        Changes {
            redundancy,
            ..Default::default()
        }
    }

    /// Clears the troubles that end with time: the ingest loss after `INGEST_LOSS_HOLD_MS`,
    /// the clock troubles of agents quiet for `CLOCK_AHEAD_CLEAR_MS`.
    fn clear_timed_troubles(&mut self, now_ms: i64, records: &mut Vec<Record>) {
        if let Some(t) = self.ingest_loss_ms
            && now_ms - t >= INGEST_LOSS_HOLD_MS
        {
            self.ingest_loss_ms = None;
            records.extend(
                self.engine
                    .on_sample(&Self::ingest_loss_sample(false, now_ms), now_ms),
            );
        }
        let calm: Vec<String> = self
            .clock_ahead
            .iter()
            .filter(|(_, t)| now_ms - **t >= CLOCK_AHEAD_CLEAR_MS)
            .map(|(a, _)| a.clone())
            .collect();
        for agent in calm {
            self.clock_ahead.remove(&agent);
            records.extend(
                self.engine
                    .on_trouble("clock_ahead", &agent, None, false, "", now_ms),
            );
        }
    }

    pub fn act(
        &mut self,
        alarm: &str,
        action: Action,
        user: &str,
        now_ms: i64,
    ) -> Result<Changes, ActionError> {
        let records = self.engine.act(alarm, action, user, now_ms)?;
        Ok(self.finish(records, now_ms))
    }

    pub fn set_maintenance(&mut self, subject: &str, on: bool, user: &str, now_ms: i64) -> Changes {
        if on {
            self.maintenance.insert(subject.to_owned());
        } else {
            self.maintenance.remove(subject);
        }
        self.dirty = true;
        let records = self.engine.set_maintenance(subject, on, user, now_ms);
        self.finish(records, now_ms)
    }

    pub fn maintenance(&self) -> &BTreeSet<String> {
        &self.maintenance
    }

    /// The current evaluation (re-evaluated first if a site device reported since the last
    /// one); shared, so the caller serialises it without the lock.
    pub fn evaluation(&mut self, now_ms: i64) -> Option<Arc<Evaluation>> {
        if self.dirty || self.evaluation.is_none() {
            self.evaluate(now_ms);
        }
        self.evaluation.clone()
    }

    pub fn what_if(
        &mut self,
        failed: &[&str],
        now_ms: i64,
    ) -> Option<Result<WhatIf, UnknownComponent>> {
        let ev = self.evaluation(now_ms)?;
        let site = self.site.as_ref()?;
        Some(dcim_site::what_if(site, &self.states, &ev, failed))
    }

    /// What [`device_statuses`] needs from the facility, cloned so that the statuses are
    /// computed without its lock: the site's devices, the maintenance set and the policy.
    pub fn status_inputs(&self) -> StatusInputs {
        StatusInputs {
            site_devices: self.site_devices.clone(),
            maintenance: self.maintenance.clone(),
            policy: self.status_policy,
        }
    }
}

/// See [`Facility::status_inputs`].
pub struct StatusInputs {
    pub site_devices: Arc<BTreeSet<String>>,
    pub maintenance: BTreeSet<String>,
    pub policy: StatusPolicy,
}

/// A table of latest values the statuses are read from (the ingest's; tests count reads).
pub trait PointTable {
    /// Every device with a point.
    fn devices(&self) -> Box<dyn Iterator<Item = &str> + '_>;
    /// The points of one device.
    fn device_points<'a>(
        &'a self,
        device: &'a str,
    ) -> Box<dyn Iterator<Item = dcim_site::status::PointObs<'a>> + 'a>;
}

impl PointTable for crate::engine::ingest::Ingest {
    fn devices(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(crate::engine::ingest::Ingest::devices(self))
    }
    fn device_points<'a>(
        &'a self,
        device: &'a str,
    ) -> Box<dyn Iterator<Item = dcim_site::status::PointObs<'a>> + 'a> {
        Box::new(crate::engine::ingest::Ingest::device_points(self, device))
    }
}

/// Up/Down/Warning/Maintenance/Unknown of every device of the site and every device seen,
/// from the latest values: each device is looked up once and each point read once.
pub fn device_statuses(
    inputs: &StatusInputs,
    seen: &dyn PointTable,
    now_ms: i64,
) -> BTreeMap<String, dcim_points::Status> {
    let mut devices: BTreeSet<&str> = inputs.site_devices.iter().map(String::as_str).collect();
    devices.extend(seen.devices());
    devices
        .into_iter()
        .map(|d| {
            let o = dcim_site::status::observe_points(
                seen.device_points(d),
                inputs.maintenance.contains(d),
            );
            (d.to_owned(), dcim_site::status(&o, now_ms, &inputs.policy))
        })
        .collect()
}

/// Just restored: in a subsystem whose components have not all reported yet, no data is not a
/// change of redundancy (for the subsystem's alarm and its racks' alarms).
fn warming_subsystems(
    ev: &Evaluation,
    warmup_until_ms: Option<i64>,
    now_ms: i64,
) -> BTreeSet<&str> {
    ev.subsystems
        .iter()
        .filter(|sub| !sub.unknown.is_empty() && warmup_until_ms.is_some_and(|t| now_ms < t))
        .map(|sub| sub.subsystem.as_str())
        .collect()
}

/// The redundancy alarm follows what is known: Unknown components count as up until they have
/// been Unknown for `down_after_ms` (then they are Down). What is not proven raises its own
/// alarm, `redundancy-unverified`.
fn judge_subsystems(
    engine: &mut Engine,
    ev: &Evaluation,
    warming: &BTreeSet<&str>,
    records: &mut Vec<Record>,
    now_ms: i64,
) {
    for sub in &ev.subsystems {
        if warming.contains(sub.subsystem.as_str()) {
            continue;
        }
        let detail = if sub.lost.is_empty() && sub.degraded.is_empty() {
            String::new()
        } else {
            format!(
                "{} lost, {} degraded; down: {}; single points of failure: {}",
                sub.lost.len(),
                sub.degraded.len(),
                list(&sub.down, 12),
                list(&sub.single_points_of_failure, 12)
            )
        };
        records.extend(engine.on_redundancy(
            sub.subsystem.as_str(),
            sub.designed,
            sub.if_unknown_up,
            &detail,
            now_ms,
        ));
        let unverified = format!(
            "designed {}, {}; unknown: {}; {} of {} consumers unverified",
            sub.designed,
            sub.summary,
            list(&sub.unverified, 12),
            sub.unverified_consumers.len(),
            sub.consumers
        );
        records.extend(engine.on_unverified(
            sub.subsystem.as_str(),
            !sub.verified,
            &unverified,
            now_ms,
        ));
    }
}

/// Breaker position against measurement, per component: raises each mismatch, clears those
/// gone since the last tick.
fn judge_breakers(
    engine: &mut Engine,
    last: &mut BTreeSet<String>,
    ev: &Evaluation,
    records: &mut Vec<Record>,
    now_ms: i64,
) {
    let mut mismatches = BTreeSet::new();
    for h in &ev.components {
        if let Some(m) = &h.mismatch {
            mismatches.insert(h.id.clone());
            records.extend(engine.on_trouble(
                "breaker_mismatch",
                &h.id,
                Some(&h.id),
                true,
                &format!("{}: {m}", h.id),
                now_ms,
            ));
        }
    }
    for gone in last.difference(&mismatches) {
        records.extend(engine.on_trouble("breaker_mismatch", gone, Some(gone), false, "", now_ms));
    }
    *last = mismatches;
}

/// Every rack's redundancy per supplying subsystem (outside warming ones), fed to the engine
/// when it is below design or changed since the level last fed (`fed`).
fn judge_racks(
    engine: &mut Engine,
    fed: &mut HashMap<String, HashMap<String, Redundancy>>,
    site: &Site,
    ev: &Evaluation,
    warming: &BTreeSet<&str>,
    records: &mut Vec<Record>,
    now_ms: i64,
) {
    for (c, h) in site.components.iter().zip(&ev.components) {
        if c.kind != dcim_site::Kind::Rack {
            continue;
        }
        for sup in &h.supply {
            if warming.contains(sup.subsystem.as_str()) {
                continue;
            }
            let racks = match fed.get_mut(sup.subsystem.as_str()) {
                Some(r) => r,
                None => fed.entry(sup.subsystem.as_str().to_owned()).or_default(),
            };
            let before = match racks.get_mut(c.id.as_str()) {
                Some(l) => Some(std::mem::replace(l, sup.if_unknown_up)),
                None => racks.insert(c.id.clone(), sup.if_unknown_up),
            };
            if sup.if_unknown_up >= sup.designed && before == Some(sup.if_unknown_up) {
                continue;
            }
            let detail = if sup.if_unknown_up < sup.designed {
                format!(
                    "{} of {} paths live; single points of failure: {}",
                    sup.live_paths_if_unknown_up,
                    sup.designed_paths,
                    sup.single_points_of_failure.join(", ")
                )
            } else {
                String::new()
            };
            records.extend(engine.on_rack_redundancy(
                sup.subsystem.as_str(),
                &c.id,
                sup.designed,
                sup.if_unknown_up,
                &detail,
                now_ms,
            ));
        }
    }
}

/// At most `n` ids, then how many more.
fn list(ids: &[String], n: usize) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    let mut s = ids.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if ids.len() > n {
        s.push_str(&format!(" and {} more", ids.len() - n));
    }
    s
}

/// The redundancy levels of one tick, by subsystem and rack (see `Facility::levels`).
type Levels = HashMap<String, HashMap<String, (Redundancy, Redundancy, bool)>>;

/// The redundancy level changes since the last evaluation (the live `redundancy` event), with
/// `levels` updated: every subsystem's, then every rack's.
fn level_changes(
    site: &Site,
    ev: &Evaluation,
    levels: &mut Levels,
    out: &mut Vec<RedundancyChange>,
    now_ms: i64,
) {
    let mut level = |subsystem: &str, rack: &str, designed, current, if_up, verified| {
        let racks = match levels.get_mut(subsystem) {
            Some(r) => r,
            None => levels.entry(subsystem.to_owned()).or_default(),
        };
        let now = (current, if_up, verified);
        let before = match racks.get_mut(rack) {
            Some(l) => Some(std::mem::replace(l, now)),
            None => racks.insert(rack.to_owned(), now),
        };
        match before {
            Some(before) if before != now => out.push(RedundancyChange {
                subsystem: subsystem.to_owned(),
                rack: (!rack.is_empty()).then(|| rack.to_owned()),
                designed,
                before: before.0,
                current,
                if_unknown_up: if_up,
                verified,
                ts_ms: now_ms,
            }),
            _ => {}
        }
    };
    for sub in &ev.subsystems {
        level(
            sub.subsystem.as_str(),
            "",
            sub.designed,
            sub.current,
            sub.if_unknown_up,
            sub.verified,
        );
    }
    for (c, h) in site.components.iter().zip(&ev.components) {
        if c.kind == dcim_site::Kind::Rack {
            for sup in &h.supply {
                level(
                    sup.subsystem.as_str(),
                    &c.id,
                    sup.designed,
                    sup.current,
                    sup.if_unknown_up,
                    sup.verified,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_site_loses_power_redundancy_when_a_feed_opens() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../site/sites/demo.toml");
        let Ok(site) = Site::load(std::path::Path::new(path)) else {
            panic!("demo site at {path} does not load");
        };
        let now = 1_700_000_000_000;
        let samples = dcim_site::fixture::healthy_samples(&site, now);
        let mut f = Facility::new(Some(site), None).unwrap();
        f.on_samples(&samples, now);
        let c = f.tick(now);
        assert!(
            !c.records.iter().any(|r| r.alarm.starts_with("redundancy")),
            "a healthy site raises no redundancy alarm: {:?}",
            c.records
        );
        // Open feed A's breaker.
        let mut open: Vec<Sample> = samples
            .iter()
            .filter(|s| s.device == "meter-a" && s.role.as_str() == "feed.breaker_closed")
            .cloned()
            .collect();
        assert!(
            !open.is_empty(),
            "demo site binds meter-a feed.breaker_closed"
        );
        for s in &mut open {
            s.value = Some(dcim_points::Value::Bool(false));
            s.ts_ms = now + 1000;
        }
        f.on_samples(&open, now + 1000);
        let c = f.tick(now + 1000);
        let red: Vec<&Record> = c
            .records
            .iter()
            .filter(|r| r.alarm.contains("power"))
            .collect();
        assert!(
            !red.is_empty(),
            "feed loss raises a power redundancy alarm: {:?}",
            c.records
        );
        assert!(
            red.iter().all(|r| r.grade == 2),
            "losing 2N is grade 2: {red:?}"
        );
        assert!(!c.incidents.is_empty(), "a grade-2 alarm opens an incident");
        // One annunciated alarm: the racks' own alarms are grouped under it.
        let activated: Vec<&str> = c
            .records
            .iter()
            .filter(|r| r.event == dcim_alarms::Event::Activated)
            .map(|r| r.alarm.as_str())
            .collect();
        assert_eq!(activated, ["redundancy:power"]);
        let racks: Vec<&dcim_alarms::Alarm> = f
            .engine
            .active()
            .filter(|a| a.subject.starts_with("power/"))
            .collect();
        assert!(racks.len() >= 100, "per-rack alarms: {}", racks.len());
        assert!(
            racks
                .iter()
                .all(|a| f.engine.is_grouped_out(a) && a.grade == 2)
        );
        // The level changes for the live stream: the subsystem and every rack, 2N -> N.
        let power: Vec<&RedundancyChange> = c
            .redundancy
            .iter()
            .filter(|r| r.subsystem == "power")
            .collect();
        assert!(power.iter().any(|r| r.rack.is_none()));
        assert_eq!(
            power.iter().filter(|r| r.rack.is_some()).count(),
            racks.len()
        );
        assert!(
            power
                .iter()
                .all(|r| (r.before, r.current) == (Redundancy::TwoN, Redundancy::N))
        );
        assert!(
            f.tick(now + 2000).redundancy.is_empty(),
            "no change, no event"
        );
    }

    #[test]
    fn lost_ingest_raises_an_alarm_that_stays_until_acknowledged() {
        // Hazard: telemetry dropped inside the server without anyone being told.
        let now = 1_800_000_000_000;
        let mut f = Facility::new(None, None).unwrap();
        let c = f.on_ingest_loss(now);
        let id = format!("ingest-loss:{SERVER_DEVICE}");
        assert!(
            c.records
                .iter()
                .any(|r| r.alarm == id && r.event == dcim_alarms::Event::Activated),
            "{:?}",
            c.records
        );
        assert_eq!(f.engine.get(&id).unwrap().grade, 2);
        // Still lost 59 s later; returned to normal after a minute without a new loss, and
        // still waiting for an acknowledgement.
        f.tick(now + INGEST_LOSS_HOLD_MS - 1_000);
        assert!(f.engine.active().any(|a| a.id == id));
        f.tick(now + INGEST_LOSS_HOLD_MS);
        let a = f.engine.get(&id).unwrap();
        assert_eq!(a.state(), dcim_alarms::AlarmState::RtnUnacknowledged);
    }

    #[test]
    fn the_site_table_takes_exactly_the_site_devices_samples_in_any_order() {
        // Hazard: the per-run device check carrying one device's answer over to the next, so a
        // site rack's readings are dropped from the state rules (its redundancy judged on old
        // data) or a foreign device's enter them.
        let mut f = Facility::new(None, None).unwrap();
        f.site_devices = Arc::new(["rack-1".to_string(), "rack-3".to_string()].into());
        let s = |device: &str, point: &str| Sample {
            device: device.into(),
            point: point.into(),
            role: dcim_points::Role::new("rack.temp").unwrap(),
            labels: Default::default(),
            value: Some(dcim_points::Value::Number(21.0)),
            unit: "degC".into(),
            quality: dcim_points::Quality::Good,
            ts_ms: 5,
        };
        let batch = [
            s("rack-1", "a"),
            s("rack-1", "b"),
            s("ups-9", "a"),
            s("rack-3", "a"),
            s("rack-3", "b"),
            s("rack-1", "c"),
            s("rack-10", "a"),
            s("rack-10", "b"),
        ];
        f.on_samples(&batch, 10);
        assert_eq!(f.live.device_samples("rack-1").count(), 3);
        assert_eq!(f.live.device_samples("rack-3").count(), 2);
        assert_eq!(f.live.len(), 5, "ups-9 and rack-10 are not site devices");
    }

    #[test]
    fn device_statuses_read_each_device_and_point_once() {
        // Hazard: /api/status grew with the square of the site (4.7 s at 10,000 racks) while
        // holding the facility lock, so every alarm waited for the console's poll.
        use crate::engine::ingest::Ingest;
        use dcim_points::{Quality, Role, Status, Value};
        let now = 1_800_000_000_000;
        let table = |devices: usize| {
            let mut ing = Ingest::new(&[]);
            for (seq, chunk) in (0..devices).collect::<Vec<_>>().chunks(500).enumerate() {
                let mut samples = Vec::new();
                for &d in chunk {
                    for p in 0..5 {
                        let (role, value) = if p == 0 {
                            ("device.online", Value::Bool(d != 0))
                        } else {
                            ("rack.temp", Value::Number(20.0))
                        };
                        samples.push(Sample {
                            device: format!("dev-{d:05}"),
                            point: format!("p{p}"),
                            role: Role::new(role).unwrap(),
                            labels: Default::default(),
                            value: Some(value),
                            unit: String::new(),
                            quality: if d == 1 && p == 3 {
                                Quality::Bad
                            } else {
                                Quality::Good
                            },
                            ts_ms: now,
                        });
                    }
                }
                let payload = dcim_wire::encode(&dcim_wire::TelemetryBatch {
                    v: dcim_wire::VERSION,
                    agent: "a".into(),
                    epoch: String::new(),
                    seq: seq as u64 + 1,
                    samples,
                });
                ing.handle("dcim/v1/s/a/telemetry", &payload, None, now);
            }
            ing
        };
        /// Counts what the statuses read.
        struct Counted<'t>(&'t Ingest, std::cell::Cell<(usize, usize)>);
        impl PointTable for Counted<'_> {
            fn devices(&self) -> Box<dyn Iterator<Item = &str> + '_> {
                PointTable::devices(self.0)
            }
            fn device_points<'a>(
                &'a self,
                device: &'a str,
            ) -> Box<dyn Iterator<Item = dcim_site::status::PointObs<'a>> + 'a> {
                let (d, p) = self.1.get();
                self.1.set((d + 1, p));
                Box::new(PointTable::device_points(self.0, device).inspect(|_| {
                    let (d, p) = self.1.get();
                    self.1.set((d, p + 1));
                }))
            }
        }
        let mut site = Facility::new(None, None).unwrap();
        site.site_devices = Arc::new(["never-seen".to_string()].into());
        let inputs = site.status_inputs();
        for devices in [1_000, 8_000] {
            let ing = table(devices);
            let counted = Counted(&ing, Default::default());
            let st = device_statuses(&inputs, &counted, now);
            assert_eq!(st.len(), devices + 1);
            assert_eq!(st["dev-00000"], Status::Down, "device.online false");
            assert_eq!(st["dev-00001"], Status::Warning, "a bad point");
            assert_eq!(st["dev-00002"], Status::Up);
            assert_eq!(
                st["never-seen"],
                Status::Unknown,
                "a site device without data"
            );
            // Linear: one lookup per device, each point read once.
            assert_eq!(counted.1.get(), (devices + 1, devices * 5));
        }
    }

    fn demo_site() -> Site {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../site/sites/demo.toml");
        Site::load(std::path::Path::new(path)).expect("demo site loads")
    }

    fn active(f: &Facility, id: &str) -> Option<dcim_alarms::Alarm> {
        f.engine.get(id).filter(|a| a.active).cloned()
    }

    #[test]
    fn a_site_that_never_reported_raises_unverified_alarms_not_green() {
        // Hazard: a fresh site with nothing reporting reads 2N / N+1 / 2N and stays quiet.
        let now = 1_700_000_000_000;
        let mut f = Facility::new(Some(demo_site()), None).unwrap();
        let c = f.tick(now);
        assert!(c.records.is_empty(), "{:?}", c.records);
        let ev = f.evaluation(now).unwrap();
        for s in &ev.subsystems {
            assert_eq!(s.current, Redundancy::BelowN);
            assert!(!s.verified);
        }
        // A minute without proof: one unverified alarm per subsystem, grade 2; the known
        // levels are still at design, so no redundancy alarm yet.
        let c = f.tick(now + 60_000);
        let mut act: Vec<&str> = c
            .records
            .iter()
            .filter(|r| r.event == dcim_alarms::Event::Activated)
            .map(|r| r.alarm.as_str())
            .collect();
        act.sort();
        assert_eq!(
            act,
            [
                "redundancy-unverified:cooling",
                "redundancy-unverified:network",
                "redundancy-unverified:power"
            ]
        );
        let a = active(&f, "redundancy-unverified:power").unwrap();
        assert_eq!(a.grade, 2);
        assert!(
            a.message.contains("unverified: below N proven, 2N if the"),
            "{}",
            a.message
        );
        // Unknown for longer than down_after: Down, and the redundancy alarm is grade 1.
        let down_after = f.status_policy.down_after_ms;
        let c = f.tick(now + down_after);
        let red = c
            .records
            .iter()
            .find(|r| r.alarm == "redundancy:power" && r.event == dcim_alarms::Event::Activated)
            .expect("power redundancy alarm once everything is Down");
        assert_eq!(red.grade, 1);
        assert!(
            active(&f, "redundancy-unverified:power").is_none(),
            "known now: below N"
        );
    }

    /// The power subsystem's evaluation at `t`.
    fn power_health(f: &mut Facility, t: i64) -> dcim_site::SubsystemHealth {
        f.evaluation(t)
            .unwrap()
            .subsystem(dcim_site::Subsystem::Power)
            .unwrap()
            .clone()
    }

    #[test]
    fn the_whole_power_plant_going_silent_is_unverified_then_down_with_an_alarm() {
        let now = 1_700_000_000_000;
        let site = demo_site();
        let power: BTreeSet<String> = site
            .components
            .iter()
            .filter(|c| c.kind.subsystem() == Some(dcim_site::Subsystem::Power))
            .flat_map(|c| c.bindings.iter().map(|b| b.device.clone()))
            .collect();
        let samples = dcim_site::fixture::healthy_samples(&site, now);
        let mut f = Facility::new(Some(site), None).unwrap();
        f.status_policy.down_after_ms = 30_000;
        f.on_samples(&samples, now);
        assert!(f.tick(now).records.is_empty());
        // Every power device reports comm-lost (its agent's verdict); the rest stays fresh.
        let mut t;
        let step = |f: &mut Facility, t: i64| {
            let batch: Vec<Sample> =
                dcim_site::fixture::healthy_samples(f.site.as_ref().unwrap(), t)
                    .into_iter()
                    .map(|mut s| {
                        if power.contains(&s.device) {
                            s.quality = dcim_points::Quality::CommLost;
                        }
                        s
                    })
                    .collect();
            f.on_samples(&batch, t);
            f.tick(t)
        };
        t = now + 5_000;
        let c = step(&mut f, t);
        let p = power_health(&mut f, t);
        assert_eq!(
            (p.current, p.if_unknown_up, p.verified),
            (Redundancy::BelowN, Redundancy::TwoN, false)
        );
        assert!(
            c.redundancy
                .iter()
                .any(|r| r.subsystem == "power" && r.rack.is_none() && !r.verified)
        );
        for _ in 0..6 {
            t += 5_000;
            step(&mut f, t);
        }
        let p = power_health(&mut f, t);
        assert_eq!(p.if_unknown_up, Redundancy::BelowN, "{p:?}");
        let a = active(&f, "redundancy:power").expect("alarm raised");
        assert_eq!(a.grade, 1);
        assert!(active(&f, "redundancy:cooling").is_none());
    }

    #[test]
    fn a_feed_lost_with_its_breaker_closed_raises_a_breaker_mismatch_trouble() {
        let now = 1_700_000_000_000;
        let site = demo_site();
        let samples = dcim_site::fixture::healthy_samples(&site, now);
        let mut f = Facility::new(Some(site), None).unwrap();
        f.on_samples(&samples, now);
        f.tick(now);
        let lost: Vec<Sample> = samples
            .iter()
            .filter(|s| s.device == "meter-a" && s.role.as_str() != "feed.breaker_closed")
            .map(|s| {
                let mut s = s.clone();
                s.value = Some(dcim_points::Value::Number(0.0));
                s.ts_ms = now + 1_000;
                s
            })
            .collect();
        f.on_samples(&lost, now + 1_000);
        f.tick(now + 1_000);
        f.tick(now + 6_000);
        let a = active(&f, "breaker-mismatch:feed-a").expect("trouble after its on-delay");
        assert_eq!(a.grade, 3);
        assert_eq!(a.component.as_deref(), Some("feed-a"));
        assert!(
            a.message
                .contains("reports closed but feed.voltage measures 0 V"),
            "{}",
            a.message
        );
        let site = f.site.clone().unwrap();
        let ev = f.evaluation(now + 6_000).unwrap();
        assert_eq!(
            ev.component(&site, "feed-a").unwrap().energised,
            Some(false)
        );
    }
}
