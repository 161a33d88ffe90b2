//! Property tests: random input sequences through millions of steps, checking the safety and
//! liveness invariants after every single step.
//!
//! Each proptest case picks a seed, a fault and a few scenario parameters; a fast
//! deterministic generator then produces a long input sequence from them (proptest would be
//! far too slow generating millions of inputs one by one). Fault generators: a sensor stuck at
//! a plausible value, a slow upward drift, a common-mode drift of a declared common-cause
//! group, every temperature sensor burning out after a stage, a flickering reading, plus open
//! and short codes, out-of-range values, faults and silences everywhere. Controller restarts
//! (latch record through its bytes) happen at random.
//!
//! Sizes: `FIRE_PROPTEST_CASES` (default [`DEFAULT_CASES`] per property; the liveness property
//! runs [`LIVENESS_CASES_FACTOR`] times as many short cases) and `FIRE_PROPTEST_STEPS`
//! (default [`DEFAULT_STEPS`] steps per case; liveness cases are [`LIVENESS_STEPS`] steps).
//! Every property prints its step count and how many cases reached each stage; run with
//! `-- --nocapture` to see them.

#![allow(clippy::field_reassign_with_default, clippy::needless_range_loop)]

use std::sync::Mutex;

use fire_logic::{
    Action, Analog, Config, Digital, EventKind, Inputs, LatchRecord, NetworkCommand, Outputs,
    RESTORE_CREDIT_MS, RackLogic, SourceId, Stage, Supervisory,
};
use proptest::prelude::*;

/// Default proptest cases per property.
const DEFAULT_CASES: u64 = 40;
/// Default steps per case (main, faults and network properties).
const DEFAULT_STEPS: u64 = 12_500;
/// The liveness property runs this many times the cases...
const LIVENESS_CASES_FACTOR: u64 = 5;
/// ...of this many steps each.
const LIVENESS_STEPS: u64 = 2_500;
/// The sample period of the generators (the default configuration's).
const PERIOD: u64 = 500;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn steps_per_case() -> u64 {
    env_u64("FIRE_PROPTEST_STEPS", DEFAULT_STEPS)
}

fn cases() -> u64 {
    env_u64("FIRE_PROPTEST_CASES", DEFAULT_CASES)
}

/// `step` calls of one default run of every property here (the network property steps two
/// logics): the number README.md states.
fn default_total_steps() -> u64 {
    DEFAULT_CASES * DEFAULT_STEPS * (1 + 1 + 2)
        + DEFAULT_CASES * LIVENESS_CASES_FACTOR * LIVENESS_STEPS
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + self.below((hi - lo + 1) as u64) as i32
    }
    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

// ------------------------------------------------------------------------ fault generators

/// One sensor fault of a case.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// A temperature source stuck at a plausible value (a frozen transmitter).
    StuckInRange {
        source: usize,
        value: i32,
    },
    /// A temperature source drifting upward, in thousandths of a tenth per step.
    SlowDrift {
        source: usize,
        per_step: i32,
    },
    /// Both rack sensors (one declared common-cause group) drifting up together (a sagging
    /// ADC reference), in thousandths of a tenth per step.
    CommonModeDrift {
        per_step: i32,
    },
    /// Every temperature source burns out (open code, fault, silence, or a mix) once the
    /// logic has been in `after` or later for `delay` steps.
    BurnOut {
        after: Stage,
        delay: u32,
        how: u8,
    },
    /// A temperature source flickering +-`amplitude` tenths from sample to sample.
    Flicker {
        source: usize,
        amplitude: i32,
    },
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::None),
        (0usize..4, -200i32..1_500)
            .prop_map(|(source, value)| Fault::StuckInRange { source, value }),
        (0usize..4, 50i32..3_000)
            .prop_map(|(source, per_step)| Fault::SlowDrift { source, per_step }),
        (50i32..3_000).prop_map(|per_step| Fault::CommonModeDrift { per_step }),
        (0u8..7, 0u32..400, 0u8..4).prop_map(|(s, delay, how)| Fault::BurnOut {
            after: Stage::ALL[usize::from(s)],
            delay,
            how
        }),
        (0usize..4, 100i32..400)
            .prop_map(|(source, amplitude)| Fault::Flicker { source, amplitude }),
    ]
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    seed: u64,
    /// Upward drift of the temperature walks, tenths per step.
    drift: i32,
    offgas_fitted: bool,
    confirm: u8,
    /// Manual and room-gas releases pressed at all.
    manual: bool,
    fault: Fault,
    /// Rack sensors 1 and 2 declared one common-cause group.
    groups: bool,
    /// Controller restarts at random.
    restarts: bool,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        -10i32..40,
        any::<bool>(),
        1u8..=2,
        any::<bool>(),
        fault(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(seed, drift, offgas_fitted, confirm, manual, fault, groups, restarts)| Scenario {
                seed: seed | 1,
                drift,
                offgas_fitted,
                confirm,
                manual,
                fault,
                groups,
                restarts,
            },
        )
}

fn config(s: &Scenario) -> Config {
    let mut c = Config::default();
    c.fitted.offgas = s.offgas_fitted;
    c.confirm_samples = s.confirm;
    if s.groups || matches!(s.fault, Fault::CommonModeDrift { .. }) {
        c.common_cause[SourceId::RackTemp1 as usize] = 1;
        c.common_cause[SourceId::RackTemp2 as usize] = 1;
    }
    c
}

/// Random but physically flavoured inputs: drifting temperatures with noise, spikes, faults,
/// open/short codes, silences; flickering smoke; switches and feedbacks; and the case's fault.
struct Gen {
    rng: Rng,
    s: Scenario,
    cfg: Config,
    walk: [i32; 4],
    /// A sensor stuck on a garbage reading (open/short code, out of range, fault) for a while.
    stuck: [Option<(Analog, u32)>; 4],
    offgas: i32,
    smoke: bool,
    hold: bool,
    manual_only: bool,
    authority: bool,
    /// No-fire mode: plausible readings stay below the pre-alarm level, smoke never comes,
    /// off-gas stays below the supervisory level, nobody presses a release; only the case's
    /// fault (and garbage) can read high.
    no_fire: bool,
    step: u64,
    drift_acc: i32,
    flick: bool,
    /// Set by the harness when the burn-out fault fires.
    burnt: bool,
    /// Steps the reset key stays held.
    reset_left: u32,
    t: u64,
}

