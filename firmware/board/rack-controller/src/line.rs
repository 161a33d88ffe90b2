//! Line-monitored inputs (end-of-line supervision, as fire-alarm panels read their detector and
//! switch lines): every input is a resistor network read by the ADC, so a broken or shorted
//! wire is a fault of that input, never "no smoke" or "switch operated".
//!
//! Circuit of one input (board rev B), ratiometric to the 3.000 V VREF+ that is also the ADC
//! reference, so the reading does not depend on the reference's exact value:
//!
//! ```text
//! VREF+ ── R_PU 4.7 kΩ ──┬── ADC channel (RC filter 10 kΩ / 100 nF)
//!                        │
//!                 field line (cable)
//!                        │
//!              ┌─────────┴─────────┐
//!          R_EOL 4.7 kΩ      contact ── R_ALARM 1.0 kΩ
//!              └─────────┬─────────┘
//!                        0 V
//! ```
//!
//! | line | resistance seen | nominal counts | accepted band (counts) | resistance band |
//! |---|---|---|---|---|
//! | short | ~0 Ω | 0 | 0..=[`SHORT_MAX`] | below ~177 Ω |
//! | active (contact closed) | 4.7 kΩ ∥ 1.0 kΩ = 825 Ω | 611 | [`ACTIVE_MIN`]..=[`ACTIVE_MAX`] | ~363 Ω .. ~1.52 kΩ |
//! | normal (contact open) | 4.7 kΩ | 2048 | [`NORMAL_MIN`]..=[`NORMAL_MAX`] | ~2.46 kΩ .. ~9.0 kΩ |
//! | open (wire broken) | ∞ | 4095 | [`OPEN_MIN`]..=4095 | above ~34 kΩ |
//!
//! Anything between the bands (a degraded resistor, a partial short, water in a junction box)
//! is [`LineState::OutOfBand`], a fault like open and short. The bands hold every nominal value
//! with 5 % resistors and up to 50 Ω of cable (`tests::bands_hold_nominal_values_with_tolerance`).
//!
//! [`LineFilter`] debounces the classification; [`ReleaseGuard`] keeps a release input (manual
//! release, reset key) off until it has been seen normal after power-up.

use fire_logic::Digital;

/// Pull-up from VREF+ to the ADC node, ohms.
pub const R_PULL_UP: u32 = 4_700;
/// End-of-line resistor at the far end of the line, ohms.
pub const R_EOL: u32 = 4_700;
/// Alarm resistor in series with the contact, ohms.
pub const R_ALARM: u32 = 1_000;
/// Full scale of the 12-bit converter.
pub const FULL_SCALE: u32 = 4_095;

/// Highest reading of a shorted line.
pub const SHORT_MAX: u16 = 150;
/// Lowest reading of an active line (contact closed).
pub const ACTIVE_MIN: u16 = 300;
/// Highest reading of an active line.
pub const ACTIVE_MAX: u16 = 1_000;
/// Lowest reading of a normal line (contact open, end-of-line resistor present).
pub const NORMAL_MIN: u16 = 1_500;
/// Highest reading of a normal line.
pub const NORMAL_MAX: u16 = 2_700;
/// Lowest reading of an open line.
pub const OPEN_MIN: u16 = 3_600;

/// What one reading of a monitored line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineState {
    /// End-of-line resistor only: the contact is open (no alarm, switch not operated).
    Normal,
    /// The contact is closed (alarm, switch operated, feedback reporting).
    Active,
    /// The line is broken (wire cut, connector off, end-of-line resistor missing).
    Open,
    /// The line is shorted.
    Short,
    /// Between the bands: a degraded line, never trusted.
    OutOfBand,
}

impl LineState {
    /// True for the states that are a fault of the line.
    pub const fn is_fault(self) -> bool {
        matches!(
            self,
            LineState::Open | LineState::Short | LineState::OutOfBand
        )
    }
}

