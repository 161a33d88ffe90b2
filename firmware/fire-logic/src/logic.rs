//! The rack fire state machine.
//!
//! Every rule here is written for a fire that damages its own evidence: a sensor lost while
//! hot counts as still hot, the stage timers run without valid temperatures, in doubt the
//! hotter reading wins, corroboration only comes from an independent source, and every room
//! gas release follows the full pre-discharge warning.

use crate::config::{Config, ConfigError};
use crate::events::{Cause, Corroborator, EventKind, EventLog, NotFallen, Refused, ResetRefusal};
use crate::latch::{CHECKPOINT_MS, GasState, LatchRecord, RESTORE_CREDIT_MS};
use crate::source::{Invalidity, Source};
use crate::types::{
    Action, Actions, DeciC, Digital, Inputs, Outputs, SourceId, SourceSet, Stage, Supervisory,
    SupervisoryFlags, Trouble, Troubles,
};

/// The most a single control cycle adds to the pre-discharge warning: a clock that jumps
/// forward, or a controller that stalls, never shortens the warning people hear.
pub const MAX_WARNING_STEP_MS: u64 = 1_000;

/// The whole vocabulary of network commands. Reset, abort, silencing a stage, closing a
/// contactor, inhibiting a release or changing a threshold are deliberately not representable,
/// and none of these commands changes what the logic actuates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkCommand {
    /// Acknowledge: silence the local buzzer until the next new event.
    Acknowledge,
    /// Time sync: the wall-clock time (unix ms) at this `now_ms`, used to date events upstream.
    TimeSync {
        /// Unix time in milliseconds.
        unix_ms: i64,
    },
    /// Test mode on or off. Refused while any stage is active; a real detection ends it.
    /// Test mode never changes what the logic actuates; it is reported so that upstream
    /// messages are marked as tests.
    TestMode {
        /// On or off.
        on: bool,
    },
    /// Inhibit the *trouble report* of one faulted sensor for a bounded time (the
    /// `sensor_inhibited` trouble replaces it). Accepted only while the sensor is invalid for
    /// its own reasons (fault, open, short, out of range, stale); ends at once when the sensor
    /// gives a valid reading again. It never changes whether the sensor counts, so it never
    /// applies to a hot or rising reading and never changes a stage or an action.
    InhibitSensor {
        /// The sensor.
        sensor: SourceId,
        /// Duration, 1 ms ..= `inhibit_max_ms`.
        duration_ms: u32,
    },
}

/// Internal room-gas state (adds the warning's sounding time to [`GasState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gas {
    Idle,
    Warning { elapsed: u64 },
    Held,
    ManualOnly,
    Released,
}

impl Gas {
    fn state(self) -> GasState {
        match self {
            Gas::Idle => GasState::Idle,
            Gas::Warning { .. } => GasState::Warning,
            Gas::Held => GasState::Held,
            Gas::ManualOnly => GasState::ManualOnly,
            Gas::Released => GasState::Released,
        }
    }
}

// Switch indices.
const SW_RESET: usize = 0;
const SW_HOLD: usize = 1;
const SW_MANUAL: usize = 2;
const SW_MANUAL_ONLY: usize = 3;
const SW_AUTHORITY: usize = 4;
const SW_ROOM_GAS: usize = 5;
const SWITCHES: usize = 6;
/// The momentary switches: acting on an edge, and only once seen off since start.
const MOMENTARY: [usize; 3] = [SW_RESET, SW_MANUAL, SW_ROOM_GAS];

/// Rate-of-rise state of one source.
#[derive(Debug, Clone, Copy, Default)]
struct Ror {
    reference: Option<(u64, i32)>,
    active: bool,
    rise: i32,
}

impl Ror {
    /// Compares `v` with the value one window earlier; evaluated once per window, the signal
    /// holds until the next evaluation. A source that drops out starts again from scratch, so
    /// a returning sensor never fakes a rise.
    fn update(&mut self, now: u64, v: Option<i32>, window_ms: u32, rise: i32) {
        match (self.reference, v) {
            (_, None) => *self = Ror::default(),
            (None, Some(v)) => self.reference = Some((now, v)),
            (Some((t, r)), Some(v)) => {
                if now.saturating_sub(t) >= u64::from(window_ms) {
                    self.rise = v.saturating_sub(r);
                    self.active = self.rise >= rise;
                    self.reference = Some((now, v));
                }
            }
        }
    }
}

/// What the sources say this cycle (confirmed values of valid sources only).
#[derive(Debug, Clone, Copy, Default)]
struct Evidence {
    temps: [Option<DeciC>; 4],
    smoke: bool,
    offgas: Option<i32>,
    any_valid_temperature: bool,
    any_pending_temperature: bool,
    /// Every temperature source lost (see [`RackLogic::evidence`]).
    lost: bool,
}

impl Evidence {
    /// The governing temperature: the highest confirmed valid reading.
    fn top(&self) -> Option<(SourceId, DeciC)> {
        let mut top: Option<(SourceId, DeciC)> = None;
        for (id, v) in SourceId::TEMPERATURES.into_iter().zip(self.temps) {
            if let Some(v) = v
                && top.is_none_or(|(_, t)| v > t)
            {
                top = Some((id, v));
            }
        }
        top
    }

    fn temp(&self, id: SourceId) -> Option<DeciC> {
        self.temps.get(id.index()).copied().flatten()
    }

    fn lost(&self) -> bool {
        self.lost
    }
}

fn add(t: u64, dt: u64) -> u64 {
    t.saturating_add(dt)
}

/// A timer for the latch record: whole checkpoints, rounded down, saturated at `limit`.
fn checkpoint(t: u64, limit: u32) -> u32 {
    let t = u32::try_from(t.min(u64::from(limit))).unwrap_or(limit);
    t.saturating_sub(t % CHECKPOINT_MS)
}

fn credit(t: u32) -> u64 {
    u64::from(t).saturating_add(u64::from(RESTORE_CREDIT_MS))
}