impl Gen {
    fn new(s: Scenario, no_fire: bool) -> Gen {
        Gen {
            rng: Rng(s.seed),
            s,
            cfg: config(&s),
            walk: [250; 4],
            stuck: [None; 4],
            offgas: 0,
            smoke: false,
            hold: false,
            manual_only: false,
            authority: false,
            no_fire,
            step: 0,
            drift_acc: 0,
            flick: false,
            burnt: false,
            reset_left: 0,
            t: 0,
        }
    }

    fn advance(&mut self) -> u64 {
        let r = &mut self.rng;
        let dt = if r.chance(20) {
            0
        } else if r.chance(10) {
            r.below(4_000)
        } else {
            300 + r.below(400)
        };
        self.t += dt;
        self.step += 1;
        if let Fault::SlowDrift { per_step, .. } | Fault::CommonModeDrift { per_step } =
            self.s.fault
        {
            self.drift_acc = (self.drift_acc + per_step).min(1_500_000);
        }
        self.flick = !self.flick;
        self.t
    }

    fn garbage(&mut self, i: usize) -> Option<Analog> {
        let cfg = self.cfg;
        let r = &mut self.rng;
        if let Some((value, left)) = self.stuck[i] {
            self.stuck[i] = left.checked_sub(1).map(|l| (value, l));
            return Some(value);
        }
        if r.chance(2) {
            let value = match r.below(4) {
                0 => Analog::Value(cfg.open_code),
                1 => Analog::Value(cfg.short_code),
                2 => Analog::Value(cfg.valid_max + 1 + r.range(0, 20_000)),
                _ => Analog::Fault,
            };
            self.stuck[i] = Some((value, 20 + r.below(400) as u32));
            return Some(value);
        }
        if r.chance(100) {
            return Some(Analog::NoSample);
        }
        if r.chance(8) {
            return Some(Analog::Fault);
        }
        if r.chance(4) {
            return Some(Analog::Value(cfg.open_code));
        }
        if r.chance(4) {
            return Some(Analog::Value(cfg.short_code));
        }
        if r.chance(4) {
            // Out of the plausible range on either side.
            return Some(Analog::Value(if r.chance(500) {
                cfg.valid_max + 1 + r.range(0, 20_000)
            } else {
                cfg.valid_min - 1 - r.range(0, 2_000)
            }));
        }
        None
    }

    fn temp(&mut self, i: usize) -> Analog {
        if self.burnt
            && let Fault::BurnOut { how, .. } = self.s.fault
        {
            let how = if how == 3 {
                self.rng.below(3) as u8
            } else {
                how
            };
            return match how {
                0 => Analog::Value(self.cfg.open_code),
                1 => Analog::Fault,
                _ => Analog::NoSample,
            };
        }
        if let Fault::StuckInRange { source, value } = self.s.fault
            && source == i
        {
            return Analog::Value(value);
        }
        if let Some(g) = self.garbage(i) {
            return g;
        }
        let cfg = self.cfg;
        let r = &mut self.rng;
        let w = &mut self.walk[i];
        let mut v = if self.no_fire {
            *w = (*w + r.range(-60, 60)).clamp(cfg.valid_min, cfg.prealarm - 1);
            *w
        } else {
            if r.chance(3) {
                *w = 250; // cooled down
            }
            *w = (*w + r.range(-30, 30) + self.s.drift).clamp(-200, 1_500);
            if r.chance(5) {
                *w + r.range(200, 800) // spike
            } else {
                *w + r.range(-5, 5)
            }
        };
        match self.s.fault {
            Fault::SlowDrift { source, .. } if source == i => v += self.drift_acc / 1_000,
            Fault::CommonModeDrift { .. } if i == 1 || i == 2 => v += self.drift_acc / 1_000,
            Fault::Flicker { source, amplitude } if source == i => {
                v += if self.flick { amplitude } else { -amplitude };
            }
            _ => {}
        }
        Analog::Value(v.clamp(cfg.valid_min, cfg.valid_max))
    }

    fn inputs(&mut self) -> Inputs {
        let mut i = Inputs {
            bms_max: self.temp(0),
            rack_temp1: self.temp(1),
            rack_temp2: self.temp(2),
            camera_max: self.temp(3),
            ..Inputs::default()
        };
        let r = &mut self.rng;
        if r.chance(15) {
            self.smoke = !self.smoke;
        }
        i.smoke = if r.chance(5) {
            Digital::Fault
        } else if r.chance(80) {
            Digital::NoSample
        } else if self.smoke && !self.no_fire {
            Digital::On
        } else {
            Digital::Off
        };
        if self.no_fire {
            self.offgas = (self.offgas + r.range(-3, 3)).clamp(0, self.cfg.offgas_supervisory - 15);
            i.offgas = match r.below(20) {
                0 => Analog::Fault,
                1 => Analog::Value(r.range(1_001, 5_000)),
                2 => Analog::Value(r.range(-500, -1)),
                _ => Analog::Value(self.offgas),
            };
        } else {
            self.offgas = (self.offgas + r.range(-20, 22)).clamp(0, 600);
            i.offgas = if r.chance(10) {
                Analog::Fault
            } else {
                Analog::Value(self.offgas)
            };
        }
        let toggle = |r: &mut Rng, v: &mut bool, pm| {
            if r.chance(pm) {
                *v = !*v;
            }
            if r.chance(3) {
                Digital::Fault
            } else if r.chance(300) {
                Digital::NoSample
            } else if *v {
                Digital::On
            } else {
                Digital::Off
            }
        };
        i.hold = toggle(r, &mut self.hold, 10);
        i.manual_only = toggle(r, &mut self.manual_only, 5);
        i.authority = toggle(r, &mut self.authority, 3);
        // The reset key: short presses, and now and then held for 10-40 s (the override).
        i.reset = if self.reset_left > 0 {
            self.reset_left -= 1;
            Digital::On
        } else if r.chance(1) {
            self.reset_left = 20 + r.below(60) as u32;
            Digital::On
        } else if r.chance(10) {
            Digital::On
        } else {
            Digital::Off
        };
        let presses = self.s.manual && !self.no_fire;
        i.manual_release = if presses && r.chance(1) {
            Digital::On
        } else {
            Digital::Off
        };
        i.room_gas_release = if presses && r.chance(1) {
            Digital::On
        } else if r.chance(5) {
            Digital::NoSample
        } else {
            Digital::Off
        };
        for f in i.feedback.iter_mut() {
            *f = match r.below(20) {
                0 => Digital::Fault,
                1..=3 => Digital::NoSample,
                4..=11 => Digital::On,
                _ => Digital::Off,
            };
        }
        i
    }