/// Classifies one raw reading (pure; the thresholds are in the module table).
pub const fn classify(raw: u16) -> LineState {
    if raw <= SHORT_MAX {
        LineState::Short
    } else if raw >= ACTIVE_MIN && raw <= ACTIVE_MAX {
        LineState::Active
    } else if raw >= NORMAL_MIN && raw <= NORMAL_MAX {
        LineState::Normal
    } else if raw >= OPEN_MIN {
        LineState::Open
    } else {
        LineState::OutOfBand
    }
}

/// The reading a line of `ohms` gives (ideal converter): `4095 × R / (R_PU + R)`.
pub const fn raw_for_ohms(ohms: u32) -> u16 {
    let r = ohms as u64;
    let v = (FULL_SCALE as u64 * r + (R_PULL_UP as u64 + r) / 2) / (R_PULL_UP as u64 + r);
    if v > FULL_SCALE as u64 {
        FULL_SCALE as u16
    } else {
        v as u16
    }
}

/// Nominal reading of each state (for the emulated board and the tests).
pub const fn nominal(state: LineState) -> u16 {
    match state {
        LineState::Normal => raw_for_ohms(R_EOL),
        LineState::Active => raw_for_ohms(R_EOL * R_ALARM / (R_EOL + R_ALARM)),
        LineState::Open => FULL_SCALE as u16,
        LineState::Short => 0,
        LineState::OutOfBand => (ACTIVE_MAX + NORMAL_MIN) / 2,
    }
}

/// Consecutive readings without a valid conversion (reference out of range, ADC fault) after
/// which the line counts as faulted; until then its last confirmed state is held.
pub const MISSING_LIMIT: u8 = 2;
/// Consecutive identical readings needed to confirm a fault state.
pub const FAULT_CONFIRM: u8 = 2;

/// The debounced view of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filtered {
    /// Not yet confirmed since power-up.
    Pending,
    /// A confirmed state.
    State(LineState),
    /// No valid reading for [`MISSING_LIMIT`] scans: the line cannot be read.
    Lost,
}

impl Filtered {
    /// What the fire logic sees: normal is off, active is on, any fault or a lost line is a
    /// fault, and an unconfirmed line is "no sample yet".
    pub const fn digital(self) -> Digital {
        match self {
            Filtered::Pending => Digital::NoSample,
            Filtered::State(LineState::Normal) => Digital::Off,
            Filtered::State(LineState::Active) => Digital::On,
            Filtered::State(_) | Filtered::Lost => Digital::Fault,
        }
    }

    /// The confirmed state, if any.
    pub const fn state(self) -> Option<LineState> {
        match self {
            Filtered::State(s) => Some(s),
            _ => None,
        }
    }
}

/// Debounces one line: a normal/active change needs `confirm` identical readings, a fault
/// [`FAULT_CONFIRM`]; a missing reading holds the confirmed state for fewer than
/// [`MISSING_LIMIT`] scans.
#[derive(Debug, Clone, Copy)]
pub struct LineFilter {
    out: Filtered,
    candidate: Option<LineState>,
    count: u8,
    missing: u8,
    confirm: u8,
}

impl LineFilter {
    /// A filter that confirms a normal/active change after `confirm` (at least 1) readings.
    pub const fn new(confirm: u8) -> Self {
        LineFilter {
            out: Filtered::Pending,
            candidate: None,
            count: 0,
            missing: 0,
            confirm: if confirm == 0 { 1 } else { confirm },
        }
    }

    /// The current debounced view.
    pub const fn output(&self) -> Filtered {
        self.out
    }

    /// Takes one reading (`None`: no valid conversion this scan) and returns the debounced view.
    pub fn update(&mut self, reading: Option<u16>) -> Filtered {
        let Some(raw) = reading else {
            self.missing = self.missing.saturating_add(1);
            self.candidate = None;
            self.count = 0;
            if self.missing >= MISSING_LIMIT {
                self.out = Filtered::Lost;
            }
            return self.out;
        };
        self.missing = 0;
        let state = classify(raw);
        if self.candidate == Some(state) {
            self.count = self.count.saturating_add(1);
        } else {
            self.candidate = Some(state);
            self.count = 1;
        }
        let need = if state.is_fault() {
            FAULT_CONFIRM
        } else {
            self.confirm
        };
        if self.count >= need {
            self.out = Filtered::State(state);
        }
        self.out
    }
}

