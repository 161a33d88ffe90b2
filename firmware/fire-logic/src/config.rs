//! Configuration: thresholds, confirmation, delays, plausibility and corroboration rules.
//!
//! [`Config::validate`] rejects an invalid configuration with the field and the reason; nothing
//! is ever clamped.
//!
//! `undeclared_pairs()` names fitted temperature sources that may corroborate each other with no
//! declaration that they are independent: the default declares no `common_cause` group (the logic
//! cannot know the wiring), so every deployment path checks it. The board declares its groups,
//! the edge agent's `[[rack]]` loader refuses an undeclared `temp1`/`temp2` pair (and any pair
//! that is the only corroboration), and `fire-replay` warns (HAZARDS.md F6).

use core::fmt;

use crate::types::{DeciC, SourceId};

/// The largest confirmation sample count (`Config::confirm_samples`).
pub const MAX_CONFIRM_SAMPLES: u8 = 8;
/// The confirmation window (`confirm_samples` x slowest expected period) may not exceed this.
pub const MAX_CONFIRM_WINDOW_MS: u32 = 1_000;
/// The pre-discharge warning may not exceed this.
pub const MAX_GAS_WARNING_MS: u32 = 60_000;
/// The contactor (and other) feedback may disagree with the command for at most this long
/// before a fault is reported.
pub const MAX_FEEDBACK_MISMATCH_MS: u32 = 100;
/// The largest common-cause group id (`Config::common_cause`); 0 means "no shared cause".
pub const MAX_COMMON_CAUSE_GROUP: u8 = 15;

/// Which independent evidence counts as corroboration for stage 2 and later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corroboration {
    /// A second valid temperature source at or above the previous stage's threshold.
    pub second_temperature: bool,
    /// A confirmed smoke detection.
    pub smoke: bool,
    /// Off-gas at or above `offgas_supervisory`.
    pub offgas: bool,
}

/// Which inputs are fitted on this rack. A fitted sensor that stays silent is a fault; an
/// input that is not fitted is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fitted {
    /// BMS maximum cell temperature.
    pub bms: bool,
    /// Rack temperature sensor 1.
    pub rack_temp1: bool,
    /// Rack temperature sensor 2.
    pub rack_temp2: bool,
    /// Thermal camera.
    pub camera: bool,
    /// Smoke detector.
    pub smoke: bool,
    /// Off-gas detector.
    pub offgas: bool,
    /// Feedback inputs in [`crate::Action::FEEDBACK`] order (contactor, blanket, patch, agent,
    /// coolant, gas).
    pub feedback: [bool; 6],
}

