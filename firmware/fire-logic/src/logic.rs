//! The rack fire state machine.

use crate::config::{Config, ConfigError};
use crate::events::{Cause, Corroborator, EventKind, EventLog, Refused, ResetRefusal};
use crate::latch::{GasState, LatchRecord};
use crate::source::{Invalidity, Source};
use crate::types::{
    Action, Actions, DeciC, Digital, Inputs, Outputs, SourceId, Stage, Supervisory,
    SupervisoryFlags, Trouble, Troubles,
};

/// The whole vocabulary of network commands. Reset, abort, silencing a stage, closing a
/// contactor, inhibiting a release or changing a threshold are deliberately not representable.
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
    /// Inhibit one faulted sensor for a bounded time (itself reported as a trouble).
    InhibitSensor {
        /// The sensor.
        sensor: SourceId,
        /// Duration, 1 ms ..= `inhibit_max_ms`.
        duration_ms: u32,
    },
}

/// Internal room-gas state (adds the warning deadline to [`GasState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gas {
    Idle,
    Warning { until: u64 },
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

/// Rate-of-rise state of one temperature source.
#[derive(Debug, Clone, Copy, Default)]
struct Ror {
    reference: Option<(u64, DeciC)>,
    active: bool,
    rise: DeciC,
}

/// What the sources say this cycle.
#[derive(Debug, Clone, Copy, Default)]
struct Evidence {
    top1: Option<(SourceId, DeciC)>,
    top2: Option<(SourceId, DeciC)>,
    smoke: bool,
    offgas: Option<i32>,
    camera: Option<DeciC>,
    any_valid_temperature: bool,
    any_pending_temperature: bool,
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
    entered: [u64; 7],
    agent_released: bool,
    agent_inhibit_logged: bool,
    gas: Gas,
    isolated: bool,
    peak3: Option<DeciC>,
    peak4: Option<DeciC>,
    ror: [Ror; 4],
    ror_active: bool,
    ror_last_rise: DeciC,
    loss_since: Option<u64>,
    switch_level: [bool; 5],
    switch_fault: [bool; 5],
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
            entered: [0; 7],
            agent_released: false,
            agent_inhibit_logged: false,
            gas: Gas::Idle,
            isolated: false,
            peak3: None,
            peak4: None,
            ror: [Ror::default(); 4],
            ror_active: false,
            ror_last_rise: 0,
            loss_since: None,
            switch_level: [false; 5],
            switch_fault: [false; 5],
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
    /// persisted (they need fresh samples), and every stage timer restarts at `now_ms`: the
    /// logic cannot know how long the controller was down, so a restore never shortens a
    /// delay, and a room-gas pre-discharge warning that was running starts again in full.
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
        for (i, t) in l.entered.iter_mut().enumerate() {
            if i != 0 && i <= usize::from(record.stage.code()) {
                *t = now_ms;
            }
        }
        l.agent_released = record.agent_released;
        l.agent_inhibit_logged = record.stage >= Stage::Stage3 && !record.agent_released;
        l.gas = match record.gas {
            GasState::Idle => Gas::Idle,
            GasState::Warning => Gas::Warning {
                until: now_ms.saturating_add(u64::from(config.gas_warning_ms)),
            },
            GasState::Held => Gas::Held,
            GasState::ManualOnly => Gas::ManualOnly,
            GasState::Released => Gas::Released,
        };
        l.isolated = record.isolated;
        l.silenced = record.buzzer_silenced;
        l.peak3 = record.peak_after_stage3;
        l.peak4 = record.peak_after_stage4;
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
    /// last one written (it only changes on transitions, so this does not wear the flash).
    pub fn latch_record(&self) -> LatchRecord {
        LatchRecord {
            stage: self.stage,
            actions: self.out.actions,
            agent_released: self.agent_released,
            gas: self.gas.state(),
            isolated: self.isolated,
            buzzer_silenced: self.silenced,
            stage_entered_ms: self.entered,
            peak_after_stage3: self.peak3,
            peak_after_stage4: self.peak4,
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

    /// Why a source is invalid now (`None` if valid or not fitted).
    pub fn source_invalidity(&self, id: SourceId) -> Option<Invalidity> {
        self.sources.get(id.index()).and_then(Source::invalidity)
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

    /// Applies one switch sample; returns (level, rising edge).
    fn switch(&mut self, i: usize, d: Digital, fault_level: bool) -> (bool, bool) {
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
        (level, level && !prev)
    }

    fn evidence(&self) -> Evidence {
        let n = self.cfg.confirm_samples;
        let mut e = Evidence::default();
        for id in SourceId::TEMPERATURES {
            let Some(s) = self.source(id) else { continue };
            e.any_valid_temperature |= s.is_valid();
            e.any_pending_temperature |= s.is_pending();
            let Some(v) = s.confirmed(n) else { continue };
            match e.top1 {
                Some((_, t1)) if v <= t1 => {
                    if e.top2.is_none_or(|(_, t2)| v > t2) {
                        e.top2 = Some((id, v));
                    }
                }
                _ => {
                    e.top2 = e.top1;
                    e.top1 = Some((id, v));
                }
            }
        }
        e.smoke = self
            .source(SourceId::Smoke)
            .and_then(|s| s.confirmed(n))
            .is_some_and(|v| v >= 1);
        e.offgas = self.source(SourceId::OffGas).and_then(|s| s.confirmed(n));
        e.camera = self.source(SourceId::Camera).and_then(|s| s.confirmed(n));
        e
    }

    fn corroboration(&self, e: &Evidence, previous_threshold: DeciC) -> Option<Corroborator> {
        let rules = self.cfg.corroboration;
        if rules.second_temperature
            && let Some((source, value)) = e.top2
            && value >= previous_threshold
        {
            return Some(Corroborator::Temperature { source, value });
        }
        if rules.smoke && e.smoke {
            return Some(Corroborator::Smoke);
        }
        if rules.offgas
            && let Some(value) = e.offgas
            && value >= self.cfg.offgas_supervisory
        {
            return Some(Corroborator::OffGas { value });
        }
        None
    }

    fn temperature_cause(
        e: &Evidence,
        threshold: DeciC,
        corroborated_by: Option<Corroborator>,
    ) -> Option<Cause> {
        match e.top1 {
            Some((source, value)) if value >= threshold => Some(Cause::Temperature {
                source,
                value,
                corroborated_by,
            }),
            _ => None,
        }
    }

    /// The cause for entering `stage` from the current evidence, if its condition holds.
    fn stage_condition(&self, stage: Stage, e: &Evidence, now: u64) -> Option<Cause> {
        let c = &self.cfg;
        match stage {
            Stage::Normal => None,
            Stage::PreAlarm => {
                if let Some(cause) = Self::temperature_cause(e, c.prealarm, None) {
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
            Stage::Stage1 => {
                if let Some(cause) = Self::temperature_cause(e, c.stage1, None) {
                    Some(cause)
                } else if let Some(value) = e.offgas.filter(|v| *v >= c.offgas_stage1) {
                    Some(Cause::OffGas { value })
                } else {
                    match e.camera {
                        Some(camera) if e.smoke && camera >= c.camera_hotspot => {
                            Some(Cause::SmokeAndHotSpot { camera })
                        }
                        _ => None,
                    }
                }
            }
            Stage::Stage2 => {
                let corr = self.corroboration(e, c.stage1)?;
                Self::temperature_cause(e, c.stage2, Some(corr))
            }
            Stage::Stage3 => {
                let corr = self.corroboration(e, c.stage2)?;
                Self::temperature_cause(e, c.stage3, Some(corr))
            }
            Stage::Stage4 => self.not_falling(
                e,
                now,
                Stage::Stage3,
                self.peak3,
                c.coolant_after_ms,
                c.coolant_min_fall,
            ),
            Stage::Stage5 => self.not_falling(
                e,
                now,
                Stage::Stage4,
                self.peak4,
                c.gas_after_ms,
                c.gas_min_fall,
            ),
        }
    }

    /// Stage 4/5 condition: the previous stage has lasted `after_ms`, the governing
    /// temperature is still at or above stage 1 and has not fallen `min_fall` below the peak,
    /// and an independent corroboration holds.
    fn not_falling(
        &self,
        e: &Evidence,
        now: u64,
        previous: Stage,
        peak: Option<DeciC>,
        after_ms: u32,
        min_fall: DeciC,
    ) -> Option<Cause> {
        if self.stage != previous {
            return None;
        }
        let since = self
            .entered
            .get(usize::from(previous.code()))
            .copied()
            .unwrap_or(u64::MAX);
        if now < since.saturating_add(u64::from(after_ms)) {
            return None;
        }
        let (_, value) = e.top1?;
        let peak = peak?;
        if value < self.cfg.stage1 || value <= peak.saturating_sub(min_fall) {
            return None;
        }
        let corroborated_by = self.corroboration(e, self.cfg.stage2)?;
        Some(Cause::NotFalling {
            peak,
            now: value,
            corroborated_by,
        })
    }

    fn enter(&mut self, now: u64, stage: Stage, cause: Cause) {
        if stage <= self.stage {
            return;
        }
        self.stage = stage;
        if let Some(t) = self.entered.get_mut(usize::from(stage.code())) {
            *t = now;
        }
        self.log(now, EventKind::StageEntered { stage, cause });
    }

    /// Enters every stage up to `target`, each with its own cause if its condition holds.
    fn escalate_to(&mut self, now: u64, target: Stage, cause: Cause, e: &Evidence) {
        for s in Stage::ALL {
            if s > self.stage && s <= target {
                let own = self.stage_condition(s, e, now).unwrap_or(cause);
                self.enter(now, s, own);
            }
        }
    }

    fn reset_refusal(&self) -> Option<ResetRefusal> {
        for id in SourceId::TEMPERATURES {
            if let Some(value) = self.source(id).and_then(Source::valid_latest)
                && value >= self.cfg.reset_max
            {
                return Some(ResetRefusal::TemperatureHigh { source: id, value });
            }
        }
        if self
            .source(SourceId::Smoke)
            .and_then(Source::valid_latest)
            .is_some_and(|v| v >= 1)
        {
            return Some(ResetRefusal::SmokePresent);
        }
        if self
            .source(SourceId::OffGas)
            .and_then(Source::valid_latest)
            .is_some_and(|v| v >= self.cfg.offgas_supervisory)
        {
            return Some(ResetRefusal::OffGasPresent);
        }
        let any_valid = SourceId::TEMPERATURES
            .iter()
            .any(|id| self.source(*id).is_some_and(Source::is_valid));
        if !any_valid {
            return Some(ResetRefusal::NoValidTemperature);
        }
        None
    }

    fn latched(&self) -> bool {
        self.stage != Stage::Normal || self.isolated || self.agent_released || self.gas != Gas::Idle
    }

    fn do_reset(&mut self, now: u64) {
        self.stage = Stage::Normal;
        self.entered = [0; 7];
        self.agent_released = false;
        self.agent_inhibit_logged = false;
        self.gas = Gas::Idle;
        self.isolated = false;
        self.peak3 = None;
        self.peak4 = None;
        self.silenced = false;
        self.config_changed = false;
        self.ror = [Ror::default(); 4];
        self.ror_active = false;
        self.dropped_seen = self.log.dropped();
        self.log(now, EventKind::ResetAccepted);
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

    fn gas_step(&mut self, now: u64, hold: bool, manual_only: bool) {
        if self.stage != Stage::Stage5 {
            return;
        }
        let warning = Gas::Warning {
            until: now.saturating_add(u64::from(self.cfg.gas_warning_ms)),
        };
        // Manual-only first (no automatic release at all), then the hold switch (holds only
        // while held), then the warning delay. Released is final.
        let next = match self.gas {
            Gas::Released => Gas::Released,
            _ if manual_only => Gas::ManualOnly,
            _ if hold => Gas::Held,
            Gas::Idle | Gas::Held | Gas::ManualOnly => warning,
            Gas::Warning { until } if now >= until => Gas::Released,
            other => other,
        };
        if next.state() != self.gas.state() {
            let kind = match next {
                Gas::Warning { .. } => Some(EventKind::GasWarningStarted),
                Gas::Held => Some(EventKind::GasHeld),
                Gas::ManualOnly => Some(EventKind::GasWaitingManualOnly),
                Gas::Released => Some(EventKind::GasReleased),
                Gas::Idle => None,
            };
            self.gas = next;
            if let Some(k) = kind {
                self.log(now, k);
            }
        }
    }

    /// Rate of rise, per temperature source (a source that drops out or comes back never
    /// fakes a rise): each source's confirmed value is compared with its own value one window
    /// earlier. Evaluated once per window; the signal holds until the next evaluation.
    fn update_rate_of_rise(&mut self, now: u64) {
        let n = self.cfg.confirm_samples;
        let window = u64::from(self.cfg.ror_window_ms);
        let mut active = false;
        let mut rise_max: DeciC = 0;
        for (k, id) in SourceId::TEMPERATURES.into_iter().enumerate() {
            let v = self.source(id).and_then(|s| s.confirmed(n));
            let Some(st) = self.ror.get_mut(k) else {
                continue;
            };
            match (st.reference, v) {
                (_, None) => *st = Ror::default(),
                (None, Some(v)) => st.reference = Some((now, v)),
                (Some((t, r)), Some(v)) => {
                    if now.saturating_sub(t) >= window {
                        st.rise = v.saturating_sub(r);
                        st.active = st.rise >= self.cfg.ror_rise;
                        st.reference = Some((now, v));
                    }
                }
            }
            if st.active {
                active = true;
                rise_max = rise_max.max(st.rise);
            }
        }
        self.ror_active = active;
        self.ror_last_rise = rise_max;
    }

    fn partner_check(&mut self) {
        let t1 = SourceId::RackTemp1.index();
        let t2 = SourceId::RackTemp2.index();
        let latest = |s: &Source| if s.inhibited { None } else { s.own_latest() };
        let a = self.sources.get(t1).and_then(latest);
        let b = self.sources.get(t2).and_then(latest);
        let (mut ex1, mut ex2) = (false, false);
        if let (Some(a), Some(b)) = (a, b)
            && a.abs_diff(b) > self.cfg.partner_band.unsigned_abs()
        {
            // Arbitrate with the other valid temperature sources: the partner farther from
            // their mean is excluded. Without a referee the lower one is excluded, so that a
            // failing sensor can never hide a real rise (stage 2+ still need corroboration).
            let mut sum: i64 = 0;
            let mut count: i64 = 0;
            for id in [SourceId::Bms, SourceId::Camera] {
                if let Some(v) = self.source(id).and_then(Source::valid_latest) {
                    sum = sum.saturating_add(i64::from(v));
                    count = count.saturating_add(1);
                }
            }
            if let Some(reference) = sum.checked_div(count) {
                let da = (i64::from(a).saturating_sub(reference)).unsigned_abs();
                let db = (i64::from(b).saturating_sub(reference)).unsigned_abs();
                if da > db {
                    ex1 = true;
                } else if db > da {
                    ex2 = true;
                } else if a < b {
                    ex1 = true;
                } else {
                    ex2 = true;
                }
            } else if a < b {
                ex1 = true;
            } else {
                ex2 = true;
            }
        }
        if let Some(s) = self.sources.get_mut(t1) {
            s.disagree = ex1;
        }
        if let Some(s) = self.sources.get_mut(t2) {
            s.disagree = ex2;
        }
    }

    /// One control cycle. `now_ms` is a monotonic millisecond clock (a value lower than the
    /// previous one is treated as no time passing). Bounded work, never panics.
    pub fn step(&mut self, now_ms: u64, inputs: &Inputs) -> Outputs {
        let now = now_ms.max(self.last_now);
        if !self.started {
            self.started = true;
            for s in self.sources.iter_mut() {
                s.start(now);
            }
        }
        self.last_now = now;
        let cfg = self.cfg;
        let stage_before = self.stage;
        let troubles_before = self.out.troubles;
        let sup_before = self.out.supervisory;

        // 1. Local switches. A faulted manual-only switch counts as manual-only (never release
        // agent or gas on a room that may be occupied); any other faulted switch counts as off.
        let (_, reset_edge) = self.switch(SW_RESET, inputs.reset, false);
        let (hold, _) = self.switch(SW_HOLD, inputs.hold, false);
        let (_, manual_edge) = self.switch(SW_MANUAL, inputs.manual_release, false);
        let (manual_only, _) = self.switch(SW_MANUAL_ONLY, inputs.manual_only, true);
        let (authority, _) = self.switch(SW_AUTHORITY, inputs.authority, false);

        // 2. Sources: samples, staleness, plausibility, inhibit, partner check.
        if let Some((id, until)) = self.inhibit
            && now >= until
        {
            self.inhibit = None;
            self.log(now, EventKind::InhibitEnded { source: id });
        }
        for (i, s) in self.sources.iter_mut().enumerate() {
            let id = SourceId::ALL.get(i).copied().unwrap_or(SourceId::Bms);
            s.update(inputs.analog(id), now, &cfg);
            s.inhibited = self.inhibit.is_some_and(|(x, _)| x == id);
        }
        self.partner_check();
        for id in SourceId::ALL {
            // Pending (never sampled yet, within three periods) is not a trouble. Inhibited is
            // reported (the source stays excluded) but its trouble is `sensor_inhibited`.
            let now_invalid = self
                .source(id)
                .and_then(Source::invalidity)
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

        // 3. Evidence and rate of rise.
        let e = self.evidence();
        self.update_rate_of_rise(now);

        // 4. Local reset (refused while anything is still hot, smoking or unverifiable).
        if reset_edge && self.latched() {
            match self.reset_refusal() {
                Some(r) => self.log(now, EventKind::ResetRefused(r)),
                None => self.do_reset(now),
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
            if let Some(cause) = self.stage_condition(s, &e, now) {
                self.escalate_to(now, s, cause, &e);
                break;
            }
        }
        if self.stage == Stage::Stage3 {
            self.peak3 = max_opt(self.peak3, e.top1.map(|(_, v)| v));
        }
        if self.stage == Stage::Stage4 {
            self.peak4 = max_opt(self.peak4, e.top1.map(|(_, v)| v));
        }

        // 6. Manual release: at least stage 3 with agent; overrides the gas hold and delay.
        if manual_edge {
            self.log(now, EventKind::ManualRelease);
            if self.stage < Stage::Stage3 {
                self.escalate_to(now, Stage::Stage3, Cause::ManualRelease, &e);
                self.peak3 = max_opt(self.peak3, e.top1.map(|(_, v)| v));
            }
            if !self.agent_released {
                self.agent_released = true;
                self.log(now, EventKind::AgentReleased);
            }
            if self.stage == Stage::Stage5 && self.gas != Gas::Released {
                self.gas = Gas::Released;
                self.log(now, EventKind::GasReleased);
            }
        }

        // 7. Automatic agent, unless manual-only mode holds it back.
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

        // 8. Room gas: warning, hold-to-abort, manual-only, release.
        self.gas_step(now, hold, manual_only);

        // 9. Loss of every valid temperature source: trouble at once, isolation after a delay.
        let lost = !e.any_valid_temperature && !e.any_pending_temperature;
        if lost {
            let since = *self.loss_since.get_or_insert(now);
            if !self.isolated && now.saturating_sub(since) >= u64::from(cfg.isolate_after_ms) {
                self.isolated = true;
                self.log(now, EventKind::BatteryIsolated);
            }
        } else {
            self.loss_since = None;
        }

        // 10. Test mode ends at once on a real detection, or when it expires.
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

        // 11. Actions; the authority key forces the contactor open above everything.
        let actions = self.actions();

        // 12. Feedback supervision: a mismatch beyond the tolerance is a reported fault; the
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

        // 13. Troubles and supervisory signals, logged on every change.
        for id in SourceId::ALL {
            let reported = self.reported_invalid.get(id.index()).copied().flatten();
            if reported.is_some_and(|w| w != Invalidity::Inhibited) {
                troubles.insert(Trouble::for_source(id));
            }
        }
        if lost {
            troubles.insert(Trouble::NoValidTemperature);
        }
        if self.inhibit.is_some() {
            troubles.insert(Trouble::SensorInhibited);
        }
        if self.switch_fault.iter().any(|f| *f) {
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

        // 14. Buzzer: sounds for any stage, trouble or supervisory signal until acknowledged,
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
            governing: e.top1.map(|(_, v)| v),
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
                let faulted = matches!(
                    s.own_invalidity(),
                    Some(w) if w != Invalidity::Pending
                ) || s.disagree;
                if !faulted {
                    return Err(Refused::SensorNotFaulted);
                }
                self.inhibit = Some((sensor, now.saturating_add(u64::from(duration_ms))));
                if let Some(s) = self.sources.get_mut(sensor.index()) {
                    s.inhibited = true;
                }
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

fn max_opt(a: Option<DeciC>, b: Option<DeciC>) -> Option<DeciC> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