    fn command(&mut self) -> Option<NetworkCommand> {
        let r = &mut self.rng;
        if !r.chance(20) {
            return None;
        }
        Some(match r.below(5) {
            0 => NetworkCommand::Acknowledge,
            1 => NetworkCommand::TimeSync {
                unix_ms: r.next() as i64,
            },
            2 => NetworkCommand::TestMode { on: true },
            3 => NetworkCommand::TestMode { on: false },
            _ => NetworkCommand::InhibitSensor {
                sensor: SourceId::ALL[r.below(6) as usize],
                duration_ms: r.below(u64::from(self.cfg.inhibit_max_ms) * 2) as u32,
            },
        })
    }

    /// The harness tells the generator the stage, for the burn-out fault.
    fn observe(&mut self, stage: Stage, since_steps: &mut u32) {
        if let Fault::BurnOut { after, delay, .. } = self.s.fault
            && stage >= after
        {
            *since_steps += 1;
            if *since_steps > delay {
                self.burnt = true;
            }
        }
    }
}

/// A controller restart: the latch record through its bytes, a fresh logic at `now`.
fn restart(logic: &RackLogic, now: u64) -> RackLogic {
    let bytes = logic.latch_record().to_bytes();
    let rec = LatchRecord::from_bytes(&bytes).expect("a record always decodes");
    RackLogic::restore(*logic.config(), &rec, now).expect("valid configuration")
}

// ------------------------------------------------------------------------ the oracle

/// Independent bookkeeping of what the raw inputs allow: necessary conditions for what the
/// logic may do, computed without its filters.
struct Oracle {
    cfg: Config,
    reset: bool,
    reset_since: Option<u64>,
    manual: bool,
    room_gas: bool,
    authority: bool,
    manual_only: bool,
    hold: bool,
    /// Last in-range raw sample of each temperature source (None after garbage).
    last: [Option<i32>; 4],
    /// Highest in-range raw sample since the last garbage sample (the rate-limited value the
    /// logic uses can never exceed it).
    max_raw: [Option<i32>; 4],
    /// Time of the last sample of each source (staleness).
    sampled: [Option<u64>; 6],
    smoke: Option<bool>,
    offgas: Option<i32>,
    manual_since_reset: bool,
    room_gas_since_reset: bool,
    hot2_since_reset: bool,
    hot3_since_reset: bool,
    lost_after_hot2: bool,
}

fn level(prev: bool, d: Digital) -> bool {
    match d {
        Digital::NoSample => prev,
        Digital::On => true,
        Digital::Off | Digital::Fault => false,
    }
}

impl Oracle {
    fn new(cfg: Config) -> Oracle {
        Oracle {
            cfg,
            reset: false,
            reset_since: None,
            manual: false,
            room_gas: false,
            authority: false,
            manual_only: false,
            hold: false,
            last: [None; 4],
            max_raw: [None; 4],
            sampled: [None; 6],
            smoke: None,
            offgas: None,
            manual_since_reset: false,
            room_gas_since_reset: false,
            hot2_since_reset: false,
            hot3_since_reset: false,
            lost_after_hot2: false,
        }
    }

    fn plausible(&self, v: i32) -> bool {
        v >= self.cfg.valid_min
            && v <= self.cfg.valid_max
            && v != self.cfg.open_code
            && v != self.cfg.short_code
    }

    fn fresh(&self, k: usize, now: u64) -> bool {
        self.sampled[k].is_some_and(|t| now - t <= 3 * u64::from(self.cfg.period_ms[k]))
    }

    /// A temperature source valid for its own reasons (not counting the partner check).
    fn temp_valid(&self, k: usize, now: u64) -> Option<i32> {
        self.last[k].filter(|_| self.fresh(k, now))
    }

