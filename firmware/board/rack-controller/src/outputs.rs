//! Output circuits of board rev B: which way each one fails, what boot drives, and the
//! read-back of every circuit.
//!
//! | circuit ([`map::output`]) | energised means | fails to | why |
//! |---|---|---|---|
//! | contactor hold | battery contactor closed | **open (tripped)** | de-energise-to-trip: a dead controller, a reset held too long, a cut wire or a lost supply isolate the battery. The hold relay has a hold-up of at least 150 ms, longer than a watchdog reset and boot (< 20 ms to the first drive), so a reset alone does not drop the battery; a controller that stays down does. |
//! | blanket, patch, agent, coolant, room gas release | release | not released | energise-to-release, as EN 12094-1 asks of release outputs: a dead controller must never discharge agent or gas. The release supply is battery-backed (hold-up) so a release in progress completes on a mains failure. Each line is monitored (below). |
//! | gas pre-discharge warning | sounders on | off | energise-to-act, monitored line (EN 54-13 practice). |
//! | buzzer | sounding | off | local indication only, not monitored. |
//!
//! Boot drives [`Drive::SAFE`]: nothing released and the contactor hold de-energised, whatever
//! the latch restored from non-volatile memory says. The first control cycle then drives the
//! logic's outputs: a restored tripped stage keeps the contactor open (never "un-tripped" at
//! boot), a restored release is driven again by the logic, and a fresh boot closes the contactor
//! only once the logic has run.
//!
//! Read-back: each circuit's field line is divided into an ADC channel. With the output off, a
//! small supervision current through the end-of-line device of the release (or the contactor
//! coil) puts the line in the idle band; a broken line reads open, a shorted one short. With the
//! output on, the line reads energised. [`OutputMonitor`] compares the read-back with what was
//! driven: a disagreement (or no read-back at all) for [`MISMATCH_CONFIRM`] consecutive scans is
//! a mismatch trouble naming the circuit; a faulted line while idle is a line trouble.

use fire_logic::{Action, Outputs};
use rack_registers::map::output;

/// Number of monitored output circuits.
pub const CIRCUITS: usize = output::COUNT as usize;
/// Bit of the (unmonitored) buzzer in [`Drive`].
pub const BUZZER_BIT: u8 = 1 << 7;

/// The level of every output pin: bit set = energised, bits per [`map::output`] index and
/// [`BUZZER_BIT`].
///
/// [`map::output`]: rack_registers::map::output
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Drive(pub u8);

impl Drive {
    /// Boot and fault state: everything de-energised (contactor tripped, nothing released).
    pub const SAFE: Drive = Drive(0);

    /// The pin levels for the logic's outputs.
    pub fn for_outputs(o: &Outputs) -> Drive {
        let mut bits = 0u8;
        if !o.actions.contains(Action::ContactorOpen) {
            bits |= 1 << output::CONTACTOR_HOLD;
        }
        for (action, circuit) in [
            (Action::BlanketDrop, output::BLANKET),
            (Action::PatchFire, output::PATCH),
            (Action::AgentRelease, output::AGENT),
            (Action::CoolantOn, output::COOLANT),
            (Action::GasRelease, output::GAS_RELEASE),
            (Action::GasWarning, output::GAS_WARNING),
        ] {
            if o.actions.contains(action) {
                bits |= 1 << circuit;
            }
        }
        if o.buzzer {
            bits |= BUZZER_BIT;
        }
        Drive(bits)
    }

    /// True if `circuit` is energised.
    pub const fn energised(self, circuit: u16) -> bool {
        circuit < 8 && self.0 & (1 << circuit) != 0
    }
}

/// Highest read-back of a shorted line.
pub const SENSE_SHORT_MAX: u16 = 300;
/// Idle band (output off, end-of-line device present).
pub const SENSE_IDLE_MIN: u16 = 1_200;
/// Idle band, upper end.
pub const SENSE_IDLE_MAX: u16 = 2_400;
/// Open band (output off, line broken: supervision source only).
pub const SENSE_OPEN_MIN: u16 = 2_800;
/// Open band, upper end.
pub const SENSE_OPEN_MAX: u16 = 3_400;
/// Lowest read-back of an energised line (24 V through the divider).
pub const SENSE_ENERGISED_MIN: u16 = 3_700;

/// What the read-back of one circuit says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sense {
    /// Off, line healthy.
    Idle,
    /// On.
    Energised,
    /// Off, line broken.
    Open,
    /// Line shorted (off, or on into a short: the driver limits and the line collapses).
    Short,
    /// Between the bands.
    OutOfBand,
}

