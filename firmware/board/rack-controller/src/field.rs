//! A simulated rack field for the host tests and the emulated image: it turns a few settings
//! (temperature, smoke, line and read-back faults, reference, converter failure) into the raw
//! converter readings of board rev B, with the feedbacks and the output read-back following
//! what the outputs drive, as a healthy installation would. Faults are injected by overriding
//! one piece at a time.

use rack_registers::map::{line, output};

use crate::frontend::{LINE_COUNT, RawScan, healthy_scan};
use crate::line::LineState;
use crate::outputs::{Drive, Sense, nominal_sense};

/// The field's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Both transmitters, tenths of C.
    pub temp_dc: i32,
    /// The smoke detector is in alarm.
    pub smoke: bool,
    /// Lines forced to a state (otherwise normal, or following the outputs for feedbacks).
    pub lines: [Option<LineState>; LINE_COUNT],
    /// One output circuit forced to a read-back state.
    pub sense_fault: Option<(u16, Sense)>,
    /// The reference read as this instead of nominal.
    pub vrefint: Option<u16>,
    /// No conversion completes.
    pub adc_dead: bool,
    /// The supply detector reports VDD low.
    pub supply_low: bool,
}

impl Default for Field {
    fn default() -> Self {
        Field {
            temp_dc: 250,
            smoke: false,
            lines: [None; LINE_COUNT],
            sense_fault: None,
            vrefint: None,
            adc_dead: false,
            supply_low: false,
        }
    }
}

/// Circuits whose feedback the six feedback lines report, in feedback order.
const FEEDBACK_CIRCUITS: [u16; 6] = [
    output::CONTACTOR_HOLD,
    output::BLANKET,
    output::PATCH,
    output::AGENT,
    output::COOLANT,
    output::GAS_RELEASE,
];

impl Field {
    /// The readings of one scan while `drive` is applied.
    pub fn scan(&self, drive: Drive) -> RawScan {
        if self.adc_dead {
            return RawScan::NONE;
        }
        let active = |on: bool| {
            if on {
                LineState::Active
            } else {
                LineState::Normal
            }
        };
        let mut lines = [LineState::Normal; LINE_COUNT];
        if let Some(l) = lines.get_mut(usize::from(line::SMOKE)) {
            *l = active(self.smoke);
        }
        for (k, circuit) in FEEDBACK_CIRCUITS.into_iter().enumerate() {
            let on = drive.energised(circuit);
            // The contactor feedback reports "open": its hold coil de-energised.
            let reporting = if circuit == output::CONTACTOR_HOLD {
                !on
            } else {
                on
            };
            if let Some(l) = lines.get_mut(usize::from(line::FEEDBACK_BASE) + k) {
                *l = active(reporting);
            }
        }
        for (l, o) in lines.iter_mut().zip(self.lines) {
            if let Some(o) = o {
                *l = o;
            }
        }
        let mut scan = healthy_scan(self.temp_dc, lines, drive);
        if let Some((c, s)) = self.sense_fault
            && let Some(o) = scan.outputs.get_mut(usize::from(c))
        {
            *o = Some(nominal_sense(s));
        }
        if let Some(v) = self.vrefint {
            scan.vrefint_first = Some(v);
            scan.vrefint_last = Some(v);
        }
        scan.supply_low = self.supply_low;
        scan
    }
}