    /// Updates from this step's inputs; returns (manual edge, room gas edge).
    fn see(&mut self, now: u64, i: &Inputs) -> (bool, bool) {
        let reset = level(self.reset, i.reset);
        let manual = level(self.manual, i.manual_release);
        let room_gas = level(self.room_gas, i.room_gas_release);
        let edges = (manual && !self.manual, room_gas && !self.room_gas);
        if reset && !self.reset {
            self.reset_since = Some(now);
        }
        if !reset {
            self.reset_since = None;
        }
        self.reset = reset;
        self.manual = manual;
        self.room_gas = room_gas;
        self.authority = level(self.authority, i.authority);
        // A faulted manual-only or hold switch counts as on.
        let on_or_fault = |prev: bool, d: Digital| match d {
            Digital::NoSample => prev,
            Digital::On | Digital::Fault => true,
            Digital::Off => false,
        };
        self.manual_only = on_or_fault(self.manual_only, i.manual_only);
        self.hold = on_or_fault(self.hold, i.hold);
        for (k, a) in [i.bms_max, i.rack_temp1, i.rack_temp2, i.camera_max]
            .into_iter()
            .enumerate()
        {
            match a {
                Analog::NoSample => {}
                Analog::Value(v) if self.plausible(v) => {
                    self.sampled[k] = Some(now);
                    self.last[k] = Some(v);
                    self.max_raw[k] = Some(self.max_raw[k].map_or(v, |m| m.max(v)));
                }
                _ => {
                    self.sampled[k] = Some(now);
                    self.last[k] = None;
                    self.max_raw[k] = None;
                }
            }
        }
        match i.smoke {
            Digital::NoSample => {}
            d => {
                self.sampled[4] = Some(now);
                self.smoke = match d {
                    Digital::On => Some(true),
                    Digital::Off => Some(false),
                    _ => None,
                };
            }
        }
        match i.offgas {
            Analog::NoSample => {}
            Analog::Value(v) if (0..=1_000).contains(&v) => {
                self.sampled[5] = Some(now);
                self.offgas = Some(v);
            }
            _ => {
                self.sampled[5] = Some(now);
                self.offgas = None;
            }
        }
        self.manual_since_reset |= edges.0 || edges.1;
        self.room_gas_since_reset |= edges.1;
        self.hot2_since_reset |= self.hot(self.cfg.stage2, self.cfg.stage1);
        self.hot3_since_reset |= self.hot(self.cfg.stage3, self.cfg.stage2);
        if self.hot2_since_reset && (0..4).all(|k| self.temp_valid(k, now).is_none()) {
            self.lost_after_hot2 = true;
        }
        edges
    }

    /// Raw evidence for a corroborated stage: one source whose raw readings reached
    /// `threshold` plus a corroborator independent of it.
    fn hot(&self, threshold: i32, previous: i32) -> bool {
        let ids = SourceId::TEMPERATURES;
        (0..4).any(|k| {
            self.max_raw[k].is_some_and(|v| v >= threshold)
                && ((0..4).any(|j| {
                    self.cfg.independent(ids[k], ids[j])
                        && self.max_raw[j].is_some_and(|v| v >= previous)
                }) || (self.smoke == Some(true)
                    && self.cfg.independent(ids[k], SourceId::Smoke))
                    || (self.cfg.fitted.offgas
                        && self
                            .offgas
                            .is_some_and(|v| v >= self.cfg.offgas_supervisory)
                        && self.cfg.independent(ids[k], SourceId::OffGas)))
        })
    }

    /// A controller restart: the logic knows no switch level until it samples one.
    fn after_restart(&mut self) {
        self.reset = false;
        self.reset_since = None;
        self.manual = false;
        self.room_gas = false;
        self.authority = false;
        self.manual_only = false;
        self.hold = false;
    }

    fn after_reset(&mut self) {
        self.manual_since_reset = false;
        self.room_gas_since_reset = false;
        self.hot2_since_reset = self.hot(self.cfg.stage2, self.cfg.stage1);
        self.hot3_since_reset = self.hot(self.cfg.stage3, self.cfg.stage2);
        self.lost_after_hot2 = false;
    }

    /// Everything a reset needs, on the raw inputs: every fitted temperature source valid and
    /// below the reset threshold (unless `override_invalid`), no smoke, no off-gas.
    fn reset_allowed(&self, now: u64, override_invalid: bool) -> Result<(), String> {
        let mut any = false;
        for k in 0..4 {
            if !self.cfg.fitted.source_fitted(k) {
                continue;
            }
            match self.temp_valid(k, now) {
                Some(v) if v >= self.cfg.reset_max => return Err(format!("temp {k} at {v}")),
                Some(_) => any = true,
                None if !override_invalid => return Err(format!("temp {k} invalid")),
                None => {}
            }
        }
        if !any {
            return Err("no valid temperature".into());
        }
        if self.cfg.fitted.smoke {
            match (self.smoke, self.fresh(4, now)) {
                (Some(true), true) => return Err("smoke".into()),
                (Some(false), true) => {}
                _ if !override_invalid => return Err("smoke invalid".into()),
                _ => {}
            }
        }
        if self.cfg.fitted.offgas {
            match (self.offgas, self.fresh(5, now)) {
                (Some(v), true) if v >= self.cfg.offgas_supervisory => {
                    return Err("off-gas".into());
                }
                (Some(_), true) => {}
                _ if !override_invalid => return Err("off-gas invalid".into()),
                _ => {}
            }
        }
        Ok(())
    }
}

trait FittedExt {
    fn source_fitted(&self, k: usize) -> bool;
}

impl FittedExt for fire_logic::Fitted {
    fn source_fitted(&self, k: usize) -> bool {
        [self.bms, self.rack_temp1, self.rack_temp2, self.camera][k]
    }
}

fn check_consistency(o: &Outputs) -> Result<(), TestCaseError> {
    let a = o.actions;
    prop_assert_eq!(a.contains(Action::BlanketDrop), o.stage >= Stage::Stage1);
    prop_assert_eq!(a.contains(Action::PatchFire), o.stage >= Stage::Stage2);
    prop_assert_eq!(a.contains(Action::CoolantOn), o.stage >= Stage::Stage4);
    if a.contains(Action::AgentRelease) {
        prop_assert!(o.stage >= Stage::Stage3);
    }
    if a.contains(Action::GasRelease) || a.contains(Action::GasWarning) {
        prop_assert_eq!(o.stage, Stage::Stage5);
    }
    if a.contains(Action::GasRelease) {
        prop_assert!(a.contains(Action::GasWarning));
    }
    if o.stage >= Stage::Stage1 {
        prop_assert!(a.contains(Action::ContactorOpen));
    }
    Ok(())
}

/// Per-property counters: steps, restarts, and cases by the highest stage they reached.
struct Stats {
    name: &'static str,
    steps: u64,
    restarts: u64,
    cases_by_max_stage: [u64; 7],
    extra: Vec<(String, u64)>,
}