/// Classifies one read-back (pure).
pub const fn classify_sense(raw: u16) -> Sense {
    if raw <= SENSE_SHORT_MAX {
        Sense::Short
    } else if raw >= SENSE_IDLE_MIN && raw <= SENSE_IDLE_MAX {
        Sense::Idle
    } else if raw >= SENSE_OPEN_MIN && raw <= SENSE_OPEN_MAX {
        Sense::Open
    } else if raw >= SENSE_ENERGISED_MIN {
        Sense::Energised
    } else {
        Sense::OutOfBand
    }
}

/// Nominal read-back of each state (for the emulated board and the tests).
pub const fn nominal_sense(s: Sense) -> u16 {
    match s {
        Sense::Idle => 1_800,
        Sense::Energised => 3_950,
        Sense::Open => 3_100,
        Sense::Short => 40,
        Sense::OutOfBand => 2_600,
    }
}

/// Consecutive disagreeing scans before a mismatch or a line fault is reported (the first scan
/// after a change may see the circuit switching).
pub const MISMATCH_CONFIRM: u8 = 2;

/// What the read-back found, bit per circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputStatus {
    /// Read-back disagrees with the drive (or is missing).
    pub mismatch: u16,
    /// Line open, shorted or out of band while idle.
    pub line_fault: u16,
    /// Read back as energised.
    pub energised: u16,
}

/// Compares the read-back of every circuit with what was driven.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutputMonitor {
    mismatch: [u8; CIRCUITS],
    line: [u8; CIRCUITS],
}

impl OutputMonitor {
    /// A monitor with nothing counted.
    pub const fn new() -> Self {
        OutputMonitor {
            mismatch: [0; CIRCUITS],
            line: [0; CIRCUITS],
        }
    }