/// Power-up guard of an input that acts on its edge (manual release, reset key): it stays off
/// until it has been seen normal once. A line that is active, shorted, open or unreadable at
/// power-up is therefore a trouble and never a release (or a reset of a restored latch).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReleaseGuard {
    armed: bool,
}

impl ReleaseGuard {
    /// Unarmed.
    pub const fn new() -> Self {
        ReleaseGuard { armed: false }
    }

    /// True once the input has been seen normal.
    pub const fn armed(&self) -> bool {
        self.armed
    }

    /// Passes the filtered line through once armed. Before, a normal line arms the guard and
    /// passes; anything else is reported as blocked (`true`) and given to the logic as a line
    /// fault, which it never reads as a switch operation.
    pub fn apply(&mut self, line: Filtered) -> (Digital, bool) {
        if !self.armed {
            match line {
                Filtered::State(LineState::Normal) => self.armed = true,
                Filtered::Pending => return (Digital::NoSample, false),
                _ => return (Digital::Fault, true),
            }
        }
        (line.digital(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominal_values_classify_as_their_state() {
        for s in [
            LineState::Normal,
            LineState::Active,
            LineState::Open,
            LineState::Short,
            LineState::OutOfBand,
        ] {
            assert_eq!(classify(nominal(s)), s, "{s:?} at {}", nominal(s));
        }
        assert_eq!(nominal(LineState::Normal), 2048);
        assert_eq!(nominal(LineState::Active), 611);
    }

    #[test]
    fn bands_hold_nominal_values_with_tolerance() {
        // Hazard: a healthy line drifting into a fault band (false trouble) or, worse, a normal
        // line read as active (false alarm, false release) because of resistor tolerance or
        // cable resistance. 5 % resistors (pull-up included), up to 50 ohm of cable.
        for pu in [0.95f64, 1.0, 1.05] {
            for eol in [0.95f64, 1.0, 1.05] {
                for alarm in [0.95f64, 1.0, 1.05] {
                    for cable in [0.0f64, 50.0] {
                        let r_pu = f64::from(R_PULL_UP) * pu;
                        let r_eol = f64::from(R_EOL) * eol;
                        let r_alarm = f64::from(R_ALARM) * alarm;
                        let raw = |r: f64| (4095.0 * r / (r_pu + r)).round() as u16;
                        let normal = raw(r_eol + cable);
                        let active = raw(r_eol * r_alarm / (r_eol + r_alarm) + cable);
                        let short = raw(cable);
                        assert_eq!(classify(normal), LineState::Normal, "normal {normal}");
                        assert_eq!(classify(active), LineState::Active, "active {active}");
                        assert_eq!(classify(short), LineState::Short, "short {short}");
                        assert_eq!(classify(4095), LineState::Open);
                    }
                }
            }
        }
    }

    #[test]
    fn every_reading_has_exactly_one_state_and_faults_separate_the_bands() {
        // No reading can jump from normal to active without crossing a fault band.
        let mut last = classify(0);
        let mut changes = 0;
        for raw in 0..=4095u16 {
            let s = classify(raw);
            if s != last {
                changes += 1;
                assert!(
                    s.is_fault() || last.is_fault(),
                    "{last:?} -> {s:?} at {raw} without a fault band"
                );
                last = s;
            }
        }
        assert_eq!(changes, 6, "short|gap|active|gap|normal|gap|open");
        assert_eq!(classify(SHORT_MAX + 1), LineState::OutOfBand);
        assert_eq!(classify(ACTIVE_MAX + 1), LineState::OutOfBand);
        assert_eq!(classify(NORMAL_MAX + 1), LineState::OutOfBand);
        assert_eq!(classify(OPEN_MIN), LineState::Open);
    }

    #[test]
    fn each_state_maps_to_what_the_logic_must_see() {
        // Hazard: an open smoke line read as "no smoke", a short read as "switch operated".
        assert_eq!(Filtered::State(LineState::Normal).digital(), Digital::Off);
        assert_eq!(Filtered::State(LineState::Active).digital(), Digital::On);
        assert_eq!(Filtered::State(LineState::Open).digital(), Digital::Fault);
        assert_eq!(Filtered::State(LineState::Short).digital(), Digital::Fault);
        assert_eq!(
            Filtered::State(LineState::OutOfBand).digital(),
            Digital::Fault
        );
        assert_eq!(Filtered::Lost.digital(), Digital::Fault);
        assert_eq!(Filtered::Pending.digital(), Digital::NoSample);
    }

    #[test]
    fn a_single_noisy_reading_never_operates_a_debounced_switch() {
        // Hazard: one spike on the manual-release line releasing agent.
        let mut f = LineFilter::new(2);
        let normal = nominal(LineState::Normal);
        let active = nominal(LineState::Active);
        assert_eq!(f.update(Some(normal)), Filtered::Pending);
        assert_eq!(f.update(Some(normal)), Filtered::State(LineState::Normal));
        assert_eq!(f.update(Some(active)), Filtered::State(LineState::Normal));
        assert_eq!(f.update(Some(normal)), Filtered::State(LineState::Normal));
        assert_eq!(f.update(Some(active)), Filtered::State(LineState::Normal));
        assert_eq!(f.update(Some(active)), Filtered::State(LineState::Active));
        // A single open reading is not yet a fault; two are.
        assert_eq!(f.update(Some(4095)), Filtered::State(LineState::Active));
        assert_eq!(f.update(Some(4095)), Filtered::State(LineState::Open));
        // Feedbacks are not debounced (the logic has its own mismatch tolerance)...
        let mut fb = LineFilter::new(1);
        assert_eq!(fb.update(Some(active)), Filtered::State(LineState::Active));
        // ...but their faults are.
        assert_eq!(fb.update(Some(0)), Filtered::State(LineState::Active));
        assert_eq!(fb.update(Some(0)), Filtered::State(LineState::Short));
    }

    #[test]
    fn missing_readings_hold_briefly_then_fault() {
        // Hazard: an unreadable line (dead ADC, reference fault) kept at its last "normal".
        let mut f = LineFilter::new(1);
        f.update(Some(nominal(LineState::Normal)));
        assert_eq!(f.update(None), Filtered::State(LineState::Normal));
        assert_eq!(f.update(None), Filtered::Lost);
        assert_eq!(f.update(None), Filtered::Lost);
        assert_eq!(
            f.update(Some(nominal(LineState::Normal))),
            Filtered::State(LineState::Normal)
        );
        // Never read at all: lost too.
        let mut g = LineFilter::new(2);
        g.update(None);
        assert_eq!(g.update(None), Filtered::Lost);
    }

    #[test]
    fn a_release_input_active_or_faulted_at_power_up_is_blocked_not_a_release() {
        // Hazard: a stuck or shorted manual-release button releasing agent at every power-up,
        // or a stuck reset key resetting a latch restored from non-volatile memory.
        for first in [
            Filtered::State(LineState::Active),
            Filtered::State(LineState::Short),
            Filtered::State(LineState::Open),
            Filtered::State(LineState::OutOfBand),
            Filtered::Lost,
        ] {
            let mut g = ReleaseGuard::new();
            assert_eq!(g.apply(Filtered::Pending), (Digital::NoSample, false));
            for _ in 0..5 {
                assert_eq!(g.apply(first), (Digital::Fault, true), "{first:?}");
            }
            assert!(!g.armed());
            // Seen normal once: armed, and from then on it passes the line as it is.
            assert_eq!(
                g.apply(Filtered::State(LineState::Normal)),
                (Digital::Off, false)
            );
            assert!(g.armed());
            assert_eq!(
                g.apply(Filtered::State(LineState::Active)),
                (Digital::On, false)
            );
            assert_eq!(g.apply(first), (first.digital(), false));
        }
    }
}