/// The fire-logic configuration. All temperatures in tenths of a degree Celsius, off-gas in
/// tenths of % LFL, times in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Pre-alarm (warning) temperature. Default 50.0 C.
    pub prealarm: DeciC,
    /// Stage 1 temperature (contactor open, blanket). Default 60.0 C.
    pub stage1: DeciC,
    /// Stage 2 temperature (patch). Default 68.0 C.
    pub stage2: DeciC,
    /// Stage 3 temperature (agent). Default 80.0 C.
    pub stage3: DeciC,
    /// A local reset is refused while any valid reading is at or above this. Default 45.0 C.
    pub reset_max: DeciC,
    /// Rate-of-rise supervisory: rise of the governing temperature over `ror_window_ms`.
    /// Default 8.0 C.
    pub ror_rise: DeciC,
    /// Rate-of-rise window. Default 60 s.
    pub ror_window_ms: u32,
    /// Off-gas supervisory level (pre-alarm, corroboration, blocks reset). Default 10.0 % LFL.
    pub offgas_supervisory: i32,
    /// Off-gas stage 1 level. Default 25.0 % LFL.
    pub offgas_stage1: i32,
    /// Off-gas at or above `offgas_supervisory` for this long (valid readings; a detector lost
    /// while the level was high keeps the timer running) gives stage 1. Default 60 s.
    pub offgas_sustained_ms: u32,
    /// Off-gas at or above `offgas_supervisory` that rose by at least this much within
    /// `offgas_ror_window_ms` gives stage 1. Default 5.0 % LFL.
    pub offgas_ror_rise: i32,
    /// Off-gas rate-of-rise window. Default 60 s.
    pub offgas_ror_window_ms: u32,
    /// Camera hot spot: camera at or above this plus smoke gives stage 1. Default 50.0 C.
    pub camera_hotspot: DeciC,
    /// N consecutive samples for a threshold to count (1..=8; N x slowest period <= 1 s).
    /// Default 2.
    pub confirm_samples: u8,
    /// Expected sample period of each sensor source, in [`crate::SourceId`] order. A source
    /// silent for 3 periods is stale. Default 500 ms each.
    pub period_ms: [u32; 6],
    /// Lowest plausible temperature. Default -40.0 C.
    pub valid_min: DeciC,
    /// Highest plausible temperature. Default 1000.0 C.
    pub valid_max: DeciC,
    /// Raw code a temperature input reports for an open circuit. Default 32767 (0x7FFF).
    pub open_code: i32,
    /// Raw code a temperature input reports for a short circuit. Default -32768 (0x8000).
    pub short_code: i32,
    /// Rate limit of a temperature source: the reading the logic uses follows the sensor by at
    /// most this much per sample, so a single-sample spike never confirms while a reading that
    /// stays high (a flickering flame) is followed within a few samples. Default 15.0 C.
    pub max_jump: DeciC,
    /// Largest plausible difference between the two redundant rack sensors. Default 15.0 C.
    pub partner_band: DeciC,
    /// Coolant (stage 4) when a valid temperature source at or above the stage 1 threshold has
    /// not fallen by this much below its own peak since stage 3 (or a source was lost while at
    /// or above stage 1, or no temperature source is valid). Default 5.0 C.
    pub coolant_min_fall: DeciC,
    /// ...checked from this long after stage 3 (time in stage 3, kept across restarts).
    /// Default 120 s.
    pub coolant_after_ms: u32,
    /// Room gas (stage 5): the same test against the peaks since stage 4. Default 5.0 C.
    pub gas_min_fall: DeciC,
    /// ...checked from this long after stage 4 (time in stage 4, kept across restarts).
    /// Default 300 s.
    pub gas_after_ms: u32,
    /// Pre-discharge warning before the room gas is released. Default 30 s, at most 60 s.
    pub gas_warning_ms: u32,
    /// Battery isolated this long after the last valid temperature source is lost. Default 60 s.
    pub isolate_after_ms: u32,
    /// Feedback mismatch tolerance. Default (and maximum) 100 ms.
    pub feedback_mismatch_ms: u32,
    /// Longest test mode. Default 30 min.
    pub test_mode_max_ms: u32,
    /// Longest sensor inhibit. Default 8 h.
    pub inhibit_max_ms: u32,
    /// Holding the local reset key this long (after a refused reset) resets with the invalid
    /// sources taken out of service, provided everything that is still valid allows a reset and
    /// at least one temperature source is valid. Logged with the sources. Default 10 s.
    pub reset_override_ms: u32,
    /// Common-cause group of each sensor source, in [`crate::SourceId`] order (`bms`,
    /// `rack_temp1`, `rack_temp2`, `camera`, `smoke`, `offgas`). Sources with the same non-zero
    /// id share an ADC, a supply, a module or a cable, and never corroborate each other; 0 means
    /// the source shares no declared cause with any other. Default: all 0 (declare the groups
    /// of the actual wiring; the rack controller board declares its own).
    pub common_cause: [u8; 6],
    /// Corroboration rules for stage 2 and later.
    pub corroboration: Corroboration,
    /// Fitted inputs.
    pub fitted: Fitted,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            prealarm: 500,
            stage1: 600,
            stage2: 680,
            stage3: 800,
            reset_max: 450,
            ror_rise: 80,
            ror_window_ms: 60_000,
            offgas_supervisory: 100,
            offgas_stage1: 250,
            offgas_sustained_ms: 60_000,
            offgas_ror_rise: 50,
            offgas_ror_window_ms: 60_000,
            camera_hotspot: 500,
            confirm_samples: 2,
            period_ms: [500; 6],
            valid_min: -400,
            valid_max: 10_000,
            open_code: 32_767,
            short_code: -32_768,
            max_jump: 150,
            partner_band: 150,
            coolant_min_fall: 50,
            coolant_after_ms: 120_000,
            gas_min_fall: 50,
            gas_after_ms: 300_000,
            gas_warning_ms: 30_000,
            isolate_after_ms: 60_000,
            feedback_mismatch_ms: MAX_FEEDBACK_MISMATCH_MS,
            test_mode_max_ms: 30 * 60_000,
            inhibit_max_ms: 8 * 3_600_000,
            reset_override_ms: 10_000,
            common_cause: [0; 6],
            corroboration: Corroboration {
                second_temperature: true,
                smoke: true,
                offgas: true,
            },
            fitted: Fitted {
                bms: true,
                rack_temp1: true,
                rack_temp2: true,
                camera: true,
                smoke: true,
                offgas: false,
                feedback: [true, false, false, false, false, false],
            },
        }
    }
}