    /// One scan: `driven` is the drive in effect while the read-back was taken, `sense` the
    /// read-back of each circuit (`None`: no valid conversion, which can verify nothing).
    pub fn check(&mut self, driven: Drive, sense: &[Option<u16>; CIRCUITS]) -> OutputStatus {
        let mut st = OutputStatus::default();
        for (i, raw) in sense.iter().enumerate() {
            let circuit = i as u16;
            let on = driven.energised(circuit);
            let s = raw.map(classify_sense);
            let (mismatch, line_fault) = match (on, s) {
                (_, None) => (true, false),
                (false, Some(Sense::Idle)) | (true, Some(Sense::Energised)) => (false, false),
                // Energised while driven off: a stuck or welded driver (a release nobody asked
                // for) is the worst case; reported as a mismatch.
                (false, Some(Sense::Energised)) => (true, false),
                (false, Some(_)) => (false, true),
                (true, Some(_)) => (true, false),
            };
            if s == Some(Sense::Energised) {
                st.energised |= 1 << circuit;
            }
            if let (Some(m), Some(l)) = (self.mismatch.get_mut(i), self.line.get_mut(i)) {
                *m = if mismatch { m.saturating_add(1) } else { 0 };
                *l = if line_fault { l.saturating_add(1) } else { 0 };
                if *m >= MISMATCH_CONFIRM {
                    st.mismatch |= 1 << circuit;
                }
                if *l >= MISMATCH_CONFIRM {
                    st.line_fault |= 1 << circuit;
                }
            }
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fire_logic::{Actions, Stage};

    fn outputs(actions: &[Action], buzzer: bool) -> Outputs {
        let mut a = Actions::NONE;
        for x in actions {
            a.insert(*x);
        }
        Outputs {
            stage: Stage::Normal,
            actions: a,
            buzzer,
            ..Outputs::default()
        }
    }

    #[test]
    fn the_contactor_is_held_only_while_the_logic_says_so_and_boot_trips_it() {
        // Hazard: an energise-to-trip contactor cannot be tripped by a dead controller, and a
        // boot that drives "all off" un-trips a latched stage.
        assert!(Drive::for_outputs(&outputs(&[], false)).energised(output::CONTACTOR_HOLD));
        assert!(
            !Drive::for_outputs(&outputs(&[Action::ContactorOpen], false))
                .energised(output::CONTACTOR_HOLD)
        );
        assert!(!Drive::SAFE.energised(output::CONTACTOR_HOLD));
        for c in 0..8 {
            assert!(
                !Drive::SAFE.energised(c),
                "boot drives nothing: circuit {c}"
            );
        }
    }

    #[test]
    fn each_release_action_energises_its_own_circuit_only() {
        for (action, circuit) in [
            (Action::BlanketDrop, output::BLANKET),
            (Action::PatchFire, output::PATCH),
            (Action::AgentRelease, output::AGENT),
            (Action::CoolantOn, output::COOLANT),
            (Action::GasRelease, output::GAS_RELEASE),
            (Action::GasWarning, output::GAS_WARNING),
        ] {
            let d = Drive::for_outputs(&outputs(&[Action::ContactorOpen, action], false));
            assert_eq!(d.0, 1 << circuit, "{}", action.name());
        }
        assert_eq!(Drive::for_outputs(&outputs(&[], true)).0, 1 | BUZZER_BIT);
    }

    #[test]
    fn sense_bands_are_separated() {
        for s in [
            Sense::Idle,
            Sense::Energised,
            Sense::Open,
            Sense::Short,
            Sense::OutOfBand,
        ] {
            assert_eq!(classify_sense(nominal_sense(s)), s);
        }
        assert_eq!(classify_sense(SENSE_IDLE_MAX + 1), Sense::OutOfBand);
        assert_eq!(classify_sense(SENSE_OPEN_MAX + 1), Sense::OutOfBand);
    }

    fn sense(states: [Sense; CIRCUITS]) -> [Option<u16>; CIRCUITS] {
        states.map(|s| Some(nominal_sense(s)))
    }

    #[test]
    fn a_read_back_that_disagrees_for_two_scans_is_a_mismatch_naming_the_circuit() {
        // Hazard: a release driver that failed (agent commanded, nothing happens) or that is
        // stuck on (agent flowing, nothing commanded), both unseen.
        let mut m = OutputMonitor::new();
        let driven = Drive((1 << output::CONTACTOR_HOLD) | (1 << output::AGENT));
        let mut s = [Sense::Idle; CIRCUITS];
        s[output::CONTACTOR_HOLD as usize] = Sense::Energised;
        // Agent commanded but the line stays idle.
        assert_eq!(
            m.check(driven, &sense(s)).mismatch,
            0,
            "first scan: switching"
        );
        let st = m.check(driven, &sense(s));
        assert_eq!(st.mismatch, 1 << output::AGENT);
        assert_eq!(st.energised, 1 << output::CONTACTOR_HOLD);
        // It comes on: cleared at once.
        s[output::AGENT as usize] = Sense::Energised;
        assert_eq!(m.check(driven, &sense(s)).mismatch, 0);
        // Gas energised although not commanded: a mismatch too.
        s[output::GAS_RELEASE as usize] = Sense::Energised;
        m.check(driven, &sense(s));
        let st = m.check(driven, &sense(s));
        assert_eq!(st.mismatch, 1 << output::GAS_RELEASE);
        assert_ne!(st.energised & (1 << output::GAS_RELEASE), 0);
    }

    #[test]
    fn an_idle_line_open_or_shorted_is_a_line_fault_and_a_tripped_contactor_is_not() {
        // Hazard (EN 12094-1): a release line cut while idle is only found when the release is
        // needed.
        let mut m = OutputMonitor::new();
        let mut s = [Sense::Idle; CIRCUITS];
        s[output::PATCH as usize] = Sense::Open;
        s[output::COOLANT as usize] = Sense::Short;
        s[output::BLANKET as usize] = Sense::OutOfBand;
        m.check(Drive::SAFE, &sense(s));
        let st = m.check(Drive::SAFE, &sense(s));
        assert_eq!(
            st.line_fault,
            (1 << output::PATCH) | (1 << output::COOLANT) | (1 << output::BLANKET)
        );
        assert_eq!(st.mismatch, 0);
        // The tripped (de-energised) contactor hold reads idle: healthy.
        assert_eq!(st.line_fault & (1 << output::CONTACTOR_HOLD), 0);
    }

    #[test]
    fn no_read_back_verifies_nothing() {
        // Never read missing information as good news: an output that cannot be read back is
        // reported, not assumed right.
        let mut m = OutputMonitor::new();
        m.check(Drive::SAFE, &[None; CIRCUITS]);
        let st = m.check(Drive::SAFE, &[None; CIRCUITS]);
        assert_eq!(st.mismatch, (1 << CIRCUITS) - 1);
        assert_eq!(st.energised, 0);
    }
}