impl Stats {
    const fn new(name: &'static str) -> Stats {
        Stats {
            name,
            steps: 0,
            restarts: 0,
            cases_by_max_stage: [0; 7],
            extra: Vec::new(),
        }
    }
    fn case(&mut self, steps: u64, restarts: u64, max: Stage) {
        self.steps += steps;
        self.restarts += restarts;
        self.cases_by_max_stage[usize::from(max.code())] += 1;
    }
    fn add(&mut self, key: &str, n: u64) {
        match self.extra.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v += n,
            None => self.extra.push((key.to_string(), n)),
        }
    }
    fn report(&self) {
        let cases: u64 = self.cases_by_max_stage.iter().sum();
        eprintln!(
            "property {}: {} cases, {} steps, {} restarts",
            self.name, cases, self.steps, self.restarts
        );
        let per: Vec<String> = Stage::ALL
            .iter()
            .zip(self.cases_by_max_stage)
            .map(|(s, n)| format!("{}={n}", s.name()))
            .collect();
        eprintln!(
            "property {}: cases by highest stage reached: {}",
            self.name,
            per.join(" ")
        );
        for (k, v) in &self.extra {
            eprintln!("property {}: {k}: {v}", self.name);
        }
    }
}

static MAIN: Mutex<Stats> = Mutex::new(Stats::new("main"));
static FAULTS: Mutex<Stats> = Mutex::new(Stats::new("faults (no fire)"));
static NETWORK: Mutex<Stats> = Mutex::new(Stats::new("network (two logics)"));
static LIVENESS: Mutex<Stats> = Mutex::new(Stats::new("liveness"));

// ------------------------------------------------------------------------ main property

fn run_main(s: Scenario) -> Result<(), TestCaseError> {
    let mut g = Gen::new(s, false);
    let cfg = g.cfg;
    let mut logic = RackLogic::new(cfg).unwrap();
    let mut oracle = Oracle::new(cfg);
    let mut prev = Stage::Normal;
    let mut max = Stage::Normal;
    let mut burn_steps = 0u32;
    let mut restarts = 0u64;
    // Since when the gas countdown may run (stage 5, not held, not stopped by manual-only).
    let mut gas_clear_since: Option<u64> = None;
    let (mut resets, mut overrides, mut gas_releases) = (0u64, 0u64, 0u64);
    let n = steps_per_case();
    for _ in 0..n {
        if let Some(c) = g.command() {
            let before = logic.outputs();
            let _ = logic.command(g.t, c);
            let after = logic.outputs();
            // No network command changes a stage or an action.
            prop_assert_eq!(before.stage, after.stage);
            prop_assert_eq!(before.actions, after.actions);
        }
        let now = g.advance();
        if s.restarts && g.rng.chance(2) {
            logic = restart(&logic, now);
            oracle.after_restart();
            restarts += 1;
        }
        let inputs = g.inputs();
        let (manual_edge, _) = oracle.see(now, &inputs);
        let before = logic.outputs().actions;
        let o = logic.step(now, &inputs);
        let mut reset_accepted = false;
        while let Some(e) = logic.take_event() {
            match e.kind {
                EventKind::ResetAccepted => {
                    resets += 1;
                    reset_accepted = true;
                    if let Err(why) = oracle.reset_allowed(now, false) {
                        prop_assert!(false, "reset accepted with {}", why);
                    }
                }
                EventKind::ResetOverride { .. } => {
                    overrides += 1;
                    reset_accepted = true;
                    prop_assert!(
                        oracle
                            .reset_since
                            .is_some_and(|t| now - t >= u64::from(cfg.reset_override_ms)),
                        "override without the key held"
                    );
                    if let Err(why) = oracle.reset_allowed(now, true) {
                        prop_assert!(false, "override reset with {}", why);
                    }
                }
                _ => {}
            }
        }
        // Manual-only mode: agent and gas are never released automatically.
        if oracle.manual_only {
            if o.actions.contains(Action::AgentRelease) && !before.contains(Action::AgentRelease) {
                prop_assert!(manual_edge, "agent released in manual-only mode");
            }
            if o.actions.contains(Action::GasRelease) && !before.contains(Action::GasRelease) {
                prop_assert!(
                    oracle.room_gas_since_reset,
                    "gas released in manual-only mode without the room gas release"
                );
            }
            prop_assert!(o.supervisory.contains(Supervisory::ManualOnlyBypass));
        }
        // Stages never go backwards without an accepted local reset.
        if o.stage < prev {
            prop_assert!(
                reset_accepted,
                "stage fell {:?} -> {:?} without reset",
                prev,
                o.stage
            );
            oracle.after_reset();
        }
        prev = o.stage;
        max = max.max(o.stage);
        // The authority key always forces the contactor open.
        if oracle.authority {
            prop_assert!(o.actions.contains(Action::ContactorOpen));
            prop_assert!(o.supervisory.contains(Supervisory::Authority));
        }
        // No patch, agent, coolant or gas without independent evidence, or a release.
        let a = o.actions;
        if a.contains(Action::PatchFire) {
            prop_assert!(
                oracle.manual_since_reset || oracle.hot2_since_reset,
                "patch without evidence: {:?}",
                o
            );
        }
        if a.contains(Action::AgentRelease)
            || a.contains(Action::CoolantOn)
            || a.contains(Action::GasRelease)
            || a.contains(Action::GasWarning)
        {
            prop_assert!(
                oracle.manual_since_reset || oracle.hot3_since_reset || oracle.lost_after_hot2,
                "release without evidence: {:?}",
                o
            );
        }
        // Every gas release follows the full warning, counted from the last time the
        // countdown could (re)start.
        let blocked = oracle.hold || (oracle.manual_only && !oracle.room_gas_since_reset);
        if o.stage == Stage::Stage5 && !before.contains(Action::GasRelease) {
            if blocked {
                gas_clear_since = None;
            } else {
                gas_clear_since.get_or_insert(now);
            }
        }
        if o.stage != Stage::Stage5 {
            gas_clear_since = None;
        }
        if a.contains(Action::GasRelease) && !before.contains(Action::GasRelease) {
            gas_releases += 1;
            let since = gas_clear_since.unwrap_or(now);
            prop_assert!(
                now - since >= u64::from(cfg.gas_warning_ms),
                "gas released {} ms after the warning could start",
                now - since
            );
        }
        check_consistency(&o)?;
        g.observe(o.stage, &mut burn_steps);
    }
    let mut st = MAIN.lock().unwrap();
    st.case(n, restarts, max);
    st.add("resets accepted", resets);
    st.add("resets with sources out of service (key held)", overrides);
    st.add(
        "room gas releases checked against the warning",
        gas_releases,
    );
    Ok(())
}