/// The fire logic of one rack. Create with [`RackLogic::new`] (or [`RackLogic::restore`] after
/// a controller restart) and call [`RackLogic::step`] once per control cycle.
#[derive(Debug, Clone)]
pub struct RackLogic {
    cfg: Config,
    started: bool,
    last_now: u64,
    sources: [Source; 6],
    reported_invalid: [Option<Invalidity>; 6],
    stage: Stage,
    /// Time spent in the current stage (counts in stages 3 and 4).
    stage_timer: u64,
    agent_released: bool,
    agent_inhibit_logged: bool,
    gas: Gas,
    /// A person operated the room gas release: manual-only mode no longer holds the gas.
    gas_manual: bool,
    isolated: bool,
    /// Peak of each temperature source since the current stage (2, 3 or 4) began.
    peaks: [Option<DeciC>; 4],
    /// Last confirmed value of each temperature source (kept when it is lost).
    last_known: [Option<DeciC>; 4],
    /// Temperature sources lost while at or above stage 1 in the current stage window.
    lost_hot: SourceSet,
    ror: [Ror; 4],
    ror_active: bool,
    ror_last_rise: DeciC,
    offgas_ror: Ror,
    /// Off-gas at or above the supervisory level for this long.
    offgas_timer: Option<u64>,
    /// Every temperature source lost for this long.
    loss_timer: Option<u64>,
    switch_level: [bool; SWITCHES],
    /// A momentary switch seen off (or faulted) since start: only then is On a press.
    switch_armed: [bool; SWITCHES],
    switch_fault: [bool; SWITCHES],
    /// The reset key held since this time after a reset refused only for invalid sources.
    reset_hold_since: Option<u64>,
    feedback_level: [Option<bool>; 6],
    feedback_fault: [bool; 6],
    mismatch_since: [Option<u64>; 6],
    silenced: bool,
    test_until: Option<u64>,
    inhibit: Option<(SourceId, u64)>,
    wall_offset_ms: Option<i64>,
    config_changed: bool,
    dropped_seen: u32,
    log: EventLog,
    out: Outputs,
}

impl RackLogic {
    /// A logic in the normal state. Fails if the configuration is invalid.
    pub fn new(config: Config) -> Result<RackLogic, ConfigError> {
        config.validate()?;
        let fitted = config.fitted;
        let src = |id: SourceId| Source::new(id, fitted.source(id.index()), 0);
        Ok(RackLogic {
            cfg: config,
            started: false,
            last_now: 0,
            sources: SourceId::ALL.map(src),
            reported_invalid: [None; 6],
            stage: Stage::Normal,
            stage_timer: 0,
            agent_released: false,
            agent_inhibit_logged: false,
            gas: Gas::Idle,
            gas_manual: false,
            isolated: false,
            peaks: [None; 4],
            last_known: [None; 4],
            lost_hot: SourceSet::NONE,
            ror: [Ror::default(); 4],
            ror_active: false,
            ror_last_rise: 0,
            offgas_ror: Ror::default(),
            offgas_timer: None,
            loss_timer: None,
            switch_level: [false; SWITCHES],
            switch_armed: [false; SWITCHES],
            switch_fault: [false; SWITCHES],
            reset_hold_since: None,
            feedback_level: [None; 6],
            feedback_fault: [false; 6],
            mismatch_since: [None; 6],
            silenced: false,
            test_until: None,
            inhibit: None,
            wall_offset_ms: None,
            config_changed: false,
            dropped_seen: 0,
            log: EventLog::new(0),
            out: Outputs::default(),
        })
    }

    /// Rebuilds the logic after a controller restart from the last persisted [`LatchRecord`]:
    /// the latched stage and latched outputs come back at once. Sensor histories are not
    /// persisted (they need fresh samples; a source that does not come back counts as lost at
    /// its persisted peak). The stage, off-gas and loss timers resume from the record plus
    /// [`RESTORE_CREDIT_MS`], so a reboot loop cannot hold coolant, gas or isolation back;
    /// the pre-discharge warning resumes from the time it has already sounded (never less).
    /// A momentary switch held through the restart is not a press until it is seen released.
    /// A record written under another configuration is restored all the same (losing the
    /// latched stage would be worse) and raises the `config_changed` trouble until a reset.
    pub fn restore(
        config: Config,
        record: &LatchRecord,
        now_ms: u64,
    ) -> Result<RackLogic, ConfigError> {
        let mut l = RackLogic::new(config)?;
        l.started = true;
        l.last_now = now_ms;
        for s in l.sources.iter_mut() {
            s.start(now_ms);
        }
        l.stage = record.stage;
        l.stage_timer = if matches!(record.stage, Stage::Stage3 | Stage::Stage4) {
            credit(record.stage_timer_ms)
        } else {
            0
        };
        l.agent_released = record.agent_released;
        l.agent_inhibit_logged = record.stage >= Stage::Stage3 && !record.agent_released;
        l.gas = match record.gas {
            GasState::Idle => Gas::Idle,
            GasState::Warning => Gas::Warning {
                elapsed: u64::from(record.gas_warning_ms),
            },
            GasState::Held => Gas::Held,
            GasState::ManualOnly => Gas::ManualOnly,
            GasState::Released => Gas::Released,
        };
        l.gas_manual = record.gas_requested_manually;
        l.isolated = record.isolated;
        l.silenced = record.buzzer_silenced;
        if matches!(record.stage, Stage::Stage2 | Stage::Stage3 | Stage::Stage4) {
            l.peaks = record.peaks;
            l.last_known = record.peaks;
            l.lost_hot = record.lost_while_hot;
        }
        l.offgas_timer = record.offgas_timer_ms.map(credit);
        l.loss_timer = record.loss_timer_ms.map(credit);
        l.config_changed = record.config_fingerprint != config.fingerprint();
        l.log = EventLog::new(record.next_event_seq);
        l.log.push(
            now_ms,
            EventKind::Restored {
                stage: record.stage,
            },
        );
        l.out.stage = l.stage;
        l.out.actions = l.actions();
        Ok(l)
    }