/// Two fitted temperature sources that may corroborate each other with no common-cause
/// declaration saying they are independent ([`Config::undeclared_pairs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UndeclaredPair {
    /// The first source (in [`SourceId`] order).
    pub a: SourceId,
    /// The second source.
    pub b: SourceId,
    /// For one of the two, the other is its only possible corroboration (no other independent
    /// temperature, no smoke, no off-gas): exactly the common-mode hazard, with nothing else
    /// to catch it.
    pub only_corroboration: bool,
}

/// Why a configuration was rejected: the field and what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field (as named in the configuration file).
    pub field: &'static str,
    /// What was expected.
    pub reason: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: `{}` {}", self.field, self.reason)
    }
}

fn check(ok: bool, field: &'static str, reason: &'static str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError { field, reason })
    }
}

impl Fitted {
    pub(crate) fn source(&self, index: usize) -> bool {
        match index {
            0 => self.bms,
            1 => self.rack_temp1,
            2 => self.rack_temp2,
            3 => self.camera,
            4 => self.smoke,
            5 => self.offgas,
            _ => false,
        }
    }
}

impl Config {
    /// True if `a` may corroborate `b` (and the reverse): two different sources that do not
    /// share a declared common-cause group.
    pub fn independent(&self, a: SourceId, b: SourceId) -> bool {
        if a == b {
            return false;
        }
        let ga = self.common_cause.get(a.index()).copied().unwrap_or(0);
        let gb = self.common_cause.get(b.index()).copied().unwrap_or(0);
        ga == 0 || ga != gb
    }