// ------------------------------------------------------------------------ faults, no fire

fn run_faults(s: Scenario) -> Result<(), TestCaseError> {
    let mut g = Gen::new(s, true);
    let cfg = g.cfg;
    let mut logic = RackLogic::new(cfg).unwrap();
    let mut oracle = Oracle::new(cfg);
    let mut max = Stage::Normal;
    let mut burn_steps = 0u32;
    let mut restarts = 0u64;
    let mut hot1_seen = false;
    let n = steps_per_case();
    for _ in 0..n {
        if let Some(c) = g.command() {
            let _ = logic.command(g.t, c);
        }
        let now = g.advance();
        if s.restarts && g.rng.chance(2) {
            logic = restart(&logic, now);
            oracle.after_restart();
            restarts += 1;
        }
        let inputs = g.inputs();
        oracle.see(now, &inputs);
        let o = logic.step(now, &inputs);
        while logic.take_event().is_some() {}
        max = max.max(o.stage);
        // No fire: whatever the faults (one sensor stuck or drifting hot, a common-cause
        // group drifting together, a flicker, every sensor burning out, codes, silences,
        // network commands, restarts), nothing goes past stage 1 (power cut and blanket on a
        // single cause is allowed), nothing is released.
        prop_assert!(o.stage <= Stage::Stage1, "{:?} with {:?}", o, s.fault);
        for act in [
            Action::PatchFire,
            Action::AgentRelease,
            Action::CoolantOn,
            Action::GasRelease,
            Action::GasWarning,
        ] {
            prop_assert!(!o.actions.contains(act), "{:?} from {:?}", act, s.fault);
        }
        // Stage 1 needs a plausible reading at the stage 1 threshold (a single cause).
        hot1_seen |= oracle.max_raw.iter().flatten().any(|v| *v >= cfg.stage1);
        if o.stage == Stage::Stage1 {
            prop_assert!(hot1_seen, "stage 1 without a hot reading");
        }
        if o.actions.contains(Action::ContactorOpen) && o.stage == Stage::Normal {
            prop_assert!(
                oracle.authority || o.supervisory.contains(Supervisory::IsolatedNoTemperature)
            );
        }
        check_consistency(&o)?;
        g.observe(o.stage, &mut burn_steps);
    }
    FAULTS.lock().unwrap().case(n, restarts, max);
    Ok(())
}

// ------------------------------------------------------------------------ network commands

fn run_network(s: Scenario) -> Result<(), TestCaseError> {
    let mut g = Gen::new(s, false);
    let cfg = g.cfg;
    let mut with_cmds = RackLogic::new(cfg).unwrap();
    let mut without = RackLogic::new(cfg).unwrap();
    let mut max = Stage::Normal;
    let mut burn_steps = 0u32;
    let mut restarts = 0u64;
    let mut accepted = 0u64;
    let n = steps_per_case();
    for _ in 0..n {
        // Every command of the vocabulary, inhibit included.
        if let Some(c) = g.command()
            && with_cmds.command(g.t, c).is_ok()
            && matches!(c, NetworkCommand::InhibitSensor { .. })
        {
            accepted += 1;
        }
        let now = g.advance();
        if s.restarts && g.rng.chance(2) {
            with_cmds = restart(&with_cmds, now);
            without = restart(&without, now);
            restarts += 1;
        }
        let inputs = g.inputs();
        let a = with_cmds.step(now, &inputs);
        let b = without.step(now, &inputs);
        while with_cmds.take_event().is_some() {}
        while without.take_event().is_some() {}
        prop_assert_eq!(a.stage, b.stage);
        prop_assert_eq!(a.actions, b.actions);
        max = max.max(a.stage);
        g.observe(a.stage, &mut burn_steps);
    }
    let mut st = NETWORK.lock().unwrap();
    st.case(2 * n, restarts, max);
    st.add("inhibit commands accepted", accepted);
    Ok(())
}

// ------------------------------------------------------------------------ liveness

/// What corroborates the hot source in a liveness case.
#[derive(Debug, Clone, Copy)]
enum Corro {
    Smoke,
    OffGas,
    Temperature(usize),
}