    /// The persistence snapshot. Write it to non-volatile memory whenever it differs from the
    /// last one written (timers change once a second while running, peaks once a degree; see
    /// [`crate::latch`]).
    pub fn latch_record(&self) -> LatchRecord {
        let c = &self.cfg;
        let stage_timer_ms = match self.stage {
            Stage::Stage3 => checkpoint(self.stage_timer, c.coolant_after_ms),
            Stage::Stage4 => checkpoint(self.stage_timer, c.gas_after_ms),
            _ => 0,
        };
        let gas_warning_ms = match self.gas {
            Gas::Warning { elapsed } => checkpoint(elapsed, c.gas_warning_ms),
            _ => 0,
        };
        let peaks = if matches!(self.stage, Stage::Stage2 | Stage::Stage3 | Stage::Stage4) {
            self.peaks
        } else {
            [None; 4]
        };
        LatchRecord {
            stage: self.stage,
            actions: self.out.actions,
            agent_released: self.agent_released,
            gas: self.gas.state(),
            gas_requested_manually: self.gas_manual,
            isolated: self.isolated,
            buzzer_silenced: self.silenced,
            stage_timer_ms,
            gas_warning_ms,
            offgas_timer_ms: self
                .offgas_timer
                .map(|t| checkpoint(t, c.offgas_sustained_ms)),
            loss_timer_ms: self.loss_timer.map(|t| checkpoint(t, c.isolate_after_ms)),
            lost_while_hot: if matches!(self.stage, Stage::Stage2 | Stage::Stage3 | Stage::Stage4) {
                self.lost_hot
            } else {
                SourceSet::NONE
            },
            peaks,
            next_event_seq: self.log.next_seq(),
            config_fingerprint: self.cfg.fingerprint(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The latched stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The outputs of the last cycle.
    pub fn outputs(&self) -> Outputs {
        self.out
    }

    /// The event log.
    pub fn events(&self) -> &EventLog {
        &self.log
    }

    /// Removes and returns the oldest logged event (for the uplink or the display).
    pub fn take_event(&mut self) -> Option<crate::events::Event> {
        self.log.pop()
    }

    /// Why a source is invalid now, as reported (`None` if valid or not fitted; `Inhibited`
    /// while an invalid source's trouble is under a network inhibit).
    pub fn source_invalidity(&self, id: SourceId) -> Option<Invalidity> {
        let why = self.source(id).and_then(Source::invalidity)?;
        if self.inhibit.is_some_and(|(x, _)| x == id) {
            Some(Invalidity::Inhibited)
        } else {
            Some(why)
        }
    }

    /// True while something is latched that only an accepted local reset clears (a stage, the
    /// isolation, a released agent, a room gas sequence).
    pub fn is_latched(&self) -> bool {
        self.latched()
    }

    /// Why a local reset would be refused now (`None`: it would be accepted), judged as the
    /// reset key is: every fitted source valid and below its reset level, on the raw samples.
    /// For a board that latches something of its own until a local reset (the rack
    /// controller's reset-loop lockout), so that it clears on exactly the logic's conditions.
    pub fn reset_refusal_now(&self) -> Option<ResetRefusal> {
        self.reset_refusal(false)
    }

    /// Wall-clock time (unix ms) at logic time `now_ms`, once a time sync was received.
    pub fn wall_clock_ms(&self, now_ms: u64) -> Option<i64> {
        let now = i64::try_from(now_ms).ok()?;
        self.wall_offset_ms.map(|o| o.saturating_add(now))
    }

    /// True while test mode is active.
    pub fn test_mode(&self) -> bool {
        self.test_until.is_some()
    }

    fn source(&self, id: SourceId) -> Option<&Source> {
        self.sources.get(id.index())
    }

    fn log(&mut self, now: u64, kind: EventKind) {
        self.log.push(now, kind);
    }

    /// Applies one sample of a level switch; returns its level. `fault_level` is what a
    /// faulted line counts as.
    fn level_switch(&mut self, i: usize, d: Digital, fault_level: bool) -> bool {
        let prev = self.switch_level.get(i).copied().unwrap_or(false);
        let (level, fault) = match d {
            Digital::NoSample => (prev, self.switch_fault.get(i).copied().unwrap_or(false)),
            Digital::Off => (false, false),
            Digital::On => (true, false),
            Digital::Fault => (fault_level, true),
        };
        if let Some(l) = self.switch_level.get_mut(i) {
            *l = level;
        }
        if let Some(f) = self.switch_fault.get_mut(i) {
            *f = fault;
        }
        level
    }

    /// Applies one sample of a momentary switch; returns (level, press). A press is an
    /// Off -> On edge of a switch seen off since start: a switch already on when the logic
    /// starts (or restarts) is not a press, and stays a `switch_fault` until released.
    fn momentary_switch(&mut self, i: usize, d: Digital) -> (bool, bool) {
        let prev = self.switch_level.get(i).copied().unwrap_or(false);
        let armed = self.switch_armed.get(i).copied().unwrap_or(false);
        let level = self.level_switch(i, d, false);
        if matches!(d, Digital::Off | Digital::Fault)
            && let Some(a) = self.switch_armed.get_mut(i)
        {
            *a = true;
        }
        (level, level && !prev && armed)
    }

    fn evidence(&self) -> Evidence {
        let n = self.cfg.confirm_samples;
        let mut e = Evidence::default();
        for (slot, id) in e.temps.iter_mut().zip(SourceId::TEMPERATURES) {
            let Some(s) = self.source(id) else { continue };
            e.any_valid_temperature |= s.is_valid();
            e.any_pending_temperature |= s.is_pending();
            *slot = s.confirmed(n);
        }
        e.smoke = self
            .source(SourceId::Smoke)
            .and_then(|s| s.confirmed(n))
            .is_some_and(|v| v >= 1);
        e.offgas = self.source(SourceId::OffGas).and_then(|s| s.confirmed(n));
        // Every temperature source is lost when none is valid and none is still waiting for
        // its first sample, or none is valid and they were all lost before a restart (a
        // reboot loop faster than the staleness time never makes them "pending" again).
        e.lost =
            !e.any_valid_temperature && (!e.any_pending_temperature || self.loss_timer.is_some());
        e
    }

    /// Independent corroboration of temperature source `of`: another temperature source
    /// outside its common-cause group at or above `previous_threshold`, smoke, or off-gas at
    /// or above the supervisory level, each only if enabled and independent of `of`.
    fn corroborator(
        &self,
        of: SourceId,
        e: &Evidence,
        previous_threshold: DeciC,
    ) -> Option<Corroborator> {
        let rules = self.cfg.corroboration;
        if rules.second_temperature {
            let mut best: Option<(SourceId, DeciC)> = None;
            for id in SourceId::TEMPERATURES {
                if let Some(v) = e.temp(id)
                    && v >= previous_threshold
                    && self.cfg.independent(of, id)
                    && best.is_none_or(|(_, b)| v > b)
                {
                    best = Some((id, v));
                }
            }
            if let Some((source, value)) = best {
                return Some(Corroborator::Temperature { source, value });
            }
        }
        if rules.smoke && e.smoke && self.cfg.independent(of, SourceId::Smoke) {
            return Some(Corroborator::Smoke);
        }
        if rules.offgas
            && let Some(value) = e.offgas
            && value >= self.cfg.offgas_supervisory
            && self.cfg.independent(of, SourceId::OffGas)
        {
            return Some(Corroborator::OffGas { value });
        }
        None
    }

    /// The hottest temperature source at or above `threshold` that an independent source
    /// corroborates.
    fn corroborated(
        &self,
        e: &Evidence,
        threshold: DeciC,
        previous_threshold: DeciC,
    ) -> Option<Cause> {
        let mut best: Option<Cause> = None;
        let mut best_value = DeciC::MIN;
        for id in SourceId::TEMPERATURES {
            let Some(v) = e.temp(id) else { continue };
            if v < threshold || v <= best_value {
                continue;
            }
            if let Some(c) = self.corroborator(id, e, previous_threshold) {
                best_value = v;
                best = Some(Cause::Temperature {
                    source: id,
                    value: v,
                    corroborated_by: Some(c),
                });
            }
        }
        best
    }

    fn temperature_cause(e: &Evidence, threshold: DeciC) -> Option<Cause> {
        match e.top() {
            Some((source, value)) if value >= threshold => Some(Cause::Temperature {
                source,
                value,
                corroborated_by: None,
            }),
            _ => None,
        }
    }

    /// Off-gas at or above the supervisory level and rising by `offgas_ror_rise` in its window.
    fn offgas_rising(&self, e: &Evidence) -> Option<(i32, i32)> {
        let v = e.offgas?;
        (self.offgas_ror.active && v >= self.cfg.offgas_supervisory)
            .then_some((v, self.offgas_ror.rise))
    }

    /// The cause for entering `stage` from the current evidence, if its condition holds.
    fn stage_condition(&self, stage: Stage, e: &Evidence) -> Option<Cause> {
        let c = &self.cfg;
        match stage {
            Stage::Normal => None,
            Stage::PreAlarm => {
                if let Some(cause) = Self::temperature_cause(e, c.prealarm) {
                    Some(cause)
                } else if let Some(value) = e.offgas.filter(|v| *v >= c.offgas_supervisory) {
                    Some(Cause::OffGas { value })
                } else if e.smoke {
                    Some(Cause::Smoke)
                } else if self.ror_active {
                    Some(Cause::RateOfRise {
                        rise: self.ror_last_rise,
                    })
                } else {
                    None
                }
            }
            Stage::Stage1 => self.stage1_condition(e),
            Stage::Stage2 => self.corroborated(e, c.stage2, c.stage1),
            Stage::Stage3 => self
                .corroborated(e, c.stage3, c.stage2)
                .or_else(|| self.evidence_lost(e)),
            Stage::Stage4 => {
                self.not_fallen(e, Stage::Stage3, c.coolant_after_ms, c.coolant_min_fall)
            }
            Stage::Stage5 => self.not_fallen(e, Stage::Stage4, c.gas_after_ms, c.gas_min_fall),
        }
    }

    fn stage1_condition(&self, e: &Evidence) -> Option<Cause> {
        let c = &self.cfg;
        if let Some(cause) = Self::temperature_cause(e, c.stage1) {
            return Some(cause);
        }
        if let Some(value) = e.offgas.filter(|v| *v >= c.offgas_stage1) {
            return Some(Cause::OffGas { value });
        }
        if self
            .offgas_timer
            .is_some_and(|t| t >= u64::from(c.offgas_sustained_ms))
        {
            return Some(Cause::OffGasSustained { value: e.offgas });
        }
        if let Some((value, rise)) = self.offgas_rising(e) {
            return Some(Cause::OffGasRising { value, rise });
        }
        if !e.smoke {
            return None;
        }
        if let Some(value) = e.offgas.filter(|v| *v >= c.offgas_supervisory)
            && c.independent(SourceId::Smoke, SourceId::OffGas)
        {
            return Some(Cause::SmokeAndOffGas { value });
        }
        if let Some(camera) = e.temp(SourceId::Camera).filter(|v| *v >= c.camera_hotspot)
            && c.independent(SourceId::Smoke, SourceId::Camera)
        {
            return Some(Cause::SmokeAndHotSpot { camera });
        }
        if e.lost() {
            return Some(Cause::SmokeNoTemperature);
        }
        None
    }

    /// Stage 3 without temperatures: in stage 2 (a corroborated fire) every temperature source
    /// is lost, one of them last seen at or above the stage 2 threshold.
    fn evidence_lost(&self, e: &Evidence) -> Option<Cause> {
        if self.stage != Stage::Stage2 || !e.lost() {
            return None;
        }
        let mut best: Option<(SourceId, DeciC)> = None;
        for (id, last) in SourceId::TEMPERATURES.into_iter().zip(self.last_known) {
            if let Some(v) = last
                && v >= self.cfg.stage2
                && best.is_none_or(|(_, b)| v > b)
            {
                best = Some((id, v));
            }
        }
        best.map(|(source, last)| Cause::EvidenceLost { source, last })
    }

    /// Stage 4/5 condition: the previous stage has lasted `after_ms` (its timer runs with or
    /// without valid temperatures) and the fire has not fallen: a valid source at or above
    /// stage 1 has not fallen `min_fall` below its own peak, a source was lost while at or
    /// above stage 1, or no temperature source is valid. A source that has not given its
    /// first sample since a restart is not judged (unless it was lost while hot before).
    /// Uses `e` only for the loss of every source.
    fn not_fallen(
        &self,
        e: &Evidence,
        previous: Stage,
        after_ms: u32,
        min_fall: DeciC,
    ) -> Option<Cause> {
        if self.stage != previous || self.stage_timer < u64::from(after_ms) {
            return None;
        }
        if e.lost() {
            return Some(Cause::NotFallen(NotFallen::NoValidTemperature));
        }
        let stage1 = self.cfg.stage1;
        let mut lost: Option<NotFallen> = None;
        let mut hot: Option<NotFallen> = None;
        for (k, id) in SourceId::TEMPERATURES.into_iter().enumerate() {
            let Some(src) = self.source(id).filter(|s| s.fitted()) else {
                continue;
            };
            let peak = self.peaks.get(k).copied().flatten();
            let last = self.last_known.get(k).copied().flatten();
            // The latest valid reading, confirmed or not: the fire was confirmed when the
            // agent went, and a reboot loop faster than the confirmation window must not hold
            // the decision back (a one-sample spike moves the reading by `max_jump` at most).
            match src.valid_latest() {
                Some(now) => {
                    let peak = peak.map_or(now, |p| p.max(now));
                    let hotter = match hot {
                        Some(NotFallen::Hot { now: h, .. }) => now > h,
                        _ => true,
                    };
                    if now >= stage1 && now > peak.saturating_sub(min_fall) && hotter {
                        hot = Some(NotFallen::Hot {
                            source: id,
                            peak,
                            now,
                        });
                    }
                }
                None => {
                    let hot_when_lost = self.lost_hot.contains(id)
                        || (!src.is_pending() && last.is_some_and(|v| v >= stage1));
                    if hot_when_lost && lost.is_none() {
                        lost = Some(NotFallen::LostWhileHot {
                            source: id,
                            last: last.or(peak).unwrap_or(stage1),
                        });
                    }
                }
            }
        }
        // The hottest source that has not fallen, else the first one lost while hot.
        hot.or(lost).map(Cause::NotFallen)
    }

    fn enter(&mut self, now: u64, stage: Stage, cause: Cause) {
        if stage <= self.stage {
            return;
        }
        self.stage = stage;
        self.stage_timer = 0;
        self.peaks = [None; 4];
        self.lost_hot = SourceSet::NONE;
        self.log(now, EventKind::StageEntered { stage, cause });
    }

    /// Enters every stage up to `target`, each with its own cause if its condition holds.
    fn escalate_to(&mut self, now: u64, target: Stage, cause: Cause, e: &Evidence) {
        for s in Stage::ALL {
            if s > self.stage && s <= target {
                let own = self.stage_condition(s, e).unwrap_or(cause);
                self.enter(now, s, own);
            }
        }
    }

    /// Why a reset is refused now. With `override_invalid`, invalid sources are taken out of
    /// service (the key-held reset): only readings that are valid count, and one temperature
    /// source at least must be valid.
    fn reset_refusal(&self, override_invalid: bool) -> Option<ResetRefusal> {
        let mut invalid: Option<SourceId> = None;
        let mut any_valid_temperature = false;
        for id in SourceId::TEMPERATURES {
            let Some(s) = self.source(id).filter(|s| s.fitted()) else {
                continue;
            };
            // The raw sample, not the rate-limited one: a reading that just jumped up counts.
            match s.raw() {
                Some(value) if value >= self.cfg.reset_max => {
                    return Some(ResetRefusal::TemperatureHigh { source: id, value });
                }
                Some(_) => any_valid_temperature = true,
                None => {
                    invalid.get_or_insert(id);
                }
            }
        }
        if let Some(s) = self.source(SourceId::Smoke).filter(|s| s.fitted()) {
            match s.raw() {
                Some(v) if v >= 1 => return Some(ResetRefusal::SmokePresent),
                Some(_) => {}
                None => {
                    invalid.get_or_insert(SourceId::Smoke);
                }
            }
        }
        if let Some(s) = self.source(SourceId::OffGas).filter(|s| s.fitted()) {
            match s.raw() {
                Some(v) if v >= self.cfg.offgas_supervisory => {
                    return Some(ResetRefusal::OffGasPresent);
                }
                Some(_) => {}
                None => {
                    invalid.get_or_insert(SourceId::OffGas);
                }
            }
        }
        if !any_valid_temperature {
            return Some(ResetRefusal::NoValidTemperature);
        }
        match invalid {
            Some(source) if !override_invalid => Some(ResetRefusal::SourceInvalid { source }),
            _ => None,
        }
    }

    fn invalid_sources(&self) -> SourceSet {
        let mut set = SourceSet::NONE;
        for id in SourceId::ALL {
            if self
                .source(id)
                .is_some_and(|s| s.fitted() && s.raw().is_none())
            {
                set.insert(id);
            }
        }
        set
    }

    fn latched(&self) -> bool {
        self.stage != Stage::Normal || self.isolated || self.agent_released || self.gas != Gas::Idle
    }

    fn do_reset(&mut self, now: u64, kind: EventKind) {
        self.stage = Stage::Normal;
        self.stage_timer = 0;
        self.agent_released = false;
        self.agent_inhibit_logged = false;
        self.gas = Gas::Idle;
        self.gas_manual = false;
        self.isolated = false;
        self.peaks = [None; 4];
        self.last_known = [None; 4];
        self.lost_hot = SourceSet::NONE;
        self.silenced = false;
        self.config_changed = false;
        self.ror = [Ror::default(); 4];
        self.ror_active = false;
        self.offgas_ror = Ror::default();
        self.offgas_timer = None;
        self.loss_timer = None;
        self.dropped_seen = self.log.dropped();
        self.log(now, kind);
    }

    /// The actions implied by the latched state and the authority key.
    fn actions(&self) -> Actions {
        let mut a = Actions::NONE;
        let authority = self
            .switch_level
            .get(SW_AUTHORITY)
            .copied()
            .unwrap_or(false);
        if self.stage >= Stage::Stage1 || self.isolated || authority {
            a.insert(Action::ContactorOpen);
        }
        if self.stage >= Stage::Stage1 {
            a.insert(Action::BlanketDrop);
        }
        if self.stage >= Stage::Stage2 {
            a.insert(Action::PatchFire);
        }
        if self.agent_released {
            a.insert(Action::AgentRelease);
        }
        if self.stage >= Stage::Stage4 {
            a.insert(Action::CoolantOn);
        }
        if matches!(self.gas, Gas::Warning { .. } | Gas::Held | Gas::Released) {
            a.insert(Action::GasWarning);
        }
        if self.gas == Gas::Released {
            a.insert(Action::GasRelease);
        }
        a
    }

    /// The room gas sequence. Every release, automatic or manual, follows the full
    /// pre-discharge warning; the hold switch holds it (the warning restarts in full when let
    /// go); manual-only mode stops an automatic sequence but not one a person asked for.
    fn gas_step(&mut self, now: u64, dt: u64, hold: bool, manual_only: bool) {
        if self.stage != Stage::Stage5 {
            return;
        }
        let next = match self.gas {
            Gas::Released => Gas::Released,
            _ if manual_only && !self.gas_manual => Gas::ManualOnly,
            _ if hold => Gas::Held,
            Gas::Idle | Gas::Held | Gas::ManualOnly => Gas::Warning { elapsed: 0 },
            Gas::Warning { elapsed } => {
                let elapsed = add(elapsed, dt.min(MAX_WARNING_STEP_MS));
                if elapsed >= u64::from(self.cfg.gas_warning_ms) {
                    Gas::Released
                } else {
                    Gas::Warning { elapsed }
                }
            }
        };
        if next.state() != self.gas.state() {
            let kind = match next {
                Gas::Warning { .. } => Some(EventKind::GasWarningStarted),
                Gas::Held => Some(EventKind::GasHeld),
                Gas::ManualOnly => Some(EventKind::GasWaitingManualOnly),
                Gas::Released => Some(EventKind::GasReleased),
                Gas::Idle => None,
            };
            if let Some(k) = kind {
                self.log(now, k);
            }
        }
        self.gas = next;
    }

    /// Rate of rise, per temperature source, and of the off-gas.
    fn update_rate_of_rise(&mut self, now: u64) {
        let n = self.cfg.confirm_samples;
        let mut active = false;
        let mut rise_max: DeciC = 0;
        for (k, id) in SourceId::TEMPERATURES.into_iter().enumerate() {
            let v = self.source(id).and_then(|s| s.confirmed(n));
            let (window, rise) = (self.cfg.ror_window_ms, self.cfg.ror_rise);
            let Some(st) = self.ror.get_mut(k) else {
                continue;
            };
            st.update(now, v, window, rise);
            if st.active {
                active = true;
                rise_max = rise_max.max(st.rise);
            }
        }
        self.ror_active = active;
        self.ror_last_rise = rise_max;
        let v = self.source(SourceId::OffGas).and_then(|s| s.confirmed(n));
        self.offgas_ror.update(
            now,
            v,
            self.cfg.offgas_ror_window_ms,
            self.cfg.offgas_ror_rise,
        );
    }

    /// Rack sensors 1 and 2 disagree by more than `partner_band` while the cooler one reads
    /// below the pre-alarm level: one is the suspect and is excluded (its trouble names it).
    /// In doubt the hotter reading wins: the cooler one is
    /// the suspect whenever smoke, off-gas, the camera or the BMS (each independent of the
    /// hotter sensor) agree that it is hot, and when there is no independent referee at all.
    /// Only when independent temperature referees are valid, none agrees, and neither smoke
    /// nor off-gas is present, the one farther from the referees is the suspect.
    fn partner_check(&mut self) {
        let t1 = SourceId::RackTemp1;
        let t2 = SourceId::RackTemp2;
        let a = self.source(t1).and_then(Source::own_latest);
        let b = self.source(t2).and_then(Source::own_latest);
        let mut suspect: Option<SourceId> = None;
        // Both at or above the pre-alarm level: both say it is hot, the difference is the
        // fire's gradient, not a faulty sensor; both count.
        if let (Some(a), Some(b)) = (a, b)
            && a.abs_diff(b) > self.cfg.partner_band.unsigned_abs()
            && a.min(b) < self.cfg.prealarm
        {
            let (hot, hot_v, cool, cool_v) = if a >= b {
                (t1, a, t2, b)
            } else {
                (t2, b, t1, a)
            };
            let cfg = self.cfg;
            let raw = |id: SourceId| self.source(id).and_then(Source::raw);
            let smoke_agrees = cfg.independent(hot, SourceId::Smoke)
                && raw(SourceId::Smoke).is_some_and(|v| v >= 1);
            let offgas_agrees = cfg.independent(hot, SourceId::OffGas)
                && raw(SourceId::OffGas).is_some_and(|v| v >= cfg.offgas_supervisory);
            let mut referee_agrees = false;
            let mut sum: i64 = 0;
            let mut count: i64 = 0;
            for id in [SourceId::Bms, SourceId::Camera] {
                let Some(v) = self.source(id).and_then(Source::own_latest) else {
                    continue;
                };
                // A referee agrees that it is hot when it reads hot itself, or reads closer to
                // the hotter partner than to the cooler one.
                if cfg.independent(hot, id)
                    && (v >= cfg.prealarm || v.abs_diff(hot_v) < v.abs_diff(cool_v))
                {
                    referee_agrees = true;
                }
                if cfg.independent(t1, id) && cfg.independent(t2, id) {
                    sum = sum.saturating_add(i64::from(v));
                    count = count.saturating_add(1);
                }
            }
            suspect = Some(if smoke_agrees || offgas_agrees || referee_agrees {
                cool
            } else if let Some(reference) = sum.checked_div(count) {
                let d = |v: i32| i64::from(v).saturating_sub(reference).unsigned_abs();
                let (da, db) = (d(a), d(b));
                if da > db {
                    t1
                } else if db > da {
                    t2
                } else {
                    cool
                }
            } else {
                cool
            });
        }
        for id in [t1, t2] {
            if let Some(s) = self.sources.get_mut(id.index()) {
                s.disagree = suspect == Some(id);
            }
        }
    }

    /// One control cycle. `now_ms` is a monotonic 64-bit millisecond clock (a value lower than
    /// the previous one is treated as no time passing). Bounded work, never panics.
    pub fn step(&mut self, now_ms: u64, inputs: &Inputs) -> Outputs {
        let now = now_ms.max(self.last_now);
        if !self.started {
            self.started = true;
            self.last_now = now;
            for s in self.sources.iter_mut() {
                s.start(now);
            }
        }
        let dt = now.saturating_sub(self.last_now);
        self.last_now = now;
        let cfg = self.cfg;
        let stage_before = self.stage;
        let troubles_before = self.out.troubles;
        let sup_before = self.out.supervisory;

        // 1. Local switches. A faulted manual-only switch counts as manual-only and a faulted
        // hold switch as held (never release agent or gas on a room that may be occupied);
        // any other faulted switch counts as off.
        let (reset_level, reset_edge) = self.momentary_switch(SW_RESET, inputs.reset);
        let hold = self.level_switch(SW_HOLD, inputs.hold, true);
        let (_, manual_edge) = self.momentary_switch(SW_MANUAL, inputs.manual_release);
        let manual_only = self.level_switch(SW_MANUAL_ONLY, inputs.manual_only, true);
        let authority = self.level_switch(SW_AUTHORITY, inputs.authority, false);
        let (_, room_gas_edge) = self.momentary_switch(SW_ROOM_GAS, inputs.room_gas_release);

        // 2. Sources: samples, staleness, plausibility, inhibit, partner check.
        for (i, s) in self.sources.iter_mut().enumerate() {
            let id = SourceId::ALL.get(i).copied().unwrap_or(SourceId::Bms);
            s.update(inputs.analog(id), now, &cfg);
        }
        if let Some((id, until)) = self.inhibit {
            let recovered = self
                .source(id)
                .is_some_and(|s| s.own_invalidity().is_none());
            if now >= until || recovered {
                self.inhibit = None;
                self.log(now, EventKind::InhibitEnded { source: id });
            }
        }
        self.partner_check();
        for id in SourceId::ALL {
            // Pending (never sampled yet, within three periods) is not a trouble.
            let now_invalid = self
                .source_invalidity(id)
                .filter(|w| *w != Invalidity::Pending);
            let before = self.reported_invalid.get(id.index()).copied().flatten();
            if now_invalid != before {
                if let Some(r) = self.reported_invalid.get_mut(id.index()) {
                    *r = now_invalid;
                }
                match now_invalid {
                    Some(why) => self.log(now, EventKind::SourceInvalid { source: id, why }),
                    None => self.log(now, EventKind::SourceValid { source: id }),
                }
            }
        }

        // 3. Evidence, rates of rise, last known values and the evidence timers.
        let e = self.evidence();
        self.update_rate_of_rise(now);
        for (slot, v) in self.last_known.iter_mut().zip(e.temps) {
            if v.is_some() {
                *slot = v;
            }
        }
        if matches!(self.stage, Stage::Stage2 | Stage::Stage3 | Stage::Stage4) {
            for (id, last) in SourceId::TEMPERATURES.into_iter().zip(self.last_known) {
                let gone = self
                    .source(id)
                    .is_some_and(|s| s.fitted() && !s.is_valid() && !s.is_pending());
                if gone && last.is_some_and(|v| v >= cfg.stage1) {
                    self.lost_hot.insert(id);
                }
            }
        }
        let offgas_src = self.source(SourceId::OffGas).copied();
        if let Some(s) = offgas_src.filter(Source::fitted) {
            let clear_below = cfg
                .offgas_supervisory
                .saturating_sub((cfg.offgas_supervisory / 10).max(1));
            self.offgas_timer = match (e.offgas, self.offgas_timer) {
                (Some(v), t) if v >= cfg.offgas_supervisory => Some(t.map_or(0, |t| add(t, dt))),
                (Some(v), Some(t)) if v >= clear_below => Some(add(t, dt)),
                (Some(_), _) => None,
                // No confirmed valid reading: a detector lost while high keeps the timer
                // running; a valid one that is not yet confirmed holds it.
                (None, Some(t)) if s.invalidity().is_some() => Some(add(t, dt)),
                (None, t) => t,
            };
        }
        self.loss_timer = if e.lost() {
            Some(self.loss_timer.map_or(0, |t| add(t, dt)))
        } else if e.any_valid_temperature {
            None
        } else {
            self.loss_timer.map(|t| add(t, dt))
        };
        if matches!(self.stage, Stage::Stage3 | Stage::Stage4) {
            self.stage_timer = add(self.stage_timer, dt);
        }

        // 4. Local reset (refused while anything is still hot, smoking or unverifiable; the
        // key held for `reset_override_ms` takes invalid sources out of service).
        if !reset_level {
            self.reset_hold_since = None;
        }
        if reset_edge && self.latched() {
            match self.reset_refusal(false) {
                Some(r) => {
                    if matches!(r, ResetRefusal::SourceInvalid { .. }) {
                        self.reset_hold_since = Some(now);
                    }
                    self.log(now, EventKind::ResetRefused(r));
                }
                None => self.do_reset(now, EventKind::ResetAccepted),
            }
        } else if let Some(since) = self.reset_hold_since
            && now.saturating_sub(since) >= u64::from(cfg.reset_override_ms)
        {
            self.reset_hold_since = None;
            match self.reset_refusal(true) {
                Some(r) => self.log(now, EventKind::ResetRefused(r)),
                None => {
                    let out_of_service = self.invalid_sources();
                    self.do_reset(now, EventKind::ResetOverride { out_of_service });
                }
            }
        }

        // 5. Stages, forward only. Thresholds are evaluated on confirmed values of valid
        // sources only, so a trouble can never start a stage.
        for s in [
            Stage::Stage5,
            Stage::Stage4,
            Stage::Stage3,
            Stage::Stage2,
            Stage::Stage1,
            Stage::PreAlarm,
        ] {
            if s <= self.stage {
                break;
            }
            if let Some(cause) = self.stage_condition(s, &e) {
                self.escalate_to(now, s, cause, &e);
                break;
            }
        }

        // 6. The rack's manual release: at least stage 3 with agent. Never the room gas.
        if manual_edge {
            self.log(now, EventKind::ManualRelease);
            if self.stage < Stage::Stage3 {
                self.escalate_to(now, Stage::Stage3, Cause::ManualRelease, &e);
            }
            if !self.agent_released {
                self.agent_released = true;
                self.log(now, EventKind::AgentReleased);
            }
        }

        // 7. The room's gas release: stage 5, and the gas sequence goes ahead even in
        // manual-only mode (a person decided), after the full pre-discharge warning.
        if room_gas_edge {
            self.log(now, EventKind::RoomGasRelease);
            if self.stage < Stage::Stage5 {
                self.escalate_to(now, Stage::Stage5, Cause::RoomGasRelease, &e);
            }
            self.gas_manual = true;
        }

        // Peaks of the current stage window.
        if matches!(self.stage, Stage::Stage2 | Stage::Stage3 | Stage::Stage4) {
            for (p, v) in self.peaks.iter_mut().zip(e.temps) {
                *p = match (*p, v) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, None) => a,
                    (None, b) => b,
                };
            }
        }

        // 8. Automatic agent, unless manual-only mode holds it back.
        if self.stage >= Stage::Stage3 && !self.agent_released {
            if manual_only {
                if !self.agent_inhibit_logged {
                    self.agent_inhibit_logged = true;
                    self.log(now, EventKind::AgentInhibitedManualOnly);
                }
            } else {
                self.agent_released = true;
                self.log(now, EventKind::AgentReleased);
            }
        }

        // 9. Room gas: warning, hold-to-abort, manual-only, release.
        self.gas_step(now, dt, hold, manual_only);

        // 10. Loss of every valid temperature source: trouble at once, isolation after a
        // delay (the timer survives a restart).
        if !self.isolated
            && self
                .loss_timer
                .is_some_and(|t| t >= u64::from(cfg.isolate_after_ms))
        {
            self.isolated = true;
            self.log(now, EventKind::BatteryIsolated);
        }

        // 11. Test mode ends at once on a real detection, or when it expires.
        if let Some(until) = self.test_until {
            if self.stage != Stage::Normal {
                self.test_until = None;
                self.log(now, EventKind::TestModeEnded { by_detection: true });
            } else if now >= until {
                self.test_until = None;
                self.log(
                    now,
                    EventKind::TestModeEnded {
                        by_detection: false,
                    },
                );
            }
        }

        // 12. Actions; the authority key forces the contactor open above everything.
        let actions = self.actions();

        // 13. Feedback supervision: a mismatch beyond the tolerance is a reported fault; the
        // command is kept.
        let mut troubles = Troubles::NONE;
        for (i, action) in Action::FEEDBACK.into_iter().enumerate() {
            let fitted = cfg.fitted.feedback.get(i).copied().unwrap_or(false);
            let sample = inputs.feedback.get(i).copied().unwrap_or_default();
            let (Some(level), Some(fault), Some(since)) = (
                self.feedback_level.get_mut(i),
                self.feedback_fault.get_mut(i),
                self.mismatch_since.get_mut(i),
            ) else {
                continue;
            };
            if !fitted {
                continue;
            }
            match sample {
                Digital::NoSample => {}
                Digital::Off => {
                    *level = Some(false);
                    *fault = false;
                }
                Digital::On => {
                    *level = Some(true);
                    *fault = false;
                }
                Digital::Fault => {
                    *level = None;
                    *fault = true;
                }
            }
            if *fault {
                *since = None;
                troubles.insert(Trouble::FeedbackFault);
                continue;
            }
            if *level == Some(actions.contains(action)) {
                *since = None;
            } else {
                let t = *since.get_or_insert(now);
                if now.saturating_sub(t) > u64::from(cfg.feedback_mismatch_ms) {
                    troubles.insert(Trouble::mismatch(action));
                }
            }
        }

        // 14. Troubles and supervisory signals, logged on every change.
        for id in SourceId::ALL {
            let reported = self.reported_invalid.get(id.index()).copied().flatten();
            if reported.is_some_and(|w| w != Invalidity::Inhibited) {
                troubles.insert(Trouble::for_source(id));
            }
        }
        if e.lost() {
            troubles.insert(Trouble::NoValidTemperature);
        }
        if self.inhibit.is_some() {
            troubles.insert(Trouble::SensorInhibited);
        }
        // A faulted switch line, or a momentary switch on since start (a stuck key or a
        // shorted line: not a press until it is seen released).
        let held_at_start = MOMENTARY.iter().any(|i| {
            self.switch_level.get(*i).copied().unwrap_or(false)
                && !self.switch_armed.get(*i).copied().unwrap_or(false)
        });
        if self.switch_fault.iter().any(|f| *f) || held_at_start {
            troubles.insert(Trouble::SwitchFault);
        }
        if self.log.dropped() != self.dropped_seen {
            troubles.insert(Trouble::EventLogOverflow);
        }
        if self.config_changed {
            troubles.insert(Trouble::ConfigChanged);
        }
        let mut sup = SupervisoryFlags::NONE;
        if self.ror_active {
            sup.insert(Supervisory::RateOfRise);
        }
        // Off-gas supervisory with a hysteresis of a tenth of the level, so that a
        // concentration hovering at the level does not chatter.
        let offgas_clear_below = cfg
            .offgas_supervisory
            .saturating_sub((cfg.offgas_supervisory / 10).max(1));
        let offgas_sup = match e.offgas {
            Some(v) if sup_before.contains(Supervisory::OffGas) => v >= offgas_clear_below,
            Some(v) => v >= cfg.offgas_supervisory,
            None => false,
        };
        if offgas_sup {
            sup.insert(Supervisory::OffGas);
        }
        if manual_only {
            sup.insert(Supervisory::ManualOnlyBypass);
        }
        if authority {
            sup.insert(Supervisory::Authority);
        }
        if self.test_until.is_some() {
            sup.insert(Supervisory::TestMode);
        }
        if self.isolated {
            sup.insert(Supervisory::IsolatedNoTemperature);
        }
        let mut new_event = self.stage > stage_before;
        if troubles != troubles_before {
            for t in Trouble::ALL {
                let (was, is) = (troubles_before.contains(t), troubles.contains(t));
                if was == is {
                    continue;
                }
                new_event |= is;
                // Source troubles are logged above with their reason.
                if t.source().is_some() {
                    continue;
                }
                let kind = if is {
                    EventKind::TroubleRaised(t)
                } else {
                    EventKind::TroubleCleared(t)
                };
                self.log(now, kind);
            }
        }
        if sup != sup_before {
            for s in Supervisory::ALL {
                let (was, is) = (sup_before.contains(s), sup.contains(s));
                if was == is {
                    continue;
                }
                new_event |= is;
                let kind = if is {
                    EventKind::SupervisoryRaised(s)
                } else {
                    EventKind::SupervisoryCleared(s)
                };
                self.log(now, kind);
            }
        }

        // 15. Buzzer: sounds for any stage, trouble or supervisory signal until acknowledged,
        // and again on every new one.
        if new_event {
            self.silenced = false;
        }
        let buzzer = !self.silenced
            && (self.stage != Stage::Normal
                || !troubles.is_empty()
                || sup != SupervisoryFlags::NONE);

        self.out = Outputs {
            stage: self.stage,
            actions,
            troubles,
            supervisory: sup,
            buzzer,
            governing: e.top().map(|(_, v)| v),
        };
        self.out
    }

    /// Applies one network command. Only the safe vocabulary of [`NetworkCommand`] exists;
    /// none of it changes a stage or an action. Refusals are logged and returned.
    pub fn command(&mut self, now_ms: u64, command: NetworkCommand) -> Result<(), Refused> {
        let now = now_ms.max(self.last_now);
        let result = self.apply_command(now, command);
        if let Err(r) = result {
            self.log(now, EventKind::CommandRefused(r));
        }
        result
    }

    fn apply_command(&mut self, now: u64, command: NetworkCommand) -> Result<(), Refused> {
        match command {
            NetworkCommand::Acknowledge => {
                self.silenced = true;
                self.out.buzzer = false;
                self.log(now, EventKind::Acknowledged);
            }
            NetworkCommand::TimeSync { unix_ms } => {
                let now_i = i64::try_from(now).map_err(|_| Refused::BadTime)?;
                if unix_ms <= 0 {
                    return Err(Refused::BadTime);
                }
                self.wall_offset_ms = Some(unix_ms.saturating_sub(now_i));
                self.log(now, EventKind::TimeSynced { unix_ms });
            }
            NetworkCommand::TestMode { on: true } => {
                if self.stage != Stage::Normal {
                    return Err(Refused::StageActive);
                }
                self.test_until = Some(now.saturating_add(u64::from(self.cfg.test_mode_max_ms)));
                self.log(now, EventKind::TestModeStarted);
            }
            NetworkCommand::TestMode { on: false } => {
                if self.test_until.take().is_some() {
                    self.log(
                        now,
                        EventKind::TestModeEnded {
                            by_detection: false,
                        },
                    );
                }
            }
            NetworkCommand::InhibitSensor {
                sensor,
                duration_ms,
            } => {
                let s = self.source(sensor).ok_or(Refused::SensorNotFitted)?;
                if !s.fitted() {
                    return Err(Refused::SensorNotFitted);
                }
                if duration_ms == 0 || duration_ms > self.cfg.inhibit_max_ms {
                    return Err(Refused::BadDuration);
                }
                if self.inhibit.is_some_and(|(x, _)| x != sensor) {
                    return Err(Refused::AnotherSensorInhibited);
                }
                // Only a sensor that is invalid for its own reasons: never one that gives a
                // reading (hot, rising or cool), never one merely excluded by arbitration.
                let faulted = matches!(s.own_invalidity(), Some(w) if w != Invalidity::Pending);
                if !faulted {
                    return Err(Refused::SensorNotFaulted);
                }
                self.inhibit = Some((sensor, now.saturating_add(u64::from(duration_ms))));
                self.log(
                    now,
                    EventKind::SensorInhibited {
                        source: sensor,
                        duration_ms,
                    },
                );
            }
        }
        Ok(())
    }
}