    /// Pairs of fitted temperature sources that may corroborate each other although nothing
    /// in the configuration says they are independent: the second-temperature rule is enabled
    /// and at least one of the two has no declared common-cause group (0). Two sources are
    /// *declared* when both have a group: the same group (they never corroborate each other)
    /// or different groups (declared independent). Hazard #11.4: two transmitters on one ADC
    /// and one supply drift up together and, undeclared, "corroborate" each other into an
    /// agent release with no fire. The logic cannot know the wiring; every deployment path
    /// (the board's configuration, the edge agent's `[[rack]]` loader, `fire-replay`) checks
    /// these pairs and refuses or warns (see `firmware/HAZARDS.md`, F6).
    pub fn undeclared_pairs(&self) -> impl Iterator<Item = UndeclaredPair> + '_ {
        let t = SourceId::TEMPERATURES;
        (0..t.len())
            .flat_map(move |i| (i.saturating_add(1)..t.len()).map(move |j| (i, j)))
            .filter_map(move |(i, j)| {
                let (a, b) = (*t.get(i)?, *t.get(j)?);
                let group = |s: SourceId| self.common_cause.get(s.index()).copied().unwrap_or(0);
                let fitted = self.fitted.source(a.index()) && self.fitted.source(b.index());
                let undeclared = group(a) == 0 || group(b) == 0;
                (self.corroboration.second_temperature && fitted && undeclared).then(|| {
                    UndeclaredPair {
                        a,
                        b,
                        only_corroboration: !self.corroborated_without(a, b)
                            || !self.corroborated_without(b, a),
                    }
                })
            })
    }

    /// The undeclared rack-transmitter partner pair (`rack_temp1`, `rack_temp2`), if any: the
    /// pair hazard #11.4 is about (one rack, one kind of transmitter, usually one module).
    pub fn undeclared_partner(&self) -> Option<UndeclaredPair> {
        self.undeclared_pairs()
            .find(|p| p.a == SourceId::RackTemp1 && p.b == SourceId::RackTemp2)
    }

    /// True if `t` has an enabled corroboration rule with a fitted source independent of it
    /// other than `partner`.
    fn corroborated_without(&self, t: SourceId, partner: SourceId) -> bool {
        let f = &self.fitted;
        let rules = &self.corroboration;
        (rules.second_temperature
            && SourceId::TEMPERATURES
                .iter()
                .any(|o| *o != partner && f.source(o.index()) && self.independent(t, *o)))
            || (rules.smoke && f.smoke && self.independent(t, SourceId::Smoke))
            || (rules.offgas && f.offgas && self.independent(t, SourceId::OffGas))
    }

    /// True if some fitted temperature source has an enabled corroboration rule whose source is
    /// fitted and independent of it.
    fn any_independent_corroboration(&self) -> bool {
        let f = &self.fitted;
        let rules = &self.corroboration;
        SourceId::TEMPERATURES.iter().any(|t| {
            f.source(t.index())
                && ((rules.second_temperature
                    && SourceId::TEMPERATURES
                        .iter()
                        .any(|o| f.source(o.index()) && self.independent(*t, *o)))
                    || (rules.smoke && f.smoke && self.independent(*t, SourceId::Smoke))
                    || (rules.offgas && f.offgas && self.independent(*t, SourceId::OffGas)))
        })
    }

    /// Checks every field and every relation between fields. Returns the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = self;
        check(
            c.valid_min < c.valid_max,
            "valid_min_c",
            "must be below valid_max_c",
        )?;
        check(
            c.valid_min < c.reset_max,
            "reset_max_c",
            "must be above valid_min_c",
        )?;
        check(
            c.reset_max <= c.prealarm,
            "reset_max_c",
            "must not be above prealarm_c",
        )?;
        check(
            c.prealarm < c.stage1,
            "prealarm_c",
            "must be below stage1_c",
        )?;
        check(c.stage1 < c.stage2, "stage1_c", "must be below stage2_c")?;
        check(c.stage2 < c.stage3, "stage2_c", "must be below stage3_c")?;
        check(
            c.stage3 <= c.valid_max,
            "stage3_c",
            "must not be above valid_max_c",
        )?;
        check(
            c.camera_hotspot > c.valid_min && c.camera_hotspot <= c.valid_max,
            "camera_hotspot_c",
            "must be within the plausible range (valid_min_c, valid_max_c]",
        )?;
        check(
            c.open_code < c.valid_min || c.open_code > c.valid_max,
            "open_code_c",
            "must lie outside the plausible range, or an open circuit would read as a temperature",
        )?;
        check(
            c.short_code < c.valid_min || c.short_code > c.valid_max,
            "short_code_c",
            "must lie outside the plausible range, or a short circuit would read as a temperature",
        )?;
        check(
            c.open_code != c.short_code,
            "short_code_c",
            "must differ from open_code_c",
        )?;
        check(c.ror_rise > 0, "ror_rise_c", "must be greater than 0")?;
        check(
            c.ror_window_ms >= 1_000 && c.ror_window_ms <= 3_600_000,
            "ror_window_ms",
            "must be between 1000 and 3600000",
        )?;
        check(
            c.offgas_supervisory > 0,
            "offgas_supervisory_pct",
            "must be greater than 0",
        )?;
        check(
            c.offgas_supervisory < c.offgas_stage1,
            "offgas_supervisory_pct",
            "must be below offgas_stage1_pct",
        )?;
        check(
            c.offgas_stage1 <= 1_000,
            "offgas_stage1_pct",
            "must not be above 100 % LFL",
        )?;
        check(
            c.confirm_samples >= 1 && c.confirm_samples <= MAX_CONFIRM_SAMPLES,
            "confirm_samples",
            "must be between 1 and 8",
        )?;
        let mut slowest = 0u32;
        for (i, p) in c.period_ms.iter().enumerate() {
            check(
                *p >= 10 && *p <= 60_000,
                "period_ms",
                "each sensor period must be between 10 and 60000 ms",
            )?;
            if c.fitted.source(i) && *p > slowest {
                slowest = *p;
            }
        }
        let window = u32::from(c.confirm_samples).saturating_mul(slowest);
        check(
            window <= MAX_CONFIRM_WINDOW_MS,
            "confirm_samples",
            "times the slowest fitted sensor period must not exceed 1000 ms",
        )?;
        check(c.max_jump > 0, "max_jump_c", "must be greater than 0")?;
        check(
            c.offgas_sustained_ms >= 1_000 && c.offgas_sustained_ms <= 3_600_000,
            "offgas_sustained_ms",
            "must be between 1000 and 3600000",
        )?;
        check(
            c.offgas_ror_rise > 0 && c.offgas_ror_rise <= 1_000,
            "offgas_ror_rise_pct",
            "must be greater than 0 and at most 100 % LFL",
        )?;
        check(
            c.offgas_ror_window_ms >= 1_000 && c.offgas_ror_window_ms <= 3_600_000,
            "offgas_ror_window_ms",
            "must be between 1000 and 3600000",
        )?;
        check(
            c.reset_override_ms >= 3_000 && c.reset_override_ms <= 60_000,
            "reset_override_ms",
            "must be between 3000 and 60000 (a deliberate hold of the local reset key)",
        )?;
        check(
            c.common_cause.iter().all(|g| *g <= MAX_COMMON_CAUSE_GROUP),
            "common_cause",
            "group ids must be between 0 (no shared cause) and 15",
        )?;
        check(
            c.partner_band > 0,
            "partner_band_c",
            "must be greater than 0",
        )?;
        check(
            c.coolant_min_fall > 0,
            "coolant_min_fall_c",
            "must be greater than 0",
        )?;
        check(
            c.coolant_after_ms >= 1_000 && c.coolant_after_ms <= 3_600_000,
            "coolant_after_ms",
            "must be between 1000 and 3600000",
        )?;
        check(
            c.gas_min_fall > 0,
            "gas_min_fall_c",
            "must be greater than 0",
        )?;
        check(
            c.gas_after_ms >= 1_000 && c.gas_after_ms <= 3_600_000,
            "gas_after_ms",
            "must be between 1000 and 3600000",
        )?;
        check(
            c.gas_warning_ms >= 1_000 && c.gas_warning_ms <= MAX_GAS_WARNING_MS,
            "gas_warning_ms",
            "must be between 1000 and 60000 (the pre-discharge warning is at most 60 s)",
        )?;
        check(
            c.isolate_after_ms <= 600_000,
            "isolate_after_ms",
            "must not exceed 600000",
        )?;
        check(
            c.feedback_mismatch_ms >= 1 && c.feedback_mismatch_ms <= MAX_FEEDBACK_MISMATCH_MS,
            "feedback_mismatch_ms",
            "must be between 1 and 100",
        )?;
        check(
            c.test_mode_max_ms >= 1_000 && c.test_mode_max_ms <= 24 * 3_600_000,
            "test_mode_max_ms",
            "must be between 1000 and 86400000",
        )?;
        check(
            c.inhibit_max_ms >= 1_000 && c.inhibit_max_ms <= 7 * 24 * 3_600_000,
            "inhibit_max_ms",
            "must be between 1000 and 604800000",
        )?;
        check(
            c.corroboration.second_temperature || c.corroboration.smoke || c.corroboration.offgas,
            "corroboration",
            "must enable at least one of second_temperature, smoke, offgas",
        )?;
        check(
            c.fitted.bms || c.fitted.rack_temp1 || c.fitted.rack_temp2 || c.fitted.camera,
            "fitted",
            "must include at least one temperature source",
        )?;
        check(
            c.any_independent_corroboration(),
            "corroboration",
            "enables no rule with a fitted source independent of a fitted temperature source \
             (second_temperature needs two fitted temperature sources in different common-cause \
             groups; smoke and offgas must not share the group of every temperature source)",
        )?;
        Ok(())
    }

    /// A 32-bit FNV-1a fingerprint over every field, stored in the latch record so that a
    /// restore under a different configuration is reported.
    pub fn fingerprint(&self) -> u32 {
        let mut h = Fnv(0x811c_9dc5);
        let c = self;
        for v in [
            c.prealarm,
            c.stage1,
            c.stage2,
            c.stage3,
            c.reset_max,
            c.ror_rise,
            c.offgas_supervisory,
            c.offgas_stage1,
            c.offgas_ror_rise,
            c.camera_hotspot,
            c.valid_min,
            c.valid_max,
            c.open_code,
            c.short_code,
            c.max_jump,
            c.partner_band,
            c.coolant_min_fall,
            c.gas_min_fall,
        ] {
            h.bytes(&v.to_le_bytes());
        }
        for v in [
            c.ror_window_ms,
            c.coolant_after_ms,
            c.gas_after_ms,
            c.gas_warning_ms,
            c.isolate_after_ms,
            c.feedback_mismatch_ms,
            c.test_mode_max_ms,
            c.inhibit_max_ms,
            c.offgas_sustained_ms,
            c.offgas_ror_window_ms,
            c.reset_override_ms,
        ] {
            h.bytes(&v.to_le_bytes());
        }
        for p in c.period_ms {
            h.bytes(&p.to_le_bytes());
        }
        h.bytes(&[c.confirm_samples]);
        h.bytes(&c.common_cause);
        let f = &c.fitted;
        let k = &c.corroboration;
        for b in [
            f.bms,
            f.rack_temp1,
            f.rack_temp2,
            f.camera,
            f.smoke,
            f.offgas,
            k.second_temperature,
            k.smoke,
            k.offgas,
        ] {
            h.bytes(&[u8::from(b)]);
        }
        for b in f.feedback {
            h.bytes(&[u8::from(b)]);
        }
        h.0
    }
}

struct Fnv(u32);

impl Fnv {
    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
}