/// A fire with independent evidence, damaged sensors around it, holds, manual-only mode and
/// restarts; checks that every action comes within its bound and never before its time.
fn run_liveness(seed: u64) -> Result<(), TestCaseError> {
    let mut r = Rng(seed | 1);
    let mut cfg = Config::default();
    cfg.confirm_samples = 1 + r.below(2) as u8;
    cfg.fitted.offgas = r.chance(500);
    let groups = r.chance(500);
    if groups {
        cfg.common_cause[1] = 1;
        cfg.common_cause[2] = 1;
    }
    let n = u64::from(cfg.confirm_samples);
    let hot = r.below(4) as usize;
    let ids = SourceId::TEMPERATURES;
    // The hot source's partner (if it is a rack sensor) may be stuck at a plausible 28 C.
    let stuck_partner = matches!(hot, 1 | 2) && r.chance(400);
    let partner = if hot == 1 { 2 } else { 1 };
    let corro = loop {
        let c = match r.below(3) {
            0 => Corro::Smoke,
            1 if cfg.fitted.offgas => Corro::OffGas,
            _ => Corro::Temperature(r.below(4) as usize),
        };
        if let Corro::Temperature(j) = c
            && (!cfg.independent(ids[hot], ids[j]) || (stuck_partner && j == partner))
        {
            continue;
        }
        break c;
    };
    let flicker = r.chance(300);
    let burn_out = r.chance(600);
    let manual_only = r.chance(250);
    let restarts = r.chance(400);
    let holds = r.chance(300);
    let quiet_steps = 20 + r.below(200);
    let target = cfg.stage3 + 250 + r.range(0, 800);
    let mut logic = RackLogic::new(cfg).unwrap();
    let mut t = 0u64;
    let mut inp = Inputs {
        manual_only: if manual_only {
            Digital::On
        } else {
            Digital::Off
        },
        ..Inputs::default()
    };
    inp.reset = Digital::Off;
    inp.manual_release = Digital::Off;
    inp.room_gas_release = Digital::Off;
    let mut temps = [250i32; 4];
    let mut evidence_since: Option<u64> = None;
    let mut corro_on_steps = 0u64;
    let mut t3: Option<u64> = None;
    let mut t4: Option<u64> = None;
    let mut t5: Option<u64> = None;
    let mut released: Option<u64> = None;
    let mut gas_clear_since: Option<u64> = None;
    let mut restarts_in: [u64; 7] = [0; 7];
    let mut room_gas_pressed = false;
    let mut max = Stage::Normal;
    let mut restart_count = 0u64;
    let mut flick = false;
    for step in 0..LIVENESS_STEPS {
        t += PERIOD;
        let fire = step >= quiet_steps;
        let burnt = burn_out && t3.is_some_and(|t3| t >= t3 + 10_000);
        // Temperatures: the hot source ramps at a plausible 1..10 C per sample, maybe
        // flickering by 12 C; the corroborating source too; the others stay at ambient.
        for k in 0..4 {
            let goal = if fire && k == hot {
                target
            } else if fire && matches!(corro, Corro::Temperature(j) if j == k) {
                cfg.stage2 + 150
            } else {
                250 + r.range(-5, 5)
            };
            let rate = 10 + r.range(0, 90);
            temps[k] = if goal > temps[k] {
                (temps[k] + rate).min(goal)
            } else {
                (temps[k] - rate).max(goal)
            };
        }
        flick = !flick;
        let reading = |k: usize, temps: &[i32; 4]| -> Analog {
            if burnt {
                return match r_how(seed, k) {
                    0 => Analog::Value(cfg.open_code),
                    1 => Analog::Fault,
                    _ => Analog::NoSample,
                };
            }
            if stuck_partner && k == partner {
                return Analog::Value(280);
            }
            let mut v = temps[k];
            if flicker && k == hot && fire {
                v += if flick { 120 } else { -120 };
            }
            Analog::Value(v)
        };
        inp.bms_max = reading(0, &temps);
        inp.rack_temp1 = reading(1, &temps);
        inp.rack_temp2 = reading(2, &temps);
        inp.camera_max = reading(3, &temps);
        let corro_now = fire && matches!(corro, Corro::Smoke | Corro::OffGas);
        inp.smoke = if burnt && matches!(corro, Corro::Smoke) {
            Digital::Fault
        } else if corro_now && matches!(corro, Corro::Smoke) {
            Digital::On
        } else {
            Digital::Off
        };
        inp.offgas = if !cfg.fitted.offgas {
            Analog::NoSample
        } else if corro_now && matches!(corro, Corro::OffGas) {
            Analog::Value(cfg.offgas_supervisory + 40)
        } else {
            Analog::Value(5)
        };
        let corro_present = match corro {
            Corro::Smoke | Corro::OffGas => corro_now,
            Corro::Temperature(j) => temps[j] >= cfg.stage2 + 20,
        };
        corro_on_steps = if corro_present { corro_on_steps + 1 } else { 0 };
        // A restart (the press of a switch in the very first cycle after it is not counted:
        // the logic has not seen the switch released yet).
        let restarted = restarts && r.chance(8);
        if restarted {
            logic = restart(&logic, t);
            restarts_in[usize::from(logic.stage().code())] += 1;
            restart_count += 1;
        }
        // Hold pulses during the warning; the room gas release in manual-only mode.
        let stage = logic.stage();
        inp.hold = if holds && stage == Stage::Stage5 && released.is_none() && r.chance(20) {
            Digital::On
        } else {
            Digital::Off
        };
        inp.room_gas_release = if manual_only
            && stage == Stage::Stage5
            && !room_gas_pressed
            && !restarted
            && r.chance(30)
        {
            room_gas_pressed = true;
            Digital::On
        } else {
            Digital::Off
        };
        let before = logic.outputs();
        let o = logic.step(t, &inp);
        while logic.take_event().is_some() {}
        max = max.max(o.stage);
        // Liveness 1: valid independent evidence at the stage 3 threshold leads to stage 3
        // (and the agent unless manual-only) within N+1 samples.
        let min_hot = temps[hot] - if flicker { 120 } else { 0 };
        if fire && !burnt && min_hot >= cfg.stage3 + 25 && corro_on_steps > n {
            evidence_since.get_or_insert(t);
        }
        if let Some(since) = evidence_since
            && t >= since + (n + 1) * PERIOD
        {
            prop_assert!(
                o.stage >= Stage::Stage3,
                "no stage 3 {} ms after evidence: {:?} hot={} corro={:?} flicker={} stuck={}",
                t - since,
                o,
                hot,
                corro,
                flicker,
                stuck_partner
            );
            prop_assert_eq!(o.actions.contains(Action::AgentRelease), !manual_only);
        }
        if o.stage >= Stage::Stage3 && before.stage < Stage::Stage3 {
            t3 = Some(t);
        }
        if o.stage >= Stage::Stage4 && before.stage < Stage::Stage4 {
            t4 = Some(t);
            let t3 = t3.unwrap_or(t);
            // Stage delays hold across restarts: never shortened by more than the restart
            // credit, never lengthened beyond a few samples.
            let credit = restarts_in[4] * u64::from(RESTORE_CREDIT_MS);
            prop_assert!(
                t - t3 + credit >= u64::from(cfg.coolant_after_ms),
                "coolant {} ms after the agent ({} restarts)",
                t - t3,
                restarts_in[4]
            );
            if burnt {
                prop_assert!(t - t3 <= u64::from(cfg.coolant_after_ms) + 4 * PERIOD);
            }
        }
        if o.stage >= Stage::Stage5 && before.stage < Stage::Stage5 {
            t5 = Some(t);
            let t4 = t4.unwrap_or(t);
            let credit = restarts_in[5] * u64::from(RESTORE_CREDIT_MS);
            prop_assert!(t - t4 + credit >= u64::from(cfg.gas_after_ms));
            if burnt {
                prop_assert!(t - t4 <= u64::from(cfg.gas_after_ms) + 4 * PERIOD);
            }
        }
        // Liveness 2: a fire that destroyed its sensors after the agent still gets coolant
        // and gas.
        if burnt && let Some(t3) = t3 {
            if t >= t3 + u64::from(cfg.coolant_after_ms) + 4 * PERIOD {
                prop_assert!(o.stage >= Stage::Stage4, "burnt: no coolant");
            }
            if let Some(t4) = t4
                && t >= t4 + u64::from(cfg.gas_after_ms) + 4 * PERIOD
            {
                prop_assert!(o.stage >= Stage::Stage5, "burnt: no gas request");
            }
        }
        // Liveness 3 and safety: the warning precedes every gas release by at least
        // `gas_warning_ms` since the countdown could last (re)start, and the gas comes within
        // a bound of that once nothing holds it.
        let blocked = inp.hold == Digital::On || (manual_only && !room_gas_pressed);
        if o.stage == Stage::Stage5 && released.is_none() {
            if blocked {
                gas_clear_since = None;
            } else {
                gas_clear_since.get_or_insert(t);
            }
        }
        if o.actions.contains(Action::GasRelease) && released.is_none() {
            released = Some(t);
            let since = gas_clear_since.unwrap_or(t);
            prop_assert!(
                t - since >= u64::from(cfg.gas_warning_ms),
                "warning too short"
            );
        }
        if let Some(since) = gas_clear_since
            && released.is_none()
        {
            let slack = (restarts_in[6] + 2) * u64::from(RESTORE_CREDIT_MS) + 2 * PERIOD;
            prop_assert!(
                t < since + u64::from(cfg.gas_warning_ms) + slack,
                "no gas {} ms after the warning started",
                t - since
            );
        }
        if let Some(t5) = t5
            && !manual_only
            && !holds
            && !restarts
        {
            prop_assert!(
                released.is_some() || t < t5 + u64::from(cfg.gas_warning_ms) + PERIOD,
                "gas not released after the warning"
            );
        }
        check_consistency(&o)?;
    }
    let mut st = LIVENESS.lock().unwrap();
    st.case(LIVENESS_STEPS, restart_count, max);
    if evidence_since.is_some() {
        st.add("cases with independent evidence at 80 C", 1);
    }
    if burn_out && t3.is_some() {
        st.add("cases whose sensors burnt out after the agent", 1);
    }
    if released.is_some() {
        st.add("cases that released the room gas", 1);
    }
    Ok(())
}

/// How a burnt sensor reports, fixed per case and source.
fn r_how(seed: u64, k: usize) -> u8 {
    ((seed >> (8 * k)) % 3) as u8
}

// ------------------------------------------------------------------------ runners

fn run_property<S: Strategy>(
    name: &str,
    stats: &Mutex<Stats>,
    cases: u64,
    strategy: S,
    body: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let config = ProptestConfig {
        cases: cases as u32,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, body) {
        panic!("property {name} failed: {e}");
    }
    stats.lock().unwrap().report();
}

#[test]
fn prop_stages_forward_only_releases_need_independent_evidence_warning_precedes_gas() {
    run_property("main", &MAIN, cases(), scenario(), run_main);
}

#[test]
fn prop_single_cause_and_common_cause_faults_never_go_past_stage1() {
    run_property("faults (no fire)", &FAULTS, cases(), scenario(), run_faults);
}

#[test]
fn prop_network_commands_never_change_stage_or_actions() {
    run_property(
        "network (two logics)",
        &NETWORK,
        cases(),
        scenario(),
        run_network,
    );
}

#[test]
fn prop_liveness_evidence_leads_to_action_and_delays_hold_across_restarts() {
    run_property(
        "liveness",
        &LIVENESS,
        cases() * LIVENESS_CASES_FACTOR,
        any::<u64>(),
        run_liveness,
    );
    let st = LIVENESS.lock().unwrap();
    // A shallow run proves little: the liveness cases must reach every timed stage.
    if cases() >= DEFAULT_CASES {
        assert!(
            st.cases_by_max_stage[6] > 0,
            "no liveness case reached stage 5"
        );
    }
}

#[test]
fn generator_reaches_every_stage() {
    // A short run of the main property's generator must visit every stage, or the main
    // property would prove little about the later stages.
    let mut reached = [false; 7];
    for seed in 1..=20u64 {
        let s = Scenario {
            seed: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            drift: 25,
            offgas_fitted: seed % 2 == 0,
            confirm: 2,
            manual: true,
            fault: Fault::None,
            groups: seed % 3 == 0,
            restarts: false,
        };
        let mut g = Gen::new(s, false);
        let mut logic = RackLogic::new(g.cfg).unwrap();
        for _ in 0..6_000 {
            let now = g.advance();
            let i = g.inputs();
            let o = logic.step(now, &i);
            reached[usize::from(o.stage.code())] = true;
        }
    }
    assert_eq!(reached, [true; 7]);
}

#[test]
fn readme_states_the_default_step_count() {
    // Hazard: a README promising a deep run while the defaults run a shallow one.
    let total = default_total_steps();
    let millions = total as f64 / 1e6;
    let claim = format!("{millions} million steps");
    for readme in ["../../README.md", "README.md"] {
        let text =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(readme))
                .unwrap();
        assert!(
            text.contains(&claim),
            "{readme} must state the default size: `{claim}`"
        );
    }
}
